//! Pacing provider calls under the provider's published rate budgets, so that connecthub
//! stays under them instead of learning them from 429s. The proxy, typed operations and
//! syncs all call through `proxy::forward_metered`, which asks here first.
//!
//! Each tier of a provider (its budgets with the same path prefix) is one queue per
//! connection or account: a call takes the earliest moment at which every budget of its
//! tier has room in any window (a sliding log of the calls' moments, so it stays under
//! the provider's fixed windows whatever their alignment), and sleeps until then. A call
//! that would wait longer than `PROVIDER_BUDGET_WAIT` is refused at once, without taking
//! a place. What the provider's answers report (calls left, a 429's Retry-After) tightens
//! the queue: calls other instances or other tools made count too. Budgets are kept in
//! memory per instance.

use crate::env::{ConfigError, Source};
use crate::providers::rate_budgets::{BudgetScope, RateBudget, RateBudgets};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest pause a provider's headers may impose on one queue.
const MAX_HOLD: Duration = Duration::from_secs(300);
/// Queues kept at most (one per connection or account that called lately). Each holds
/// the moments of its calls in the last window, so together they hold at most the calls
/// of the last minute or so, whatever the number of clients.
const MAX_QUEUES: usize = 100_000;
/// What a full map is brought down to, so the next clean-up is many calls away.
const QUEUES_AFTER_CLEANUP: usize = MAX_QUEUES / 10 * 9;

#[derive(Debug, Clone)]
pub struct BudgetSettings {
    /// `PROVIDER_BUDGETS=off` turns pacing off (the provider's 429s are then all there is).
    pub enabled: bool,
    /// `PROVIDER_BUDGET_WAIT`: the longest a call waits for room before our own 429.
    pub max_wait: Duration,
}

impl BudgetSettings {
    pub fn load(source: &dyn Source) -> Result<Self, ConfigError> {
        let enabled = match source.get("PROVIDER_BUDGETS").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(_) => return Err(ConfigError::new("PROVIDER_BUDGETS", "must be on or off")),
        };
        let max_wait = match source.get("PROVIDER_BUDGET_WAIT") {
            None => Duration::from_secs(10),
            Some(raw) => crate::duration::parse_duration(&raw)
                .filter(|wait| *wait <= Duration::from_secs(300))
                .ok_or_else(|| {
                    ConfigError::new(
                        "PROVIDER_BUDGET_WAIT",
                        "must be a duration of at most 5m, such as 10s (0s: never wait)",
                    )
                })?,
        };
        Ok(Self { enabled, max_wait })
    }
}

/// A call refused because its budget has no room within the wait allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    pub provider: String,
    /// The budget that is full, or "the provider's own limit" when its answers said so.
    pub budget: String,
    /// Whole seconds until a call would have room.
    pub retry_after: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connecthub keeps calls to {} under its budget \"{}\": try again in {} s",
            self.provider, self.budget, self.retry_after
        )
    }
}

/// What a paced call is: which provider, which client and account, which API path.
pub struct Call<'a> {
    pub provider: &'a str,
    pub budgets: &'a RateBudgets,
    pub client_id: &'a str,
    pub account_id: &'a str,
    pub path: &'a str,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct QueueKey {
    provider: String,
    tier: Option<String>,
    /// The client id or the account id, as the tier's scope says.
    whose: String,
}

#[derive(Default)]
struct Queue {
    /// The moment given to the last call: calls go in the order they asked.
    last: Option<Instant>,
    /// No call before this (the provider said its window is spent).
    held_until: Option<Instant>,
    /// Per budget of the tier, the moments given to calls in its last window, in order.
    moments: Vec<VecDeque<Instant>>,
}

/// How a call was let through.
#[derive(Debug, PartialEq, Eq)]
pub enum Pace {
    /// No budget covers it, or pacing is off.
    Free,
    Now,
    Waited(Duration),
}

pub struct Budgets {
    settings: BudgetSettings,
    queues: Mutex<HashMap<QueueKey, Queue>>,
}

/// A window a little longer than the provider's (2 %, at least 250 ms), so that calls
/// whose trip to the provider took longer or shorter than others' cannot fall into one
/// of its windows.
fn padded(window: Duration) -> Duration {
    window + (window / 50).max(Duration::from_millis(250))
}

/// Keeps the map under `MAX_QUEUES`: idle queues go first (nothing waits on them); if
/// recent ones still fill it, the least recently used go too (their next call starts a
/// fresh log, and the provider's own answers still hold it back).
fn make_room(queues: &mut HashMap<QueueKey, Queue>, now: Instant) {
    if queues.len() < MAX_QUEUES {
        return;
    }
    queues.retain(|_, q| {
        let recent = q
            .last
            .is_some_and(|last| now.duration_since(last) < MAX_HOLD);
        recent || q.held_until.is_some_and(|held| held > now)
    });
    let excess = queues.len().saturating_sub(QUEUES_AFTER_CLEANUP);
    if excess == 0 {
        return;
    }
    let mut lasts: Vec<Instant> = queues.values().map(|q| q.last.unwrap_or(now)).collect();
    let (_, newest_dropped, _) = lasts.select_nth_unstable(excess - 1);
    let newest_dropped = *newest_dropped;
    queues.retain(|_, q| q.last.unwrap_or(now) > newest_dropped);
}

