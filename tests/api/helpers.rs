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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the PostgreSQL server for tests is (trust auth); override with TEST_POSTGRES_URL.
fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Local test connections skip TLS: libpq's OpenSSL clean-up at process exit can crash
/// ("double free") while servers of finished tests still hold connections.
const PG_OPTIONS: &str = "?sslmode=disable";

/// PostgreSQL tests run when the server answers, and must run when CI=true.
pub fn postgres_available() -> bool {
    let url = format!("{}/postgres{PG_OPTIONS}", postgres_server());
    match PgConnection::establish(&url) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but PostgreSQL at {} is not reachable: {e}",
                postgres_server()
            )
        }
        Err(_) => {
            skipped::record(
                "PostgreSQL",
                format!(
                    "PostgreSQL not reachable at {}; start it or set TEST_POSTGRES_URL",
                    postgres_server()
                ),
            );
            false
        }
    }
}

/// Tests that passed without running because something they need is missing. libtest
/// keeps what a test prints to show it only if the test fails, so a skip would go unseen
/// among the passes: the count and the reason are written once, after libtest's own
/// summary, by a handler that runs when the test process exits.
pub mod skipped {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::sync::Mutex;

    /// What is missing → (tests skipped, why).
    static SKIPS: Mutex<BTreeMap<&'static str, (usize, String)>> = Mutex::new(BTreeMap::new());

    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }

    /// Counts one test that returns early because `what` is missing.
    pub fn record(what: &'static str, why: String) {
        let mut skips = SKIPS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if skips.is_empty() {
            // SAFETY: `report` is a plain function that neither panics nor unwinds.
            unsafe { atexit(report) };
        }
        skips.entry(what).or_insert((0, why)).0 += 1;
    }

    /// Straight to the process's stderr: libtest has finished (and only `print!` and
    /// `eprint!` were ever captured, not writes to the handle).
    extern "C" fn report() {
        let Ok(skips) = SKIPS.try_lock() else { return };
        let mut text = String::new();
        for (what, (count, why)) in skips.iter() {
            text.push_str(&format!(
                "SKIPPED: {count} {what} test(s) passed without running: {why} \
                 (under CI=true they fail instead)\n"
            ));
        }
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// A database that exists for one test and is removed afterwards.
enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir, String),
    Postgres(String),
}

