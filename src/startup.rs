//! Builds the application from a `Config`: pool, migrations, middleware, routes. `main`
//! and every test start the server through `Application::build`, so tests run the real
//! wiring.

use crate::auth::login_limiter::LoginLimiter;
use crate::auth::session_store::DbSessionStore;
use crate::config::Config;
use crate::db::{self, DbPool};
use crate::metrics::Metrics;
use crate::oauth::lifecycle::TokenManager;
use crate::oauth::provider_http::RetryPolicy;
use crate::providers::Registry;
use crate::vault::Vault;
use actix_session::config::{BrowserSession, CookieContentSecurity, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::{time, Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use connecthub_sandbox::{Sandbox, SandboxSettings};
use sha2::{Digest, Sha512};
use std::net::TcpListener;
use std::sync::Arc;

/// What every handler can reach.
pub struct AppState {
    pub pool: DbPool,
    pub config: Arc<Config>,
    pub login_limiter: LoginLimiter,
    /// Requests of visitors who are not signed in, per address.
    pub anonymous_limiter: crate::rate_limit::PerAddress,
    pub vault: Arc<Vault>,
    /// For provider calls: no redirects followed (a token must not follow one elsewhere).
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
    pub tokens: TokenManager,
    pub metrics: Metrics,
    pub audit: Arc<crate::audit::Buffer>,
    pub usage: crate::usage::Recorder,
    /// Service API keys seen recently (by hash), so a busy service does not cost a query
    /// per request. Revoking a key here clears it; other instances notice within the TTL.
    pub api_key_cache: mini_moka::sync::Cache<String, crate::api_keys::ApiKey>,
    /// Wrong service keys per address: limits them and reports each burst once.
    pub rejected_keys: crate::rate_limit::Failures<std::net::IpAddr>,
    /// Requests per API key on the proxy and token endpoints, when a limit is set.
    pub key_budget: Option<crate::rate_limit::RequestBudget<String>>,
}

impl AppState {
    pub fn providers(&self) -> &Registry {
        &self.config.providers
    }
}

pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    state: web::Data<AppState>,
}

impl Application {
    /// Connects, migrates, binds `BIND` and prepares the server.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
        Self::build_on(config, listener).await
    }

    /// Like `build`, on a listener bound by the caller (tests bind port 0 first so they
    /// know the public URL before the app starts).
    pub async fn build_on(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        let pool = connect_and_migrate(&config).await?;
        let port = listener.local_addr()?.port();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.provider_retry.timeout)
            .user_agent(concat!("connecthub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let sandbox = config.sandbox.as_ref().map(|settings| {
            Sandbox::new(SandboxSettings {
                base_url: config.public_url.as_str().trim_end_matches('/').to_string(),
                access_token_ttl: settings.access_token_ttl,
            })
        });
        let state = web::Data::new(AppState {
            audit: Arc::default(),
            usage: crate::usage::Recorder::default(),
            api_key_cache: mini_moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(config.service_cache_ttl)
                .build(),
            rejected_keys: crate::rate_limit::Failures::new(
                config.service_key_limits.failure_window,
            ),
            key_budget: config
                .service_key_limits
                .requests_per_minute
                .map(crate::rate_limit::RequestBudget::per_minute),
            pool: pool.clone(),
            login_limiter: LoginLimiter::new(&config.login_limits),
            anonymous_limiter: crate::rate_limit::PerAddress::per_minute(
                config.anonymous_requests_per_minute,
            ),
            vault: Arc::new(Vault::from_config(&config)),
            http,
            retry: config.provider_retry.clone(),
            tokens: TokenManager::new(config.service_cache_ttl),
            metrics: Metrics::for_providers(config.providers.enabled().map(|p| p.name.as_str())),
            config: Arc::new(config),
        });
        let server = serve(listener, state.clone(), sandbox)?;
        Ok(Self {
            port,
            server,
            pool,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Stops the server from elsewhere (tests stop theirs when they end).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Runs until the process is asked to stop, with the background refresher and the
    /// buffer flusher beside it. On SIGTERM or SIGINT the refresher stops at once (refreshes
    /// in flight finish, no new one starts: an instance on its way out must not call
    /// providers), the server finishes the requests in flight (at most 10 s), and the
    /// buffers (usage, audit, last-used times) are written a last time before returning.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        spawn_housekeeping(self.pool.clone(), self.state.config.usage_retention);
        let (stop_refreshing, refreshing) = tokio::sync::watch::channel(false);
        let (stop_flushing, flushing) = tokio::sync::watch::channel(false);
        let refresher = tokio::spawn(crate::oauth::refresher::run(self.state.clone(), refreshing));
        let flusher = tokio::spawn(flush_every_second(self.state.clone(), flushing));
        let server = self.server.handle();
        let signals = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: no new refreshes, finishing requests in flight");
            let _ = stop_refreshing.send(true);
            server.stop(true).await;
        });
        let result = self.server.await;
        signals.abort();
        let _ = refresher.await;
        let _ = stop_flushing.send(true);
        let _ = flusher.await;
        result
    }
}

