//! Every setting, read from the environment and validated once at start.
//!
//! A bad or missing setting yields one line naming the variable and what it expects.

use crate::db::DatabaseUrl;
pub use crate::env::{secret, ConfigError, ProcessEnv, Source};
use crate::provider_http::RetryPolicy;
use crate::providers::{Endpoints, Registry};
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};
use std::time::Duration;
use url::Url;

/// The 32-byte key that seals secrets; its Debug output never shows the bytes.
pub struct EncryptionKey(SecretBox<[u8; 32]>);

impl EncryptionKey {
    pub const HINT: &'static str =
        "must be 32 bytes of base64; generate one with `connecthub key gen`";

    pub fn parse(encoded: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(SecretBox::new(Box::new(array))))
    }

    pub fn generate() -> Self {
        Self(SecretBox::new(Box::new(rand::random())))
    }

    /// The key as base64, for `key gen` and the demo key file only.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.expose_secret())
    }

    pub fn bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl Clone for EncryptionKey {
    fn clone(&self) -> Self {
        Self(SecretBox::new(Box::new(*self.0.expose_secret())))
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey([REDACTED])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How long a sign-in lasts.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Ends the session after this long without a request.
    pub idle_timeout: Duration,
    /// Ends the session this long after sign-in, however active.
    pub absolute_timeout: Duration,
}

/// How many sign-in attempts are allowed before 429.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Attempts per client address in a burst; one more is allowed every `period`.
    pub per_ip_burst: u32,
    /// Wrong passwords per account from one address within `period`.
    pub per_account_burst: u32,
    /// Wrong passwords per account from all addresses within `period`; past it only
    /// addresses with no recent failure for the account may try.
    pub per_account_ceiling: u32,
    pub period: Duration,
}

/// Limits on the service API's keys.
#[derive(Debug, Clone)]
pub struct ServiceKeyLimits {
    /// Wrong keys one address may present within `failure_window` before 429.
    pub failures_per_ip: u32,
    /// The window for `failures_per_ip`, and the most often one address's wrong keys are
    /// audited (one entry per window with the count).
    pub failure_window: Duration,
    /// Requests per minute per key on the proxy and token endpoints; `None`: no limit.
    pub requests_per_minute: Option<u32>,
}

