//! Settings of the job queue and of outgoing webhooks, read with the rest of `Config`.

use crate::duration::parse_duration;
use crate::env::ConfigError;
use crate::env::Source;
use std::time::Duration;

/// The schedule: about three days from the first attempt to the last.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,14h,20h,24h";

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Endpoints on private, loopback and link-local addresses are allowed (demo, tests).
    pub allow_private: bool,
    /// The wait before each retry; after the last one the delivery is dead.
    pub retry_schedule: Vec<Duration>,
    /// How long one delivery attempt may take.
    pub timeout: Duration,
    /// An endpoint that has failed for this long is disabled.
    pub disable_after: Duration,
    /// How long a worker holds a job before another instance may take it over; also the
    /// longest an idle worker sleeps (how soon it sees jobs queued by another instance).
    pub job_lease: Duration,
    /// The secrets providers sign their webhooks with (`KLAVIYO_WEBHOOK_SECRET`, …).
    pub provider_secrets: Vec<(String, secrecy::SecretString)>,
}

impl WebhookSettings {
    pub fn load(source: &dyn Source, sandbox: bool) -> Result<Self, ConfigError> {
        let allow_private = match source.get("WEBHOOK_ALLOW_PRIVATE").as_deref() {
            None => sandbox,
            Some("true") => true,
            Some("false") => false,
            Some(_) => {
                return Err(ConfigError::new(
                    "WEBHOOK_ALLOW_PRIVATE",
                    "must be true or false",
                ))
            }
        };
        let raw = source
            .get("WEBHOOK_RETRY_SCHEDULE")
            .unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE.into());
        let retry_schedule = parse_schedule(&raw).ok_or_else(|| {
            ConfigError::new(
                "WEBHOOK_RETRY_SCHEDULE",
                "must be a comma-separated list of durations such as 5s,5m,2h (ms, s, m, h, d)",
            )
        })?;
        Ok(Self {
            allow_private,
            retry_schedule,
            timeout: duration_var(source, "WEBHOOK_TIMEOUT", "10s")?,
            disable_after: duration_var(source, "WEBHOOK_DISABLE_AFTER", "5d")?,
            job_lease: duration_var(source, "JOB_LEASE", "30s")?,
            provider_secrets: provider_secrets(source)?,
        })
    }

    pub fn provider_secret(&self, provider: &str) -> Option<&secrecy::SecretString> {
        self.provider_secrets
            .iter()
            .find(|(name, _)| name == provider)
            .map(|(_, s)| s)
    }
}

/// `KLAVIYO_WEBHOOK_SECRET`, `KUSTOMER_WEBHOOK_SECRET` (or their `_FILE`).
fn provider_secrets(
    source: &dyn Source,
) -> Result<Vec<(String, secrecy::SecretString)>, ConfigError> {
    let mut secrets = Vec::new();
    for name in ["klaviyo", "kustomer"] {
        let variable = format!("{}_WEBHOOK_SECRET", name.to_ascii_uppercase());
        if let Some(secret) = crate::env::secret(source, &variable)? {
            secrets.push((name.to_string(), secrecy::SecretString::from(secret)));
        }
    }
    Ok(secrets)
}

fn duration_var(source: &dyn Source, name: &str, default: &str) -> Result<Duration, ConfigError> {
    let raw = source.get(name).unwrap_or_else(|| default.into());
    parse_duration(&raw)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::new(name, "must be a duration such as 500ms, 10s, 5m, 2h or 5d")
        })
}

/// `5s,5m,30m` into durations; `None` when any part does not parse.
pub fn parse_schedule(raw: &str) -> Option<Vec<Duration>> {
    let schedule: Option<Vec<Duration>> = raw.split(',').map(parse_duration).collect();
    schedule.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_reaches_about_three_days() {
        let total: Duration = parse_schedule(DEFAULT_RETRY_SCHEDULE).unwrap().iter().sum();
        assert!(total > Duration::from_secs(3 * 86_400) && total < Duration::from_secs(4 * 86_400));
        assert_eq!(parse_schedule("5s,x"), None);
    }
}
