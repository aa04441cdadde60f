//! What connecthub does while a provider's token endpoint is unavailable (5xx, timeouts,
//! connection failures), so an outage does not turn into a retry storm:
//!
//! - each connection backs off on its own after a failed refresh: a delay drawn uniformly
//!   between the base and `base · 2^failures` (at most the cap), "full jitter" with a
//!   floor, so connections that failed together do not come back together;
//! - a circuit breaker per provider: after `threshold` availability failures in a row
//!   (across that provider's connections) it opens and no refresh for that provider is
//!   attempted; after a cool-down one refresh at a time probes (half-open); a probe the
//!   provider answers closes it, a failed one opens it again with twice the cool-down (up
//!   to a maximum);
//! - when it closes, the provider's held-back and backed-off connections fall due again
//!   at once (one bulk update), each at a moment of its own within `RECOVERY_SPREAD`, so
//!   recovery takes the last cool-down plus that window rather than a backoff each.
//!
//! The breaker is kept in memory per instance: each instance of a cluster finds out on its
//! own (at most `threshold` refreshes each) and probes on its own.
//!
//! It guards refreshes only. The proxy and typed operations call the provider's API, which
//! is usually another service than its token endpoint (Klaviyo's a.klaviyo.com and its
//! OAuth server), and an API's 5xx may come from one endpoint or one request: a call with a
//! token that is still valid is never held back by it. A call that needs a refresh first
//! is, through the refresh (503 with Retry-After).

use crate::env::{ConfigError, Source};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The settings, from the environment.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// `PROVIDER_BREAKER_THRESHOLD` (5): availability failures in a row that open it.
    pub threshold: u32,
    /// `PROVIDER_BREAKER_COOLDOWN` (30s): how long it stays open the first time.
    pub cooldown: Duration,
    /// `PROVIDER_BREAKER_MAX_COOLDOWN` (1m): the longest it stays open after failed probes.
    /// It bounds how late a provider that came back is noticed; one probe per cool-down is
    /// all the failing provider receives, however many connections wait.
    pub max_cooldown: Duration,
    /// `REFRESH_BACKOFF_BASE` (30s): the least wait after a failed refresh.
    pub backoff_base: Duration,
    /// `REFRESH_BACKOFF_MAX` (5m): the longest wait after failed refreshes, when the
    /// provider was unavailable.
    pub backoff_max: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            threshold: 5,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(60),
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(300),
        }
    }
}

impl HealthSettings {
    pub fn load(source: &dyn Source) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let threshold = match source.get("PROVIDER_BREAKER_THRESHOLD") {
            None => defaults.threshold,
            Some(raw) => raw
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        "PROVIDER_BREAKER_THRESHOLD",
                        "must be a whole number from 1 to 10000",
                    )
                })?,
        };
        let cooldown = duration(source, "PROVIDER_BREAKER_COOLDOWN", defaults.cooldown)?;
        let max_cooldown = duration(
            source,
            "PROVIDER_BREAKER_MAX_COOLDOWN",
            defaults.max_cooldown,
        )?
        .max(cooldown);
        let backoff_base = duration(source, "REFRESH_BACKOFF_BASE", defaults.backoff_base)?;
        let backoff_max =
            duration(source, "REFRESH_BACKOFF_MAX", defaults.backoff_max)?.max(backoff_base);
        Ok(Self {
            threshold,
            cooldown,
            max_cooldown,
            backoff_base,
            backoff_max,
        })
    }
}

/// A duration between 10 ms and a day (`500ms`, `30s`, `5m`).
fn duration(source: &dyn Source, name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let Some(raw) = source.get(name) else {
        return Ok(default);
    };
    crate::duration::parse_duration(&raw)
        .filter(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_secs(86_400))
        .ok_or_else(|| {
            ConfigError::new(
                name,
                "must be a duration from 10ms to 1d, such as 500ms, 30s or 5m",
            )
        })
}

/// The wait before the next try after `failures` earlier failed refreshes in a row (0 on
/// the first failure): uniform in `[base, min(cap, base · 2^(failures + 1))]`.
pub fn backoff(failures: i32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(2_u32.saturating_pow(failures.clamp(0, 30) as u32 + 1))
        .min(cap)
        .max(base);
    rand::thread_rng().gen_range(base..=ceiling)
}

/// A moment uniformly within `spread` after `at`, so deferred refreshes do not all fall
/// due at once.
pub fn spread(spread: Duration) -> Duration {
    rand::thread_rng().gen_range(Duration::ZERO..=spread)
}

