//! Connect sessions for a team's end users, over real HTTP against the sandbox: the team's
//! backend creates a session with a service key, the end user (a browser with no
//! connecthub sign-in) connects on the hosted page, and the backend finds the connection
//! and its token by the end user's id.

use crate::helpers::{location, unescape, TestApp};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::db::schema::{audit_log, clients, connect_sessions, end_users};

use diesel::prelude::*;
use serde_json::{json, Value};

on_both_backends!(
    end_user_42_connects_kustomer_and_the_backend_fetches_its_token,
    connecting_the_same_account_again_updates_the_same_row,
    two_end_users_with_the_same_account_get_a_row_each,
    redirect_mode_returns_a_signed_url_without_code_or_state,
    a_denied_consent_offers_try_again_on_the_same_session,
    the_backend_disconnects_an_end_users_connection_with_revocation,
    an_api_key_provider_is_connected_on_the_hosted_page,
    the_result_page_reports_only_to_the_sessions_origins,
);

/// A key for the team's backend: sessions, lists and tokens.
pub(crate) async fn team_key(app: &TestApp) -> String {
    app.api_key(&[Scope::ConnectWrite, Scope::ClientsRead, Scope::TokensRead])
        .await
}

pub(crate) async fn create_session(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/connect-sessions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A session for end user 42 (only Kustomer unless `body` says otherwise); its answer.
pub(crate) async fn session_for(app: &TestApp, key: &str, body: Value) -> Value {
    let response = create_session(app, key, body).await;
    assert_eq!(response.status(), 201, "session created");
    response.json().await.unwrap()
}

pub(crate) fn path_of(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    url.path().to_string()
}

/// The end user's browser: opens the link, clicks Connect, consents at the sandbox and
/// follows the callback; returns the callback's answer.
pub(crate) async fn end_user_connects(
    browser: &TestApp,
    connect_url: &str,
    provider: &str,
    account: Option<&str>,
    decision: &str,
) -> reqwest::Response {
    let page = browser.get(&path_of(connect_url)).await;
    assert_eq!(page.status(), 200, "the hosted page opens");
    let start = browser
        .get(&format!("{}/start/{provider}", path_of(connect_url)))
        .await;
    assert_eq!(start.status(), 302, "start goes to the provider");
    let back = browser.consent(&location(&start), decision, account).await;
    finish_callback(browser, &back).await
}

/// Follows the provider's redirect back into the hosted page: "Finishing…", whose form
/// (sent by connect-page.js in a browser) carries the answer on by POST; returns the
/// answer to that POST.
pub(crate) async fn finish_callback(browser: &TestApp, callback_url: &str) -> reqwest::Response {
    let finishing = browser.callback(callback_url).await;
    assert_eq!(finishing.status(), 200, "the Finishing… page");
    let page = finishing.text().await.unwrap();
    assert!(page.contains("<h1>Finishing…</h1>"), "{page}");
    assert!(!page.contains("<script>"), "no inline script");
    let action = page
        .split(r#"<form method="post" action=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the finishing form")
        .to_string();
    let fields: Vec<(String, String)> = page
        .split(r#"<input type="hidden" name=""#)
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once('"').unwrap();
            let value = rest
                .split(r#"value=""#)
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (name.to_string(), unescape(value))
        })
        .collect();
    browser
        .client
        .post(browser.url(&action))
        .form(&fields)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn rows(app: &TestApp) -> (i64, i64, i64) {
    app.db(|conn| {
        Ok((
            end_users::table.count().get_result(conn)?,
            connect_sessions::table.count().get_result(conn)?,
            clients::table.count().get_result(conn)?,
        ))
    })
    .await
}

async fn end_user_42_connects_kustomer_and_the_backend_fetches_its_token(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42", "email": "Jane@Acme.example", "display_name": "Jane"},
               "allowed_providers": ["kustomer"], "tags": {"plan": "pro"}}),
    )
    .await;
    let connect_url = session["connect_url"].as_str().unwrap();
    assert!(connect_url.starts_with(&format!("{}/connect/chc_", app.address)));
    assert!(session["expires_at"].as_str().unwrap().ends_with('Z'));

    let browser = app.new_browser();
    let page = unescape(&browser.get_html(&path_of(connect_url)).await);
    assert!(page.contains("Connect Kustomer"), "{page}");
    assert!(
        !page.contains("Connect Klaviyo"),
        "only the allowed provider"
    );
    assert!(page.contains("for <strong>Jane</strong>"));
    let done = end_user_connects(&browser, connect_url, "kustomer", None, "allow").await;
    assert_eq!(done.status(), 200);
    let page = unescape(&done.text().await.unwrap());
    assert!(page.contains("Kustomer account"), "{page}");
    assert!(page.contains("connected"));
    assert!(page.contains("You can close this window."));

    let client_id = backend_finds_the_connection_of_end_user_42(&app, &key).await;
    let (status, token) = api_get(
        &app,
        &key,
        "/api/v1/providers/kustomer/token?end_user_id=42",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(token["client_id"], client_id.as_str());
    assert!(token["access_token"].as_str().unwrap().len() > 10);
    the_session_is_audited_without_its_token(&app, session["token"].as_str().unwrap()).await;
}

/// A service API GET with the key: (status, JSON body).
pub(crate) async fn api_get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The backend's two ways to list end user 42's connections; returns the client id.
async fn backend_finds_the_connection_of_end_user_42(app: &TestApp, key: &str) -> String {
    let (_, listed) = api_get(app, key, "/api/v1/end-users/42/connections").await;
    assert_eq!(listed["end_user"]["id"], "42");
    assert_eq!(listed["end_user"]["email"], "jane@acme.example");
    let connection = &listed["connections"][0];
    assert_eq!(connection["provider"], "kustomer");
    assert_eq!(connection["end_user_id"], "42");
    assert!(connection["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("plan-pro")));
    let (_, by_filter) = api_get(app, key, "/api/v1/clients?end_user_id=42").await;
    assert_eq!(by_filter["clients"][0]["id"], connection["id"]);
    assert_eq!(by_filter["clients"].as_array().unwrap().len(), 1);
    let (_, nobody) = api_get(app, key, "/api/v1/clients?end_user_id=43").await;
    assert_eq!(nobody["clients"], json!([]));
    connection["id"].as_str().unwrap().to_string()
}

async fn the_session_is_audited_without_its_token(app: &TestApp, token: &str) {
    let actions = app.audit_actions().await;
    for action in [
        "connect_session_created",
        "connect_session_opened",
        "connect_session_completed",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    let token = token.to_string();
    let leaked: i64 = app
        .db(move |conn| {
            audit_log::table
                .filter(audit_log::details.like(format!("%{token}%")))
                .count()
                .get_result(conn)
        })
        .await;
    assert_eq!(leaked, 0, "the token is never audited");
}

async fn connecting_the_same_account_again_updates_the_same_row(app: TestApp) {
    let key = team_key(&app).await;
    let body = json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"]});
    for _ in 0..2 {
        let session = session_for(&app, &key, body.clone()).await;
        let browser = app.new_browser();
        let url = session["connect_url"].as_str().unwrap();
        let done = end_user_connects(&browser, url, "klaviyo", Some("AcmeK1"), "allow").await;
        assert_eq!(done.status(), 200);
    }
    let clients = app.clients().await;
    assert_eq!(
        clients.len(),
        1,
        "one row for the same end user and account"
    );
    assert!(clients[0].end_user_id.is_some());
    assert_eq!(rows(&app).await.0, 1, "one end user");
}

async fn two_end_users_with_the_same_account_get_a_row_each(app: TestApp) {
    let key = team_key(&app).await;
    for end_user in ["42", "43"] {
        let session = session_for(&app, &key, json!({"end_user": {"id": end_user}})).await;
        let browser = app.new_browser();
        let url = session["connect_url"].as_str().unwrap();
        let done = end_user_connects(&browser, url, "klaviyo", Some("AcmeK1"), "allow").await;
        assert_eq!(done.status(), 200);
    }
    let clients = app.clients().await;
    assert_eq!(clients.len(), 2);
    assert_ne!(clients[0].end_user_id, clients[1].end_user_id);
    assert!(
        clients.iter().all(|c| c.is_default),
        "each end user's default"
    );
}

/// The signing secret as the admin settings page shows it.
async fn signing_secret(app: &TestApp) -> secrecy::SecretString {
    let settings = app
        .db(|conn| {
            let vault = connecthub::vault::Vault::new(
                &connecthub::config::EncryptionKey::parse(crate::helpers::TEST_KEY).unwrap(),
                None,
            );
            connecthub::connect::settings::load(conn, &vault)
                .map_err(|_| diesel::result::Error::NotFound)
        })
        .await;
    settings.signing_secret
}

async fn redirect_mode_returns_a_signed_url_without_code_or_state(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"],
               "success_url": "https://app.example.com/done?from=hub",
               "error_url": "https://app.example.com/failed"}),
    )
    .await;
    let browser = app.new_browser();
    let url = session["connect_url"].as_str().unwrap();
    let done = end_user_connects(&browser, url, "klaviyo", Some("AcmeK1"), "allow").await;
    assert_eq!(done.status(), 303);
    let back = location(&done);
    assert!(
        back.starts_with("https://app.example.com/done?from=hub&connection_id="),
        "{back}"
    );
    assert!(back.contains("&end_user_id=42&provider=klaviyo&status=success&ts="));
    for secret_param in ["code=", "state=", "chc_"] {
        assert!(!back.contains(secret_param), "{secret_param} in {back}");
    }
    let secret = signing_secret(&app).await;
    assert!(connecthub::connect::signature::verify(&back, &secret));
    let tampered = back.replace("end_user_id=42", "end_user_id=43");
    assert!(!connecthub::connect::signature::verify(&tampered, &secret));
    let client = app.clients().await.remove(0);
    assert!(back.contains(&format!("connection_id={}", client.id)));

    let failing = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"],
               "error_url": "https://app.example.com/failed"}),
    )
    .await;
    let browser = app.new_browser();
    let url = failing["connect_url"].as_str().unwrap();
    let denied = end_user_connects(&browser, url, "klaviyo", None, "deny").await;
    assert_eq!(denied.status(), 303);
    let back = location(&denied);
    assert!(back.starts_with(
        "https://app.example.com/failed?end_user_id=42&provider=klaviyo&status=error&error="
    ));
    assert!(connecthub::connect::signature::verify(&back, &secret));
}

