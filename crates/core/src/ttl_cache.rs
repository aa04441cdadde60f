//! A bounded in-memory cache whose entries also expire, for what the hot paths read on
//! every request (API keys, handed-out tokens, webhook endpoints).
//!
//! `quick_cache` holds the entries: a hit is a shard's read lock and one atomic mark, with
//! no housekeeping on the read path (mini-moka, used before, spent 8-10 % of a token
//! hand-out in its read log, frequency sketch and deques). It has no time-to-live, so each
//! entry carries its own deadline and a read past it is a miss that removes the entry.

use std::time::{Duration, Instant};

pub struct TtlCache<V> {
    entries: quick_cache::sync::Cache<String, (Instant, V)>,
    ttl: Duration,
}

impl<V: Clone> TtlCache<V> {
    /// Holds about `capacity` entries (past it the least used go first), each served for
    /// `ttl` at most.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            ttl,
        }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let (deadline, value) = self.entries.get(key)?;
        if deadline <= Instant::now() {
            self.entries.remove(key);
            return None;
        }
        Some(value)
    }

    /// Keeps `value` for the cache's time-to-live.
    pub fn insert(&self, key: String, value: V) {
        self.insert_for(key, value, self.ttl);
    }

    /// Keeps `value` for `life`, capped at the cache's time-to-live.
    pub fn insert_for(&self, key: String, value: V, life: Duration) {
        let deadline = Instant::now() + life.min(self.ttl);
        self.entries.insert(key, (deadline, value));
    }

    pub fn invalidate(&self, key: &str) {
        self.entries.remove(key);
    }

    pub fn invalidate_all(&self) {
        self.entries.clear();
    }

    /// Entries held, expired ones not yet read included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::TtlCache;
    use std::time::Duration;

    #[test]
    fn an_entry_is_served_until_its_life_ends() {
        let cache = TtlCache::new(10, Duration::from_secs(60));
        cache.insert_for("short".into(), 1, Duration::from_millis(30));
        cache.insert("long".into(), 2);
        assert_eq!(cache.get("short"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("short"), None, "past its life");
        assert_eq!(cache.get("long"), Some(2));
        assert_eq!(cache.len(), 1, "the expired entry left when it was read");
    }

    #[test]
    fn a_life_longer_than_the_ttl_is_cut_to_it() {
        let cache = TtlCache::new(10, Duration::from_millis(30));
        cache.insert_for("k".into(), 1, Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("k"), None);
    }

    #[test]
    fn the_cache_stays_near_its_capacity() {
        let cache = TtlCache::new(1_000, Duration::from_secs(60));
        for i in 0..10_000 {
            cache.insert(format!("client-{i}"), i);
        }
        assert!(cache.len() <= 1_100, "{} entries held", cache.len());
        cache.invalidate_all();
        assert!(cache.is_empty());
    }
}
