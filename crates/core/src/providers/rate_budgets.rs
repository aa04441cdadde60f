//! The rate budgets a provider publishes (`[[provider.rate_budget]]`, or built in), and
//! the answer headers that report what is left of them. `crate::budgets` paces calls by
//! these.

use crate::duration::parse_duration;
use serde::Deserialize;
use std::time::Duration;

/// Whose calls one budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// Each connection (client) has its own budget.
    Connection,
    /// Every connection to the same provider account (a Klaviyo account, a Kustomer org)
    /// shares it.
    Account,
}

/// At most `requests` calls in any `window`, for the calls its tier covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateBudget {
    /// Shown in our 429 ("accounts per second").
    pub name: String,
    pub scope: BudgetScope,
    pub requests: u32,
    pub window: Duration,
    /// The endpoint tier: API paths starting with this (no leading slash). Budgets without
    /// one cover the paths no other budget's prefix matches.
    pub path_prefix: Option<String>,
}

/// A provider's budgets and where its answers say what is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateBudgets {
    pub budgets: Vec<RateBudget>,
    /// Header with the calls left in the provider's current window.
    pub remaining_header: Option<String>,
    /// Header with the seconds until that window resets.
    pub reset_header: Option<String>,
}

/// Header names read when a provider names none: the IETF draft's and the common `x-` ones.
const REMAINING_HEADERS: [&str; 2] = ["ratelimit-remaining", "x-ratelimit-remaining"];
const RESET_HEADERS: [&str; 2] = ["ratelimit-reset", "x-ratelimit-reset"];

impl RateBudgets {
    /// The budgets of the tier `path` belongs to: those with the longest matching prefix,
    /// else those without a prefix.
    pub fn tier(&self, path: &str) -> (Option<&str>, Vec<&RateBudget>) {
        let path = path.trim_start_matches('/');
        let prefix = self
            .budgets
            .iter()
            .filter_map(|b| b.path_prefix.as_deref())
            .filter(|p| path.starts_with(p))
            .max_by_key(|p| p.len());
        let budgets = self
            .budgets
            .iter()
            .filter(|b| b.path_prefix.as_deref() == prefix)
            .collect();
        (prefix, budgets)
    }

    fn number(headers: &reqwest::header::HeaderMap, names: &[&str]) -> Option<u64> {
        names.iter().find_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?.trim();
            // `RateLimit-Remaining` may carry a list ("10, 5;w=1"): the smallest counts.
            value
                .split(',')
                .filter_map(|part| part.split(';').next()?.trim().parse::<u64>().ok())
                .min()
        })
    }

    /// What the answer says is left, and when the window resets.
    pub fn reported(&self, headers: &reqwest::header::HeaderMap) -> (Option<u64>, Option<u64>) {
        let remaining = match &self.remaining_header {
            Some(name) => Self::number(headers, &[name]),
            None => Self::number(headers, &REMAINING_HEADERS),
        };
        let reset = match &self.reset_header {
            Some(name) => Self::number(headers, &[name]),
            None => Self::number(headers, &RESET_HEADERS),
        };
        (remaining, reset)
    }
}

/// One `[[provider.rate_budget]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetEntry {
    name: String,
    #[serde(default = "default_scope")]
    scope: BudgetScope,
    requests: u32,
    /// A duration such as `1s` or `1m`.
    per: String,
    path_prefix: Option<String>,
}

fn default_scope() -> BudgetScope {
    BudgetScope::Account
}

