//! The test harness: starts the real server on a random port against a brand-new
//! database (a temp SQLite file, or a fresh uuid-named PostgreSQL database), and drives
//! it over HTTP with a cookie jar.

use connecthub::auth::password;
use connecthub::auth::users::{self, Email, Role};
use connecthub::config::{Config, Defaults};
use connecthub::db::{DbConnection, DbPool};
use connecthub::startup::Application;
use diesel::prelude::*;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const TEST_KEY: &str = "dGVzdC1rZXktZm9yLWNvbm5lY3RodWItdGVzdHMtMzI=";
pub const PASSWORD: &str = "correct-horse-battery";

mod database;
mod oauth_dance;
pub mod private_pg;
mod process;
pub mod receiver;

use database::TestDatabase;
pub use database::{postgres_available, skipped};
pub use process::{spawn_process, spawn_process_on, TestProcess};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub pool: DbPool,
    pub backend: Backend,
    pub client: reqwest::Client,
    pub database_url: String,
    _database: std::sync::Arc<TestDatabase>,
    server: Option<actix_web::dev::ServerHandle>,
}

impl Drop for TestApp {
    /// Stops this test's server, so finished tests leave no workers running.
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            drop(server.stop(false));
        }
    }
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        connecthub::telemetry::init("info", connecthub::config::LogFormat::Text);
    }
}

/// The settings a test app starts with; `extra` adds or overrides variables.
pub fn test_config(database_url: &str, public_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", database_url),
        ("PUBLIC_URL", public_url),
        ("ENCRYPTION_KEY", TEST_KEY),
        ("DATABASE_MAX_CONNECTIONS", "5"),
        ("PROVIDER_RETRY_DELAY_MS", "20"),
        ("SERVICE_CACHE_SECS", "1"),
        // Hand-outs after the first are audited a window later: tests count them sooner.
        ("AUDIT_HANDOUT_WINDOW_SECS", "1"),
        ("CONNECT_ALLOWED_REDIRECTS", "https://app.example.com"),
        // Tests start the runs they look at; a test of the scheduler turns it on.
        ("SYNC_SCHEDULE", "false"),
        ("SYNC_INCREMENTAL_OVERLAP", "2s"),
        // Pacing under Klaviyo's 1/s accounts tier would slow every test that reads the
        // account twice; tests of the budgets (rate_budgets.rs) turn it on.
        ("PROVIDER_BUDGETS", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let defaults = Defaults {
        sandbox: true,
        ..Defaults::default()
    };
    Config::load(&vars, &defaults).expect("test config is valid")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    init_logs();
    let database = std::sync::Arc::new(TestDatabase::create(backend));
    start_instance(backend, database, extra).await
}

/// A migrated database of its own and a pool on it, with no app: for domain functions
/// whose tables a running app's background work (the job worker) would change meanwhile.
pub struct BareDatabase {
    pool: DbPool,
    _database: TestDatabase,
}

impl BareDatabase {
    pub fn create(backend: Backend) -> Self {
        let database = TestDatabase::create(backend);
        let url = connecthub::db::DatabaseUrl::parse(&database.url()).expect("a database URL");
        let pool = connecthub::db::connect(&url, 2).expect("open the test database");
        let mut conn = connecthub::db::checkout(&pool).expect("a connection");
        connecthub::db::run_migrations(&mut conn).expect("migrations");
        drop(conn);
        Self {
            pool,
            _database: database,
        }
    }

    pub fn conn(&self) -> connecthub::db::PooledConnection {
        connecthub::db::checkout(&self.pool).expect("a connection")
    }
}

/// An app on a database the test made itself: a SQLite path on a small disk, say.
pub async fn spawn_app_at(backend: Backend, url: &str, extra: &[(&str, &str)]) -> TestApp {
    init_logs();
    let database = std::sync::Arc::new(TestDatabase::Elsewhere(url.to_string()));
    start_instance(backend, database, extra).await
}

/// Starts one more connecthub instance on this app's database, using this app's sandbox
/// as its providers (as two instances behind a load balancer would share them).
pub async fn second_instance(app: &TestApp) -> TestApp {
    second_instance_with(app, &[]).await
}

/// `second_instance` with more settings (`extra` as for `spawn_app_with`).
pub async fn second_instance_with(app: &TestApp, more: &[(&str, &str)]) -> TestApp {
    let sandbox = |path: &str| format!("{}/sandbox/klaviyo{path}", app.address);
    let (authorize, token, revoke, api, issuer) = (
        sandbox("/oauth/authorize"),
        sandbox("/oauth/token"),
        sandbox("/oauth/revoke"),
        sandbox(""),
        sandbox(""),
    );
    let extra = [
        ("KLAVIYO_AUTHORIZE_URL", authorize.as_str()),
        ("KLAVIYO_TOKEN_URL", token.as_str()),
        ("KLAVIYO_REVOKE_URL", revoke.as_str()),
        ("KLAVIYO_API_BASE_URL", api.as_str()),
        ("KLAVIYO_ISSUER", issuer.as_str()),
    ];
    let extra: Vec<(&str, &str)> = extra.iter().chain(more).copied().collect();
    start_instance(app.backend, app._database.clone(), &extra).await
}

/// Starts an app on a brand-new database that `restore` fills first (given the database's
/// URL: a SQLite file path to write, or an empty PostgreSQL database), as an operator
/// restoring a backup into a fresh instance would.
pub async fn spawn_app_on_restored(backend: Backend, restore: impl FnOnce(&str)) -> TestApp {
    init_logs();
    let database = std::sync::Arc::new(TestDatabase::create(backend));
    restore(&database.url());
    start_instance(backend, database, &[]).await
}

/// Starts one more connecthub instance on this app's database with other settings.
pub async fn instance_on_same_database(app: &TestApp, extra: &[(&str, &str)]) -> TestApp {
    start_instance(app.backend, app._database.clone(), extra).await
}

async fn start_instance(
    backend: Backend,
    database: std::sync::Arc<TestDatabase>,
    extra: &[(&str, &str)],
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().unwrap().port();
    let address = format!("http://127.0.0.1:{port}");
    let public_url = extra
        .iter()
        .find(|(k, _)| *k == "PUBLIC_URL")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| address.clone());
    // "{address}" in a value stands for this app's own address; PROVIDERS_TOML (or
    // PROVIDERS_YAML, in Nango's format) is written to a file that PROVIDERS_FILE then names.
    let mut vars: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.replace("{address}", &address)))
        .collect();
    for (variable, extension) in [("PROVIDERS_TOML", "toml"), ("PROVIDERS_YAML", "yaml")] {
        if let Some(index) = vars.iter().position(|(k, _)| k == variable) {
            let (_, text) = vars.remove(index);
            let path = std::env::temp_dir().join(format!(
                "connecthub-providers-{}.{extension}",
                uuid::Uuid::new_v4()
            ));
            std::fs::write(&path, text).unwrap();
            vars.push(("PROVIDERS_FILE".into(), path.display().to_string()));
        }
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = test_config(&database.url(), &public_url, &vars);
    let app = Application::build_on(config, listener)
        .await
        .expect("app starts");
    let pool = app.pool().clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        port,
        pool,
        backend,
        client: new_client(),
        database_url: database.url(),
        _database: database,
        server: Some(handle),
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (tests check them).
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

static USER_COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
}

