//! Cross-instance cache invalidation. Each instance keeps handed-out tokens and recently
//! seen service keys in memory (`SERVICE_CACHE_SECS`). On PostgreSQL, triggers (migration
//! `cache_invalidation`) send a NOTIFY on [`CHANNEL`] in the transaction of every change
//! that makes such an entry stale — a disconnect, new tokens, a revoked key — and every
//! instance LISTENs here and drops the entry, so the others stop serving it within
//! [`POLL`] of the commit instead of within the TTL. The TTL stays the fallback for the
//! moments the listener is not connected; after every (re)connection the caches are
//! emptied, since notifications sent meanwhile are lost. A change to a provider's stored
//! settings (`providers:<name>`) makes every instance rebuild its provider registry.
//!
//! SQLite: one file serves one instance, whose own changes drop its entries at once, so
//! nothing listens there.
//!
//! Why diesel and not a new crate: diesel's `PgConnection::notifications_iter` (2.2+)
//! reads pending notifications without blocking (PQconsumeInput + PQnotifies) but cannot
//! wait on the socket. Polling it every 50 ms on a blocking thread costs one non-blocking
//! `recv` per poll and keeps the tree free of a second PostgreSQL client stack
//! (tokio-postgres and the `postgres` crate bring a dozen crates and their own TLS), for a
//! delay of at most 50 ms — well inside the one second asked for.

use crate::db::DatabaseUrl;
use crate::state::AppState;
use actix_web::web;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "connecthub_invalidate";
/// The listening connection's `application_name`.
pub const APPLICATION_NAME: &str = "connecthub-invalidation";
/// How often pending notifications are read.
pub const POLL: Duration = Duration::from_millis(50);
/// How often an idle listener checks that its connection is alive (a half-open TCP
/// connection would otherwise look idle for good).
const HEALTH_CHECK: Duration = Duration::from_secs(10);
/// Waits between reconnection attempts, doubling up to the last.
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// What a notification says became stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A client's row, tokens or status.
    Client(String),
    /// A service key (the cache is keyed by the key's hash, which the payload does not
    /// carry, so every cached key is dropped: revocations are rare).
    ApiKey,
    /// A provider's stored settings or definition: the registry is rebuilt.
    Providers,
}

impl Change {
    /// Reads a trigger's payload (`client:<id>` or `api_key:<id>`); None for anything else.
    pub fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':')? {
            ("client", id) if !id.is_empty() => Some(Self::Client(id.to_string())),
            ("api_key", id) if !id.is_empty() => Some(Self::ApiKey),
            ("providers", name) if !name.is_empty() => Some(Self::Providers),
            _ => None,
        }
    }

    pub async fn apply(&self, state: &AppState) {
        match self {
            Self::Client(id) => state.tokens.forget(id),
            Self::ApiKey => state.forget_api_keys(),
            Self::Providers => reload_providers(state).await,
        }
    }
}

/// Rebuilds the provider registry; on failure the previous one stays (the next change or
/// reconnection tries again).
async fn reload_providers(state: &AppState) {
    if let Err(e) = crate::provider_admin::reload(state).await {
        tracing::warn!(error = %e, "could not reload the providers; the previous ones stay");
    }
}

/// Empties both caches and rereads the providers (after the listener (re)connects: what
/// it missed is unknown).
async fn forget_everything(state: &AppState) {
    state.tokens.forget_all();
    state.forget_api_keys();
    reload_providers(state).await;
}

/// Listens for invalidations until `stop` turns true; returns at once on SQLite.
pub async fn listen(state: web::Data<AppState>, mut stop: watch::Receiver<bool>) {
    let DatabaseUrl::Postgres(url) = &state.config.database_url else {
        return;
    };
    let mut listener = Listener::new(url.clone());
    loop {
        let pause = listener.pause();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
        if *stop.borrow() {
            return;
        }
        let changes;
        (listener, changes) = match tokio::task::spawn_blocking(move || {
            let changes = listener.step();
            (listener, changes)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "cache invalidation listener failed; TTL only");
                return;
            }
        };
        match changes {
            Polled::Reconnected => forget_everything(&state).await,
            Polled::Changes(mut changes) => {
                // Several changes to providers in one poll need one reload.
                changes.dedup_by(|a, b| *a == Change::Providers && *b == Change::Providers);
                for change in &changes {
                    change.apply(&state).await;
                }
            }
        }
    }
}

enum Polled {
    Changes(Vec<Change>),
    /// A new connection now listens; the caches must be emptied.
    Reconnected,
}

/// The listening connection and its reconnection state (used on a blocking thread).
struct Listener {
    url: String,
    conn: Option<PgConnection>,
    checked_at: Instant,
    backoff: Duration,
}

impl Listener {
    fn new(url: String) -> Self {
        Self {
            url,
            conn: None,
            checked_at: Instant::now(),
            backoff: Duration::ZERO,
        }
    }

    fn pause(&self) -> Duration {
        if self.conn.is_some() {
            POLL
        } else {
            self.backoff
        }
    }

    /// Connects if needed, else reads what arrived; a failure drops the connection.
    fn step(&mut self) -> Polled {
        let Some(conn) = self.conn.as_mut() else {
            return self.connect();
        };
        match read(conn, &mut self.checked_at) {
            Ok(changes) => Polled::Changes(changes),
            Err(e) => {
                tracing::warn!(error = %e, "cache invalidation listener lost its connection; reconnecting (TTL meanwhile)");
                self.conn = None;
                self.backoff = RECONNECT_MIN;
                Polled::Changes(Vec::new())
            }
        }
    }

    fn connect(&mut self) -> Polled {
        let connected = PgConnection::establish(&self.url)
            .map_err(|e| e.to_string())
            .and_then(|mut conn| {
                // The name shows the connection for what it is in pg_stat_activity.
                conn.batch_execute(&format!(
                    "SET application_name = '{APPLICATION_NAME}'; LISTEN {CHANNEL}"
                ))
                .map(|_| conn)
                .map_err(|e| e.to_string())
            });
        match connected {
            Ok(conn) => {
                if self.backoff > Duration::ZERO {
                    tracing::info!("cache invalidation listener reconnected");
                }
                self.backoff = Duration::ZERO;
                self.conn = Some(conn);
                self.checked_at = Instant::now();
                Polled::Reconnected
            }
            Err(e) => {
                tracing::debug!(error = %e, "cache invalidation listener cannot connect yet");
                self.backoff = (self.backoff * 2).clamp(RECONNECT_MIN, RECONNECT_MAX);
                Polled::Changes(Vec::new())
            }
        }
    }
}

/// The notifications that arrived, and a liveness query when the connection was quiet.
fn read(conn: &mut PgConnection, checked_at: &mut Instant) -> QueryResult<Vec<Change>> {
    if checked_at.elapsed() >= HEALTH_CHECK {
        conn.batch_execute("SELECT 1")?;
        *checked_at = Instant::now();
    }
    let mut changes = Vec::new();
    for notification in conn.notifications_iter() {
        let notification = notification?;
        match Change::parse(&notification.payload) {
            Some(change) => changes.push(change),
            None => tracing::warn!(payload = %notification.payload, "unknown invalidation"),
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_into_changes() {
        assert_eq!(
            Change::parse("client:abc"),
            Some(Change::Client("abc".into()))
        );
        assert_eq!(Change::parse("api_key:k1"), Some(Change::ApiKey));
        assert_eq!(Change::parse("providers:acme"), Some(Change::Providers));
        for bad in ["", "client:", "client", "user:1", "api_key:", "providers:"] {
            assert_eq!(Change::parse(bad), None, "{bad:?}");
        }
    }
}
