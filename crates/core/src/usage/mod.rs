//! API usage: every provider call made for a client (proxied or typed operations),
//! added in batches to hourly and daily roll-ups, and the statistics the
//! requirements name (totalCalls, totalErrors, rateLimitHits, byEndpoint) with per-day or
//! per-hour series and latency percentiles.

mod scope;
mod stats;
pub mod store;
mod tally;

pub use scope::{Period, Scope};
pub use stats::{stats, EndpointStats, Percentiles, PointStats, Stats};
pub use tally::LATENCY_BOUNDS_MS;

use std::sync::Mutex;

/// One call to a provider's API, until its batch is added to the roll-ups.
#[derive(Debug, Clone)]
pub struct Call {
    pub client_id: String,
    pub user_id: String,
    pub provider: String,
    pub endpoint: String,
    pub status: i32,
    pub duration_ms: i32,
    pub rate_limited: bool,
    pub at: chrono::NaiveDateTime,
}

impl Call {
    /// A call to the provider path `path` that began at `started` and has just ended with
    /// `status`; whose call it was (client and user) is the caller's to fill in.
    pub fn ended(
        provider: &str,
        path: &str,
        status: u16,
        rate_limited: bool,
        started: std::time::Instant,
    ) -> Self {
        Self {
            client_id: String::new(),
            user_id: String::new(),
            provider: provider.to_string(),
            endpoint: normalise_endpoint(path),
            status: i32::from(status),
            duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            rate_limited,
            at: crate::db::now(),
        }
    }

    /// A 4xx or 5xx answer, or no answer at all (recorded as 502).
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

/// Calls kept in memory at most while the database cannot take them: about 30 MiB, a few
/// minutes of a busy proxy; past it the oldest are dropped (and the count logged).
pub const MAX_PENDING: usize = 100_000;

/// Calls waiting to be written (once a second, with the audit counters).
#[derive(Default)]
pub struct Recorder {
    pending: Mutex<Vec<Call>>,
}

impl Recorder {
    pub fn record(&self, call: Call) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
    }

    /// Writes the calls recorded since the last call. When the database cannot take them
    /// (an outage) they are kept for the next try, the newest `MAX_PENDING` at most.
    pub async fn flush(&self, pool: &crate::db::DbPool) {
        let calls = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if calls.is_empty() {
            return;
        }
        let count = calls.len();
        let batch = std::sync::Arc::new(calls);
        let writing = batch.clone();
        let written = crate::db::run(pool, move |conn| store::write(conn, &writing)).await;
        if let Err(e) = written {
            // The work has returned (or never ran), so this is the only reference left.
            let calls =
                std::sync::Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
            let dropped = self.put_back(calls);
            tracing::warn!(error = %e, calls = count, dropped, "usage could not be written; kept for the next try");
        }
    }

    /// Puts unwritten calls back before the ones recorded meanwhile; drops the oldest past
    /// `MAX_PENDING`. Returns how many were dropped.
    fn put_back(&self, mut calls: Vec<Call>) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        calls.append(&mut pending);
        let dropped = calls.len().saturating_sub(MAX_PENDING);
        calls.drain(..dropped);
        *pending = calls;
        dropped
    }

    /// Calls waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Deletes the hourly roll-ups older than `before`; daily ones stay.
pub async fn prune(pool: &crate::db::DbPool, before: chrono::NaiveDateTime) {
    match crate::db::run(pool, move |conn| store::prune_hourly(conn, before)).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, %before, "pruned hourly usage roll-ups"),
        Err(e) => tracing::warn!(error = %e, "pruning hourly usage roll-ups failed"),
    }
}

/// The endpoint family of a provider path: `/api/lists/XYZ/` → `lists`,
/// `/v1/customers/email=a@b` → `customers`. Ids never become endpoints.
pub fn normalise_endpoint(path: &str) -> String {
    let mut segments = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty());
    segments
        .find(|s| !matches!(*s, "api" | "v1" | "v2" | "v3"))
        .map(|s| s.split('=').next().unwrap_or(s).to_lowercase())
        .filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !s.is_empty()
        })
        .unwrap_or_else(|| "root".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_families_not_ids() {
        assert_eq!(normalise_endpoint("/api/lists/XyZ12/"), "lists");
        assert_eq!(normalise_endpoint("api/accounts"), "accounts");
        assert_eq!(
            normalise_endpoint("/v1/customers/email=a%40b.com"),
            "customers"
        );
        assert_eq!(
            normalise_endpoint("/v1/conversations/123/messages?x=1"),
            "conversations"
        );
        assert_eq!(normalise_endpoint("/"), "root");
    }
}