/// Connect sessions for the team's end users.
#[derive(Debug, Clone)]
pub struct ConnectPolicy {
    /// Exact origins (`https://app.example.com`) a session's success/error URL may point
    /// at (`CONNECT_ALLOWED_REDIRECTS`, comma-separated); anything else is refused.
    pub allowed_redirects: Vec<String>,
    /// How long a session's link stays valid (`CONNECT_SESSION_TTL_SECS`, 1800).
    pub session_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub database_max_connections: u32,
    pub bind: String,
    pub public_url: Url,
    pub encryption_key: EncryptionKey,
    /// The key being rotated away from: still opens old secrets, never seals new ones.
    pub encryption_key_previous: Option<EncryptionKey>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub session: SessionPolicy,
    pub login_limits: LoginLimits,
    pub service_key_limits: ServiceKeyLimits,
    /// Requests per minute one address may make without being signed in (pages, sign-in).
    pub anonymous_requests_per_minute: u32,
    pub providers: Registry,
    /// How provider calls are retried and timed out.
    pub provider_retry: RetryPolicy,
    /// Tokens are refreshed when less than this (or half their lifetime, if shorter) is
    /// left, by the background refresher or before a hand-out, whichever comes first.
    pub refresh_margin: Duration,
    /// How many refreshes the background refresher runs at once (`REFRESH_CONCURRENCY`).
    pub refresher: crate::oauth::refresher_settings::Settings,
    /// How long the service API keeps API keys and handed-out tokens in memory.
    pub service_cache_ttl: Duration,
    /// How many handed-out tokens this instance keeps in memory at most.
    pub token_cache_capacity: u32,
    /// Identical hand-out audit entries after the first are gathered this long.
    pub audit_handout_window: Duration,
    /// When set, `/metrics` wants it as a Bearer token.
    pub metrics_token: Option<secrecy::SecretString>,
    /// How long hourly usage roll-ups are kept (daily ones are kept for good).
    pub usage_retention: chrono::TimeDelta,
    /// The built-in provider sandbox, mounted only by `demo` and tests.
    pub sandbox: Option<SandboxConfig>,
    pub connect: ConnectPolicy,
    /// The job queue and outgoing webhooks.
    pub webhooks: crate::webhook_settings::WebhookSettings,
    /// How often the audit chain's head is published (log line and `audit.head` event).
    pub audit_head_interval: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`): requests
    /// from them are counted and audited under the address they forwarded for.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Record syncs: scheduling, rate budgets, retention.
    pub syncs: crate::syncs::settings::SyncSettings,
    /// Pacing of provider calls under their rate budgets.
    pub budgets: crate::budgets::BudgetSettings,
    /// Backoff and circuit breaking while a provider is unavailable.
    pub health: crate::provider_health::HealthSettings,
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub access_token_ttl: Duration,
}

/// Defaults that `demo` fills in before validation; `serve` has none for these.
#[derive(Debug, Default, Clone)]
pub struct Defaults {
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub encryption_key: Option<String>,
    /// Mount the sandbox and point the built-in providers at it (`demo`, tests).
    pub sandbox: bool,
}

impl Config {
    /// Production settings: every required variable must be present.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(&ProcessEnv, &Defaults::default())
    }

    pub fn load(source: &dyn Source, defaults: &Defaults) -> Result<Self, ConfigError> {
        // The steps run in this order so that the first bad variable is the one reported.
        let database_url = database_url(source, defaults)?;
        let bind = bind(source)?;
        let public_url = public_url(source, defaults)?;
        let (encryption_key, encryption_key_previous) = encryption_keys(source, defaults)?;
        let (log_format, log_level) = logging(source)?;
        let sandbox = sandbox(source, defaults)?;
        let providers = providers(source, &public_url, sandbox.as_ref())?;
        let provider_retry = provider_retry(source)?;
        let webhooks = crate::webhook_settings::WebhookSettings::load(source, defaults.sandbox)?;
        let syncs = crate::syncs::settings::SyncSettings::load(source)?;
        let budgets = crate::budgets::BudgetSettings::load(source)?;
        let health = crate::provider_health::HealthSettings::load(source)?;
        Ok(Self {
            budgets,
            health,
            webhooks,
            syncs,
            providers,
            provider_retry,
            refresh_margin: seconds(source, "TOKEN_REFRESH_MARGIN_SECS", 300)?,
            refresher: crate::oauth::refresher_settings::Settings::load(source)?,
            service_cache_ttl: seconds(source, "SERVICE_CACHE_SECS", 60)?,
            token_cache_capacity: number(source, "TOKEN_CACHE_CAPACITY", 100_000)?,
            audit_handout_window: seconds(source, "AUDIT_HANDOUT_WINDOW_SECS", 60)?,
            audit_head_interval: seconds(source, "AUDIT_HEAD_INTERVAL_SECS", 3600)?,
            metrics_token: secret(source, "METRICS_TOKEN")?.map(secrecy::SecretString::from),
            usage_retention: usage_retention(source)?,
            connect: connect_policy(source)?,
            trusted_proxies: trusted_proxies(source)?,
            sandbox,
            database_url,
            database_max_connections: number(source, "DATABASE_MAX_CONNECTIONS", 10)?,
            bind,
            public_url,
            encryption_key,
            encryption_key_previous,
            log_level,
            log_format,
            session: SessionPolicy {
                idle_timeout: minutes(source, "SESSION_IDLE_MINUTES", 120)?,
                absolute_timeout: minutes(source, "SESSION_ABSOLUTE_MINUTES", 12 * 60)?,
            },
            service_key_limits: service_key_limits(source)?,
            anonymous_requests_per_minute: number(source, "ANONYMOUS_REQUESTS_PER_MINUTE", 600)?,
            login_limits: login_limits(source)?,
        })
    }

    /// Cookies get the Secure flag when users reach connecthub over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// The variable if set, else the caller's default (the demo's, the tests').
fn get_or(source: &dyn Source, name: &str, default: &Option<String>) -> Option<String> {
    source.get(name).or(default.clone())
}

fn database_url(source: &dyn Source, defaults: &Defaults) -> Result<DatabaseUrl, ConfigError> {
    // A secret too: a PostgreSQL URL may hold the password.
    let database_url = secret(source, "DATABASE_URL")?
        .or(defaults.database_url.clone())
        .ok_or_else(|| {
            ConfigError::new(
                "DATABASE_URL",
                "is required: a SQLite file path (data/connecthub.db) or a postgres:// URL",
            )
        })?;
    DatabaseUrl::parse(&database_url).map_err(|why| ConfigError::new("DATABASE_URL", why))
}

fn bind(source: &dyn Source) -> Result<String, ConfigError> {
    let bind = source
        .get("BIND")
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    if bind.parse::<std::net::SocketAddr>().is_err() && !bind.contains(':') {
        return Err(ConfigError::new(
            "BIND",
            "must be host:port, for example 0.0.0.0:8080",
        ));
    }
    Ok(bind)
}

fn public_url(source: &dyn Source, defaults: &Defaults) -> Result<Url, ConfigError> {
    let public_url = get_or(source, "PUBLIC_URL", &defaults.public_url).ok_or_else(|| {
        ConfigError::new(
            "PUBLIC_URL",
            "is required: the https:// address users reach connecthub at",
        )
    })?;
    parse_public_url(&public_url)
}

/// The current key and, while secrets are being re-sealed, the previous one.
fn encryption_keys(
    source: &dyn Source,
    defaults: &Defaults,
) -> Result<(EncryptionKey, Option<EncryptionKey>), ConfigError> {
    let encryption_key = secret(source, "ENCRYPTION_KEY")?
        .or(defaults.encryption_key.clone())
        .ok_or_else(|| ConfigError::new("ENCRYPTION_KEY", EncryptionKey::HINT))?;
    let encryption_key = EncryptionKey::parse(&encryption_key)
        .ok_or_else(|| ConfigError::new("ENCRYPTION_KEY", EncryptionKey::HINT))?;
    let encryption_key_previous = match secret(source, "ENCRYPTION_KEY_PREVIOUS")? {
        None => None,
        Some(raw) => Some(
            EncryptionKey::parse(&raw)
                .ok_or_else(|| ConfigError::new("ENCRYPTION_KEY_PREVIOUS", EncryptionKey::HINT))?,
        ),
    };
    Ok((encryption_key, encryption_key_previous))
}

/// The log format, then the level (a tracing filter).
fn logging(source: &dyn Source) -> Result<(LogFormat, String), ConfigError> {
    let log_format = match source.get("LOG_FORMAT").as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(_) => return Err(ConfigError::new("LOG_FORMAT", "must be text or json")),
    };
    let log_level = source.get("LOG_LEVEL").unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(ConfigError::new(
            "LOG_LEVEL",
            "must be a level (error, warn, info, debug, trace) or a tracing filter",
        ));
    }
    Ok((log_format, log_level))
}

/// The sandbox's settings when the caller runs it (`demo`, the tests), else none.
fn sandbox(source: &dyn Source, defaults: &Defaults) -> Result<Option<SandboxConfig>, ConfigError> {
    if !defaults.sandbox {
        return Ok(None);
    }
    Ok(Some(SandboxConfig {
        access_token_ttl: seconds(source, "SANDBOX_ACCESS_TOKEN_TTL_SECS", 3600)?,
    }))
}

/// The providers, pointed at the sandbox when it runs.
fn providers(
    source: &dyn Source,
    public_url: &Url,
    sandbox: Option<&SandboxConfig>,
) -> Result<Registry, ConfigError> {
    let endpoints = match sandbox {
        Some(_) => Endpoints::Sandbox {
            base: public_url.as_str().trim_end_matches('/').to_string(),
        },
        None => Endpoints::Real,
    };
    Registry::load(
        source,
        public_url.as_str().trim_end_matches('/'),
        &endpoints,
    )
}

fn provider_retry(source: &dyn Source) -> Result<RetryPolicy, ConfigError> {
    let defaults_retry = RetryPolicy::default();
    Ok(RetryPolicy {
        max_retries: number(
            source,
            "PROVIDER_MAX_RETRIES",
            defaults_retry.max_retries as u32,
        )? as usize,
        min_delay: Duration::from_millis(u64::from(number(
            source,
            "PROVIDER_RETRY_DELAY_MS",
            200,
        )?)),
        timeout: seconds(source, "PROVIDER_TIMEOUT_SECS", 10)?,
        ..defaults_retry
    })
}

fn service_key_limits(source: &dyn Source) -> Result<ServiceKeyLimits, ConfigError> {
    Ok(ServiceKeyLimits {
        failures_per_ip: number(source, "SERVICE_KEY_MAX_FAILURES_PER_IP", 20)?,
        failure_window: seconds(source, "SERVICE_KEY_FAILURE_WINDOW_SECS", 60)?,
        requests_per_minute: match source.get("SERVICE_KEY_REQUESTS_PER_MINUTE") {
            None => None,
            Some(_) => Some(number(source, "SERVICE_KEY_REQUESTS_PER_MINUTE", 1)?),
        },
    })
}

/// Sign-in limits; the per-account ceiling defaults to ten times the per-address one.
fn login_limits(source: &dyn Source) -> Result<LoginLimits, ConfigError> {
    let per_account_burst = number(source, "LOGIN_MAX_ATTEMPTS_PER_ACCOUNT", 5)?;
    Ok(LoginLimits {
        per_ip_burst: number(source, "LOGIN_MAX_ATTEMPTS_PER_IP", 20)?,
        per_account_burst,
        per_account_ceiling: number(
            source,
            "LOGIN_MAX_FAILURES_PER_ACCOUNT",
            per_account_burst.saturating_mul(10),
        )?,
        period: Duration::from_secs(60),
    })
}

/// `TRUSTED_PROXIES`: comma-separated IP addresses (no ranges: a proxy has a known one).
fn trusted_proxies(source: &dyn Source) -> Result<Vec<std::net::IpAddr>, ConfigError> {
    let raw = source.get("TRUSTED_PROXIES").unwrap_or_default();
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|_| {
                ConfigError::new(
                    "TRUSTED_PROXIES",
                    "must be comma-separated IP addresses such as 127.0.0.1,10.0.0.5",
                )
            })
        })
        .collect()
}

fn connect_policy(source: &dyn Source) -> Result<ConnectPolicy, ConfigError> {
    let name = "CONNECT_ALLOWED_REDIRECTS";
    let mut allowed_redirects = Vec::new();
    for raw in source.get(name).unwrap_or_default().split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let origin = exact_origin(raw).ok_or_else(|| {
            ConfigError::new(
                name,
                "must be comma-separated origins such as https://app.example.com (no path)",
            )
        })?;
        allowed_redirects.push(origin);
    }
    Ok(ConnectPolicy {
        allowed_redirects,
        session_ttl: seconds(source, "CONNECT_SESSION_TTL_SECS", 1800)?,
    })
}

/// `scheme://host[:port]` of an http(s) URL that is nothing but an origin.
pub fn exact_origin(raw: &str) -> Option<String> {
    let url = Url::parse(raw).ok()?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    let plain = url.username().is_empty() && url.password().is_none();
    (matches!(url.scheme(), "http" | "https") && url.host().is_some() && bare && plain)
        .then(|| url.origin().ascii_serialization())
}

fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let hint = "must be an absolute http(s) URL such as https://connecthub.example.com";
    let url = Url::parse(raw).map_err(|_| ConfigError::new("PUBLIC_URL", hint))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new("PUBLIC_URL", hint));
    }
    Ok(url)
}

fn number(source: &dyn Source, name: &str, default: u32) -> Result<u32, ConfigError> {
    match source.get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::new(name, "must be a whole number above 0")),
    }
}

/// The 24-hour usage view reads hourly roll-ups, so at least two days are kept.
fn usage_retention(source: &dyn Source) -> Result<chrono::TimeDelta, ConfigError> {
    let days = number(source, "USAGE_RETENTION_DAYS", 30)?;
    if days < 2 {
        return Err(ConfigError::new(
            "USAGE_RETENTION_DAYS",
            "must be a whole number of days, 2 or more",
        ));
    }
    Ok(chrono::TimeDelta::days(i64::from(days)))
}

fn seconds(source: &dyn Source, name: &str, default: u32) -> Result<Duration, ConfigError> {
    number(source, name, default).map(|s| Duration::from_secs(u64::from(s)))
}

fn minutes(source: &dyn Source, name: &str, default: u32) -> Result<Duration, ConfigError> {
    number(source, name, default).map(|m| Duration::from_secs(u64::from(m) * 60))
}

#[cfg(test)]
mod tests;
