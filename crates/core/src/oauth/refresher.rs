//! The background refresher: renews tokens when they fall due (`credentials.refresh_at`,
//! the same rule the hand-out path uses), a few at a time, and sleeps until the next one
//! is due. It picks only what it will refresh, so an idle hub does not touch its database.

use super::lifecycle;
use crate::clients::{self, credentials};
use crate::state::AppState;
use actix_web::web;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::watch;

/// Refreshes run at most this many at once.
const CONCURRENCY: usize = 4;
/// Clients taken per pass.
const BATCH: i64 = 100;
/// Longest sleep: also how soon a token stored by another instance is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// Shortest sleep, so a row that stays due for a reason of its own cannot spin the loop.
const MIN_SLEEP: Duration = Duration::from_millis(200);
/// Wait after a pass that failed (the database is away, say).
const AFTER_ERROR: Duration = Duration::from_secs(30);

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
    loop {
        let due = crate::db::run(&state.pool, |conn| {
            credentials::due_for_refresh(conn, BATCH)
        })
        .await?;
        let count = due.len();
        futures_util::stream::iter(due)
            .take_while(|_| std::future::ready(!*stop.borrow()))
            .for_each_concurrent(
                CONCURRENCY,
                |id| async move { refresh_one(state, id).await },
            )
            .await;
        if *stop.borrow() {
            return Ok(MIN_SLEEP);
        }
        if (count as i64) < BATCH {
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

async fn refresh_one(state: &AppState, client_id: String) {
    let found = crate::db::run(&state.pool, move |conn| clients::find(conn, &client_id)).await;
    let Ok(Some(client)) = found else { return };
    // Failures are recorded (status, backoff, audit, metrics) by the lifecycle itself.
    if let Err(e) =
        lifecycle::refresh(state, &client, super::refresh_history::Trigger::Refresher).await
    {
        tracing::debug!(client_id = %client.id, error = %e, "background refresh did not succeed");
    }
}
