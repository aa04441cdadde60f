//! Builds the application from a `Config`: pool, migrations, middleware, routes. `main`
//! and every test start the server through `Application::build`, so tests run the real
//! wiring.

use crate::auth::session_store::DbSessionStore;
use crate::config::Config;
use crate::db::{self, DbPool};
use crate::state::AppState;
use actix_session::config::{BrowserSession, CookieContentSecurity, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::{time, Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use connecthub_sandbox::{Sandbox, SandboxSettings};
use sha2::{Digest, Sha512};
use std::net::TcpListener;

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
        // Read with the settings, before logging was set up.
        for line in config.providers.skipped() {
            tracing::warn!("{line}");
        }
        let pool = connect_and_migrate(&config).await?;
        let port = listener.local_addr()?.port();
        let sandbox = config.sandbox.as_ref().map(|settings| {
            Sandbox::new(SandboxSettings {
                base_url: config.public_url.as_str().trim_end_matches('/').to_string(),
                access_token_ttl: settings.access_token_ttl,
            })
        });
        let state = web::Data::new(AppState::new(config, pool.clone())?);
        crate::provider_admin::reload(&state).await?;
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

    /// Runs until the process is asked to stop, with the background refresher, the job
    /// worker and the buffer flusher beside it. On SIGTERM or SIGINT the refresher stops at once (refreshes
    /// in flight finish, no new one starts: an instance on its way out must not call
    /// providers), the server finishes the requests in flight (at most 10 s), and the
    /// buffers (usage, audit, last-used times) are written a last time before returning.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        spawn_housekeeping(self.pool.clone(), &self.state.config);
        spawn_audit_head(self.pool.clone(), self.state.config.audit_head_interval);
        let (stop_refreshing, refreshing) = tokio::sync::watch::channel(false);
        let (stop_flushing, flushing) = tokio::sync::watch::channel(false);
        let refresher = tokio::spawn(crate::oauth::refresher::run(
            self.state.clone(),
            refreshing.clone(),
        ));
        let worker =
            tokio::spawn(job_worker(&self.state, refreshing.clone())?.run(refreshing.clone()));
        let scheduler = tokio::spawn(crate::syncs::scheduler::run(self.state.clone(), refreshing));
        let listener = tokio::spawn(crate::invalidation::listen(
            self.state.clone(),
            flushing.clone(),
        ));
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
        let _ = worker.await;
        let _ = scheduler.await;
        let _ = stop_flushing.send(true);
        let _ = flusher.await;
        let _ = listener.await;
        result
    }
}

/// The job worker with the handler of every job kind. It stops with the refresher: jobs
/// in flight finish (a delivery within its timeout), no new one is taken.
fn job_worker(
    state: &web::Data<AppState>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<crate::jobs::worker::Worker> {
    let settings = state.config.webhooks.clone();
    let deliverer = crate::webhooks::delivery::Deliverer::new(
        state.pool.clone(),
        state.vault.clone(),
        settings.clone(),
    )
    .map_err(std::io::Error::other)?;
    let syncs = crate::syncs::runner::Runner::new(state.clone(), stop);
    let handlers = crate::jobs::worker::Handlers::default()
        .add(
            crate::webhooks::DELIVERY_JOB,
            std::sync::Arc::new(deliverer).handler(),
        )
        .add(crate::syncs::RUN_JOB, std::sync::Arc::new(syncs).handler());
    Ok(crate::jobs::worker::Worker::new(
        state.pool.clone(),
        settings.job_lease,
        handlers,
    ))
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
            // The service API first, so its paths never reach the pages' catch-all scope: it
            // goes without the session, CSRF and anonymous-limit layers, which do nothing for
            // a caller with an API key and no cookie but cost a warm hand-out about 5 %.
            .service(crate::api::service_scope().wrap(from_fn(crate::api::error::json_errors)))
            .service(
                crate::route_table::scope("", |cfg| pages(cfg, sandbox.as_ref()))
                    .wrap(from_fn(crate::web::csrf::guard))
                    .wrap(from_fn(crate::api::error::json_errors))
                    .wrap(from_fn(crate::web::middleware::anonymous_rate_limit))
                    .wrap(session_middleware(&state))
                    .wrap(from_fn(crate::api::error::outage_answers)),
            )
            // A scope nested in the pages' scope (`/api/integrations/{provider}`) falls back
            // to the App's default service, not its parent's: the same 404 page (it runs
            // inside the pages' scope, with its middleware).
            .default_service(web::to(crate::web::not_found))
            .wrap(from_fn(crate::web::middleware::popup_opener_policy))
            .wrap(crate::web::middleware::security_headers())
            .wrap(from_fn(crate::web::middleware::request_log))
            .wrap(from_fn(crate::web::middleware::http_metrics))
    })
    // Without it a streamed answer (a proxied call's) waited for the client's delayed ACK
    // between its segments: Nagle's algorithm holds a small write back until the previous
    // one is acknowledged, and a delayed ACK comes 40 ms later: 1-2 % of proxied calls
    // took 40 ms at any concurrency. actix keeps the OS default unless told.
    .tcp_nodelay(true)
    .listen(listener)?
    .shutdown_timeout(10)
    // `run_until_stopped` handles the signals: the refresher must stop before the server
    // starts draining.
    .disable_signals()
    .run();
    Ok(server)
}

