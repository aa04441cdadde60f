//! The scheduler: every SYNC_SCHEDULER_INTERVAL, queues the runs that are due (each
//! connection and model at its definition's frequency, new connections at once), pauses
//! the syncs of connections that need reauthorisation and resumes them once reconnected.
//! Every instance runs it; `request_run` queues at most one waiting run per key, and a
//! scheduled run that finds itself no longer due does nothing.

use super::states::{self, status};
use super::RunRequest;
use crate::clients::ClientStatus;
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

/// At most this many syncs of one model are acted on in a pass; the rest wait for the next.
const PASS_LIMIT: i64 = 10_000;

/// One look at every connection's syncs; returns how many runs were queued.
pub fn pass(conn: &mut DbConnection, models: &HashMap<String, Vec<String>>) -> QueryResult<usize> {
    let now = crate::db::now();
    let mut queued = 0;
    for (provider, models) in models {
        for model in models {
            for sync in states::needing_attention(conn, provider, model, now, PASS_LIMIT)? {
                queued += act(conn, &sync, model)?;
            }
        }
    }
    Ok(queued)
}

/// Pauses, resumes or queues one sync `needing_attention` returned; 1 if a run was queued.
fn act(conn: &mut DbConnection, sync: &states::Attention, model: &str) -> QueryResult<usize> {
    let request = |scheduled| RunRequest {
        client_id: sync.client_id.clone(),
        model: model.to_string(),
        full: false,
        scheduled,
    };
    let needs_reauth = sync.client_status == ClientStatus::NeedsReauth.as_str();
    let queued = match sync.status.as_deref() {
        None if needs_reauth => false,
        Some(_) if needs_reauth => {
            states::set_status(conn, &sync.client_id, model, status::PAUSED)?;
            false
        }
        // A resumed sync's run is not a scheduled one: it must not be skipped as not due.
        Some(status::PAUSED) => super::request_run(conn, &request(false))?,
        _ => super::request_run(conn, &request(true))?,
    };
    Ok(usize::from(queued))
}