/// The longest window over which a provider's held-back refreshes fall due again once its
/// breaker closes: soon enough that every connection is fresh within a minute or two of the
/// provider coming back, spread enough (with the refresher's bounded concurrency) not to
/// greet it with a storm.
pub const RECOVERY_SPREAD: Duration = Duration::from_secs(30);

/// What a provider's breaker lets through, as `/metrics` and the providers page show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The gauge's value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, cooldown: Duration },
    HalfOpen { probing: bool, cooldown: Duration },
}

/// What a call to the provider told about its availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (a token, or a refusal such as invalid_grant: it is up).
    Answered,
    /// 5xx, timeout, connection failure.
    Unavailable,
    /// Nothing learnt (no call made, or a 429: up, but busy).
    Unknown,
}

/// What a call's outcome changed about its provider's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    /// It opened (after failures in a row, or a failed probe).
    Opened,
    /// It closed: the provider answers again. Its held-back refreshes should fall due
    /// within `recovery_spread` (at most `RECOVERY_SPREAD`, at most the last cool-down).
    Closed {
        recovery_spread: Duration,
    },
}

/// A refresh the breaker held back, and when the provider may be asked again.
#[derive(Debug, Clone, Copy)]
pub struct HeldBack {
    pub retry_in: Duration,
    /// How far apart deferred refreshes should fall due after that.
    pub spread: Duration,
}

/// The breakers of every provider (by name).
pub struct Breakers {
    settings: HealthSettings,
    states: Mutex<HashMap<String, State>>,
}

impl Breakers {
    pub fn new(settings: HealthSettings) -> Self {
        Self {
            settings,
            states: Mutex::default(),
        }
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.settings
    }

    fn with<T>(&self, provider: &str, work: impl FnOnce(&mut State) -> T) -> T {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = states
            .entry(provider.to_string())
            .or_insert(State::Closed { failures: 0 });
        work(state)
    }

    /// Leave to call the provider's token endpoint, or how long to wait first.
    pub fn permit(&self, provider: &str) -> Result<Permit<'_>, HeldBack> {
        let now = Instant::now();
        let probe = self.with(provider, |state| match *state {
            State::Closed { .. } => Ok(false),
            State::Open { until, cooldown } if now < until => Err(HeldBack {
                retry_in: until - now,
                spread: cooldown,
            }),
            State::Open { cooldown, .. }
            | State::HalfOpen {
                probing: false,
                cooldown,
            } => {
                *state = State::HalfOpen {
                    probing: true,
                    cooldown,
                };
                Ok(true)
            }
            // One probe at a time: the others wait for its answer.
            State::HalfOpen {
                probing: true,
                cooldown,
            } => Err(HeldBack {
                retry_in: Duration::ZERO,
                spread: cooldown,
            }),
        })?;
        if probe {
            tracing::info!(
                provider,
                "provider breaker half-open: probing with one refresh"
            );
        }
        Ok(Permit {
            breakers: self,
            provider: provider.to_string(),
            probe,
            settled: false,
        })
    }

    /// Every provider's state that is not closed, by name (closed ones are left out).
    pub fn snapshot(&self) -> Vec<(String, BreakerState)> {
        let now = Instant::now();
        let states = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut open: Vec<_> = states
            .iter()
            .filter_map(|(name, state)| {
                let shown = match state {
                    State::Closed { .. } => return None,
                    State::Open { until, .. } if now < *until => BreakerState::Open,
                    _ => BreakerState::HalfOpen,
                };
                Some((name.clone(), shown))
            })
            .collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        open
    }

    pub fn state_of(&self, provider: &str) -> BreakerState {
        self.snapshot()
            .into_iter()
            .find(|(name, _)| name == provider)
            .map_or(BreakerState::Closed, |(_, state)| state)
    }

    /// Records an outcome; says whether it opened or closed the breaker.
    fn settle(&self, provider: &str, probe: bool, outcome: Outcome) -> Change {
        let settings = &self.settings;
        let now = Instant::now();
        let change = self.with(provider, |state| match (outcome, *state) {
            (Outcome::Answered, State::Closed { .. }) => {
                *state = State::Closed { failures: 0 };
                Change::Unchanged
            }
            (
                Outcome::Answered,
                State::Open { cooldown, .. } | State::HalfOpen { cooldown, .. },
            ) => {
                *state = State::Closed { failures: 0 };
                Change::Closed {
                    recovery_spread: cooldown.min(RECOVERY_SPREAD),
                }
            }
            (Outcome::Unavailable, State::Closed { failures }) => {
                let failures = failures + 1;
                if failures >= settings.threshold {
                    *state = State::Open {
                        until: now + settings.cooldown,
                        cooldown: settings.cooldown,
                    };
                    Change::Opened
                } else {
                    *state = State::Closed { failures };
                    Change::Unchanged
                }
            }
            (Outcome::Unavailable, State::HalfOpen { cooldown, .. }) if probe => {
                let cooldown = (cooldown * 2).min(settings.max_cooldown);
                *state = State::Open {
                    until: now + cooldown,
                    cooldown,
                };
                Change::Opened
            }
            (_, State::HalfOpen { cooldown, .. }) if probe => {
                *state = State::HalfOpen {
                    probing: false,
                    cooldown,
                };
                Change::Unchanged
            }
            // Calls started before it opened, failing too: it stays as it is.
            _ => Change::Unchanged,
        });
        match change {
            Change::Opened => {
                tracing::warn!(provider, "provider breaker open: refreshes held back")
            }
            Change::Closed { .. } => tracing::info!(
                provider,
                "provider breaker closed: the provider answers again"
            ),
            Change::Unchanged => {}
        }
        change
    }
}

