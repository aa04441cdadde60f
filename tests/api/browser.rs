//! Pages in headless Chromium (Debian's chromium + chromium-driver), driven over WebDriver.
//! Skipped with a clear message where Chromium is missing; mandatory when CI=true.

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Debian's paths; CHROMIUM and CHROMEDRIVER point elsewhere.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// A headless Chromium with its own profile, closed when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromium_installed() -> bool {
    let (chromium, chromedriver) = (chromium(), chromedriver());
    let present = Path::new(&chromedriver).exists() && Path::new(&chromium).exists();
    if !present {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but {chromium} or {chromedriver} is missing (apt-get install chromium chromium-driver)");
        }
        crate::helpers::skipped::record(
            "browser",
            format!("no {chromium} or {chromedriver}; apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER"),
        );
    }
    present
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium; None when they are not installed.
    pub async fn start() -> Option<Browser> {
        if !chromium_installed() {
            return None;
        }
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            },
            // Keeps the console (errors such as a 404 for a resource) for `console_errors`.
            "goog:loggingPrefs": {"browser": "ALL"}
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..50 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Browser {
                        client,
                        driver,
                        _profile: profile,
                    })
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start: {last_error}");
    }

    /// Signs in through the login form, as a person would.
    pub async fn sign_in(&self, app: &crate::helpers::TestApp, user: &crate::helpers::TestUser) {
        self.goto(&app.url("/login")).await;
        self.fill("#email", &user.email).await;
        self.fill("#password", &user.password).await;
        self.click("button[type=submit]").await;
        // Wait for the signed-in page: a `goto` while the form is still being posted can
        // race the sign-in and land on the login page.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.client.current_url().await.expect("url").path() == "/login" {
            assert!(
                std::time::Instant::now() < deadline,
                "sign-in did not finish"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self
            .client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .expect(css);
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .expect(css)
            .click()
            .await
            .expect(css);
    }

    /// Waits (up to 5 s, across page loads) until an element matching `css` shows `expected`.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        let mut seen = String::new();
        for _ in 0..50 {
            // Any of the matching elements (several toasts may be showing).
            if let Ok(elements) = self.client.find_all(Locator::Css(css)).await {
                for element in elements {
                    if let Ok(text) = element.text().await {
                        if text.trim() == expected {
                            return;
                        }
                        seen = text;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{css} never showed {expected:?}; last seen {seen:?}");
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Saves a PNG under target/screenshots/ for people to look at.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await.unwrap()).unwrap();
        path
    }

    /// The console's errors since the last call (chromedriver's log endpoint drains it).
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// chromedriver's `POST /session/{id}/se/log` (not in W3C WebDriver, so not in fantoccini).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        (reqwest::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

mod walkthrough {
    use super::Browser;
    use crate::helpers::{spawn_app, Backend};
    use connecthub::auth::users::Role;
    use fantoccini::Locator;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_in_through_the_login_page_and_see_the_clients_page() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let user = app.create_user(Role::Admin).await;

        browser.goto(&app.url("/admin/clients")).await;
        assert!(
            browser.path().await.starts_with("/login?next="),
            "anonymous users land on the login page"
        );
        browser.screenshot("login").await;

        browser.fill("#email", &user.email).await;
        browser.fill("#password", "wrong password").await;
        browser.click("button[type=submit]").await;
        browser
            .wait_for_text("[role=alert]", "Incorrect email or password.")
            .await;

        browser.fill("#password", &user.password).await;
        browser.click("button[type=submit]").await;
        browser.wait_for_text("h1", "Clients").await;
        assert_eq!(browser.path().await, "/admin/clients");
        browser
            .wait_for_text("#connect-klaviyo", "Connect Klaviyo")
            .await;
        browser
            .wait_for_text("#connect-kustomer", "Connect Kustomer")
            .await;
        // The stylesheet loaded under the CSP (the primary button has its colour).
        let styled = browser
            .client
            .execute(
                "return getComputedStyle(document.querySelector('#connect-klaviyo')).borderRadius",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(styled, serde_json::json!("8px"));
        // htmx loaded from static/ without CSP violations.
        let htmx = browser
            .client
            .execute("return typeof window.htmx", vec![])
            .await
            .unwrap();
        assert_eq!(htmx, serde_json::json!("object"));
        browser.screenshot("clients").await;

        browser.click(".account button[type=submit]").await;
        browser
            .wait_for_text(".notice", "You have signed out.")
            .await;
        browser.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_klaviyo_through_the_sandbox_consent_page() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let user = app.create_user(Role::Admin).await;
        browser.sign_in(&app, &user).await;
        browser.wait_for_text("h1", "Clients").await;

        // The htmx API-key form: a wrong key gives a toast on the same page, nothing stored.
        browser.click("details.disclosure summary").await;
        browser.fill("#api-key-kustomer", "wrong-key").await;
        browser.click("form.inline-form button[type=submit]").await;
        browser
            .wait_for_text(
                "#toasts .toast-error",
                "Could not connect Kustomer: Kustomer refused: the API key was rejected",
            )
            .await;
        assert_eq!(browser.path().await, "/admin/clients");
        assert!(app.clients().await.is_empty());

        // The Connect button shows it is under way, then the consent page opens.
        browser.client.execute("document.querySelector('#connect-klaviyo').addEventListener('click', e => e.preventDefault())", vec![]).await.unwrap();
        browser.click("#connect-klaviyo").await;
        browser
            .wait_for_text("#connect-klaviyo", "Opening Klaviyo…")
            .await;
        browser
            .goto(&app.url("/api/integrations/klaviyo/oauth/start?redirect_path=/admin/clients"))
            .await;
        browser.wait_for_text("#allow", "Allow").await;
        assert!(browser
            .path()
            .await
            .starts_with("/sandbox/klaviyo/oauth/authorize?"));
        browser.screenshot("sandbox-consent").await;
        browser.click("label[for=account-GlobexK2]").await;
        browser.click("#allow").await;

        browser
            .wait_for_text("#toasts .toast", "Connected Klaviyo account Globex Retail")
            .await;
        assert_eq!(
            browser.path().await,
            "/admin/clients",
            "no code or state left in the URL"
        );
        browser
            .wait_for_text("#clients-table .client-name", "Globex Retail")
            .await;
        browser.screenshot("clients-connected").await;
        assert_eq!(app.clients().await.len(), 1);

        // Refresh now, from the row.
        browser
            .click("#clients-table .row-actions button.btn-small:not(.btn-danger)")
            .await;
        browser
            .wait_for_text("#toasts .toast", "Refreshed the token of Globex Retail")
            .await;
        assert!(app.clients().await[0].last_refreshed_at.is_some());
        browser.screenshot("clients-refreshed").await;
        browser.close().await;
    }

    /// Live search and a filter without page reloads (the URL follows); bulk-disconnect of
    /// two selected rows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn search_filter_and_bulk_disconnect_in_the_list() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let user = app.create_user(Role::Admin).await;
        app.db(|conn| Ok(connecthub::seed::seed(conn, 120).unwrap()))
            .await;
        browser.sign_in(&app, &user).await;
        browser.wait_for_text("#client-count", "1–50 of 120").await;

        browser.fill("#q", "globex").await;
        browser.wait_for_text("#client-count", "1–10 of 10").await;
        assert_eq!(
            browser.path().await,
            "/admin/clients?q=globex&provider=&status=&owner=&tag=&sort=updated"
        );
        browser.screenshot("clients-search").await;
        browser
            .client
            .execute("const s = document.querySelector('#filter-status'); s.value = 'needs_reauth'; s.dispatchEvent(new Event('change', {bubbles: true}));", vec![])
            .await
            .unwrap();
        // Globex is n % 12 == 1 and needs_reauth is n % 4 == 2: never both.
        browser
            .wait_for_text("#client-list h2", "No clients match")
            .await;
        browser.client.back().await.unwrap();
        browser.wait_for_text("#client-count", "1–10 of 10").await;

        // Select two rows and disconnect them in bulk (accepting the confirm dialog).
        let boxes = browser
            .client
            .find_all(Locator::Css("#clients-table input[type=checkbox]"))
            .await
            .unwrap();
        boxes[0].click().await.unwrap();
        boxes[1].click().await.unwrap();
        browser
            .client
            .execute("document.querySelector('#bulk-action').value = 'disconnect'; window.confirm = () => true;", vec![])
            .await
            .unwrap();
        browser.click("#bulk-form button[type=submit]").await;
        browser
            .wait_for_text("#toasts .toast", "Disconnected 2 client(s); 0 failed")
            .await;
        let disconnected = app
            .clients()
            .await
            .into_iter()
            .filter(|c| c.status.as_str() == "disconnected")
            .count();
        assert_eq!(disconnected, 2);
        browser.screenshot("clients-bulk-disconnected").await;
        // A phone-width look.
        browser.client.set_window_size(390, 844).await.unwrap();
        browser.goto(&app.url("/admin/clients?q=globex")).await;
        browser.wait_for_text("#client-count", "1–10 of 10").await;
        browser.screenshot("clients-phone").await;
        browser.close().await;
    }

    /// A client connected in one browser appears in another admin's open list by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_client_appears_live_in_another_session() {
        let Some(watcher) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let admin = app.create_user(Role::Admin).await;
        watcher.goto(&app.url("/login")).await;
        watcher.fill("#email", &admin.email).await;
        watcher.fill("#password", &admin.password).await;
        watcher.click("button[type=submit]").await;
        watcher.wait_for_text("h1", "Clients").await;
        let marker = watcher
            .client
            .execute("window.sameDocument = true; return true;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, serde_json::json!(true));

        // Someone else connects over HTTP meanwhile.
        let other = app.new_browser();
        other.login_as(Role::Admin).await;
        other.connect("klaviyo", Some("AcmeK1")).await;

        let mut appeared = false;
        for _ in 0..80 {
            let text = watcher.client.source().await.unwrap();
            if text.contains("Acme Store") {
                appeared = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(appeared, "the new client appeared within 8 s");
        let same = watcher
            .client
            .execute("return window.sameDocument === true;", vec![])
            .await
            .unwrap();
        assert_eq!(same, serde_json::json!(true), "without a page reload");
        watcher.screenshot("clients-live-update").await;
        watcher.close().await;
    }

    /// The usage page: totals from real proxied calls, then another period, one client and
    /// another provider.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn usage_page_follows_period_and_provider() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        app.login_as(Role::Admin).await;
        app.connect("klaviyo", Some("AcmeK1")).await;
        let client = app.clients().await.remove(0).id;
        let key = app.api_key(&[connecthub::api_keys::Scope::Proxy]).await;
        for _ in 0..2 {
            let url = app.url(&format!("/api/v1/proxy/{client}/api/lists"));
            app.client.get(url).bearer_auth(&key).send().await.unwrap();
        }
        let viewer = app.create_user(Role::Admin).await;
        browser.goto(&app.url("/login?next=/admin/usage")).await;
        browser.fill("#email", &viewer.email).await;
        browser.fill("#password", &viewer.password).await;
        browser.click("button[type=submit]").await;
        // Two proxied calls and those connecting made; written once a second: reload
        // until they are counted.
        let calls = (2 + crate::helpers::ACME_CONNECT_CALLS).to_string();
        let mut counted = false;
        for _ in 0..30 {
            // The page may be reloading: a missing element is another round, not a failure.
            if let Ok(element) = browser.client.find(Locator::Css("#total-calls")).await {
                if element.text().await.is_ok_and(|text| text == calls) {
                    counted = true;
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            browser.client.refresh().await.unwrap();
        }
        assert!(counted, "the page counts the calls");
        browser
            .client
            .execute(
                "document.querySelector('#usage-period').value = '24h'",
                vec![],
            )
            .await
            .unwrap();
        browser.click("#usage-filters button[type=submit]").await;
        browser.wait_for_text("#total-calls", &calls).await;
        assert!(browser.path().await.starts_with("/admin/usage?period=24h"));
        browser.screenshot("usage").await;
        // A top client narrows the page to it; the chip says which.
        browser.click("#top-clients a").await;
        browser
            .wait_for_text("#client-filter", "Acme Store (klaviyo)")
            .await;
        assert!(browser.path().await.contains(&format!("client={client}")));
        browser.wait_for_text("#total-calls", &calls).await;
        browser.screenshot("usage-one-client").await;
        browser
            .client
            .execute(
                "document.querySelector('#usage-provider').value = 'kustomer'",
                vec![],
            )
            .await
            .unwrap();
        browser.click("#usage-filters button[type=submit]").await;
        browser.wait_for_text("#total-calls", "0").await;
        browser.close().await;
    }

    /// A shared browser: after sign-out the back button must not show the signed-in pages
    /// again (no copy in the HTTP cache, the back-forward cache or htmx's history cache).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_back_button_after_sign_out_shows_the_login_page() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let user = app.create_user(Role::Admin).await;
        app.db(|conn| Ok(connecthub::seed::seed(conn, 20).unwrap()))
            .await;
        browser.sign_in(&app, &user).await;
        browser.wait_for_text("#client-count", "1–20 of 20").await;
        // A search pushes a history entry through htmx.
        browser.fill("#q", "globex").await;
        browser.wait_for_text("#client-count", "1–2 of 2").await;

        browser.click(".account button[type=submit]").await;
        browser
            .wait_for_text(".notice", "You have signed out.")
            .await;
        // htmx keeps no snapshot of the signed-in pages in localStorage either.
        let snapshots = browser
            .client
            .execute("return localStorage.getItem('htmx-history-cache')", vec![])
            .await
            .unwrap();
        assert_eq!(snapshots, serde_json::Value::Null, "htmx history snapshots");
        browser.client.back().await.unwrap();
        browser.wait_for_text("h1", "Sign in").await;
        let html = browser.client.source().await.unwrap();
        assert!(!html.contains("client-count"), "the client list came back");
        browser.close().await;
    }
}

mod console {
    use super::Browser;
    use crate::helpers::{spawn_app, Backend};
    use connecthub::auth::users::Role;

    /// The browser's own requests (the favicon above all) find what they ask for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_load_without_console_errors() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let user = app.create_user(Role::Admin).await;
        browser.sign_in(&app, &user).await;
        browser.wait_for_text("h1", "Clients").await;
        // The icon is fetched after the page has loaded.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let errors = browser.console_errors().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
        browser.close().await;
    }
}