impl TestDatabase {
    fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("connecthub.db").display().to_string();
                Self::Sqlite(dir, path)
            }
            Backend::Postgres => {
                let name = format!("connecthub_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin =
                    PgConnection::establish(&format!("{}/postgres{PG_OPTIONS}", postgres_server()))
                        .expect("connect to PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create test database");
                Self::Postgres(name)
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite(_, path) => path.clone(),
            Self::Postgres(name) => format!("{}/{name}{PG_OPTIONS}", postgres_server()),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres(name) = self {
            if let Ok(mut admin) =
                PgConnection::establish(&format!("{}/postgres{PG_OPTIONS}", postgres_server()))
            {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        }
    }
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

/// Starts one more connecthub instance on this app's database, using this app's sandbox
/// as its providers (as two instances behind a load balancer would share them).
pub async fn second_instance(app: &TestApp) -> TestApp {
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
    start_instance(app.backend, app._database.clone(), &extra).await
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
    // "{address}" in a value stands for this app's own address; PROVIDERS_TOML is written
    // to a file that PROVIDERS_FILE then names.
    let mut vars: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.replace("{address}", &address)))
        .collect();
    if let Some(index) = vars.iter().position(|(k, _)| k == "PROVIDERS_TOML") {
        let (_, toml) = vars.remove(index);
        let path = std::env::temp_dir().join(format!(
            "connecthub-providers-{}.toml",
            uuid::Uuid::new_v4()
        ));
        std::fs::write(&path, toml).unwrap();
        vars.push(("PROVIDERS_FILE".into(), path.display().to_string()));
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

    /// Audit actions, oldest first.
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

/// The OAuth dance against the built-in sandbox, over real HTTP.
impl TestApp {
    /// Clicks "Connect": returns the provider's authorize URL the app redirected to.
    pub async fn start_connect(&self, provider: &str, redirect_path: &str) -> reqwest::Response {
        self.get(&format!(
            "/api/integrations/{provider}/oauth/start?redirect_path={}",
            connecthub::web::urlencode(redirect_path)
        ))
        .await
    }

    /// Answers the sandbox consent page; returns where the sandbox sends the browser
    /// (the app's callback URL with code or error).
    pub async fn consent(
        &self,
        authorize_url: &str,
        decision: &str,
        account: Option<&str>,
    ) -> String {
        let page = self.client.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), 200, "consent page");
        let html = page.text().await.unwrap();
        let first_account = html
            .split(r#"name="account" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("consent page lists accounts")
            .to_string();
        let url = reqwest::Url::parse(authorize_url).unwrap();
        let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        form.push(("decision".into(), decision.into()));
        form.push((
            "account".into(),
            account.map(str::to_string).unwrap_or(first_account),
        ));
        let action = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let response = self
            .client
            .post(format!("{action}{}", url.path()))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "consent answer");
        location(&response)
    }

    /// Follows the provider's redirect back into the app.
    pub async fn callback(&self, callback_url: &str) -> reqwest::Response {
        self.client.get(callback_url).send().await.unwrap()
    }

    /// The whole flow; returns the callback's response (a 303 back into the app).
    pub async fn connect(&self, provider: &str, account: Option<&str>) -> reqwest::Response {
        let start = self.start_connect(provider, "/admin/clients").await;
        assert_eq!(start.status(), 302, "start redirects to the provider");
        let callback = self.consent(&location(&start), "allow", account).await;
        self.callback(&callback).await
    }

    /// The toast the page shows after a redirect.
    pub async fn toast_on(&self, path: &str) -> String {
        let html = self.get_html(path).await;
        html.split(r#"<div class="toast toast-"#)
            .nth(1)
            .and_then(|rest| rest.split_once("\">"))
            .map(|(kind, rest)| {
                format!("{kind}: {}", unescape(rest.split("</div>").next().unwrap()))
            })
            .unwrap_or_default()
    }

    pub async fn clients(&self) -> Vec<connecthub::clients::Client> {
        use connecthub::db::schema::clients;
        self.db(|conn| {
            clients::table
                .order(clients::created_at.asc())
                .select(connecthub::clients::Client::as_select())
                .load(conn)
        })
        .await
    }

    /// Sets sandbox faults (see src/sandbox/control.rs).
    pub async fn sandbox_faults(&self, body: serde_json::Value) {
        let response = self
            .client
            .post(self.url("/sandbox/_control/faults"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    pub async fn sandbox_stats(&self, provider: &str) -> serde_json::Value {
        self.get(&format!("/sandbox/_control/stats?provider={provider}"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Whether the sandbox still accepts a token (RFC 7662-style introspection).
    pub async fn sandbox_token_active(&self, provider: &str, token: &str) -> bool {
        let response = self
            .client
            .post(self.url(&format!("/sandbox/{provider}/oauth/introspect")))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        body["active"] == serde_json::json!(true)
    }
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

/// A real `connecthub demo` process on a fresh database of `backend`, for tests that send
/// it signals; `app` drives it over HTTP and reads its database. Killed when dropped.
pub struct TestProcess {
    pub child: std::process::Child,
    pub app: TestApp,
    _dir: tempfile::TempDir,
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestProcess {
    /// Sends SIGTERM, as a service manager stopping the server would.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit (at most `limit`); returns whether it exited cleanly.
    pub async fn wait_for_exit(&mut self, limit: std::time::Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the process did not exit within {limit:?}");
    }
}

/// Starts `connecthub demo` with `env` (on top of the test settings) and waits until it
/// answers. `{sandbox}` in a value stands for `provider_host`'s address, so the process can
/// use another app's sandbox as its providers and the calls it makes stay countable there
/// after it has stopped.
pub async fn spawn_process(
    backend: Backend,
    provider_host: &TestApp,
    env: &[(&str, &str)],
) -> TestProcess {
    let database = std::sync::Arc::new(TestDatabase::create(backend));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let sandbox = |path: &str| format!("{}/sandbox/klaviyo{path}", provider_host.address);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"));
    command
        .arg("demo")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("PUBLIC_URL", &address)
        .env("DATABASE_URL", database.url())
        .env("ENCRYPTION_KEY", TEST_KEY)
        .env("LOG_LEVEL", "warn")
        .env("PROVIDER_RETRY_DELAY_MS", "20")
        .env("KLAVIYO_AUTHORIZE_URL", sandbox("/oauth/authorize"))
        .env("KLAVIYO_TOKEN_URL", sandbox("/oauth/token"))
        .env("KLAVIYO_REVOKE_URL", sandbox("/oauth/revoke"))
        .env("KLAVIYO_API_BASE_URL", sandbox(""))
        .env("KLAVIYO_ISSUER", sandbox(""))
        .env(
            "KUSTOMER_API_BASE_URL",
            format!("{}/sandbox/kustomer", provider_host.address),
        );
    for (k, v) in env {
        command.env(k, v.replace("{sandbox}", &provider_host.address));
    }
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start connecthub demo");
    let client = new_client();
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{address}/login")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "connecthub demo answers on {address}");
    let url = connecthub::db::DatabaseUrl::parse(&database.url()).expect("a database URL");
    let pool = connecthub::db::connect(&url, 2).expect("open the process's database");
    let app = TestApp {
        address,
        port,
        pool,
        backend,
        client,
        database_url: database.url(),
        _database: database,
        server: None,
    };
    TestProcess {
        child,
        app,
        _dir: dir,
    }
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
