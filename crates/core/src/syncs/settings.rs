//! SYNC_* settings, read with the rest of `Config`.

use crate::duration::parse_duration;
use crate::env::{ConfigError, Source};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Whether the scheduler starts runs on its own (runs asked for always happen).
    pub schedule: bool,
    /// How often the scheduler looks for due syncs.
    pub scheduler_interval: Duration,
    /// The share of a provider's rate budget (per window, from its rate-limit headers) a
    /// sync may use before it waits for the next window: never a whole Kustomer org budget.
    pub budget_share: f64,
    /// How far before the last run's start an incremental run asks from (clock skew, and
    /// records written while that run read).
    pub incremental_overlap: Duration,
    /// Records deleted at the provider are kept this long.
    pub deleted_retention: Duration,
    /// The longest wait after repeated failures.
    pub max_backoff: Duration,
    /// Failed runs in a row before `sync.failed` is sent.
    pub failures_before_alert: i32,
}

fn duration(source: &dyn Source, name: &str, default: &str) -> Result<Duration, ConfigError> {
    let raw = source.get(name).unwrap_or_else(|| default.into());
    parse_duration(&raw)
        .ok_or_else(|| ConfigError::new(name, "must be a duration such as 30s, 5m, 2h or 30d"))
}

impl SyncSettings {
    pub fn load(source: &dyn Source) -> Result<Self, ConfigError> {
        let schedule = match source.get("SYNC_SCHEDULE").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(_) => return Err(ConfigError::new("SYNC_SCHEDULE", "must be true or false")),
        };
        let budget_share = match source.get("SYNC_BUDGET_SHARE") {
            None => 0.5,
            Some(raw) => raw
                .parse::<f64>()
                .ok()
                .filter(|share| *share > 0.0 && *share <= 1.0)
                .ok_or_else(|| {
                    ConfigError::new(
                        "SYNC_BUDGET_SHARE",
                        "must be a number above 0 and at most 1",
                    )
                })?,
        };
        let failures_before_alert = match source.get("SYNC_FAILURES_BEFORE_ALERT") {
            None => 3,
            Some(raw) => raw
                .parse::<i32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        "SYNC_FAILURES_BEFORE_ALERT",
                        "must be a number from 1 to 1000",
                    )
                })?,
        };
        let scheduler_interval = duration(source, "SYNC_SCHEDULER_INTERVAL", "30s")?;
        if scheduler_interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "SYNC_SCHEDULER_INTERVAL",
                "must be at least 100ms",
            ));
        }
        Ok(Self {
            schedule,
            scheduler_interval,
            budget_share,
            incremental_overlap: duration(source, "SYNC_INCREMENTAL_OVERLAP", "60s")?,
            deleted_retention: duration(source, "SYNC_DELETED_RETENTION", "30d")?,
            max_backoff: duration(source, "SYNC_MAX_BACKOFF", "1h")?,
            failures_before_alert,
        })
    }
}