/// SIGTERM (what service managers send) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens the pool and applies pending migrations.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<DbPool> {
    let url = config.database_url.clone();
    let max = config.database_max_connections;
    tokio::task::spawn_blocking(move || {
        let pool = db::connect(&url, max)?;
        db::run_migrations(&mut *pool.get()?)?;
        Ok(pool)
    })
    .await?
}

/// The cookie signing key, derived from the encryption key so operators manage one secret.
fn session_key(config: &Config) -> Key {
    let mut hasher = Sha512::new();
    hasher.update(b"connecthub session cookie");
    hasher.update(config.encryption_key.bytes());
    Key::from(&hasher.finalize())
}

fn session_middleware(state: &AppState) -> SessionMiddleware<DbSessionStore> {
    let config = &state.config;
    let secure = config.secure_cookies();
    // The __Host- prefix pins the cookie to this host and path; browsers accept it only
    // with Secure, so plain-http development uses a normal name.
    let name = if secure {
        "__Host-connecthub"
    } else {
        "connecthub"
    };
    let idle = time::Duration::seconds(config.session.idle_timeout.as_secs() as i64);
    SessionMiddleware::builder(DbSessionStore::new(state.pool.clone()), session_key(config))
        .cookie_name(name.to_string())
        .cookie_secure(secure)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_content_security(CookieContentSecurity::Signed)
        .session_lifecycle(
            BrowserSession::default()
                .state_ttl(idle)
                .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
        )
        .build()
}

fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    sandbox: Option<Sandbox>,
) -> anyhow::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::FormConfig::default().limit(64 * 1024))
            // A path segment that does not parse (a malformed id) names nothing: 404.
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_, _| crate::error::AppError::NotFound.into()),
            )
            .configure(|cfg| {
                if let Some(sandbox) = &sandbox {
                    connecthub_sandbox::routes(cfg, sandbox.clone());
                }
            })
            .configure(crate::api::routes)
            .configure(crate::web::routes)
            .wrap(from_fn(crate::auth::csrf::guard))
            .wrap(from_fn(crate::api::error::json_errors))
            .wrap(from_fn(crate::web::middleware::anonymous_rate_limit))
            .wrap(session_middleware(&state))
            .wrap(crate::web::middleware::security_headers())
            .wrap(from_fn(crate::web::middleware::request_log))
            .wrap(from_fn(crate::web::middleware::http_metrics))
    })
    .listen(listener)?
    .shutdown_timeout(10)
    // `run_until_stopped` handles the signals: the refresher must stop before the server
    // starts draining.
    .disable_signals()
    .run();
    Ok(server)
}

/// Hourly housekeeping, first run at start: deletes expired sessions (they are also
/// refused on load once expired) and raw usage rows past the retention. Every minute: a
/// WAL checkpoint, so SQLite's WAL file stays small.
fn spawn_housekeeping(pool: DbPool, usage_retention: chrono::TimeDelta) {
    let checkpoint_pool = pool.clone();
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            if let Err(e) = db::run(&checkpoint_pool, db::checkpoint).await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            let purged = db::run(&pool, crate::auth::session_store::purge_expired).await;
            if let Err(e) = purged {
                tracing::warn!(error = %e, "session purge failed");
            }
            crate::usage::prune(&pool, crate::db::now() - usage_retention).await;
        }
    });
}

/// Writes what the request path only counted (token hand-outs for the audit log, last-used
/// times) once a second, and a last time when the server stops.
async fn flush_every_second(
    state: web::Data<AppState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            _ = every.tick() => false,
            _ = stop.changed() => true,
        };
        state.audit.flush(&state.pool).await;
        crate::api::service_auth::report_rejected_keys(&state, stopping).await;
        crate::oauth::lifecycle::flush_last_used(&state).await;
        state.usage.flush(&state.pool).await;
        if stopping {
            return;
        }
    }
}
