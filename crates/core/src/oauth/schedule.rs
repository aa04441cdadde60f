//! When a token is due for refreshing: one rule for the hand-out path and the background
//! refresher, computed once when the token is stored (`credentials.refresh_at`).
//!
//! A token is refreshed when `min(margin, lifetime / 2)` is left, and never sooner than
//! `MIN_INTERVAL` after it was issued. A provider whose tokens live no longer than the
//! margin (5- or 15-minute tokens, say) so gets about one refresh per lifetime — never one
//! per request or per refresher pass.

use chrono::{NaiveDateTime, TimeDelta};

/// The least time between two refreshes of one client, whatever the provider says: a
/// token issued with `expires_in: 0` must not be refreshed in a loop.
pub const MIN_INTERVAL: TimeDelta = TimeDelta::seconds(1);

/// Longest lifetime taken from a provider (ten years): beyond it, arithmetic overflows.
const MAX_LIFETIME_SECS: i64 = 10 * 365 * 86400;

/// When a token stops working and when it is to be replaced; both `None` for tokens that
/// never expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub expires_at: Option<NaiveDateTime>,
    pub refresh_at: Option<NaiveDateTime>,
}

/// The lifetime of a token issued at `issued` with the provider's `expires_in`.
pub fn lifetime(issued: NaiveDateTime, expires_in: Option<i64>, margin: TimeDelta) -> Lifetime {
    let Some(seconds) = expires_in else {
        return Lifetime {
            expires_at: None,
            refresh_at: None,
        };
    };
    let length = TimeDelta::seconds(seconds.clamp(0, MAX_LIFETIME_SECS));
    let lead = margin.min(length / 2);
    Lifetime {
        expires_at: Some(issued + length),
        refresh_at: Some((issued + length - lead).max(issued + MIN_INTERVAL)),
    }
}

/// The configured refresh margin (`TOKEN_REFRESH_MARGIN_SECS`).
pub(crate) fn margin(state: &crate::state::AppState) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(state.config.refresh_margin)
        .unwrap_or(chrono::TimeDelta::minutes(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0)
            .unwrap()
            .naive_utc()
    }

    fn refresh_after(expires_in: i64, margin: i64) -> i64 {
        let lifetime = lifetime(at(0), Some(expires_in), TimeDelta::seconds(margin));
        (lifetime.refresh_at.unwrap() - at(0)).num_seconds()
    }

    #[test]
    fn long_tokens_are_refreshed_a_margin_before_expiry() {
        assert_eq!(refresh_after(3600, 300), 3300);
    }

    #[test]
    fn tokens_shorter_than_twice_the_margin_are_refreshed_at_half_their_life() {
        assert_eq!(refresh_after(300, 300), 150);
        assert_eq!(refresh_after(60, 300), 30);
        assert_eq!(refresh_after(2, 300), 1);
    }

    #[test]
    fn no_token_is_due_sooner_than_the_floor() {
        assert_eq!(refresh_after(0, 300), 1);
        assert_eq!(refresh_after(1, 300), 1);
        assert_eq!(refresh_after(-5, 300), 1);
    }

    #[test]
    fn tokens_without_expiry_are_never_due() {
        let never = lifetime(at(0), None, TimeDelta::seconds(300));
        assert_eq!(never.refresh_at, None);
        assert_eq!(never.expires_at, None);
    }

    #[test]
    fn absurd_lifetimes_are_capped() {
        let capped = lifetime(at(0), Some(i64::MAX), TimeDelta::seconds(300));
        assert_eq!(
            capped.expires_at,
            Some(at(0) + TimeDelta::seconds(MAX_LIFETIME_SECS))
        );
    }
}
