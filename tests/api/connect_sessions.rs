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
    bad_session_requests_are_refused_and_change_nothing,
    unusable_links_get_clear_pages_and_change_nothing,
    a_denied_consent_offers_try_again_on_the_same_session,
    reconnecting_another_end_users_client_is_refused,
    the_backend_disconnects_an_end_users_connection_with_revocation,
    an_api_key_provider_is_connected_on_the_hosted_page,
    the_result_page_reports_only_to_the_sessions_origins,
    expired_sessions_are_marked_and_audited_by_the_housekeeping,
);

/// A key for the team's backend: sessions, lists and tokens.
pub(crate) async fn team_key(app: &TestApp) -> String {
    app.api_key(&[Scope::ConnectWrite, Scope::ClientsRead, Scope::TokensRead])
        .await
}

async fn create_session(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
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
    browser.callback(&back).await
}

async fn rows(app: &TestApp) -> (i64, i64, i64) {
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

    let listed: Value = app
        .client
        .get(app.url("/api/v1/end-users/42/connections"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["end_user"]["id"], "42");
    assert_eq!(listed["end_user"]["email"], "jane@acme.example");
    let connection = &listed["connections"][0];
    assert_eq!(connection["provider"], "kustomer");
    assert_eq!(connection["end_user_id"], "42");
    assert!(connection["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("plan-pro")));

    let token = app
        .client
        .get(app.url("/api/v1/providers/kustomer/token?end_user_id=42"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let token: Value = token.json().await.unwrap();
    assert_eq!(token["client_id"], connection["id"]);
    assert!(token["access_token"].as_str().unwrap().len() > 10);

    let by_filter: Value = app
        .client
        .get(app.url("/api/v1/clients?end_user_id=42"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_filter["clients"].as_array().unwrap().len(), 1);
    let nobody: Value = app
        .client
        .get(app.url("/api/v1/clients?end_user_id=43"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(nobody["clients"], json!([]));

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
    let token_in_audit = session["token"].as_str().unwrap().to_string();
    let leaked: i64 = app
        .db(move |conn| {
            audit_log::table
                .filter(audit_log::details.like(format!("%{token_in_audit}%")))
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

async fn bad_session_requests_are_refused_and_change_nothing(app: TestApp) {
    let key = team_key(&app).await;
    let long_id = "x".repeat(256);
    let cases = [
        (json!({}), "end_user"),
        (json!({"end_user": {"id": ""}}), "end_user.id"),
        (json!({"end_user": {"id": long_id}}), "end_user.id"),
        (json!({"end_user": {"id": "4\u{0}2"}}), "end_user.id"),
        (
            json!({"end_user": {"id": "42", "email": "not-an-email"}}),
            "end_user.email",
        ),
        (
            json!({"end_user": {"id": "42"}, "allowed_providers": ["nope"]}),
            "allowed_providers",
        ),
        (
            json!({"end_user": {"id": "42"}, "tags": {"Bad Tag": "x y"}}),
            "tags",
        ),
        (
            json!({"end_user": {"id": "42"}, "success_url": "https://evil.example/x"}),
            "success_url",
        ),
        (
            json!({"end_user": {"id": "42"}, "success_url": "https://app.example.com.evil.example/"}),
            "success_url",
        ),
        (
            json!({"end_user": {"id": "42"}, "error_url": "javascript:alert(1)"}),
            "error_url",
        ),
        (
            json!({"end_user": {"id": "42"}, "allowed_origins": ["https://evil.example"]}),
            "allowed_origins",
        ),
        (
            json!({"end_user": {"id": "42"}, "allowed_origins": ["https://app.example.com/path"]}),
            "allowed_origins",
        ),
        (
            json!({"end_user": {"id": "42"}, "reconnect_client_id": "not-a-uuid"}),
            "reconnect_client_id",
        ),
    ];
    for (body, field) in cases {
        let response = create_session(&app, &key, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_request", "{body}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let not_json = app
        .client
        .post(app.url("/api/v1/connect-sessions"))
        .bearer_auth(&key)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let unknown_field = create_session(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "sucess_url": "x"}),
    )
    .await;
    assert_eq!(unknown_field.status(), 400);
    let reader = app.api_key(&[Scope::ClientsRead]).await;
    let no_scope = create_session(&app, &reader, json!({"end_user": {"id": "42"}})).await;
    assert_eq!(no_scope.status(), 403);
    let no_key = create_session(&app, "chk_wrong", json!({"end_user": {"id": "42"}})).await;
    assert_eq!(no_key.status(), 401);
    assert_eq!(rows(&app).await, (0, 0, 0), "nothing was stored");
}

async fn unusable_links_get_clear_pages_and_change_nothing(app: TestApp) {
    let key = team_key(&app).await;
    let browser = app.new_browser();
    for (path, status, text) in [
        (
            "/connect/chc_forgedforgedforgedforgedforgedforgedforged1",
            404,
            "This connect link is not valid",
        ),
        (
            "/connect/nothing-like-a-token",
            404,
            "This connect link is not valid",
        ),
        (
            &format!("/connect/chc_{}", "a".repeat(200)),
            404,
            "This connect link is not valid",
        ),
    ] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert!(
            unescape(&response.text().await.unwrap()).contains(text),
            "{path}"
        );
    }
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"]}),
    )
    .await;
    let link = path_of(session["connect_url"].as_str().unwrap());
    let not_offered = browser.get(&format!("{link}/start/kustomer")).await;
    assert_eq!(not_offered.status(), 403);
    assert!(not_offered
        .text()
        .await
        .unwrap()
        .contains("not offered by this link"));
    let unknown_provider = browser.get(&format!("{link}/start/nope")).await;
    assert_eq!(unknown_provider.status(), 403);

    let expired = session_for(&app, &key, json!({"end_user": {"id": "44"}})).await;
    let expired_id = expired["session_id"].as_str().unwrap().to_string();
    app.db(move |conn| {
        diesel::update(connect_sessions::table.find(expired_id))
            .set(
                connect_sessions::expires_at
                    .eq(connecthub::db::now() - chrono::TimeDelta::seconds(1)),
            )
            .execute(conn)
    })
    .await;
    let expired_link = path_of(expired["connect_url"].as_str().unwrap());
    for path in [
        expired_link.clone(),
        format!("{expired_link}/start/klaviyo"),
    ] {
        let response = browser.get(&path).await;
        assert_eq!(response.status(), 410, "{path}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("This connect link has expired"));
    }
    assert!(app
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "connect_session_expired"));

    let done = end_user_connects(
        &browser,
        session["connect_url"].as_str().unwrap(),
        "klaviyo",
        None,
        "allow",
    )
    .await;
    assert_eq!(done.status(), 200);
    for path in [link.clone(), format!("{link}/start/klaviyo")] {
        let reused = browser.get(&path).await;
        assert_eq!(reused.status(), 410, "{path}");
        assert!(reused.text().await.unwrap().contains("already used"));
    }
    assert_eq!(
        app.clients().await.len(),
        1,
        "only the one completed connection"
    );
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

async fn reconnecting_another_end_users_client_is_refused(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(&app, &key, json!({"end_user": {"id": "42"}})).await;
    let browser = app.new_browser();
    let done = end_user_connects(
        &browser,
        session["connect_url"].as_str().unwrap(),
        "klaviyo",
        None,
        "allow",
    )
    .await;
    assert_eq!(done.status(), 200);
    let client = app.clients().await.remove(0);
    session_for(&app, &key, json!({"end_user": {"id": "43"}})).await;
    let before = rows(&app).await;
    for end_user in ["43", "99"] {
        let refused = create_session(
            &app,
            &key,
            json!({"end_user": {"id": end_user}, "reconnect_client_id": client.id}),
        )
        .await;
        assert_eq!(refused.status(), 400, "{end_user}");
        let answer: Value = refused.json().await.unwrap();
        assert_eq!(answer["field"], "reconnect_client_id");
    }
    assert_eq!(rows(&app).await, before, "nothing changed");
    let own = create_session(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "reconnect_client_id": client.id}),
    )
    .await;
    assert_eq!(
        own.status(),
        201,
        "the end user's own client may be reconnected"
    );
    let own: Value = own.json().await.unwrap();
    let page = app
        .new_browser()
        .get_html(&path_of(own["connect_url"].as_str().unwrap()))
        .await;
    assert!(
        page.contains("Connect Klaviyo") && !page.contains("Connect Kustomer"),
        "only the client's provider"
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

async fn expired_sessions_are_marked_and_audited_by_the_housekeeping(app: TestApp) {
    let key = team_key(&app).await;
    let due = session_for(&app, &key, json!({"end_user": {"id": "42"}})).await;
    let fresh = session_for(&app, &key, json!({"end_user": {"id": "43"}})).await;
    let due_id = due["session_id"].as_str().unwrap().to_string();
    let id = due_id.clone();
    app.db(move |conn| {
        diesel::update(connect_sessions::table.find(id))
            .set(
                connect_sessions::expires_at
                    .eq(connecthub::db::now() - chrono::TimeDelta::seconds(1)),
            )
            .execute(conn)
    })
    .await;
    assert_eq!(connecthub::connect::expire_due(&app.pool).await.unwrap(), 1);
    assert_eq!(
        connecthub::connect::expire_due(&app.pool).await.unwrap(),
        0,
        "once"
    );
    let statuses: Vec<(String, String)> = app
        .db(|conn| {
            connect_sessions::table
                .select((connect_sessions::id, connect_sessions::status))
                .load(conn)
        })
        .await;
    assert!(statuses.contains(&(due_id, "expired".into())));
    assert!(statuses.contains(&(
        fresh["session_id"].as_str().unwrap().to_string(),
        "open".into()
    )));
    let expired = app
        .audit_actions()
        .await
        .iter()
        .filter(|a| *a == "connect_session_expired")
        .count();
    assert_eq!(expired, 1);
    let page = app
        .new_browser()
        .get(&path_of(due["connect_url"].as_str().unwrap()))
        .await;
    assert_eq!(page.status(), 410);
    let other = app
        .client
        .get(app.url(&format!(
            "/api/v1/clients/{}",
            due["session_id"].as_str().unwrap()
        )))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let status = other.status();
    let body = other.text().await.unwrap();
    assert!(status == 404 || status == 405, "{status} {body}");
    assert!(
        body.starts_with('{'),
        "JSON like every /api/v1 answer: {body}"
    );
}
