//! A `PROVIDERS_FILE` in Nango's providers.yaml format, end to end: its OAuth entry connects
//! against the sandbox and its calls go through the proxy with the entry's fixed headers;
//! unsupported entries are skipped with one warning line each, and built-ins stay.

use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;

/// Acme is the sandbox's Klaviyo, as a Nango user would have described it.
const PROVIDERS: &str = r#"
acme:
    display_name: Acme CRM
    categories:
        - crm
    auth_mode: OAUTH2
    authorization_url: {address}/sandbox/klaviyo/oauth/authorize
    token_url: {address}/sandbox/klaviyo/oauth/token
    token_request_auth_method: basic
    authorization_params:
        response_type: code
        prompt: consent
    default_scopes:
        - accounts:read
        - lists:read
    token_params:
        grant_type: authorization_code
    refresh_params:
        grant_type: refresh_token
    proxy:
        base_url: {address}/sandbox/klaviyo
        headers:
            revision: '2024-10-15'
        paginate:
            type: cursor
            cursor_path_in_response: links.next
    docs: https://nango.dev/docs/integrations/all/acme

signed:
    display_name: Signed
    auth_mode: OAUTH1
    request_url: https://signed.example/oauth/request_token
    authorization_url: https://signed.example/oauth/authorize
    token_url: https://signed.example/oauth/access_token
    signature_method: HMAC-SHA1
    proxy:
        base_url: https://api.signed.example
    docs: https://nango.dev/docs/integrations/all/signed

regional:
    display_name: Regional
    auth_mode: OAUTH2
    authorization_url: https://app.${connectionConfig.region}.regional.example/oauth || https://app.regional.example/oauth
    token_url: https://api.regional.example/token
    proxy:
        base_url: https://api.regional.example
    docs: https://nango.dev/docs/integrations/all/regional
"#;

async fn app_with_nango_file(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        &[
            ("PROVIDERS_YAML", PROVIDERS),
            (
                "ACME_OAUTH_CLIENT_ID",
                connecthub_sandbox::KLAVIYO_CLIENT_ID,
            ),
            (
                "ACME_OAUTH_CLIENT_SECRET",
                connecthub_sandbox::KLAVIYO_CLIENT_SECRET,
            ),
        ],
    )
    .await
}

async fn a_nango_entry_connects_and_proxies(backend: Backend) {
    let app = app_with_nango_file(backend).await;
    app.login_as(Role::Admin).await;
    let html = app.get_html("/admin/clients").await;
    assert!(html.contains(r#"id="connect-acme""#) && html.contains("Connect Acme CRM"));
    assert!(html.contains(r#"id="connect-klaviyo""#), "built-ins stay");
    for skipped in ["signed", "regional"] {
        assert!(
            !html.contains(&format!(r#"id="connect-{skipped}""#)),
            "{skipped}"
        );
        assert_eq!(
            app.start_connect(skipped, "/admin/clients").await.status(),
            404
        );
    }

    let start = app.start_connect("acme", "/admin/clients").await;
    let authorize = location(&start);
    assert!(
        authorize.contains("prompt=consent")
            && authorize.contains("scope=accounts%3Aread+lists%3Aread")
            && authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let callback = app.consent(&authorize, "allow", Some("AcmeK1")).await;
    assert_eq!(location(&app.callback(&callback).await), "/admin/clients");
    assert!(
        app.toast_on("/admin/clients")
            .await
            .starts_with("success: Connected Acme CRM account"),
        "Nango's file names no profile endpoint: the account is the app"
    );
    let clients = app.clients().await;
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].provider, "acme");
    assert_eq!(clients[0].auth_type.as_str(), "oauth2");

    // The sandbox refuses calls without the `revision` header the entry's proxy.headers set.
    let key = app.api_key(&[Scope::Proxy]).await;
    let lists = app.proxy_get(&key, &clients[0].id, "api/lists").await;
    assert_eq!(lists.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nango_entry_connects_and_proxies_on_sqlite() {
    a_nango_entry_connects_and_proxies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nango_entry_connects_and_proxies_on_postgres() {
    if crate::helpers::postgres_available() {
        a_nango_entry_connects_and_proxies(Backend::Postgres).await;
    }
}

/// The warnings a real `serve` process writes while it starts.
#[tokio::test]
async fn skipped_entries_are_one_warning_line_each_and_start_up_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("providers.yaml");
    std::fs::write(&file, PROVIDERS.replace("{address}", "http://127.0.0.1:1")).unwrap();
    let log_path = dir.path().join("output.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .arg("serve")
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", dir.path().join("x.db"))
        .env("PUBLIC_URL", "http://localhost:1")
        .env("ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .env("PROVIDERS_FILE", &file)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let login = format!("http://127.0.0.1:{port}/login");
    let started = std::time::Instant::now();
    let mut up = false;
    while !up && started.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        up = reqwest::get(&login).await.is_ok_and(|r| r.status() == 200);
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(up, "the server starts despite the skipped entries: {log}");
    let skipped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("PROVIDERS_FILE: Nango entry"))
        .collect();
    assert_eq!(skipped.len(), 2, "{log}");
    assert!(
        skipped[0].contains("regional skipped: URL alternatives"),
        "{log}"
    );
    assert!(
        skipped[1].contains("signed skipped: auth_mode OAUTH1 is not supported"),
        "{log}"
    );
}
