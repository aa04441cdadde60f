//! Which calls the statistics cover: a period and optional client, provider and user.

use chrono::{NaiveDateTime, NaiveTime, TimeDelta, Timelike};

/// Midnight (UTC) of the day holding `at`.
pub fn start_of_day(at: NaiveDateTime) -> NaiveDateTime {
    at.date().and_time(NaiveTime::MIN)
}

/// The start of the hour holding `at`.
pub fn start_of_hour(at: NaiveDateTime) -> NaiveDateTime {
    start_of_day(at) + TimeDelta::hours(i64::from(at.hour()))
}

/// Which stretch of time the statistics cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// This hour and the 23 before it, per hour.
    Hours24,
    /// Today and the days before it (UTC calendar days), per day.
    Days(u32),
}

impl Period {
    /// When the period begins: the start of the hour 23 hours ago, or midnight (UTC) of
    /// the first day.
    pub fn start(self, now: NaiveDateTime) -> NaiveDateTime {
        match self {
            Self::Hours24 => start_of_hour(now) - TimeDelta::hours(23),
            Self::Days(days) => start_of_day(now) - TimeDelta::days(i64::from(days.max(1)) - 1),
        }
    }
}

/// Which calls the statistics cover.
#[derive(Debug, Clone)]
pub struct Scope {
    pub period: Period,
    pub client_id: Option<String>,
    pub provider: Option<String>,
    pub user_id: Option<String>,
}

impl Scope {
    pub fn all(period: Period) -> Self {
        Self {
            period,
            client_id: None,
            provider: None,
            user_id: None,
        }
    }
}