impl Budgets {
    pub fn new(settings: BudgetSettings) -> Self {
        Self {
            settings,
            queues: Mutex::default(),
        }
    }

    fn key(call: &Call, tier: Option<&str>, scope: BudgetScope) -> QueueKey {
        QueueKey {
            provider: call.provider.to_string(),
            tier: tier.map(str::to_string),
            whose: match scope {
                BudgetScope::Connection => format!("client:{}", call.client_id),
                BudgetScope::Account => format!("account:{}", call.account_id),
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<QueueKey, Queue>> {
        // A panic elsewhere while holding the lock leaves the queues usable.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the call has room in its budgets, or refuses it when that is further
    /// away than the wait allowed.
    pub async fn pace(&self, call: &Call<'_>) -> Result<Pace, OverBudget> {
        let (tier, budgets) = call.budgets.tier(call.path);
        if !self.settings.enabled || budgets.is_empty() {
            return Ok(Pace::Free);
        }
        let key = Self::key(call, tier, budgets[0].scope);
        let (now, at) = self
            .reserve(key, &budgets)
            .map_err(|(budget, wait)| OverBudget {
                provider: call.provider.to_string(),
                budget,
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            })?;
        if at <= now {
            return Ok(Pace::Now);
        }
        tokio::time::sleep_until(at.into()).await;
        Ok(Pace::Waited(at - now))
    }

    /// The moment the call may go, taken in every budget of its tier, with the moment it
    /// was asked; or the budget that keeps it waiting too long, and for how long. The
    /// clock is read under the lock: read before it, a caller that lost the race for the
    /// lock would find a later caller's moment ahead of its own and wait for nothing.
    fn reserve(
        &self,
        key: QueueKey,
        budgets: &[&RateBudget],
    ) -> Result<(Instant, Instant), (String, Duration)> {
        let mut queues = self.lock();
        let now = Instant::now();
        make_room(&mut queues, now);
        let queue = queues.entry(key).or_default();
        queue.moments.resize_with(budgets.len(), VecDeque::new);
        let mut at = now.max(queue.last.unwrap_or(now));
        let mut binding = "the order of calls".to_string();
        if let Some(held) = queue.held_until.filter(|held| *held > at) {
            at = held;
            binding = "the provider's own limit".into();
        }
        for (budget, moments) in budgets.iter().zip(queue.moments.iter_mut()) {
            let window = padded(budget.window);
            while moments
                .front()
                .is_some_and(|m| now.duration_since(*m) >= window)
            {
                moments.pop_front();
            }
            let full = moments.len() >= budget.requests as usize;
            if let Some(oldest) = full.then(|| moments[moments.len() - budget.requests as usize]) {
                if oldest + window > at {
                    at = oldest + window;
                    binding = budget.name.clone();
                }
            }
        }
        let wait = at.saturating_duration_since(now);
        if wait > self.settings.max_wait {
            return Err((binding, wait));
        }
        queue.last = Some(at);
        for moments in &mut queue.moments {
            // `at` never goes back within a queue, so each log stays in order.
            moments.push_back(at);
        }
        Ok((now, at))
    }

    /// Reads what the provider's answer says about its budget. A 429's Retry-After, or a
    /// window reported spent, holds the queue until it resets; fewer calls left than we
    /// counted means others use the budget too, and their calls are counted as ours.
    pub fn observe(&self, call: &Call<'_>, status: u16, headers: &reqwest::header::HeaderMap) {
        let (tier, budgets) = call.budgets.tier(call.path);
        if !self.settings.enabled || budgets.is_empty() {
            return;
        }
        let (remaining, reset) = call.budgets.reported(headers);
        let told = crate::provider_http::retry_after(headers);
        let now = Instant::now();
        let key = Self::key(call, tier, budgets[0].scope);
        let mut queues = self.lock();
        let queue = queues.entry(key).or_default();
        let hold = match (status, told, remaining) {
            (429, Some(wait), _) => Some(wait),
            (429, None, _) | (_, _, Some(0)) => Some(Duration::from_secs(reset.unwrap_or(1))),
            _ => None,
        };
        if let Some(hold) = hold {
            let until = now + hold.min(MAX_HOLD);
            queue.held_until = Some(queue.held_until.map_or(until, |h| h.max(until)));
            return;
        }
        let Some(remaining) = remaining else { return };
        // The header speaks of the provider's main window: the tier's longest.
        queue.moments.resize_with(budgets.len(), VecDeque::new);
        let Some((budget, moments)) = budgets
            .iter()
            .zip(queue.moments.iter_mut())
            .max_by_key(|(b, _)| b.window)
        else {
            return;
        };
        let window = padded(budget.window);
        let ours = moments
            .iter()
            .filter(|m| now.saturating_duration_since(**m) < window)
            .count() as u64;
        let others = u64::from(budget.requests).saturating_sub(remaining.saturating_add(ours));
        let at = moments.partition_point(|m| *m <= now);
        for _ in 0..others.min(u64::from(budget.requests)) {
            moments.insert(at, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn budgets(requests: u32, secs: u64) -> RateBudgets {
        RateBudgets {
            budgets: vec![RateBudget {
                name: "b".into(),
                scope: BudgetScope::Account,
                requests,
                window: Duration::from_secs(secs),
                path_prefix: None,
            }],
            ..RateBudgets::default()
        }
    }

    fn call<'a>(budgets: &'a RateBudgets, account: &'a str) -> Call<'a> {
        Call {
            provider: "p",
            budgets,
            client_id: "c",
            account_id: account,
            path: "x",
        }
    }

    fn pacer(wait_ms: u64) -> Budgets {
        Budgets::new(BudgetSettings {
            enabled: true,
            max_wait: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test]
    async fn calls_wait_for_room_then_are_refused_past_the_wait() {
        let budgets = budgets(2, 1);
        let pacer = pacer(1_300);
        let a = call(&budgets, "a");
        assert_eq!(pacer.pace(&a).await, Ok(Pace::Now));
        assert_eq!(pacer.pace(&a).await, Ok(Pace::Now));
        assert_eq!(pacer.pace(&call(&budgets, "other")).await, Ok(Pace::Now));
        let started = Instant::now();
        assert!(matches!(pacer.pace(&a).await, Ok(Pace::Waited(_))));
        assert!(started.elapsed() >= Duration::from_secs(1));
        // Room for one now and two a window later (within the 1.3 s allowed); then none.
        let key = || Budgets::key(&a, None, BudgetScope::Account);
        let tier = [&budgets.budgets[0]];
        for _ in 0..3 {
            assert!(pacer.reserve(key(), &tier).is_ok());
        }
        let refused = pacer.pace(&a).await.unwrap_err();
        assert_eq!(refused.budget, "b");
        assert_eq!(refused.retry_after, 3, "{refused:?}");
    }

    #[test]
    fn the_queues_stay_under_their_bound() {
        let mut queues = HashMap::new();
        let start = Instant::now();
        for n in 0..MAX_QUEUES + 5 {
            make_room(&mut queues, start);
            let key = QueueKey {
                provider: "p".into(),
                tier: None,
                whose: format!("client:{n}"),
            };
            let last = start + Duration::from_micros(n as u64);
            queues.entry(key).or_insert(Queue {
                last: Some(last),
                ..Queue::default()
            });
            assert!(queues.len() <= MAX_QUEUES);
        }
        let newest = QueueKey {
            provider: "p".into(),
            tier: None,
            whose: format!("client:{}", MAX_QUEUES + 4),
        };
        assert!(queues.contains_key(&newest), "the newest queue is kept");
        assert!(queues.len() <= QUEUES_AFTER_CLEANUP + 5);
    }

    #[test]
    fn settings_are_checked() {
        let load = |pairs: &[(&str, &str)]| {
            let vars: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            BudgetSettings::load(&vars)
        };
        let default = load(&[]).unwrap();
        assert!(default.enabled);
        assert_eq!(default.max_wait, Duration::from_secs(10));
        let set = load(&[("PROVIDER_BUDGETS", "off"), ("PROVIDER_BUDGET_WAIT", "0s")]).unwrap();
        assert!(!set.enabled);
        assert_eq!(set.max_wait, Duration::ZERO);
        for (name, value) in [
            ("PROVIDER_BUDGETS", "maybe"),
            ("PROVIDER_BUDGET_WAIT", "10"),
            ("PROVIDER_BUDGET_WAIT", "6m"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[tokio::test]
    async fn headers_tighten_the_budget() {
        let budgets = budgets(10, 60);
        let pacer = pacer(0);
        let a = call(&budgets, "a");
        assert_eq!(pacer.pace(&a).await, Ok(Pace::Now));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("ratelimit-remaining", "1".parse().unwrap());
        pacer.observe(&a, 200, &headers);
        assert_eq!(pacer.pace(&a).await, Ok(Pace::Now), "one was left");
        assert!(pacer.pace(&a).await.is_err(), "others used the rest");
        let b = call(&budgets, "b");
        headers.insert("retry-after", "30".parse().unwrap());
        pacer.observe(&b, 429, &headers);
        let held = pacer.pace(&b).await.unwrap_err();
        assert_eq!(held.budget, "the provider's own limit");
        assert_eq!(held.retry_after, 30);
    }
}