/// Checks the file's budgets; the error names the budget at fault.
pub fn build_all(entries: Vec<BudgetEntry>) -> Result<Vec<RateBudget>, String> {
    let budgets = entries
        .into_iter()
        .map(|entry| {
            let problem = |what: &str| format!("rate budget {:?}: {what}", entry.name);
            let window = parse_duration(&entry.per)
                .filter(|w| *w >= Duration::from_secs(1) && *w <= Duration::from_secs(86_400))
                .ok_or_else(|| problem("per must be a duration from 1s to 1d, such as 1s or 1m"))?;
            if entry.requests == 0 || entry.requests > 1_000_000 {
                return Err(problem("requests must be from 1 to 1000000"));
            }
            let path_prefix = entry
                .path_prefix
                .map(|p| p.trim_start_matches('/').to_string());
            if path_prefix
                .as_deref()
                .is_some_and(|p| p.chars().any(char::is_control))
            {
                return Err(problem("path_prefix must be printable"));
            }
            Ok(RateBudget {
                name: entry.name,
                scope: entry.scope,
                requests: entry.requests,
                window,
                path_prefix,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    // One tier is paced as one queue, so its budgets must count the same callers.
    for budget in &budgets {
        let mixed = budgets
            .iter()
            .any(|b| b.path_prefix == budget.path_prefix && b.scope != budget.scope);
        if mixed {
            return Err(format!(
                "rate budget {:?}: every budget of one path_prefix needs the same scope",
                budget.name
            ));
        }
    }
    Ok(budgets)
}

fn budget(name: &str, requests: u32, secs: u64, prefix: Option<&str>) -> RateBudget {
    RateBudget {
        name: name.into(),
        scope: BudgetScope::Account,
        requests,
        window: Duration::from_secs(secs),
        path_prefix: prefix.map(str::to_string),
    }
}

/// Klaviyo's published tiers, per account per app, a burst per second and a steady rate
/// per minute (https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling):
/// accounts XS (1/s, 15/min), profiles M (10/s, 150/min), lists, segments and the rest
/// at most L (75/s, 700/min).
pub fn klaviyo() -> RateBudgets {
    RateBudgets {
        budgets: vec![
            budget("accounts per second", 1, 1, Some("api/accounts")),
            budget("accounts per minute", 15, 60, Some("api/accounts")),
            budget("profiles per second", 10, 1, Some("api/profiles")),
            budget("profiles per minute", 150, 60, Some("api/profiles")),
            budget("API per second", 75, 1, None),
            budget("API per minute", 700, 60, None),
        ],
        remaining_header: Some("ratelimit-remaining".into()),
        reset_header: Some("ratelimit-reset".into()),
    }
}

/// Kustomer: one budget per org per minute shared by every key and user, 300 to 2,000 by
/// plan (its API reference, "Rate limiting"; the exact URL is unconfirmed), so the lowest
/// unless `KUSTOMER_RATE_PER_MINUTE` says more.
pub fn kustomer(per_minute: u32) -> RateBudgets {
    RateBudgets {
        budgets: vec![budget("org per minute", per_minute, 60, None)],
        remaining_header: Some("x-ratelimit-remaining".into()),
        reset_header: Some("x-ratelimit-reset".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_belongs_to_the_tier_of_its_longest_prefix() {
        let klaviyo = klaviyo();
        let (prefix, budgets) = klaviyo.tier("api/accounts/");
        assert_eq!(prefix, Some("api/accounts"));
        assert_eq!(budgets.len(), 2);
        let (prefix, budgets) = klaviyo.tier("/api/lists");
        assert_eq!(prefix, None);
        assert_eq!(budgets[1].requests, 700);
        assert!(RateBudgets::default().tier("x").1.is_empty());
    }

    #[test]
    fn headers_report_the_smallest_value_left() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("ratelimit-remaining", "7, 3;w=1".parse().unwrap());
        headers.insert("x-ratelimit-reset", "12".parse().unwrap());
        let default = RateBudgets::default();
        assert_eq!(default.reported(&headers), (Some(3), Some(12)));
        assert_eq!(klaviyo().reported(&headers), (Some(3), None));
    }

    #[test]
    fn bad_budgets_are_named() {
        let entry = |per: &str, requests: u32| BudgetEntry {
            name: "b".into(),
            scope: BudgetScope::Account,
            requests,
            per: per.into(),
            path_prefix: None,
        };
        assert!(build_all(vec![entry("1m", 10)]).is_ok());
        assert!(build_all(vec![entry("soon", 10)])
            .unwrap_err()
            .contains("per must be"));
        assert!(build_all(vec![entry("1m", 0)])
            .unwrap_err()
            .contains("requests must"));
        let mut other = entry("1s", 2);
        other.scope = BudgetScope::Connection;
        assert!(build_all(vec![entry("1m", 10), other])
            .unwrap_err()
            .contains("same scope"));
    }
}
