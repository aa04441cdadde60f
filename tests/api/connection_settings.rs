//! Per-connection settings (issue 16): a Kustomer org's subdomain asked before the consent
//! page and kept with the connection, every later call sent to that org (the sandbox
//! serves each org under `/sandbox/kustomer/org/{subdomain}` and counts calls per org),
//! every escape attempt refused with nothing stored, and a captured `instance_url` checked
//! against the provider's hosts.

use crate::connect_sessions::{path_of, session_for, team_key};
use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::{clients, oauth_states};
use diesel::prelude::*;
use serde_json::{json, Value};

on_both_backends!(
    two_kustomer_orgs_are_two_connections_and_calls_go_to_each_org,
    every_escape_attempt_is_refused_and_nothing_is_stored,
    the_hosted_page_asks_for_the_subdomain_and_refuses_escapes,
    an_api_key_connection_keeps_its_subdomain,
);

/// The org account every test consents with (one Kustomer account id in two orgs).
const ORG_ACCOUNT: &str = "5f3a1c9e8b2d4a0017c6e101";

fn start_path(subdomain: &str) -> String {
    format!(
        "/api/integrations/kustomer/oauth/start?redirect_path=/admin/clients&subdomain={}",
        connecthub::web::urlencode(subdomain)
    )
}

/// Connects Kustomer with `subdomain`; returns the authorize URL it went through.
async fn connect_org(app: &TestApp, subdomain: &str) -> String {
    let start = app.get(&start_path(subdomain)).await;
    assert_eq!(start.status(), 302, "start goes to the org's consent page");
    let authorize = location(&start);
    let back = app.consent(&authorize, "allow", Some(ORG_ACCOUNT)).await;
    assert_eq!(location(&app.callback(&back).await), "/admin/clients");
    authorize
}

async fn org_calls(app: &TestApp, org: &str) -> u64 {
    app.sandbox_stats("kustomer").await["org_calls"][org]
        .as_u64()
        .unwrap_or(0)
}

async fn pending_states(app: &TestApp) -> i64 {
    app.db(|conn| oauth_states::table.count().get_result(conn))
        .await
}