/// Every route `serve` registers, as (method, path template), read from the registration
/// itself. The sandbox's routes are not in it: `serve` never mounts them.
pub fn route_table() -> Vec<crate::route_table::RouteEntry> {
    crate::route_table::listed(|| {
        let _ = App::new()
            .service(crate::api::service_scope())
            .configure(|cfg| pages(cfg, None));
    })
}

/// Everything but the service API: the admin pages, the browser-facing integration routes,
/// the providers' webhooks and, in the demo, the sandbox provider. They share the session,
/// CSRF and anonymous-limit middleware (`serve`).
fn pages(cfg: &mut web::ServiceConfig, sandbox: Option<&Sandbox>) {
    if let Some(sandbox) = sandbox {
        connecthub_sandbox::routes(cfg, sandbox.clone());
    }
    cfg.configure(crate::api::provider_webhook_routes)
        .configure(crate::web::routes);
}

/// Finished jobs and delivery attempts are kept this long (the admin pages show them).
const JOB_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Hourly housekeeping, first run at start: deletes expired sessions (they are also
/// refused on load once expired), hourly usage roll-ups past the retention, and finished jobs,
/// webhook attempts and webhook events older than `JOB_RETENTION`. Every minute: a WAL
/// checkpoint, so SQLite's WAL file stays small, and connect sessions past their expiry
/// are marked expired (and audited).
fn spawn_housekeeping(pool: DbPool, config: &Config) {
    let usage_retention = config.usage_retention;
    let deleted_retention = chrono::TimeDelta::from_std(config.syncs.deleted_retention)
        .unwrap_or(chrono::TimeDelta::days(30));
    let checkpoint_pool = pool.clone();
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            if let Err(e) = db::run(&checkpoint_pool, db::checkpoint).await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            if let Err(e) = crate::connect::expire_due(&checkpoint_pool).await {
                tracing::warn!(error = %e, "expiring connect sessions failed");
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
            let finished_before = crate::db::now() - JOB_RETENTION;
            let pruned = db::run(&pool, move |conn| {
                crate::jobs::admin::prune(conn, finished_before)?;
                crate::webhooks::attempts::prune(conn, finished_before)?;
                crate::syncs::records::prune_deleted(conn, crate::db::now() - deleted_retention)?;
                crate::syncs::runs::prune(conn, crate::db::now() - usage_retention)?;
                crate::webhooks::prune_events(conn, finished_before)
            })
            .await;
            if let Err(e) = pruned {
                tracing::warn!(error = %e, "pruning finished jobs failed");
            }
        }
    });
}

/// Publishes the audit chain's head every `every` (first after one interval): a log line
/// with `expect_head=<count>:<hash>` and, unless another instance just did, an `audit.head`
/// event. Kept outside the database, a head shows later whether the newest entries were cut.
fn spawn_audit_head(pool: DbPool, every: std::time::Duration) {
    let gap = chrono::TimeDelta::from_std(every / 2).unwrap_or(chrono::TimeDelta::zero());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            ticks.tick().await;
            match db::run(&pool, move |conn| crate::audit::publish_head(conn, gap)).await {
                Ok(Some(head)) => tracing::info!(
                    expect_head = %head,
                    entries = head.count,
                    "audit chain head"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "publishing the audit chain head failed"),
            }
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
        state.audit.flush(&state.pool, stopping).await;
        crate::api::service_auth::report_rejected_keys(&state, stopping).await;
        state.tokens.flush_last_used(&state.pool).await;
        state.usage.flush(&state.pool).await;
        if stopping {
            return;
        }
    }
}
