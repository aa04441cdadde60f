//! A counter of invalidations, shared by the token cache and the service-key cache: a
//! cache refuses to keep what it read before an invalidation it may have missed.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts invalidations, so a cache can refuse to store what it read before one: a
/// request that loaded a client just before another instance disconnected it must not
/// put the old state back after the notification dropped it.
#[derive(Default)]
pub struct Generation(AtomicU64);

impl Generation {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Called before an entry is dropped.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Called after an entry read at `seen` was stored: false means an invalidation may
    /// have raced the store, and the caller drops the entry again.
    pub fn unchanged_since(&self, seen: u64) -> bool {
        self.current() == seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_seen_before_a_bump_is_stale() {
        let generation = Generation::default();
        let seen = generation.current();
        assert!(generation.unchanged_since(seen));
        generation.bump();
        assert!(!generation.unchanged_since(seen));
    }
}
