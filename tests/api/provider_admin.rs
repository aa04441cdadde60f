//! `/admin/providers`: a provider added from a pasted TOML table, its credentials set in
//! the page, connected without a restart (against the sandbox); the secret never in the
//! HTML, the audit or the log; environment values shown and not editable; bad input
//! refused with nothing stored; members get 403; a change on one instance is seen by
//! another on the same PostgreSQL within seconds.

use crate::helpers::{
    location, second_instance_with, spawn_app_with, spawn_process, unescape, Backend, TestApp,
};
use crate::{on_both_backends, with_each_backend};
use connecthub::auth::users::Role;
use connecthub::db::schema::{audit_log, provider_settings};
use connecthub_sandbox::{KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET};
use diesel::prelude::*;
use std::time::{Duration, Instant};

on_both_backends!(
    credentials_set_in_the_page_connect_without_a_restart,
    a_member_gets_403_and_changes_nothing,
    bad_input_is_refused_and_nothing_changes,
    disabling_hides_a_provider_and_enabling_brings_it_back,
);

/// Scenarios with settings of their own.
mod environment {
    use super::*;
    with_each_backend!(environment_values_are_shown_and_cannot_be_changed);
}

/// A provider served by `host`'s sandbox (its Klaviyo stand-in), as pasted on the page.
pub fn acme(host: &str) -> String {
    format!(
        r#"[[provider]]
name = "acme"
display_name = "Acme CRM"
authorize_url = "{host}/sandbox/klaviyo/oauth/authorize"
token_url = "{host}/sandbox/klaviyo/oauth/token"
profile_url = "{host}/sandbox/klaviyo/api/accounts"
account_id_field = "data.0.id"
account_name_field = "data.0.attributes.contact_information.organization_name"
scopes = ["accounts:read"]
client_auth = "basic"
api_base_url = "{host}/sandbox/klaviyo"
[provider.headers]
revision = "2024-10-15"
"#
    )
}

pub(crate) async fn add(app: &TestApp, definition: &str) -> reqwest::Response {
    app.post_form("/admin/providers", &[("definition", definition)])
        .await
}

pub(crate) async fn set_credentials(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.post_form(
        "/admin/providers/acme",
        &[("client_id", id), ("client_secret", secret)],
    )
    .await
}

pub(crate) async fn stored_rows(app: &TestApp) -> i64 {
    app.db(|conn| provider_settings::table.count().get_result(conn))
        .await
}

pub(crate) async fn provider_audit(app: &TestApp) -> Vec<String> {
    app.audit_actions()
        .await
        .into_iter()
        .filter(|a| a.starts_with("provider_"))
        .collect()
}

/// Connects Acme through the sandbox's consent page; the toast the user sees.
pub(crate) async fn connect_acme(app: &TestApp) -> String {
    let start = app.start_connect("acme", "/admin/clients").await;
    assert_eq!(start.status(), 302, "redirected to the provider");
    let callback = app
        .consent(&location(&start), "allow", Some("GlobexK2"))
        .await;
    assert_eq!(location(&app.callback(&callback).await), "/admin/clients");
    app.toast_on("/admin/clients").await
}

