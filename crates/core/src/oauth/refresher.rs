//! The background refresher: renews tokens when they fall due (`credentials.refresh_at`,
//! the same rule the hand-out path uses), `REFRESH_CONCURRENCY` at a time, and sleeps
//! until the next one is due. It picks only what it will refresh, so an idle hub does not
//! touch its database.
//!
//! Due clients are claimed a batch at a time (`refresh_queue::claim_due`: one statement
//! takes their leases), so the queries per refresh stay a small constant at any number of
//! connections, and instances sharing a PostgreSQL split the work without refreshing a
//! client twice.

use super::lifecycle;
use crate::clients::{self, credentials, refresh_queue};
use crate::state::AppState;
use actix_web::web;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Longest sleep: also how soon a token stored by another instance is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// Shortest sleep, so a row that stays due for a reason of its own cannot spin the loop.
const MIN_SLEEP: Duration = Duration::from_millis(200);
/// Wait after a pass that failed (the database is away, say).
const AFTER_ERROR: Duration = Duration::from_secs(30);
/// A claimed client whose refresh has not started by then is left for a later claim: its
/// lease may be about to run out, and another instance could then take it too.
const CLAIM_FRESH_FOR: Duration = Duration::from_secs(lifecycle::LEASE.as_secs() / 2);

/// Runs until `stop` turns true. A stop is seen between refreshes: those in flight finish
/// (their new tokens are stored), no new one starts.
pub async fn run(state: web::Data<AppState>, mut stop: watch::Receiver<bool>) {
    loop {
        let pause = match pass(&state, &stop).await {
            Ok(pause) => pause,
            Err(e) => {
                tracing::warn!(error = %e, "refresher pass failed");
                AFTER_ERROR
            }
        };
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = state.tokens.schedule_changed.notified() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    tracing::info!("refresher stopped");
}

/// Refreshes what is due and returns how long to sleep before the next one is.
async fn pass(
    state: &AppState,
    stop: &watch::Receiver<bool>,
) -> Result<Duration, crate::db::DbError> {
    // Before what is due: a refresh interrupted by a stop is made due here.
    crate::db::run(&state.pool, super::interrupted::report).await?;
    let settings = state.config.refresher;
    let batch = settings.batch();
    let lease = chrono::TimeDelta::from_std(lifecycle::LEASE).unwrap_or(chrono::TimeDelta::MAX);
    loop {
        let claimed = crate::db::run(&state.pool, move |conn| {
            refresh_queue::claim_due(conn, batch as i64, lease)
        })
        .await?;
        let claimed_at = Instant::now();
        let count = claimed.len();
        let work = with_clients(state, claimed).await?;
        futures_util::stream::iter(work)
            .for_each_concurrent(settings.concurrency, |(client, interrupted)| async move {
                if *stop.borrow() || claimed_at.elapsed() >= CLAIM_FRESH_FOR {
                    // Not started: its lease is given back, or hand-outs of the client
                    // (here and elsewhere) would wait for it until it runs out.
                    release(state, &client.id).await;
                } else {
                    refresh_one(state, client, interrupted).await;
                }
            })
            .await;
        if *stop.borrow() {
            return Ok(MIN_SLEEP);
        }
        if count < batch {
            break;
        }
    }
    let due = crate::db::run(&state.pool, credentials::next_due).await?;
    let in_flight = crate::db::run(&state.pool, credentials::in_flight_lease_end).await?;
    // Just after the lease, so an interrupted refresh is reported soon after it can be.
    let in_flight = in_flight.map(|at| at + chrono::TimeDelta::seconds(1));
    let next = due.into_iter().chain(in_flight).min();
    let pause = match next {
        Some(at) => (at - crate::db::now()).to_std().unwrap_or(MIN_SLEEP),
        None => MAX_SLEEP,
    };
    Ok(pause.clamp(MIN_SLEEP, MAX_SLEEP))
}

/// The claimed clients' rows, read in one query, each with whether the claim found an
/// interrupted refresh of an earlier holder; in the claim's order (most overdue first).
async fn with_clients(
    state: &AppState,
    claimed: Vec<refresh_queue::Claimed>,
) -> Result<Vec<(clients::Client, bool)>, crate::db::DbError> {
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let ids = claimed.iter().map(|c| c.client_id.clone()).collect();
    let mut found: std::collections::HashMap<String, clients::Client> =
        crate::db::run(&state.pool, move |conn| clients::find_many(conn, ids))
            .await?
            .into_iter()
            .map(|client| (client.id.clone(), client))
            .collect();
    Ok(claimed
        .into_iter()
        .filter_map(|c| {
            let client = found.remove(&c.client_id)?;
            Some((client, c.refresh_started_at.is_some()))
        })
        .collect())
}

async fn release(state: &AppState, client_id: &str) {
    if let Err(e) = super::stored::release_lease(state, client_id).await {
        tracing::warn!(error = %e, "could not give back a refresh lease; it runs out by itself");
    }
}

async fn refresh_one(state: &AppState, client: clients::Client, interrupted: bool) {
    // Failures are recorded (status, backoff, audit, metrics) by the lifecycle itself.
    if let Err(e) = lifecycle::refresh_claimed(state, &client, interrupted).await {
        tracing::debug!(client_id = %client.id, error = %e, "background refresh did not succeed");
    }
}
