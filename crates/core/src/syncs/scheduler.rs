//! The scheduler: every SYNC_SCHEDULER_INTERVAL, queues the runs that are due (each
//! connection and model at its definition's frequency, new connections at once), pauses
//! the syncs of connections that need reauthorisation and resumes them once reconnected.
//! Every instance runs it; `request_run` queues at most one waiting run per key, and a
//! scheduled run that finds itself no longer due does nothing. A pass reads the due syncs
//! and the connections changed since the last one (`attention`), and every connection on
//! the first pass and once an hour.

use super::attention::{self, Attention, Scope};
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
    let mut watermark = Watermark::default();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let models = models_by_provider(&state);
        let started = crate::db::now();
        let scope = watermark.scope(&models, started);
        let looked = models.clone();
        match crate::db::run(&state.pool, move |conn| pass(conn, &looked, scope)).await {
            Ok(done) => watermark.passed(models, scope, started, done.complete),
            Err(e) => tracing::warn!(error = %e, "sync scheduler pass failed"),
        }
    }
}

/// A change stamped this long before the pass that reads it is still seen: its
/// transaction may commit that much after its `updated_at`.
const CHANGE_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// A sweep over every connection at least this often, for what the changed-connection
/// reads cannot see (a row changed without `updated_at`, a transaction longer than the
/// slack).
const SWEEP_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Where the passes have got to: which connections the next one must read.
#[derive(Default)]
struct Watermark {
    /// When the last complete pass started, and the models it looked at.
    last: Option<(chrono::NaiveDateTime, HashMap<String, Vec<String>>)>,
    last_sweep: Option<chrono::NaiveDateTime>,
}

impl Watermark {
    /// Every connection on the first pass, once an hour, and when the models changed (a
    /// provider enabled, a sync added: its connections are new to it however old they
    /// are); otherwise those changed since the last complete pass began.
    fn scope(&self, models: &HashMap<String, Vec<String>>, now: chrono::NaiveDateTime) -> Scope {
        let sweep_due = self.last_sweep.is_none_or(|at| now - at >= SWEEP_INTERVAL);
        match &self.last {
            Some((started, looked)) if looked == models && !sweep_due => {
                Scope::ChangedSince(*started - CHANGE_SLACK)
            }
            _ => Scope::Every,
        }
    }

    /// A pass that left work for the next one (it reached its limit) does not move the
    /// watermark: the next pass reads the same connections again.
    fn passed(
        &mut self,
        models: HashMap<String, Vec<String>>,
        scope: Scope,
        started: chrono::NaiveDateTime,
        complete: bool,
    ) {
        if !complete {
            return;
        }
        if scope == Scope::Every {
            self.last_sweep = Some(started);
        }
        self.last = Some((started, models));
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

/// At most this many syncs of one model are acted on per read; the rest wait for the next
/// pass.
const PASS_LIMIT: i64 = 10_000;

/// What a pass did.
pub struct Pass {
    /// Runs queued.
    pub queued: usize,
    /// False when the read of unsettled syncs reached `PASS_LIMIT`: more waits for the
    /// next pass, which reads the same connections again. (Due syncs left over are due
    /// still, and found by any pass.)
    pub complete: bool,
}

/// One look at the due syncs, and at the syncs of the connections in `scope` whose state
/// does not match their connection (due ones first, so the second read skips those it
/// queued).
pub fn pass(
    conn: &mut DbConnection,
    models: &HashMap<String, Vec<String>>,
    scope: Scope,
) -> QueryResult<Pass> {
    let now = crate::db::now();
    let mut done = Pass {
        queued: 0,
        complete: true,
    };
    for (provider, models) in models {
        for model in models {
            let due = attention::due(conn, provider, model, now, PASS_LIMIT)?;
            done.queued += act_on(conn, &due, model)?;
            let unsettled = attention::unsettled(conn, provider, model, scope, PASS_LIMIT)?;
            done.complete &= unsettled.len() < PASS_LIMIT as usize;
            done.queued += act_on(conn, &unsettled, model)?;
        }
    }
    Ok(done)
}

/// Acts on each sync; how many runs were queued.
fn act_on(conn: &mut DbConnection, syncs: &[Attention], model: &str) -> QueryResult<usize> {
    let mut queued = 0;
    for sync in syncs {
        queued += act(conn, sync, model)?;
    }
    Ok(queued)
}

/// Pauses, resumes or queues one sync `attention` found; 1 if a run was queued.
fn act(conn: &mut DbConnection, sync: &Attention, model: &str) -> QueryResult<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn models(names: &[&str]) -> HashMap<String, Vec<String>> {
        let names = names.iter().map(|n| n.to_string()).collect();
        HashMap::from([("klaviyo".to_string(), names)])
    }

    fn at(minutes: i64) -> chrono::NaiveDateTime {
        chrono::DateTime::UNIX_EPOCH.naive_utc() + chrono::TimeDelta::minutes(minutes)
    }

    #[test]
    fn the_first_pass_sweeps_and_the_next_read_what_changed_since_it_began() {
        let mut watermark = Watermark::default();
        assert_eq!(watermark.scope(&models(&["lists"]), at(0)), Scope::Every);
        watermark.passed(models(&["lists"]), Scope::Every, at(0), true);
        let next = watermark.scope(&models(&["lists"]), at(1));
        assert_eq!(next, Scope::ChangedSince(at(0) - CHANGE_SLACK));
        watermark.passed(models(&["lists"]), next, at(1), true);
        let after = watermark.scope(&models(&["lists"]), at(2));
        assert_eq!(after, Scope::ChangedSince(at(1) - CHANGE_SLACK));
    }

    #[test]
    fn a_pass_that_reached_its_limit_leaves_the_watermark_where_it_was() {
        let mut watermark = Watermark::default();
        watermark.passed(models(&["lists"]), Scope::Every, at(0), false);
        assert_eq!(watermark.scope(&models(&["lists"]), at(1)), Scope::Every);
        watermark.passed(models(&["lists"]), Scope::Every, at(1), true);
        let since = Scope::ChangedSince(at(1) - CHANGE_SLACK);
        watermark.passed(models(&["lists"]), since, at(2), false);
        assert_eq!(watermark.scope(&models(&["lists"]), at(3)), since);
    }

    #[test]
    fn new_models_and_an_hour_gone_bring_a_sweep() {
        let mut watermark = Watermark::default();
        watermark.passed(models(&["lists"]), Scope::Every, at(0), true);
        let more = models(&["lists", "segments"]);
        assert_eq!(watermark.scope(&more, at(1)), Scope::Every);
        let an_hour_on = at(SWEEP_INTERVAL.num_minutes());
        assert_eq!(
            watermark.scope(&models(&["lists"]), an_hour_on),
            Scope::Every
        );
    }
}