async fn two_kustomer_orgs_are_two_connections_and_calls_go_to_each_org(app: TestApp) {
    app.login_as(Role::Admin).await;
    let html = app.get_html("/admin/clients").await;
    assert!(
        html.contains(r#"id="connect-kustomer-subdomain" name="subdomain" value="sandbox""#),
        "the admin connect form asks for the subdomain, pre-filled with the default: {html}"
    );
    assert!(html.contains("The part before .kustomerapp.com"));

    let acme = connect_org(&app, "acme").await;
    assert!(
        path_of(&acme).starts_with("/sandbox/kustomer/org/acme/oauth/authorize"),
        "{acme}"
    );
    assert!(
        !acme.contains("subdomain="),
        "the setting is not sent in the URL: {acme}"
    );
    connect_org(&app, "globex").await;
    // Reconnecting an org updates its own row.
    connect_org(&app, "acme").await;

    let rows = app.clients().await;
    assert_eq!(rows.len(), 2, "one row per org");
    assert!(rows.iter().all(|c| c.provider_account_id == ORG_ACCOUNT));
    let config: Vec<&str> = rows.iter().map(|c| c.connection_config.as_str()).collect();
    assert_eq!(
        config,
        [r#"{"subdomain":"acme"}"#, r#"{"subdomain":"globex"}"#]
    );
    assert_eq!(
        rows.iter().filter(|c| c.is_default).count(),
        1,
        "still one default per provider"
    );
    let (acme_id, globex_id) = (rows[0].id.clone(), rows[1].id.clone());

    // Token exchanges went to each org: 2 for acme (connect, reconnect), 1 for globex,
    // each after its consent page and with one profile read (2 calls).
    let (acme_before, globex_before) = (
        org_calls(&app, "acme").await,
        org_calls(&app, "globex").await,
    );
    assert!(acme_before > globex_before && globex_before > 0);

    // Proxy, refresh and the service API: each connection's calls go to its own org.
    let key = app.api_key(&[Scope::Proxy, Scope::ClientsRead]).await;
    for _ in 0..3 {
        assert_eq!(
            app.proxy_get(&key, &globex_id, "v1/orgs/current")
                .await
                .status(),
            200
        );
    }
    assert_eq!(org_calls(&app, "globex").await, globex_before + 3);
    assert_eq!(org_calls(&app, "acme").await, acme_before);
    assert_eq!(app.refresh_now("kustomer", &acme_id).await.status(), 200);
    assert_eq!(org_calls(&app, "acme").await, acme_before + 1);
    assert_eq!(org_calls(&app, "globex").await, globex_before + 3);

    let listed: Value = app
        .client
        .get(app.url("/api/v1/clients?provider=kustomer"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut orgs: Vec<String> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["connection_config"]["subdomain"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    orgs.sort();
    assert_eq!(orgs, ["acme", "globex"]);

    // The pages show the settings and the Reconnect link carries them.
    let details = app.get_html(&format!("/admin/clients/{globex_id}")).await;
    assert!(details.contains(
        r#"<dt>Kustomer subdomain</dt><dd><code class="connection-setting">globex</code></dd>"#
    ));
    let mine = app.get_html("/connections").await;
    assert!(mine.contains(r#"<code class="connection-setting">acme</code>"#));
    let reconnect = app
        .get(&format!("/admin/clients/{globex_id}/reconnect"))
        .await;
    assert!(
        location(&reconnect).ends_with("&subdomain=globex"),
        "{}",
        location(&reconnect)
    );

    // A connection stored before settings existed uses the deployment-wide default.
    let legacy = globex_id.clone();
    app.db(move |conn| {
        diesel::update(clients::table.find(legacy))
            .set(clients::connection_config.eq("{}"))
            .execute(conn)
    })
    .await;
    // (Once the service cache, 1 s in tests, has let go of the row as it was.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while org_calls(&app, "sandbox").await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the default org was never called"
        );
        assert_eq!(
            app.proxy_get(&key, &globex_id, "v1/orgs/current")
                .await
                .status(),
            200
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn every_escape_attempt_is_refused_and_nothing_is_stored(app: TestApp) {
    app.login_as(Role::Admin).await;
    let long = "a".repeat(64);
    let attempts = [
        "evil.com",
        "a.b",
        "a/b",
        "a?b",
        "a#b",
        "a@b",
        "127.0.0.1",
        "[::1]",
        "%2e",
        "a%2fb",
        "..",
        "-a",
        "a-",
        &long,
        "a\0b",
        " ",
        "a b",
        "a\tb",
        "a\nb",
        "ａ",
        "ab--c",
        "xn--",
        "http://x",
        "evil.com:443",
        "a\\b",
        "a&subdomain=b",
    ];
    for attempt in attempts {
        let start = app.get(&start_path(attempt)).await;
        assert_eq!(start.status(), 303, "{attempt:?} goes back to the page");
        assert_eq!(location(&start), "/admin/clients");
        let toast = app.toast_on("/admin/clients").await;
        assert!(
            toast.starts_with("error: Kustomer subdomain: "),
            "{attempt:?}: {toast}"
        );
    }
    assert_eq!(
        pending_states(&app).await,
        0,
        "no authorization was started"
    );
    assert_eq!(app.sandbox_stats("kustomer").await["org_calls"], json!({}));
    assert!(app.clients().await.is_empty());

    // The messages say what is wrong.
    app.get(&start_path("evil.com")).await;
    assert!(app
        .toast_on("/admin/clients")
        .await
        .contains("one label: no dots, slashes"));
    app.get(&start_path(&long)).await;
    assert!(app
        .toast_on("/admin/clients")
        .await
        .ends_with("must be 1-63 characters"));

    // Uppercase is lowercased; a valid punycode label and the empty value (the default)
    // are accepted.
    for (given, org) in [
        ("ACME", "acme"),
        ("xn--bcher-kva", "xn--bcher-kva"),
        ("", "sandbox"),
    ] {
        let start = app.get(&start_path(given)).await;
        assert_eq!(start.status(), 302, "{given:?}");
        assert!(
            path_of(&location(&start)).starts_with(&format!("/sandbox/kustomer/org/{org}/")),
            "{given:?}"
        );
    }
}

async fn the_hosted_page_asks_for_the_subdomain_and_refuses_escapes(app: TestApp) {
    app.login_as(Role::Admin).await;
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["kustomer"]}),
    )
    .await;
    let link = path_of(session["connect_url"].as_str().unwrap());
    let browser = app.new_browser();
    let page = browser.get_html(&link).await;
    assert!(
        page.contains(r#"name="subdomain" value="sandbox""#),
        "{page}"
    );
    assert!(page.contains("The part before .kustomerapp.com"));

    for attempt in ["evil.com", "a/b", "127.0.0.1", "a\0b"] {
        let start = browser
            .get(&format!(
                "{link}/start/kustomer?subdomain={}",
                connecthub::web::urlencode(attempt)
            ))
            .await;
        assert_eq!(start.status(), 400, "{attempt:?}");
        let html = start.text().await.unwrap();
        assert!(html.contains("Check what you entered"), "{html}");
        assert!(html.contains("Kustomer subdomain: "), "{html}");
    }
    assert_eq!(pending_states(&app).await, 0);

    let start = browser
        .get(&format!("{link}/start/kustomer?subdomain=initech"))
        .await;
    assert_eq!(start.status(), 302);
    let back = browser
        .consent(&location(&start), "allow", Some(ORG_ACCOUNT))
        .await;
    crate::connect_sessions::finish_callback(&browser, &back).await;
    let rows = app.clients().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].connection_config, r#"{"subdomain":"initech"}"#);
    assert!(rows[0].end_user_id.is_some());
    assert!(org_calls(&app, "initech").await >= 2);
}

async fn an_api_key_connection_keeps_its_subdomain(app: TestApp) {
    app.login_as(Role::Admin).await;
    let (_, secret) = connecthub_sandbox::KUSTOMER_API_KEYS[0];
    let csrf = app.csrf_token().await;
    let refused = app
        .client
        .post(app.url("/api/integrations/kustomer/test-connection"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"api_key": secret, "subdomain": "evil.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Kustomer subdomain: "),
        "{body}"
    );
    assert!(app.clients().await.is_empty());
    assert_eq!(app.sandbox_stats("kustomer").await["org_calls"], json!({}));

    let connected = app
        .client
        .post(app.url("/api/integrations/kustomer/test-connection"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"api_key": secret, "subdomain": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status(), 200);
    let rows = app.clients().await;
    assert_eq!(rows[0].connection_config, r#"{"subdomain":"acme"}"#);
    assert_eq!(
        org_calls(&app, "acme").await,
        crate::helpers::KUSTOMER_KEY_CONNECT_CALLS
    );
}

/// A Salesforce-like provider on the sandbox's Klaviyo server: its token response carries
/// an `instance_url` (armed in the sandbox), captured and checked against its hosts.
const CAPTURING: &str = r#"
[[provider]]
name = "sales"
display_name = "Sales Cloud"
authorize_url = "{address}/sandbox/klaviyo/oauth/authorize"
token_url = "{address}/sandbox/klaviyo/oauth/token"
profile_url = "{address}/sandbox/klaviyo/api/accounts"
account_id_field = "data.0.id"
account_name_field = "data.0.attributes.contact_information.organization_name"
scopes = ["accounts:read"]
api_base_url = "{address}/sandbox/klaviyo"
capture_hosts = ["salesforce.com", "force.com"]
[provider.headers]
revision = "2024-10-15"
[provider.capture]
instance_url = "token.instance_url"
"#;

async fn a_captured_instance_url_is_checked(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("PROVIDERS_TOML", CAPTURING),
            (
                "SALES_OAUTH_CLIENT_ID",
                connecthub_sandbox::KLAVIYO_CLIENT_ID,
            ),
            (
                "SALES_OAUTH_CLIENT_SECRET",
                connecthub_sandbox::KLAVIYO_CLIENT_SECRET,
            ),
        ],
    )
    .await;
    app.login_as(Role::Admin).await;
    for (url, host) in [
        ("https://evil.example", "evil.example"),
        (
            "https://salesforce.com.evil.example",
            "salesforce.com.evil.example",
        ),
    ] {
        app.sandbox_faults(json!({"provider": "klaviyo", "token_fields": {"instance_url": url}}))
            .await;
        let done = app.connect("sales", None).await;
        assert_eq!(location(&done), "/admin/clients");
        let toast = app.toast_on("/admin/clients").await;
        assert_eq!(
            toast,
            format!("error: Could not connect Sales Cloud: Sales Cloud refused: instance_url: the provider sent a value that is refused (points at {host}, which is not a host of this provider (allowed: salesforce.com, force.com))")
        );
    }
    assert!(app.clients().await.is_empty(), "nothing stored");

    app.sandbox_faults(json!({"provider": "klaviyo", "token_fields": {}}))
        .await;
    app.connect("sales", None).await;
    assert!(app
        .toast_on("/admin/clients")
        .await
        .contains("instance_url: the provider's answer had no token response field instance_url"));

    app.sandbox_faults(json!({"provider": "klaviyo", "token_fields": {"instance_url": "https://acme.my.salesforce.com/"}}))
        .await;
    app.connect("sales", None).await;
    let toast = app.toast_on("/admin/clients").await;
    assert!(
        toast.starts_with("success: Connected Sales Cloud"),
        "{toast}"
    );
    let rows = app.clients().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].connection_config,
        r#"{"instance_url":"https://acme.my.salesforce.com"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_instance_url_is_checked_sqlite() {
    a_captured_instance_url_is_checked(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_instance_url_is_checked_postgres() {
    if crate::helpers::postgres_available() {
        a_captured_instance_url_is_checked(Backend::Postgres).await;
    }
}