async fn a_denied_consent_offers_try_again_on_the_same_session(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"]}),
    )
    .await;
    let url = session["connect_url"].as_str().unwrap();
    let browser = app.new_browser();
    let denied = end_user_connects(&browser, url, "klaviyo", None, "deny").await;
    assert_eq!(denied.status(), 400);
    let page = unescape(&denied.text().await.unwrap());
    assert!(page.contains("Klaviyo was not connected"), "{page}");
    assert!(page.contains("access was denied on the consent page"));
    assert!(page.contains(r#"href="/connect/again">Try again"#));
    let again = browser.get("/connect/again").await;
    assert_eq!(again.status(), 303);
    assert_eq!(location(&again), path_of(url));
    let page = unescape(&browser.get_html(&path_of(url)).await);
    assert!(page.contains("The last attempt did not work"));
    assert!(app.clients().await.is_empty());
    assert!(app
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "connect_session_failed"));
    let done = end_user_connects(&browser, url, "klaviyo", None, "allow").await;
    assert_eq!(done.status(), 200, "the same session still works");
    let stranger = app.new_browser().get("/connect/again").await;
    assert_eq!(
        stranger.status(),
        404,
        "no link remembered in another browser"
    );
}

async fn the_backend_disconnects_an_end_users_connection_with_revocation(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"]}),
    )
    .await;
    let browser = app.new_browser();
    end_user_connects(
        &browser,
        session["connect_url"].as_str().unwrap(),
        "klaviyo",
        None,
        "allow",
    )
    .await;
    let client = app.clients().await.remove(0);
    let token: Value = app
        .client
        .get(app.url("/api/v1/providers/klaviyo/token?end_user_id=42"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_string();
    assert!(app.sandbox_token_active("klaviyo", &access).await);
    let reader = app.api_key(&[Scope::ClientsRead]).await;
    let forbidden = app
        .client
        .delete(app.url(&format!("/api/v1/clients/{}", client.id)))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let unknown = app
        .client
        .delete(app.url("/api/v1/clients/67e55044-10b1-426f-9247-bb680e5fe0c8"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/clients/{}", client.id)))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revoked_at_provider"], true);
    assert!(!app.sandbox_token_active("klaviyo", &access).await);
    let gone = app
        .client
        .get(app.url("/api/v1/providers/klaviyo/token?end_user_id=42"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

async fn an_api_key_provider_is_connected_on_the_hosted_page(app: TestApp) {
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
    assert!(page.contains(r#"<label for="api-key-kustomer">Kustomer API key</label>"#));
    let csrf = page
        .split(r#"name="csrf_token" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let post = |api_key: &'static str, csrf: String| {
        let browser = &browser;
        let link = link.clone();
        async move {
            browser
                .client
                .post(browser.url(&format!("{link}/api-key/kustomer")))
                .form(&[("api_key", api_key), ("csrf_token", &csrf)])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = post("sandbox-kustomer-key-wrong", csrf.clone()).await;
    assert_eq!(wrong.status(), 400);
    assert!(unescape(&wrong.text().await.unwrap()).contains("the API key was rejected"));
    assert!(app.clients().await.is_empty());
    let no_csrf = post("sandbox-kustomer-key-acme-support", "forged".into()).await;
    assert_eq!(no_csrf.status(), 403);
    let right = post("sandbox-kustomer-key-acme-support", csrf).await;
    assert_eq!(right.status(), 200);
    assert!(unescape(&right.text().await.unwrap()).contains("connected"));
    let clients = app.clients().await;
    assert_eq!(clients.len(), 1);
    assert!(clients[0].end_user_id.is_some());
}

async fn the_result_page_reports_only_to_the_sessions_origins(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"],
               "allowed_origins": ["https://app.example.com"],
               "success_url": "https://app.example.com/done"}),
    )
    .await;
    let browser = app.new_browser();
    let done = end_user_connects(
        &browser,
        session["connect_url"].as_str().unwrap(),
        "klaviyo",
        None,
        "allow",
    )
    .await;
    assert_eq!(done.status(), 200, "popup mode renders the result page");
    assert_eq!(
        crate::helpers::header(done.headers(), "cross-origin-opener-policy"),
        "unsafe-none"
    );
    let page = done.text().await.unwrap();
    assert!(
        page.contains(r#"data-origins="[&#34;https://app.example.com&#34;]""#),
        "{page}"
    );
    assert!(!page.contains("<script>"), "no inline script");
    assert!(page.contains(r#"data-return-url="https://app.example.com/done?connection_id="#));
}
