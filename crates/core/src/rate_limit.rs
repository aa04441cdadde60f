//! Rate limits kept in memory, per instance: request budgets (governor's GCRA, refilled
//! over time) and failure counts over a window (for limits that only failures consume,
//! and for reporting bursts of them once).

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept before the ones that are idle again are dropped, so that many callers
/// trying once cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

/// `burst` requests at once, refilled evenly over `period`.
pub fn quota(burst: u32, period: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let refill = period / burst.get();
    Quota::with_period(refill.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_minute(burst))
        .allow_burst(burst)
}

/// A budget of requests per key.
pub struct RequestBudget<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

/// Requests per client address.
pub type PerAddress = RequestBudget<IpAddr>;

impl<K: Hash + Eq + Clone> RequestBudget<K> {
    pub fn new(burst: u32, period: Duration) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota(burst, period)),
            clock: DefaultClock::default(),
        }
    }

    /// `per_minute` requests a minute, all of them at once if need be.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, Duration::from_secs(60))
    }

    /// Counts one request; `Err` carries how long the caller must wait.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Failures of one key within one window, which starts at the first failure.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub started: Instant,
    pub count: u32,
}

/// Counts failures per key over a fixed window from the first one.
pub struct Failures<K: Hash + Eq + Clone> {
    window: Duration,
    bursts: Mutex<HashMap<K, Burst>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            bursts: Mutex::default(),
        }
    }

    fn ended(&self, burst: &Burst, now: Instant) -> bool {
        now.duration_since(burst.started) >= self.window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Burst>> {
        // A panic elsewhere while holding the lock leaves the counts usable.
        self.bursts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Failures of `key` in its current window, and how long until that window ends.
    pub fn recent(&self, key: &K) -> (u32, Duration) {
        let now = Instant::now();
        match self.lock().get(key) {
            Some(burst) if !self.ended(burst, now) => {
                (burst.count, self.window - now.duration_since(burst.started))
            }
            _ => (0, Duration::ZERO),
        }
    }

    /// Counts one failure of `key` (a new window if the last one has ended).
    pub fn record(&self, key: K) -> Burst {
        let now = Instant::now();
        let mut bursts = self.lock();
        if bursts.len() > MAX_KEYS {
            bursts.retain(|_, burst| now.duration_since(burst.started) < self.window);
        }
        let burst = bursts.entry(key).or_insert(Burst {
            started: now,
            count: 0,
        });
        if now.duration_since(burst.started) >= self.window {
            *burst = Burst {
                started: now,
                count: 0,
            };
        }
        burst.count += 1;
        *burst
    }

    /// Forgets `key`'s failures.
    pub fn clear(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Removes and returns the bursts whose window has ended (all of them with `all`).
    pub fn take_ended(&self, all: bool) -> Vec<(K, Burst)> {
        let now = Instant::now();
        let mut bursts = self.lock();
        let ended: Vec<K> = bursts
            .iter()
            .filter(|(_, burst)| all || self.ended(burst, now))
            .map(|(key, _)| key.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|key| bursts.remove(&key).map(|burst| (key, burst)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_runs_out_per_key() {
        let budget = RequestBudget::<&str>::new(2, Duration::from_secs(60));
        assert!(budget.check(&"a").is_ok());
        assert!(budget.check(&"a").is_ok());
        let wait = budget.check(&"a").unwrap_err();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30));
        assert!(budget.check(&"b").is_ok());
    }

    #[test]
    fn failures_count_within_their_window_then_end() {
        let failures = Failures::new(Duration::from_millis(100));
        failures.record("a");
        assert_eq!(failures.record("a").count, 2);
        let (count, left) = failures.recent(&"a");
        assert_eq!(count, 2);
        assert!(left > Duration::ZERO && left <= Duration::from_millis(100));
        assert_eq!(failures.recent(&"b").0, 0);
        assert!(failures.take_ended(false).is_empty());
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(failures.recent(&"a").0, 0);
        let ended = failures.take_ended(false);
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].0, ended[0].1.count), ("a", 2));
        assert_eq!(failures.record("a").count, 1, "a new window");
        failures.clear(&"a");
        assert_eq!(failures.recent(&"a").0, 0);
    }
}
