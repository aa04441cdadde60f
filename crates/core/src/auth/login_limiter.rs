//! Slows down password guessing without letting anyone lock an account's owner out.
//!
//! - Every attempt from one address counts against that address's budget.
//! - Wrong passwords count per account *and address*: past the budget that address gets
//!   429 for that account, while the owner elsewhere signs in as usual.
//! - Wrong passwords also count per account from everywhere, against a higher ceiling:
//!   past it, only addresses with no recent failures for the account may still try (so a
//!   spread-out attack gets one guess per address per window, and the owner still gets in).
//!
//! Only wrong passwords consume the account budgets; a sign-in clears its address's count.

use crate::config::LoginLimits;
use crate::rate_limit::{Failures, RequestBudget};
use std::time::Duration;

pub struct LoginLimiter {
    by_ip: RequestBudget<String>,
    by_account_and_ip: Failures<(String, String)>,
    by_account: Failures<String>,
    per_account_and_ip: u32,
    per_account: u32,
}

impl LoginLimiter {
    pub fn new(limits: &LoginLimits) -> Self {
        Self {
            by_ip: RequestBudget::new(limits.per_ip_burst, limits.period),
            by_account_and_ip: Failures::new(limits.period),
            by_account: Failures::new(limits.period),
            per_account_and_ip: limits.per_account_burst,
            per_account: limits.per_account_ceiling,
        }
    }

    fn pair(ip: &str, account: &str) -> (String, String) {
        (account.to_string(), ip.to_string())
    }

    /// Counts one attempt; `Err` carries how long the caller must wait.
    pub fn check(&self, ip: &str, account: &str) -> Result<(), Duration> {
        self.by_ip.check(&ip.to_string())?;
        let (from_here, here_ends) = self.by_account_and_ip.recent(&Self::pair(ip, account));
        if from_here >= self.per_account_and_ip {
            return Err(here_ends);
        }
        let (everywhere, everywhere_ends) = self.by_account.recent(&account.to_string());
        if everywhere >= self.per_account && from_here > 0 {
            return Err(everywhere_ends.min(here_ends));
        }
        Ok(())
    }

    /// A wrong password (or unknown account) from `ip`.
    pub fn failed(&self, ip: &str, account: &str) {
        self.by_account_and_ip.record(Self::pair(ip, account));
        self.by_account.record(account.to_string());
    }

    /// A sign-in: this address's failures for the account are forgotten.
    pub fn succeeded(&self, ip: &str, account: &str) {
        self.by_account_and_ip.clear(&Self::pair(ip, account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_pair: u32, ceiling: u32) -> LoginLimiter {
        LoginLimiter::new(&LoginLimits {
            per_ip_burst: 100,
            per_account_burst: per_pair,
            per_account_ceiling: ceiling,
            period: Duration::from_secs(60),
        })
    }

    #[test]
    fn failures_lock_out_the_address_not_the_account() {
        let limiter = limiter(3, 100);
        for _ in 0..3 {
            assert!(limiter.check("10.0.0.1", "ann@example.com").is_ok());
            limiter.failed("10.0.0.1", "ann@example.com");
        }
        let wait = limiter.check("10.0.0.1", "ann@example.com").unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(limiter.check("10.0.0.2", "ann@example.com").is_ok());
        assert!(limiter.check("10.0.0.1", "bob@example.com").is_ok());
    }

    #[test]
    fn past_the_ceiling_only_clean_addresses_may_try() {
        let limiter = limiter(2, 3);
        for ip in ["10.0.0.1", "10.0.0.1", "10.0.0.2"] {
            assert!(limiter.check(ip, "ann@example.com").is_ok());
            limiter.failed(ip, "ann@example.com");
        }
        assert!(limiter.check("10.0.0.2", "ann@example.com").is_err());
        assert!(limiter.check("10.0.0.3", "ann@example.com").is_ok());
        limiter.succeeded("10.0.0.2", "ann@example.com");
        assert!(limiter.check("10.0.0.2", "ann@example.com").is_ok());
    }

    #[test]
    fn every_attempt_counts_per_address() {
        let limiter = LoginLimiter::new(&LoginLimits {
            per_ip_burst: 2,
            per_account_burst: 5,
            per_account_ceiling: 50,
            period: Duration::from_secs(60),
        });
        assert!(limiter.check("10.0.0.1", "a@example.com").is_ok());
        assert!(limiter.check("10.0.0.1", "b@example.com").is_ok());
        assert!(limiter.check("10.0.0.1", "c@example.com").is_err());
    }
}
