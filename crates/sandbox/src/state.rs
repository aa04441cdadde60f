//! Everything the sandbox remembers, kept behind one mutex in `Sandbox`.

use super::control::faults::Faults;
use super::control::stats::Stats;
use super::kustomer_store::Store as KustomerStore;
use super::tokens::TokenStore;
use super::Provider;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct State {
    klaviyo: ProviderState,
    kustomer: ProviderState,
    /// Customers, conversations and notes written through the Kustomer API.
    pub kustomer_data: KustomerStore,
    /// Generated records for syncs (Klaviyo profiles, Kustomer customers, conversations).
    pub volume: super::volume::Volume,
    /// Calls to the key- and password-protected API.
    pub keyed: super::keyed_api::KeyedStats,
}

impl State {
    pub fn new(access_token_ttl: Duration) -> Self {
        Self {
            klaviyo: ProviderState::new(Provider::Klaviyo, access_token_ttl),
            kustomer: ProviderState::new(Provider::Kustomer, access_token_ttl),
            kustomer_data: KustomerStore::new(),
            volume: Default::default(),
            keyed: Default::default(),
        }
    }

    pub fn provider(&mut self, provider: Provider) -> &mut ProviderState {
        match provider {
            Provider::Klaviyo => &mut self.klaviyo,
            Provider::Kustomer => &mut self.kustomer,
        }
    }
}

/// One provider's OAuth server state, injected faults, counters and rate windows.
pub struct ProviderState {
    pub tokens: TokenStore,
    pub faults: Faults,
    pub stats: Stats,
    pub windows: RateWindows,
    pub quirks: super::quirks::Quirks,
}

impl ProviderState {
    fn new(provider: Provider, access_token_ttl: Duration) -> Self {
        Self {
            tokens: TokenStore::new(provider.token_prefix(), access_token_ttl),
            faults: Faults::default(),
            stats: Stats::default(),
            windows: RateWindows::default(),
            quirks: Default::default(),
        }
    }
}

/// The values of the rate-limit headers of one answer.
pub struct RateHeaders {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
    /// This call was one more than the window allows.
    pub exceeded: bool,
}

const WINDOW: Duration = Duration::from_secs(60);

/// Fixed windows per budget (Klaviyo: account and rate tier, per second and per minute;
/// Kustomer: org, per minute), as both providers count. They feed the headers; the
/// sandbox throttles on them only when a test asks (`enforce_budgets`), so other tests
/// stay deterministic; else 429s come from the `rate_limit_next` fault.
#[derive(Default)]
pub struct RateWindows {
    windows: HashMap<String, (Instant, u32)>,
}

impl RateWindows {
    /// Counts one call against `budget` and reports the window's state afterwards.
    pub fn hit(&mut self, budget: &str, limit: u32) -> RateHeaders {
        self.hit_within(budget, limit, WINDOW)
    }

    /// `hit` for a window of another length (Klaviyo's one-second bursts).
    pub fn hit_within(&mut self, budget: &str, limit: u32, length: Duration) -> RateHeaders {
        let now = Instant::now();
        let window = self.windows.entry(budget.to_string()).or_insert((now, 0));
        if now.duration_since(window.0) >= length {
            *window = (now, 0);
        }
        window.1 = window.1.saturating_add(1);
        let elapsed = now.duration_since(window.0);
        RateHeaders {
            limit,
            remaining: limit.saturating_sub(window.1),
            reset_secs: length.saturating_sub(elapsed).as_secs().max(1),
            exceeded: window.1 > limit,
        }
    }

    pub fn clear(&mut self) {
        self.windows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_down_per_budget() {
        let mut windows = RateWindows::default();
        assert_eq!(windows.hit("a", 15).remaining, 14);
        assert_eq!(windows.hit("a", 15).remaining, 13);
        assert_eq!(windows.hit("b", 15).remaining, 14);
        for _ in 0..20 {
            windows.hit("a", 15);
        }
        let headers = windows.hit("a", 15);
        assert_eq!(headers.remaining, 0);
        assert!(headers.exceeded);
        assert!(!windows.hit_within("s", 1, Duration::from_secs(1)).exceeded);
        assert!(windows.hit_within("s", 1, Duration::from_secs(1)).exceeded);
        assert!((1..=60).contains(&headers.reset_secs));
    }
}
