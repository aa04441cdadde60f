//! Connecting without OAuth: an API key in a named header with a template, an API key in a
//! query parameter, and HTTP Basic (a user and a password or token). Each is checked with
//! the provider (the sandbox's keyed API) before anything is stored, placed that way on
//! every proxied call, sealed like any key, and every bad input is refused with a clear
//! message while nothing changes.

use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use connecthub::auth::users::Role;
use connecthub::db::schema::{audit_log, credentials};
use connecthub_sandbox::{KEYED_API_KEY, KEYED_BASIC_PASSWORD, KEYED_BASIC_USER};
use diesel::prelude::*;
use serde_json::json;

const PROVIDERS: &str = r#"
[[provider]]
name = "by-header"
display_name = "By Header"
auth_type = "api_key"
api_base_url = "{address}/sandbox/keyed/header"
api_key_check_path = "/me"
profile_url = "{address}/sandbox/keyed/header/me"
account_id_field = "account.id"
account_name_field = "account.name"
[provider.api_key]
header = "Authorization"
template = "Klaviyo-API-Key ${key}"

[[provider]]
name = "by-query"
display_name = "By Query"
auth_type = "api_key"
api_base_url = "{address}/sandbox/keyed/query"
api_key_check_path = "/me"
profile_url = "{address}/sandbox/keyed/query/me"
account_id_field = "account.id"
account_name_field = "account.name"
[provider.api_key]
query_param = "api_key"

[[provider]]
name = "by-basic"
display_name = "By Basic"
auth_type = "basic"
api_base_url = "{address}/sandbox/keyed/basic"
api_key_check_path = "/me"
profile_url = "{address}/sandbox/keyed/basic/me"
account_id_field = "account.id"
account_name_field = "account.name"
[provider.basic]
username_label = "Email"
password_label = "API token"
"#;

/// The fields of a connect form.
type Fields<'a> = Vec<(&'a str, &'a str)>;

async fn app(backend: Backend) -> TestApp {
    let app = spawn_app_with(backend, &[("PROVIDERS_TOML", PROVIDERS)]).await;
    app.login_as(Role::Admin).await;
    app
}

/// Submits the admin page's "Test and connect" form; returns the toast shown.
async fn connect(app: &TestApp, provider: &str, fields: &[(&str, &str)]) -> String {
    let mut form = fields.to_vec();
    form.push(("redirect_path", "/admin/clients"));
    let done = app
        .post_form(
            &format!("/api/integrations/{provider}/test-connection"),
            &form,
        )
        .await;
    assert_eq!(done.status(), 303, "{provider}");
    assert_eq!(location(&done), "/admin/clients");
    app.toast_on("/admin/clients").await
}

async fn keyed_stats(app: &TestApp) -> serde_json::Value {
    app.get("/sandbox/_control/keyed")
        .await
        .json()
        .await
        .unwrap()
}

/// Rows that would hold anything of a connection: clients and credentials.
async fn counts(app: &TestApp) -> (usize, i64) {
    let clients = app.clients().await.len();
    let credentials = app
        .db(|conn| credentials::table.count().get_result(conn))
        .await;
    (clients, credentials)
}

/// Every stored text of the credentials and audit tables, to look for secrets in.
async fn stored_text(app: &TestApp) -> String {
    app.db(|conn| {
        let sealed: Vec<Option<String>> =
            credentials::table.select(credentials::api_key).load(conn)?;
        let details: Vec<String> = audit_log::table.select(audit_log::details).load(conn)?;
        Ok(format!("{sealed:?}{details:?}"))
    })
    .await
}