/// Extracts the CSRF token from a page's `<meta name="csrf-token">`.
pub fn csrf_from(html: &str) -> String {
    let marker = r#"<meta name="csrf-token" content=""#;
    let start = html.find(marker).expect("page has a csrf meta tag") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

pub fn location(response: &reqwest::Response) -> String {
    header(response.headers(), "location")
}

pub fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

impl TestApp {
    /// Another browser on the same app: same server and database, its own cookie jar.
    pub fn new_browser(&self) -> TestApp {
        TestApp {
            address: self.address.clone(),
            port: self.port,
            pool: self.pool.clone(),
            backend: self.backend,
            client: new_client(),
            database_url: self.database_url.clone(),
            _database: self._database.clone(),
            server: None,
        }
    }

    /// Another browser that connects from `ip` (any 127.x.y.z reaches the server), for
    /// what is counted per client address.
    pub fn browser_at(&self, ip: &str) -> TestApp {
        let mut browser = self.new_browser();
        browser.client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip.parse::<std::net::IpAddr>().expect("an IP address"))
            .build()
            .unwrap();
        browser
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_html(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// Posts a form with the session's CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf_token().await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        self.client
            .post(self.url(path))
            .form(&form)
            .send()
            .await
            .expect("request")
    }

    /// The current session's CSRF token, read from a page.
    pub async fn csrf_token(&self) -> String {
        // The login page redirects signed-in users; any page of the app carries the token.
        let login = self.get("/login").await;
        let html = if login.status() == 200 {
            login.text().await.unwrap()
        } else {
            self.get_html(&location(&login)).await
        };
        csrf_from(&html)
    }

    /// "Refresh now" on a client, as the page's button sends it (asking for JSON).
    pub async fn refresh_now(&self, provider: &str, client_id: &str) -> reqwest::Response {
        let path = format!("/api/integrations/{provider}/oauth/refresh/{client_id}");
        self.client
            .post(self.url(&path))
            .header("x-csrf-token", self.csrf_token().await)
            .header("accept", "application/json")
            .send()
            .await
            .expect("request")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_form("/login", &[("email", email), ("password", password)])
            .await
    }

    pub async fn create_user(&self, role: Role) -> TestUser {
        let n = USER_COUNTER.fetch_add(1, Ordering::SeqCst);
        let email = format!("{}{n}@example.com", role.as_str());
        let hash = password::hash(&SecretString::from(PASSWORD)).unwrap();
        let parsed = Email::parse(&email).unwrap();
        let user = self
            .db(move |conn| users::create(conn, &parsed, &format!("Test {n}"), &hash, role))
            .await;
        TestUser {
            id: user.id,
            email,
            password: PASSWORD.to_string(),
        }
    }

    /// Creates a user and signs this client in as them.
    pub async fn login_as(&self, role: Role) -> TestUser {
        let user = self.create_user(role).await;
        let response = self.login(&user.email, &user.password).await;
        assert_eq!(response.status(), 303, "login as {} failed", user.email);
        user
    }

    /// Runs a query against the app's database.
    pub async fn db<T, F>(&self, work: F) -> T
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        connecthub::db::run(&self.pool, work)
            .await
            .expect("test query")
    }

    /// Creates a service API key with these scopes; returns the secret.
    pub async fn api_key(&self, scopes: &[connecthub::api_keys::Scope]) -> String {
        use secrecy::ExposeSecret;
        let owner = self.create_user(Role::Admin).await;
        let scopes = scopes.to_vec();
        let created = self
            .db(move |conn| connecthub::api_keys::create(conn, "test service", &scopes, &owner.id))
            .await;
        created.secret.expose_secret().to_string()
    }

    /// `GET /api/v1/clients/{id}/token` with a service key.
    pub async fn service_token(&self, key: &str, client_id: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/clients/{client_id}/token")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/v1/proxy/{client_id}/{path}` with a service key.
    pub async fn proxy_get(&self, key: &str, client_id: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/proxy/{client_id}/{path}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/v1/usage?{query}` with a service key: the whole answer.
    pub async fn usage(&self, key: &str, query: &str) -> serde_json::Value {
        let response = self
            .client
            .get(self.url(&format!("/api/v1/usage?{query}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{query}");
        response.json().await.unwrap()
    }

    /// The usage answer once the once-a-second writer has caught up with `calls` calls.
    pub async fn usage_after(&self, key: &str, calls: u64, query: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..40 {
            last = self.usage(key, query).await;
            if last["stats"]["totalCalls"] == calls {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("usage never reached {calls} calls: {last}");
    }

    /// Waits until the element with this id on the page at `path` shows `expected` (usage
    /// is written once a second).
    pub async fn wait_for_figure(&self, path: &str, id: &str, expected: &str) {
        let mut seen = String::new();
        for _ in 0..40 {
            let html = self.get_html(path).await;
            seen = html
                .split(&format!(r#"id="{id}">"#))
                .nth(1)
                .and_then(|rest| rest.split('<').next())
                .unwrap_or_default()
                .to_string();
            if seen == expected {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{path} #{id} showed {seen:?}, not {expected:?}");
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        let mut entries = self
            .db(|conn| connecthub::audit::recent(conn, None, 1000))
            .await;
        entries.reverse();
        entries.into_iter().map(|e| e.action).collect()
    }
}

/// Provider calls made while connecting, before any call of a test's own (connecthub
/// meters them like every other): reading the profile of Klaviyo's AcmeK1 takes the
/// account, 3 pages of its 23 lists and 1 page of its 7 segments; GlobexK2 has fewer
/// lists (2 pages); a Kustomer API key: checking the key, then the org and its teams.
pub const ACME_CONNECT_CALLS: u64 = 5;
pub const GLOBEX_CONNECT_CALLS: u64 = 4;
pub const KUSTOMER_KEY_CONNECT_CALLS: u64 = 3;

/// Declares each listed scenario `async fn name(app: TestApp)` once per backend:
/// `sqlite::name` always, `postgres::name` when PostgreSQL is reachable (always under CI).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::helpers::postgres_available() {
                        return;
                    }
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await;
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// Undoes askama's HTML escaping, to compare page text with plain strings.
pub fn unescape(html: &str) -> String {
    html.replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// Like `on_both_backends!`, for scenarios that start their own apps with their own
/// settings: each `async fn name(backend: Backend)` runs once per backend.
#[macro_export]
macro_rules! with_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::helpers::postgres_available() {
                        return;
                    }
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}
