//! What one instance keeps in memory about tokens: the service API's cache of handed-out
//! tokens, the per-client locks of the single flight (one refresh per client at a time in
//! this process; `lifecycle` takes them) and the "last used" times written in batches.

use crate::clients::{self, Client};
use crate::db::DbPool;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Clients whose last use waits to be written at most (the batch goes out every second).
/// Uses past it, within one second, are not noted: "last used" is a hint, not a count.
pub const MAX_USED: usize = 100_000;
/// A client's use is noted at most this often, so a busy client costs one write a minute
/// rather than one a second (the Clients page shows minutes).
const USE_RESOLUTION_SECS: i64 = 60;

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
    /// When this entry's use was last noted for writing (Unix seconds; 0: never).
    noted_use: AtomicI64,
}

impl CachedToken {
    pub fn new(client: Client, token: FreshToken) -> Self {
        Self {
            client,
            token,
            noted_use: AtomicI64::new(0),
        }
    }
}

/// A client's single-flight lock, taken from `TokenManager::lock_for`. Dropping it (also
/// when the waiting request is cancelled) removes the map entry once nobody else holds
/// it, so the map only ever holds clients with a refresh under way or waited for.
pub(super) struct ClientLock<'a> {
    manager: &'a TokenManager,
    client_id: String,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl ClientLock<'_> {
    pub(super) fn mutex(&self) -> &tokio::sync::Mutex<()> {
        self.lock.as_deref().expect("held until dropped")
    }
}

impl Drop for ClientLock<'_> {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else { return };
        let mut locks = self.manager.locks.lock().unwrap_or_else(|p| p.into_inner());
        // The map's own reference and this one: nobody else waits on it.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&self.client_id);
        }
    }
}

/// Per-client locks for the in-process single flight, the token cache of the service API,
/// and the refresher's wake-up call.
pub struct TokenManager {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each client's token was last handed out, written to the database in batches.
    used: Mutex<HashMap<String, chrono::NaiveDateTime>>,
    cache: crate::ttl_cache::TtlCache<Arc<CachedToken>>,
    cache_ttl: Duration,
    /// Bumped by every `forget`, so `remember` cannot put back what one just dropped.
    generation: crate::cache_generation::Generation,
    /// Rung when tokens are stored, so the background refresher recomputes its schedule.
    pub schedule_changed: tokio::sync::Notify,
}

impl TokenManager {
    /// `cache_ttl`: how long a handed-out token is served from memory at most (each entry
    /// between half of it and all of it, at random, so that clients read in one burst, as
    /// after a start, are not all read again in one burst a TTL later). Changes made by
    /// this instance drop the entry at once, and on PostgreSQL those of other instances
    /// too (`invalidation`); the TTL is the fallback. `capacity`: entries
    /// kept at most (`TOKEN_CACHE_CAPACITY`); past it the least used go first.
    pub fn new(cache_ttl: Duration, capacity: usize) -> Self {
        Self {
            locks: Mutex::default(),
            used: Mutex::default(),
            cache: crate::ttl_cache::TtlCache::new(capacity, cache_ttl),
            cache_ttl,
            generation: Default::default(),
            schedule_changed: tokio::sync::Notify::new(),
        }
    }

    /// Notes that a client's credential was just used by a service, unless this entry's
    /// use was noted less than a minute ago.
    pub fn touch(&self, entry: &CachedToken) {
        let now = crate::db::now();
        let secs = now.and_utc().timestamp();
        let noted = entry.noted_use.load(Ordering::Relaxed);
        if secs - noted < USE_RESOLUTION_SECS {
            return;
        }
        // Of the requests that find it due at once, one notes it.
        let won = entry
            .noted_use
            .compare_exchange(noted, secs, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if won {
            self.note_use(&entry.client.id, now);
        }
    }

    fn note_use(&self, client_id: &str, at: chrono::NaiveDateTime) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() < MAX_USED || used.contains_key(client_id) {
            used.insert(client_id.to_string(), at);
        }
    }

    /// Clients whose last use waits to be written.
    pub fn uses_pending(&self) -> usize {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Single-flight locks in the map (clients with a refresh under way or waited for).
    pub fn locks_held(&self) -> usize {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Drops what is cached for a client (its tokens or status changed, here or, told by
    /// `invalidation`, on another instance).
    pub fn forget(&self, client_id: &str) {
        self.generation.bump();
        self.cache.invalidate(client_id);
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
        self.cache.get(client_id)
    }

    /// Caches an entry read when `generation()` was `seen`; drops it again if something
    /// was forgotten meanwhile (it may be this very client, stale already).
    pub fn remember(&self, client_id: &str, entry: Arc<CachedToken>, seen: u64) {
        let life = entry_life(self.cache_ttl);
        self.cache.insert_for(client_id.to_string(), entry, life);
        if !self.generation.unchanged_since(seen) {
            self.cache.invalidate(client_id);
        }
    }

    /// The client's lock of the single flight: one refresh at a time per client.
    pub(super) fn lock_for(&self, client_id: &str) -> ClientLock<'_> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        let lock = locks.entry(client_id.to_string()).or_default().clone();
        ClientLock {
            manager: self,
            client_id: client_id.to_string(),
            lock: Some(lock),
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
            // Kept unless a newer use was noted meanwhile, up to `MAX_USED` clients.
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at) in batch.iter() {
                if used.len() >= MAX_USED {
                    break;
                }
                used.entry(id.clone()).or_insert(*at);
            }
        }
    }
}

/// How long one cached entry is served: between half the TTL and all of it, at random.
fn entry_life(ttl: Duration) -> Duration {
    use rand::Rng;
    ttl.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_together_do_not_expire_together() {
        let ttl = Duration::from_secs(60);
        let lives: Vec<Duration> = (0..1000).map(|_| entry_life(ttl)).collect();
        assert!(lives.iter().all(|life| *life >= ttl / 2 && *life <= ttl));
        let (shortest, longest) = (lives.iter().min().unwrap(), lives.iter().max().unwrap());
        assert!(
            *longest - *shortest > Duration::from_secs(20),
            "{shortest:?} … {longest:?}"
        );
    }

    fn manager() -> TokenManager {
        TokenManager::new(Duration::from_secs(10), 10)
    }

    #[tokio::test]
    async fn a_lock_leaves_the_map_when_its_last_holder_drops_it() {
        let tokens = manager();
        let first = tokens.lock_for("a");
        let second = tokens.lock_for("a");
        let _b = tokens.lock_for("b");
        assert_eq!(tokens.locks_held(), 2);
        drop(first);
        assert_eq!(tokens.locks_held(), 2, "the second holder still waits on a");
        drop(second);
        assert_eq!(tokens.locks_held(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_wait_does_not_leave_its_lock_behind() {
        let tokens = manager();
        let holder = tokens.lock_for("a");
        let turn = holder.mutex().lock().await;
        // A request waiting for the refresh is cancelled (its caller went away).
        let waiting = async {
            let lock = tokens.lock_for("a");
            let _turn = lock.mutex().lock().await;
        };
        let cancelled = tokio::time::timeout(Duration::from_millis(20), waiting).await;
        assert!(cancelled.is_err(), "it was still waiting");
        drop(turn);
        drop(holder);
        assert_eq!(tokens.locks_held(), 0);
    }
}
