//! The scheduler: every SYNC_SCHEDULER_INTERVAL, queues the runs that are due (each
//! connection and model at its definition's frequency, new connections at once), pauses
//! the syncs of connections that need reauthorisation and resumes them once reconnected.
//! Every instance runs it; `request_run` queues at most one waiting run per key, and a
//! scheduled run that finds itself no longer due does nothing.

use super::states::{self, status};
use super::RunRequest;
use crate::clients::ClientStatus;
use crate::db::schema::clients;
use crate::db::DbConnection;
use crate::state::AppState;
use actix_web::web;
use diesel::prelude::*;
use std::collections::HashMap;
use tokio::sync::watch;

pub async fn run(state: web::Data<AppState>, mut stop: watch::Receiver<bool>) {
    let settings = state.config.syncs.clone();
    if !settings.schedule {
        return;
    }
    let mut every = tokio::time::interval(settings.scheduler_interval);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let models = models_by_provider(&state);
        if let Err(e) = crate::db::run(&state.pool, move |conn| pass(conn, &models)).await {
            tracing::warn!(error = %e, "sync scheduler pass failed");
        }
    }
}

/// The models each enabled provider syncs.
fn models_by_provider(state: &AppState) -> HashMap<String, Vec<String>> {
    state
        .providers()
        .enabled()
        .filter(|p| !p.syncs.is_empty())
        .map(|p| {
            let models = p.syncs.iter().map(|s| s.model.clone()).collect();
            (p.name.clone(), models)
        })
        .collect()
}

/// One look at every connection's syncs; returns how many runs were queued.
pub fn pass(conn: &mut DbConnection, models: &HashMap<String, Vec<String>>) -> QueryResult<usize> {
    let names: Vec<&str> = models.keys().map(String::as_str).collect();
    let connections: Vec<(String, String, String)> = clients::table
        .filter(clients::provider.eq_any(&names))
        .filter(clients::status.ne(ClientStatus::Disconnected.as_str()))
        .select((clients::id, clients::provider, clients::status))
        .load(conn)?;
    let known: HashMap<(String, String), states::SyncState> = states::all(conn)?
        .into_iter()
        .map(|s| ((s.client_id.clone(), s.model.clone()), s))
        .collect();
    let now = crate::db::now();
    let mut queued = 0;
    for (client_id, provider, client_status) in connections {
        let needs_reauth = client_status == ClientStatus::NeedsReauth.as_str();
        for model in models.get(&provider).into_iter().flatten() {
            let state = known.get(&(client_id.clone(), model.clone()));
            let request = |scheduled| RunRequest {
                client_id: client_id.clone(),
                model: model.clone(),
                full: false,
                scheduled,
            };
            match state {
                Some(s) if needs_reauth => {
                    if s.status != status::PAUSED && s.status != status::RUNNING {
                        states::set_status(conn, &client_id, model, status::PAUSED)?;
                    }
                }
                None if needs_reauth => {}
                None => queued += usize::from(super::request_run(conn, &request(true))?),
                Some(s) if s.status == status::PAUSED => {
                    queued += usize::from(super::request_run(conn, &request(false))?)
                }
                Some(s)
                    if s.status != status::RUNNING && s.next_run_at.is_none_or(|at| at <= now) =>
                {
                    queued += usize::from(super::request_run(conn, &request(true))?)
                }
                Some(_) => {}
            }
        }
    }
    Ok(queued)
}
