//! What every handler and background task can reach: the pool, the settings, the vault,
//! the provider HTTP client, caches, limiters, buffers and metrics. Built once at start.

use crate::auth::login_limiter::LoginLimiter;
use crate::config::Config;
use crate::db::DbPool;
use crate::metrics::Metrics;
use crate::oauth::token_cache::TokenManager;
use crate::provider_http::RetryPolicy;
use crate::providers::Registry;
use crate::vault::Vault;
use std::sync::{Arc, RwLock};

/// What every handler can reach.
pub struct AppState {
    pub pool: DbPool,
    pub config: Arc<Config>,
    pub login_limiter: LoginLimiter,
    /// Requests of visitors who are not signed in, per address.
    pub anonymous_limiter: crate::rate_limit::PerAddress,
    pub vault: Arc<Vault>,
    /// For provider calls: see `http`.
    http: crate::provider_clients::ProviderClients,
    pub retry: RetryPolicy,
    pub tokens: TokenManager,
    pub metrics: Metrics,
    pub audit: Arc<crate::audit::Buffer>,
    pub usage: crate::usage::Recorder,
    /// Service API keys seen recently (by hash), so a busy service does not cost a query
    /// per request. Revoking a key clears it here, and on other instances through
    /// `invalidation` (PostgreSQL), else within the TTL.
    pub api_key_cache: crate::ttl_cache::TtlCache<crate::api_keys::ApiKey>,
    /// Bumped by `forget_api_keys`, so a key read before a revocation is not cached after it.
    pub api_key_generation: crate::cache_generation::Generation,
    /// Wrong service keys per address: limits them and reports each burst once.
    pub rejected_keys: crate::rate_limit::Failures<std::net::IpAddr>,
    /// Requests per API key on the proxy and token endpoints, when a limit is set.
    pub key_budget: Option<crate::rate_limit::RequestBudget<String>>,
    /// The providers in use: `config.providers` with the settings stored on
    /// `/admin/providers`, swapped whole when those change. Readers clone the `Arc`.
    registry: RwLock<Arc<Registry>>,
    /// Held while the registry is rebuilt, so an older rebuild never lands after a newer.
    pub registry_rebuild: tokio::sync::Mutex<()>,
    /// Provider calls paced under the providers' rate budgets.
    pub budgets: crate::budgets::Budgets,
    /// Per-provider circuit breakers for token refreshes (`provider_health`).
    pub breakers: crate::provider_health::Breakers,
}

impl AppState {
    pub fn new(config: Config, pool: DbPool) -> anyhow::Result<Self> {
        let http = crate::provider_clients::ProviderClients::new(config.provider_retry.timeout)?;
        Ok(Self {
            audit: Arc::new(crate::audit::Buffer::new(config.audit_handout_window)),
            usage: crate::usage::Recorder::default(),
            api_key_cache: crate::ttl_cache::TtlCache::new(10_000, config.service_cache_ttl),
            api_key_generation: Default::default(),
            rejected_keys: crate::rate_limit::Failures::new(
                config.service_key_limits.failure_window,
            ),
            key_budget: config
                .service_key_limits
                .requests_per_minute
                .map(crate::rate_limit::RequestBudget::per_minute),
            budgets: crate::budgets::Budgets::new(config.budgets.clone()),
            breakers: crate::provider_health::Breakers::new(config.health.clone()),
            pool,
            login_limiter: LoginLimiter::new(&config.login_limits),
            anonymous_limiter: crate::rate_limit::PerAddress::per_minute(
                config.anonymous_requests_per_minute,
            ),
            vault: Arc::new(Vault::from_config(&config)),
            http,
            retry: config.provider_retry.clone(),
            tokens: TokenManager::new(
                config.service_cache_ttl,
                config.token_cache_capacity as usize,
            ),
            metrics: Metrics::for_providers(config.providers.enabled().map(|p| p.name.as_str())),
            registry: RwLock::new(Arc::new(config.providers.clone())),
            registry_rebuild: tokio::sync::Mutex::default(),
            config: Arc::new(config),
        })
    }

    /// The HTTP client for provider calls made on this thread (`provider_clients`).
    pub fn http(&self) -> &reqwest::Client {
        self.http.get()
    }

    /// Drops every cached service key (one was revoked or changed).
    pub fn forget_api_keys(&self) {
        self.api_key_generation.bump();
        self.api_key_cache.invalidate_all();
    }

    /// Caches a key read from the database when `api_key_generation` was `seen`.
    pub fn remember_api_key(&self, hash: String, key: crate::api_keys::ApiKey, seen: u64) {
        self.api_key_cache.insert(hash.clone(), key);
        if !self.api_key_generation.unchanged_since(seen) {
            self.api_key_cache.invalidate(&hash);
        }
    }

    /// The providers as they are now (a later change does not alter the answer).
    pub fn providers(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set_providers(&self, registry: Registry) {
        *self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(registry);
    }
}