async fn credentials_set_in_the_page_connect_without_a_restart(app: TestApp) {
    app.login_as(Role::Admin).await;
    let added = add(&app, &acme(&app.address)).await;
    assert_eq!(location(&added), "/admin/providers/acme");
    let page = app.get_html("/admin/providers/acme").await;
    assert!(page.contains("missing credentials"), "{page}");
    assert!(page.contains(r#"id="secret-state">(not set)"#));
    let redirect_uri = format!("{}/api/integrations/acme/oauth/callback", app.address);
    assert!(page.contains(&format!(
        r#"<code id="redirect-uri" class="secret">{redirect_uri}</code>"#
    )));
    assert!(
        page.contains(r##"data-copy="#redirect-uri""##),
        "a copy button"
    );
    let listed = app.get_html("/admin/providers").await;
    assert!(listed.contains(r#"id="provider-acme""#) && listed.contains("added here"));
    assert!(listed.contains(r#"id="provider-klaviyo""#) && listed.contains("built-in"));

    // Not configured yet: Connect says so.
    let early = app.start_connect("acme", "/admin/clients").await;
    assert_eq!(location(&early), "/admin/clients");

    let saved = set_credentials(&app, KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET).await;
    assert_eq!(location(&saved), "/admin/providers/acme");
    let page = app.get_html("/admin/providers/acme").await;
    assert!(
        page.contains(r#"id="provider-status">configured"#),
        "{page}"
    );
    assert!(page.contains(r#"id="secret-state">(set)"#));
    assert!(page.contains(&format!(r#"value="{KLAVIYO_CLIENT_ID}""#)));
    assert!(
        !page.contains(KLAVIYO_CLIENT_SECRET),
        "the secret is never shown"
    );

    assert_eq!(
        connect_acme(&app).await,
        "success: Connected Acme CRM account Globex Retail"
    );

    // Check configuration: the authorize URL answers, the token endpoint refuses a
    // made-up code with invalid_grant.
    let checked = unescape(&app.get_html_after_post("/admin/providers/acme/check").await);
    assert!(checked.contains("Configuration looks right."), "{checked}");
    assert!(checked.contains("Refused a made-up code with invalid_grant (HTTP 400)"));
    assert!(!checked.contains(KLAVIYO_CLIENT_SECRET));

    // A blank secret keeps the stored one; a wrong one is reported by the check.
    let scopes = app
        .post_form(
            "/admin/providers/acme",
            &[
                ("client_secret", ""),
                ("scopes", "accounts:read lists:read"),
            ],
        )
        .await;
    assert_eq!(location(&scopes), "/admin/providers/acme");
    assert!(app
        .get_html("/admin/providers/acme")
        .await
        .contains(r#"value="accounts:read lists:read""#));
    assert_eq!(
        connect_acme(&app).await,
        "success: Connected Acme CRM account Globex Retail"
    );
    set_credentials(&app, KLAVIYO_CLIENT_ID, "wrong-secret-value").await;
    let checked = unescape(&app.get_html_after_post("/admin/providers/acme/check").await);
    assert!(
        checked.contains("Refused the client id or secret: invalid_client (HTTP 401)"),
        "{checked}"
    );

    // Sealed in the database, bound to the provider; absent from the audit.
    let sealed: Option<String> = app
        .db(|conn| {
            provider_settings::table
                .find("acme")
                .select(provider_settings::client_secret)
                .first(conn)
        })
        .await;
    let sealed = sealed.unwrap();
    assert!(sealed.starts_with("ch1.") && !sealed.contains("wrong-secret-value"));
    let details: Vec<String> = app
        .db(|conn| audit_log::table.select(audit_log::details).load(conn))
        .await;
    assert!(details
        .iter()
        .all(|d| !d.contains(KLAVIYO_CLIENT_SECRET) && !d.contains("wrong-secret")));
    assert_eq!(
        provider_audit(&app).await,
        [
            "provider_added",
            "provider_settings_changed",
            "provider_settings_changed",
            "provider_settings_changed"
        ]
    );
}

async fn a_member_gets_403_and_changes_nothing(app: TestApp) {
    app.login_as(Role::Member).await;
    let clients = app.get_html("/admin/clients").await;
    assert!(
        !clients.contains(r#"href="/admin/providers""#),
        "no link for members"
    );
    for path in ["/admin/providers", "/admin/providers/klaviyo"] {
        assert_eq!(app.get(path).await.status(), 403, "{path}");
    }
    assert_eq!(add(&app, &acme(&app.address)).await.status(), 403);
    let save = app
        .post_form("/admin/providers/klaviyo", &[("client_id", "mine")])
        .await;
    assert_eq!(save.status(), 403);
    let disable = app
        .post_form("/admin/providers/klaviyo/enabled", &[("enabled", "false")])
        .await;
    assert_eq!(disable.status(), 403);
    assert_eq!(stored_rows(&app).await, 0);
    assert!(provider_audit(&app).await.is_empty());
}

async fn bad_input_is_refused_and_nothing_changes(app: TestApp) {
    app.login_as(Role::Admin).await;
    let good = acme(&app.address);
    let long_definition = format!("{good}\n# {}\n", "x".repeat(20_000));
    let definitions: Vec<(String, &str)> = [
        ("".to_string(), "Paste a [[provider]] table."),
        (
            "[[provider]]\nname = 3".to_string(),
            "Not added: the definition is not a valid provider file",
        ),
        (
            good.replace("name = \"acme\"", "name = \"Acme CRM\""),
            "Not added: provider name \"Acme CRM\" must be",
        ),
        (
            good.replace(
                &format!(
                    "token_url = \"{}/sandbox/klaviyo/oauth/token\"",
                    app.address
                ),
                "token_url = \"/token\"",
            ),
            "Not added: provider acme: \"/token\" is not an absolute http(s) URL",
        ),
        (
            good.replace("name = \"acme\"", "name = \"klaviyo\""),
            "Not added: the definition names provider \"klaviyo\", which exists already.",
        ),
        (
            format!("{good}\n{}", good.replace("acme", "acme2")),
            "Not added: the definition must hold exactly one [[provider]] table.",
        ),
        (
            good.replace("Acme CRM", "Acme\0CRM"),
            "The definition cannot contain control characters.",
        ),
        (
            long_definition,
            "The definition can be at most 20000 bytes.",
        ),
        (
            good.replace("scopes", "client_secret"),
            "Not added: the definition is not a valid provider file",
        ),
    ]
    .into_iter()
    .collect();
    for (definition, expected) in &definitions {
        let response = add(&app, definition).await;
        assert_eq!(response.status(), 400, "{expected}");
        let html = unescape(&response.text().await.unwrap());
        assert!(html.contains(expected), "{expected}: {html}");
    }
    assert_eq!(stored_rows(&app).await, 0, "nothing stored");

    // Settings of a built-in.
    let before = app.get_html("/admin/providers/klaviyo").await;
    let long_id = "i".repeat(201);
    let long_secret = "s".repeat(501);
    let cases: [(&str, &str, &str); 8] = [
        (
            "client_id",
            "abc\0def",
            "The client id cannot contain control characters",
        ),
        (
            "client_id",
            &long_id,
            "The client id can be at most 200 characters.",
        ),
        (
            "client_secret",
            &long_secret,
            "The client secret can be at most 500 characters.",
        ),
        (
            "client_secret",
            "se\0cret",
            "The client secret cannot contain control characters",
        ),
        (
            "scopes",
            "accounts:read \"quoted\"",
            "The scope \"\\\"quoted\\\"\" is not valid",
        ),
        (
            "scopes",
            "caf\u{e9}",
            "is not valid: a scope is at most 200 printable ASCII characters",
        ),
        (
            "authorize_params",
            "state=mine",
            "The authorize parameter state is set by connecthub itself.",
        ),
        (
            "authorize_params",
            "prompt",
            "Write each authorize parameter as name=value",
        ),
    ];
    for (field, value, expected) in cases {
        let response = app
            .post_form("/admin/providers/klaviyo", &[(field, value)])
            .await;
        assert_eq!(response.status(), 400, "{field}={value:?}");
        let html = unescape(&response.text().await.unwrap());
        assert!(html.contains(expected), "{expected}: {html}");
        assert!(!html.contains("se\0cret") && !html.contains(&long_secret));
    }
    let unknown = app
        .post_form("/admin/providers/nope", &[("client_id", "x")])
        .await;
    assert_eq!(unknown.status(), 404);
    let nul_name = app.get("/admin/providers/ac%00me").await;
    assert_eq!(nul_name.status(), 404);
    assert_eq!(stored_rows(&app).await, 0, "nothing stored");
    assert!(provider_audit(&app).await.is_empty());
    let after = app.get_html("/admin/providers/klaviyo").await;
    for page in [before, after] {
        assert!(
            page.contains(r#"id="secret-state">(set (sandbox default))"#),
            "{page}"
        );
        assert!(page.contains(&format!(r#"value="{KLAVIYO_CLIENT_ID}""#)));
    }
}

async fn disabling_hides_a_provider_and_enabling_brings_it_back(app: TestApp) {
    app.login_as(Role::Admin).await;
    let disabled = app
        .post_form("/admin/providers/kustomer/enabled", &[("enabled", "false")])
        .await;
    assert_eq!(location(&disabled), "/admin/providers/kustomer");
    assert!(!app
        .get_html("/admin/clients")
        .await
        .contains(r#"id="connect-kustomer""#));
    assert_eq!(
        app.start_connect("kustomer", "/admin/clients")
            .await
            .status(),
        404
    );
    let page = app.get_html("/admin/providers").await;
    assert!(
        page.contains(r#"<span class="badge badge-danger">disabled</span>"#),
        "{page}"
    );
    app.post_form("/admin/providers/kustomer/enabled", &[("enabled", "true")])
        .await;
    assert!(app
        .get_html("/admin/clients")
        .await
        .contains(r#"id="connect-kustomer""#));
    assert_eq!(
        provider_audit(&app).await,
        ["provider_disabled", "provider_enabled"]
    );
}

pub(super) async fn environment_values_are_shown_and_cannot_be_changed(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("PROVIDERS_TOML", &acme("{address}")),
            ("ACME_OAUTH_CLIENT_ID", KLAVIYO_CLIENT_ID),
            ("ACME_OAUTH_CLIENT_SECRET", KLAVIYO_CLIENT_SECRET),
            ("FEATURE_ACME_OAUTH", "true"),
        ],
    )
    .await;
    app.login_as(Role::Admin).await;
    let page = app.get_html("/admin/providers/acme").await;
    assert!(
        page.contains("From <code>ACME_OAUTH_CLIENT_ID</code> in the environment"),
        "{page}"
    );
    assert!(page.contains("From <code>ACME_OAUTH_CLIENT_SECRET</code> in the environment"));
    assert!(page.contains("Set by <code>FEATURE_ACME_OAUTH</code> in the environment"));
    assert!(page.contains(r#"id="secret-state">(set in the environment)"#));
    assert!(!page.contains(r#"name="client_id""#) && !page.contains(r#"name="client_secret""#));
    assert!(!page.contains(KLAVIYO_CLIENT_SECRET));
    assert!(app.get_html("/admin/providers").await.contains(">file<"));

    for (field, value, expected) in [
        ("client_id", "other", "The client id is set by ACME_OAUTH_CLIENT_ID in the environment, which wins: change it there."),
        ("client_secret", "other", "The client secret is set by ACME_OAUTH_CLIENT_SECRET in the environment"),
    ] {
        let response = app.post_form("/admin/providers/acme", &[(field, value)]).await;
        assert_eq!(response.status(), 400);
        assert!(unescape(&response.text().await.unwrap()).contains(expected), "{expected}");
    }
    let disable = app
        .post_form("/admin/providers/acme/enabled", &[("enabled", "false")])
        .await;
    assert_eq!(disable.status(), 400);
    assert!(unescape(&disable.text().await.unwrap())
        .contains("Acme CRM is enabled or disabled by FEATURE_ACME_OAUTH in the environment"));
    assert_eq!(stored_rows(&app).await, 0, "nothing stored");
    assert_eq!(
        connect_acme(&app).await,
        "success: Connected Acme CRM account Globex Retail"
    );
}

/// Set on instance A, connect works on instance B (same PostgreSQL) within seconds,
/// without a restart: B rebuilds its providers on A's NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_set_on_one_instance_work_on_another_within_seconds() {
    if !crate::helpers::postgres_available() {
        return;
    }
    let a = spawn_app_with(Backend::Postgres, &[]).await;
    let b = second_instance_with(&a, &[]).await;
    a.login_as(Role::Admin).await;
    let user = b.create_user(Role::Admin).await;
    b.login(&user.email, &user.password).await;
    assert_eq!(
        b.start_connect("acme", "/admin/clients").await.status(),
        404
    );
    add(&a, &acme(&a.address)).await;
    set_credentials(&a, KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET).await;
    let started = Instant::now();
    while b.start_connect("acme", "/admin/clients").await.status() != 302 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "B never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("instance B saw the change after {:?}", started.elapsed());
    assert_eq!(
        connect_acme(&b).await,
        "success: Connected Acme CRM account Globex Retail"
    );
}

/// A real process with a debug log: the secret set in the page never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_reaches_the_log() {
    let host = spawn_app_with(Backend::Sqlite, &[]).await;
    let process = spawn_process(Backend::Sqlite, &host, &[("LOG_LEVEL", "debug")]).await;
    let app = &process.app;
    app.login_as(Role::Admin).await;
    assert_eq!(
        location(&add(app, &acme(&host.address)).await),
        "/admin/providers/acme"
    );
    set_credentials(app, KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET).await;
    assert_eq!(
        connect_acme(app).await,
        "success: Connected Acme CRM account Globex Retail"
    );
    let checked = app.get_html_after_post("/admin/providers/acme/check").await;
    assert!(checked.contains("Configuration looks right."));
    let log = process.output();
    assert!(log.contains("DEBUG"), "the debug log was captured: {log}");
    assert!(!log.contains(KLAVIYO_CLIENT_SECRET), "{log}");
}

impl TestApp {
    /// Posts a form without fields (CSRF token only) and reads the page that answers.
    async fn get_html_after_post(&self, path: &str) -> String {
        let response = self.post_form(path, &[]).await;
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    }
}

/// The page in Chromium: add a provider, set its credentials, see the copy button, check
/// the configuration (htmx) and read the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let admin = app.create_user(Role::Admin).await;
    browser.sign_in(&app, &admin).await;
    browser.goto(&app.url("/admin/providers")).await;
    browser
        .fill("#provider-definition", &acme(&app.address))
        .await;
    browser.screenshot("providers-list").await;
    browser
        .click("form[action='/admin/providers'] button[type=submit]")
        .await;
    browser
        .wait_for_text("#provider-status", "missing credentials")
        .await;
    assert_eq!(browser.path().await, "/admin/providers/acme");
    browser.fill("#client-id", KLAVIYO_CLIENT_ID).await;
    browser.fill("#client-secret", KLAVIYO_CLIENT_SECRET).await;
    browser.click("#save-provider").await;
    browser
        .wait_for_text("#provider-status", "configured")
        .await;
    browser.wait_for_text("#secret-state", "(set)").await;
    browser.wait_for_text("#copy-redirect-uri", "Copy").await;
    browser
        .wait_for_text(
            "#redirect-uri",
            &format!("{}/api/integrations/acme/oauth/callback", app.address),
        )
        .await;
    browser.screenshot("provider-configured").await;
    browser.click("#check-provider").await;
    browser
        .wait_for_text("#check-report strong", "Configuration looks right.")
        .await;
    assert_eq!(
        browser.path().await,
        "/admin/providers/acme",
        "htmx swapped the result in"
    );
    let source = browser.client.source().await.unwrap();
    assert!(!source.contains(KLAVIYO_CLIENT_SECRET));
    browser
        .client
        .execute(
            "document.getElementById('check-result').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot("provider-checked").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;
}
