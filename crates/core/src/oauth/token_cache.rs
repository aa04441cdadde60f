//! What one instance keeps in memory about tokens: the service API's cache of handed-out
//! tokens, the per-client locks of the single flight (one refresh per client at a time in
//! this process; `lifecycle` takes them) and the "last used" times written in batches.

use crate::clients::{self, Client};
use crate::db::DbPool;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A token ready to use.
#[derive(Clone)]
pub enum FreshToken {
    Bearer {
        token: SecretString,
        expires_at: Option<chrono::NaiveDateTime>,
        /// From then on it is replaced before being handed out (see `schedule`).
        refresh_at: Option<chrono::NaiveDateTime>,
    },
    /// API-key connections have no expiry; the key is the credential.
    ApiKey(SecretString),
}

/// A client and its usable token, as the service API hands them out.
pub struct CachedToken {
    pub client: Client,
    pub token: FreshToken,
}

/// Per-client locks for the in-process single flight, the token cache of the service API,
/// and the refresher's wake-up call.
pub struct TokenManager {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each client's token was last handed out, written to the database in batches.
    used: Mutex<HashMap<String, chrono::NaiveDateTime>>,
    cache: mini_moka::sync::Cache<String, Arc<CachedToken>>,
    /// Bumped by every `forget`, so `remember` cannot put back what one just dropped.
    generation: crate::cache_generation::Generation,
    /// Rung when tokens are stored, so the background refresher recomputes its schedule.
    pub schedule_changed: tokio::sync::Notify,
}

impl TokenManager {
    /// `cache_ttl`: how long a handed-out token is served from memory. Changes made by
    /// this instance drop the entry at once; the TTL bounds how long a change made by
    /// another instance (a disconnect, say) takes to be seen here.
    pub fn new(cache_ttl: Duration) -> Self {
        Self {
            locks: Mutex::default(),
            used: Mutex::default(),
            cache: mini_moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
            generation: Default::default(),
            schedule_changed: tokio::sync::Notify::new(),
        }
    }

    /// Notes that a client's credential was just used by a service.
    pub fn touch(&self, client_id: &str) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.insert(client_id.to_string(), crate::db::now());
    }

    /// Drops what is cached for a client (its tokens or status changed, here or, told by
    /// `invalidation`, on another instance).
    pub fn forget(&self, client_id: &str) {
        self.generation.bump();
        self.cache.invalidate(&client_id.to_string());
    }

    /// Drops every cached token.
    pub fn forget_all(&self) {
        self.generation.bump();
        self.cache.invalidate_all();
    }

    /// The invalidation count to pass to `remember` for what is read from now on.
    pub fn generation(&self) -> u64 {
        self.generation.current()
    }

    /// A handed-out client and token this instance still holds in memory.
    pub fn cached(&self, client_id: &str) -> Option<Arc<CachedToken>> {
        self.cache.get(&client_id.to_string())
    }

    /// Caches an entry read when `generation()` was `seen`; drops it again if something
    /// was forgotten meanwhile (it may be this very client, stale already).
    pub fn remember(&self, client_id: &str, entry: Arc<CachedToken>, seen: u64) {
        self.cache.insert(client_id.to_string(), entry);
        if !self.generation.unchanged_since(seen) {
            self.cache.invalidate(&client_id.to_string());
        }
    }

    /// The client's lock of the single flight: one refresh at a time per client.
    pub(super) fn lock_for(&self, client_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(client_id.to_string()).or_default().clone()
    }

    /// Drops the lock entry once nobody else waits on it, so the map stays small.
    pub(super) fn release(&self, client_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&lock) == 2 {
            locks.remove(client_id);
        }
    }

    /// Writes the "last used" times noted since the last call (every second, and at stop).
    pub async fn flush_last_used(&self, pool: &DbPool) {
        let used = std::mem::take(&mut *self.used.lock().unwrap_or_else(|p| p.into_inner()));
        if used.is_empty() {
            return;
        }
        let batch = Arc::new(used);
        let writing = batch.clone();
        let written = crate::db::run(pool, move |conn| {
            crate::db::transaction(conn, |conn| {
                writing
                    .iter()
                    .try_for_each(|(id, at)| clients::set_last_used(conn, id, *at))
            })
        })
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "last-used times could not be written; kept for the next try");
            // Kept unless a newer use was noted meanwhile (one entry per client: bounded).
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at) in batch.iter() {
                used.entry(id.clone()).or_insert(*at);
            }
        }
    }
}
