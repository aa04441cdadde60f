//! Slows down password guessing: a budget of sign-in attempts per client address and per
//! account, refilled over time (governor's GCRA). Past the budget the answer is 429.

use crate::config::LoginLimits;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

pub struct LoginLimiter {
    by_ip: DefaultKeyedRateLimiter<String>,
    by_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

fn quota(burst: u32, period: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let refill = period / burst.get();
    Quota::with_period(refill.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_minute(burst))
        .allow_burst(burst)
}

impl LoginLimiter {
    pub fn new(limits: &LoginLimits) -> Self {
        Self {
            by_ip: RateLimiter::keyed(quota(limits.per_ip_burst, limits.period)),
            by_account: RateLimiter::keyed(quota(limits.per_account_burst, limits.period)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt; `Err` carries how long the caller must wait.
    pub fn check(&self, ip: &str, account: &str) -> Result<(), Duration> {
        // Keep memory bounded when many addresses try once.
        if self.by_ip.len() > 10_000 || self.by_account.len() > 10_000 {
            self.by_ip.retain_recent();
            self.by_account.retain_recent();
        }
        let now = self.clock.now();
        let ip_check = self.by_ip.check_key(&ip.to_string());
        let account_check = self.by_account.check_key(&account.to_string());
        let wait = [ip_check.err(), account_check.err()]
            .into_iter()
            .flatten()
            .map(|not_until| not_until.wait_time_from(now))
            .max();
        match wait {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_budget_runs_out_then_reports_the_wait() {
        let limiter = LoginLimiter::new(&LoginLimits {
            per_ip_burst: 100,
            per_account_burst: 3,
            period: Duration::from_secs(60),
        });
        for _ in 0..3 {
            assert!(limiter.check("10.0.0.1", "ann@example.com").is_ok());
        }
        let wait = limiter.check("10.0.0.2", "ann@example.com").unwrap_err();
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(20));
        assert!(limiter.check("10.0.0.1", "bob@example.com").is_ok());
    }
}