/// Leave for one call; tell it what came of it with `settle`. Dropped unsettled (the call
/// was not needed after all, or the task was cancelled), it frees the probe's place.
pub struct Permit<'a> {
    breakers: &'a Breakers,
    provider: String,
    probe: bool,
    settled: bool,
}

impl Permit<'_> {
    /// Records the call's outcome and what it changed about the breaker.
    pub fn settle(mut self, outcome: Outcome) -> Change {
        self.settled = true;
        self.breakers.settle(&self.provider, self.probe, outcome)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breakers
                .settle(&self.provider, self.probe, Outcome::Unknown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers(cooldown_ms: u64) -> Breakers {
        Breakers::new(HealthSettings {
            threshold: 3,
            cooldown: Duration::from_millis(cooldown_ms),
            max_cooldown: Duration::from_millis(cooldown_ms * 4),
            ..HealthSettings::default()
        })
    }

    fn fail(b: &Breakers, times: usize) {
        for _ in 0..times {
            b.permit("p").unwrap().settle(Outcome::Unavailable);
        }
    }

    #[test]
    fn opens_after_the_threshold_in_a_row_and_an_answer_resets_the_count() {
        let b = breakers(60_000);
        fail(&b, 2);
        b.permit("p").unwrap().settle(Outcome::Answered);
        fail(&b, 2);
        assert_eq!(b.state_of("p"), BreakerState::Closed);
        let opened = b.permit("p").unwrap().settle(Outcome::Unavailable);
        assert_eq!(opened, Change::Opened);
        assert_eq!(b.state_of("p"), BreakerState::Open);
        let held = b.permit("p").err().expect("held back while open");
        assert!(held.retry_in > Duration::from_secs(50));
        assert!(b.permit("other").is_ok(), "per provider");
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_answer_closes() {
        let b = breakers(20);
        fail(&b, 3);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.state_of("p"), BreakerState::HalfOpen);
        let probe = b.permit("p").expect("the probe");
        assert!(b.permit("p").is_err(), "one probe at a time");
        let closed = probe.settle(Outcome::Answered);
        let recovery_spread = Duration::from_millis(20);
        assert_eq!(closed, Change::Closed { recovery_spread });
        assert_eq!(b.state_of("p"), BreakerState::Closed);
        let answered = b.permit("p").unwrap().settle(Outcome::Answered);
        assert_eq!(answered, Change::Unchanged, "closed already");
    }

    #[test]
    fn a_failed_probe_reopens_for_longer_and_a_dropped_one_frees_its_place() {
        let b = breakers(20);
        fail(&b, 3);
        std::thread::sleep(Duration::from_millis(30));
        drop(b.permit("p").unwrap());
        let probe = b.permit("p").expect("the place was freed");
        assert_eq!(probe.settle(Outcome::Unavailable), Change::Opened);
        let held = b.permit("p").err().unwrap();
        assert!(held.retry_in > Duration::from_millis(25), "{held:?}");
        assert_eq!(held.spread, Duration::from_millis(40));
    }

    #[test]
    fn backoff_stays_between_the_base_and_the_cap() {
        let (base, cap) = (Duration::from_secs(30), Duration::from_secs(300));
        for failures in [-1, 0, 1, 3, 10, 1000] {
            for _ in 0..50 {
                let wait = backoff(failures, base, cap);
                assert!(wait >= base && wait <= cap, "{failures}: {wait:?}");
            }
        }
        assert!(backoff(0, base, cap) <= base * 2);
        let late: Vec<_> = (0..50).map(|_| backoff(20, base, cap)).collect();
        assert!(
            late.iter().any(|w| *w > Duration::from_secs(150)),
            "jitter spans the range"
        );
    }
}