/// Each mode connects after its check, places the credential its way on proxied calls
/// (the sandbox refuses any other), and keeps the secret sealed.
async fn each_mode_connects_and_places_its_credential(backend: Backend) {
    let app = app(backend).await;
    let service = app.api_key(&connecthub::api_keys::Scope::ALL).await;
    let cases: [(&str, Fields, &str, &str); 3] = [
        (
            "by-header",
            vec![("api_key", KEYED_API_KEY)],
            "header",
            "api_key",
        ),
        (
            "by-query",
            vec![("api_key", KEYED_API_KEY)],
            "query",
            "api_key",
        ),
        (
            "by-basic",
            vec![
                ("username", KEYED_BASIC_USER),
                ("api_key", KEYED_BASIC_PASSWORD),
            ],
            "basic",
            "basic",
        ),
    ];
    for (provider, fields, mode, auth_type) in cases {
        let display = match mode {
            "header" => "By Header",
            "query" => "By Query",
            _ => "By Basic",
        };
        assert_eq!(
            connect(&app, provider, &fields).await,
            format!("success: Connected {display} account Keyed {mode} account")
        );
        let client = app
            .clients()
            .await
            .into_iter()
            .find(|c| c.provider == provider)
            .expect("connected");
        assert_eq!(client.auth_type.as_str(), auth_type);
        assert_eq!(client.provider_account_id, format!("keyed-{mode}-1"));
        assert_eq!(
            client.tags,
            format!(r#"["new","{auth_type}"]"#),
            "tagged by kind"
        );

        // The proxy places the credential the provider's way; a caller's own
        // Authorization header or api_key parameter never replaces it.
        let proxied = app
            .client
            .get(app.url(&format!(
                "/api/v1/proxy/{}/lists/7?api_key=callers-own&page=2",
                client.id
            )))
            .bearer_auth(&service)
            .send()
            .await
            .unwrap();
        assert_eq!(proxied.status(), 200, "{provider}");
        let body: serde_json::Value = proxied.json().await.unwrap();
        assert_eq!(body["path"], "lists/7");
        // Services get the secret to place themselves, with its kind.
        let handed: serde_json::Value = app
            .service_token(&service, &client.id)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(handed["token_type"], auth_type);
        let secret = match mode {
            "basic" => format!("{KEYED_BASIC_USER}:{KEYED_BASIC_PASSWORD}"),
            _ => KEYED_API_KEY.to_string(),
        };
        assert_eq!(handed["api_key"], json!(secret));
        // "Refresh now" has nothing to do for a key: it stays active.
        assert_eq!(app.refresh_now(provider, &client.id).await.status(), 200);
    }
    let stats = keyed_stats(&app).await;
    // Per mode: the check, the profile, one proxied call.
    assert_eq!(stats, json!({"calls": 9, "rejected": 0}));
    let stored = stored_text(&app).await;
    for secret in [KEYED_API_KEY, KEYED_BASIC_PASSWORD] {
        assert!(!stored.contains(secret), "{secret} is sealed");
    }
    let page = app.get_html("/admin/clients").await;
    assert!(!page.contains(KEYED_API_KEY) && !page.contains("open sesame"));
    let basic = app
        .clients()
        .await
        .into_iter()
        .find(|c| c.provider == "by-basic")
        .unwrap();
    let details = app.get_html(&format!("/admin/clients/{}", basic.id)).await;
    assert!(details.contains("User and password; does not expire"));
    assert!(!details.contains("open sesame"));
}

/// A credential the provider refuses stores nothing and says why.
async fn a_refused_credential_stores_nothing(backend: Backend) {
    let app = app(backend).await;
    let before = counts(&app).await;
    assert_eq!(
        connect(&app, "by-header", &[("api_key", "wrong-key")]).await,
        "error: Could not connect By Header: By Header refused: the API key was rejected"
    );
    assert_eq!(
        connect(&app, "by-query", &[("api_key", "wrong-key")]).await,
        "error: Could not connect By Query: By Query refused: the API key was rejected"
    );
    assert_eq!(
        connect(
            &app,
            "by-basic",
            &[("username", KEYED_BASIC_USER), ("api_key", "wrong password")]
        )
        .await,
        "error: Could not connect By Basic: By Basic refused: the user name or password was rejected"
    );
    assert_eq!(counts(&app).await, before, "nothing stored");
    assert_eq!(keyed_stats(&app).await, json!({"calls": 3, "rejected": 3}));
}

/// Empty, NUL, over-long, spaced and mistyped inputs are refused before the provider is
/// asked, with a clear message; nothing is stored.
async fn bad_inputs_are_refused_and_change_nothing(backend: Backend) {
    let app = app(backend).await;
    let before = counts(&app).await;
    let long = "k".repeat(600);
    let long_user = "u".repeat(300);
    let form_cases: Vec<(&str, Fields, &str)> = vec![
        (
            "by-header",
            vec![("api_key", "")],
            "enter the API key exactly as the provider shows it",
        ),
        (
            "by-header",
            vec![("api_key", "two words")],
            "enter the API key exactly as the provider shows it",
        ),
        (
            "by-query",
            vec![("api_key", &long)],
            "enter the API key exactly as the provider shows it",
        ),
        (
            "by-query",
            vec![("api_key", KEYED_API_KEY), ("username", "ann")],
            "By Query takes an API key, not a user name",
        ),
        (
            "by-basic",
            vec![("api_key", KEYED_BASIC_PASSWORD)],
            "enter the Email",
        ),
        (
            "by-basic",
            vec![("username", KEYED_BASIC_USER), ("api_key", "")],
            "enter the API token",
        ),
        (
            "by-basic",
            vec![("username", "ann:admin"), ("api_key", "x")],
            "the Email must be one line without ':', at most 256 characters",
        ),
        (
            "by-basic",
            vec![("username", &long_user), ("api_key", "x")],
            "the Email must be one line without ':', at most 256 characters",
        ),
        (
            "by-basic",
            vec![("username", KEYED_BASIC_USER), ("api_key", &long)],
            "the API token must be one line, at most 512 characters",
        ),
    ];
    for (provider, fields, message) in form_cases {
        let display = match provider {
            "by-header" => "By Header",
            "by-query" => "By Query",
            _ => "By Basic",
        };
        assert_eq!(
            connect(&app, provider, &fields).await,
            format!("error: Could not connect {display}: {message}"),
            "{fields:?}"
        );
    }
    // NUL bytes and line breaks never reach the domain: a 400 from the form reader.
    for fields in [
        vec![("api_key", "key\0")],
        vec![("username", "ann\0"), ("api_key", "x")],
        vec![("username", "ann\r\nX-Evil: 1"), ("api_key", "x")],
    ] {
        let provider = if fields.len() == 2 {
            "by-basic"
        } else {
            "by-header"
        };
        let response = app
            .post_form(
                &format!("/api/integrations/{provider}/test-connection"),
                &fields,
            )
            .await;
        assert_eq!(response.status(), 400, "{fields:?}");
        let text = response.text().await.unwrap();
        assert!(text.contains("one line of printable characters"), "{text}");
    }
    assert_eq!(counts(&app).await, before, "nothing stored");
    assert_eq!(
        keyed_stats(&app).await["calls"],
        0,
        "the provider was never asked"
    );
}

/// The connect forms ask for what each mode needs: a user and a token for Basic, one key
/// for the others; on the admin page and on My connections.
async fn the_forms_ask_for_the_right_fields(backend: Backend) {
    let app = app(backend).await;
    for page in ["/admin/clients", "/connections"] {
        let html = crate::helpers::unescape(&app.get_html(page).await);
        assert!(
            html.contains(r#"<label for="username-by-basic">By Basic Email</label>"#),
            "{page}"
        );
        assert!(html.contains(r#"<label for="api-key-by-basic">By Basic API token</label>"#));
        assert!(html.contains(r#"<label for="api-key-by-header">By Header API key</label>"#));
        assert!(html.contains(r#"<label for="api-key-by-query">By Query API key</label>"#));
        assert!(!html.contains(r#"id="username-by-header""#));
        assert!(!html.contains(r#"id="username-by-query""#));
        assert!(
            !html.contains(r#"id="connect-by-basic""#),
            "no OAuth button"
        );
    }
}

/// The hosted connect page asks an end user for the Basic pair too, and connects it.
async fn an_end_user_connects_basic_on_the_hosted_page(backend: Backend) {
    use crate::connect_sessions::{path_of, session_for, team_key};
    let app = spawn_app_with(backend, &[("PROVIDERS_TOML", PROVIDERS)]).await;
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["by-basic"]}),
    )
    .await;
    let link = path_of(session["connect_url"].as_str().unwrap());
    let browser = app.new_browser();
    let page = browser.get_html(&link).await;
    assert!(page.contains(r#"<label for="username-by-basic">By Basic Email</label>"#));
    assert!(page.contains(r#"<label for="api-key-by-basic">By Basic API token</label>"#));
    let csrf = page
        .split(r#"name="csrf_token" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the form carries a CSRF token")
        .to_string();
    let post = |username: &'static str, password: &'static str| {
        let (browser, link, csrf) = (&browser, link.clone(), csrf.clone());
        async move {
            browser
                .client
                .post(browser.url(&format!("{link}/api-key/by-basic")))
                .form(&[
                    ("username", username),
                    ("api_key", password),
                    ("csrf_token", &csrf),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = post(KEYED_BASIC_USER, "wrong").await;
    assert_eq!(wrong.status(), 400);
    let text = crate::helpers::unescape(&wrong.text().await.unwrap());
    assert!(
        text.contains("the user name or password was rejected"),
        "{text}"
    );
    assert!(app.clients().await.is_empty());
    let right = post(KEYED_BASIC_USER, KEYED_BASIC_PASSWORD).await;
    assert_eq!(right.status(), 200);
    let clients = app.clients().await;
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].auth_type.as_str(), "basic");
    assert!(clients[0].end_user_id.is_some());
}

crate::with_each_backend!(
    each_mode_connects_and_places_its_credential,
    a_refused_credential_stores_nothing,
    bad_inputs_are_refused_and_change_nothing,
    the_forms_ask_for_the_right_fields,
    an_end_user_connects_basic_on_the_hosted_page,
);

/// The Basic form in Chromium: a user and a token, checked, connected, listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_basic_form_connects_in_a_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, &[("PROVIDERS_TOML", PROVIDERS)]).await;
    let user = app.create_user(Role::Admin).await;
    browser.sign_in(&app, &user).await;
    browser.wait_for_text("h1", "Clients").await;
    browser.click("details.disclosure summary").await;
    let form = r#"form[action="/api/integrations/by-basic/test-connection"]"#;
    browser.fill("#username-by-basic", KEYED_BASIC_USER).await;
    browser.fill("#api-key-by-basic", "wrong token").await;
    browser.screenshot("auth-modes-basic-form").await;
    browser.click(&format!("{form} button[type=submit]")).await;
    browser
        .wait_for_text(
            "#toasts .toast-error",
            "Could not connect By Basic: By Basic refused: the user name or password was rejected",
        )
        .await;
    assert!(app.clients().await.is_empty(), "nothing stored");
    browser
        .fill("#api-key-by-basic", KEYED_BASIC_PASSWORD)
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    browser
        .wait_for_text(
            "#toasts .toast-success",
            "Connected By Basic account Keyed basic account",
        )
        .await;
    browser.screenshot("auth-modes-basic-connected").await;
    let clients = app.clients().await;
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].auth_type.as_str(), "basic");
    browser.close().await;
}
