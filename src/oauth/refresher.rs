//! The background refresher: renews tokens that expire within the window, a few at a
//! time, and sleeps until the next one is due (never polling when there is nothing to do).

use super::lifecycle;
use crate::clients::{self, credentials};
use crate::startup::AppState;
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
const MIN_SLEEP: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true.
pub async fn run(state: web::Data<AppState>, mut stop: watch::Receiver<bool>) {
    loop {
        let pause = match pass(&state).await {
            Ok(pause) => pause,
            Err(e) => {
                tracing::warn!(error = %e, "refresher pass failed");
                Duration::from_secs(30)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = state.tokens.schedule_changed.notified() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            tracing::info!("refresher stopped");
            return;
        }
    }
}

/// Refreshes what is due and returns how long to sleep before the next one is.
async fn pass(state: &AppState) -> Result<Duration, crate::error::AppError> {
    let window = chrono::TimeDelta::from_std(state.config.refresh_window)
        .unwrap_or(chrono::TimeDelta::minutes(15));
    loop {
        let before = crate::db::now() + window;
        let due = crate::db::run(&state.pool, move |conn| {
            credentials::due_for_refresh(conn, before, BATCH)
        })
        .await?;
        if due.is_empty() {
            break;
        }
        let count = due.len();
        futures_util::stream::iter(due)
            .for_each_concurrent(
                CONCURRENCY,
                |id| async move { refresh_one(state, id).await },
            )
            .await;
        if (count as i64) < BATCH {
            break;
        }
    }
    let next = crate::db::run(&state.pool, credentials::next_due).await?;
    let pause = match next {
        Some(at) => (at - window - crate::db::now())
            .to_std()
            .unwrap_or(MIN_SLEEP),
        None => MAX_SLEEP,
    };
    Ok(pause.clamp(MIN_SLEEP, MAX_SLEEP))
}

async fn refresh_one(state: &AppState, client_id: String) {
    let found = crate::db::run(&state.pool, move |conn| clients::find(conn, &client_id)).await;
    let Ok(Some(client)) = found else { return };
    // Failures are recorded (status, backoff, audit, metrics) by the lifecycle itself.
    if let Err(e) = lifecycle::refresh(state, &client, false).await {
        tracing::debug!(client_id = %client.id, error = %e, "background refresh did not succeed");
    }
}
