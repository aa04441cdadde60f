//! Keeping connections alive: refresh (manual, background), rotation, invalid_grant and
//! reconnect, retries, disconnect with revocation, bulk actions, metrics and the alert.

use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::{clients, credentials};
use diesel::prelude::*;
use secrecy::ExposeSecret;
use serde_json::json;

on_both_backends!(
    manual_refresh_rotates_the_refresh_token,
    invalid_grant_needs_reconnect_and_reconnect_fixes_it,
    transient_refresh_failures_are_retried,
    rate_limited_refresh_waits_for_retry_after,
    provider_down_after_retries_is_recorded_for_later,
    disconnect_revokes_at_the_provider_and_destroys_secrets,
    members_cannot_touch_other_peoples_clients,
    bulk_actions_for_admins,
    metrics_and_the_refresh_alert,
);

/// The sealed tokens of a client, opened with the test key.
pub async fn stored_tokens(app: &TestApp, client_id: &str) -> (Option<String>, Option<String>) {
    let key = connecthub::config::EncryptionKey::parse(crate::helpers::TEST_KEY).unwrap();
    let vault = std::sync::Arc::new(connecthub::vault::Vault::new(&key, None));
    let id = client_id.to_string();
    let opened = app
        .db(move |conn| Ok(connecthub::clients::credentials::open(conn, &vault, &id).unwrap()))
        .await;
    match opened {
        Some(o) => (
            o.access_token.map(|t| t.expose_secret().to_string()),
            o.refresh_token.map(|t| t.expose_secret().to_string()),
        ),
        None => (None, None),
    }
}

async fn connected(app: &TestApp, account: &str) -> connecthub::clients::Client {
    let done = app.connect("klaviyo", Some(account)).await;
    assert_eq!(location(&done), "/admin/clients");
    app.clients()
        .await
        .into_iter()
        .find(|c| c.provider_account_id == account)
        .expect("client created")
}

/// Posts an action as a JSON API caller (CSRF header included).
async fn post_json(app: &TestApp, path: &str) -> reqwest::Response {
    let token = app.csrf_token().await;
    app.client
        .post(app.url(path))
        .header("X-CSRF-Token", token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
}

fn refresh_path(client: &connecthub::clients::Client) -> String {
    format!(
        "/api/integrations/{}/oauth/refresh/{}",
        client.provider, client.id
    )
}

fn disconnect_path(client: &connecthub::clients::Client) -> String {
    format!(
        "/api/integrations/{}/disconnect/{}",
        client.provider, client.id
    )
}

async fn manual_refresh_rotates_the_refresh_token(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let (old_access, old_refresh) = stored_tokens(&app, &client.id).await;
    let response = app
        .post_form(
            &refresh_path(&client),
            &[("redirect_path", "/admin/clients")],
        )
        .await;
    assert_eq!(location(&response), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: Refreshed the token of Acme Store"
    );
    let (new_access, new_refresh) = stored_tokens(&app, &client.id).await;
    assert_ne!(new_access, old_access);
    assert_ne!(
        new_refresh, old_refresh,
        "the rotated refresh token is stored"
    );
    assert!(
        !app.sandbox_token_active("klaviyo", old_refresh.as_deref().unwrap())
            .await,
        "the old one is dead at the provider"
    );
    assert!(
        app.sandbox_token_active("klaviyo", new_refresh.as_deref().unwrap())
            .await
    );
    assert!(
        app.sandbox_token_active("klaviyo", new_access.as_deref().unwrap())
            .await
    );
    let after = app.clients().await.remove(0);
    assert!(after.last_refreshed_at.is_some());
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        1
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"token_refreshed".to_string()));
}

async fn invalid_grant_needs_reconnect_and_reconnect_fixes_it(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    app.sandbox_faults(json!({"provider": "klaviyo", "revoke_all": true}))
        .await;
    let response = post_json(&app, &refresh_path(&client)).await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "needs_reauth");
    let calls_after_failure =
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"].clone();
    assert_eq!(calls_after_failure, 1, "invalid_grant is not retried");
    let html = app.get_html("/admin/clients").await;
    assert!(html.contains("Reconnect needed"));
    assert!(html.contains(">Reconnect</a>"));
    // Asking again does not call the provider while the client needs reconnecting.
    assert_eq!(post_json(&app, &refresh_path(&client)).await.status(), 409);
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        1
    );

    // Reconnect: the same flow, the same row, active again.
    let again = connected(&app, "AcmeK1").await;
    assert_eq!(again.id, client.id);
    assert_eq!(again.status.as_str(), "active");
    assert_eq!(again.last_error, None);
    assert_eq!(post_json(&app, &refresh_path(&client)).await.status(), 200);
}

async fn transient_refresh_failures_are_retried(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 2, "token_fault": {"kind": "status", "status": 500}})).await;
    let response = post_json(&app, &refresh_path(&client)).await;
    assert_eq!(response.status(), 200);
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["token_calls"]["failed"], 2);
    assert_eq!(stats["token_calls"]["refresh_token"], 3);
}

async fn rate_limited_refresh_waits_for_retry_after(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    app.sandbox_faults(json!({"provider": "klaviyo", "rate_limit_next": 1, "rate_limit_token": true, "retry_after_secs": 1})).await;
    let started = std::time::Instant::now();
    let response = post_json(&app, &refresh_path(&client)).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(950),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["failed"],
        1
    );
}

async fn provider_down_after_retries_is_recorded_for_later(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let (access, _) = stored_tokens(&app, &client.id).await;
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 20, "token_fault": {"kind": "status", "status": 503}})).await;
    let response = post_json(&app, &refresh_path(&client)).await;
    assert_eq!(response.status(), 503);
    let id = client.id.clone();
    let (failures, retry_after): (i32, Option<chrono::NaiveDateTime>) = app
        .db(move |conn| {
            credentials::table
                .find(id)
                .select((credentials::refresh_failures, credentials::retry_after))
                .first(conn)
        })
        .await;
    assert_eq!(failures, 1);
    assert!(
        retry_after.is_some_and(|t| t > connecthub::db::now()),
        "the refresher waits before trying again"
    );
    let after = app.clients().await.remove(0);
    assert_eq!(
        after.status.as_str(),
        "active",
        "the current token still works"
    );
    assert!(after.last_error.unwrap().contains("provider unavailable"));
    assert_eq!(
        stored_tokens(&app, &client.id).await.0,
        access,
        "the token was kept"
    );
}

async fn disconnect_revokes_at_the_provider_and_destroys_secrets(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let (access, refresh) = stored_tokens(&app, &client.id).await;
    let response = app.post_form(&disconnect_path(&client), &[]).await;
    assert_eq!(location(&response), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: Disconnected Acme Store; Klaviyo revoked its tokens"
    );
    assert!(!app.sandbox_token_active("klaviyo", &access.unwrap()).await);
    assert!(!app.sandbox_token_active("klaviyo", &refresh.unwrap()).await);
    let id = client.id.clone();
    let rows: i64 = app
        .db(move |conn| {
            credentials::table
                .filter(credentials::client_id.eq(id))
                .count()
                .get_result(conn)
        })
        .await;
    assert_eq!(rows, 0, "the secrets are gone");
    let after = app.clients().await.remove(0);
    assert_eq!(after.status.as_str(), "disconnected");
    assert!(!after.is_default);
    assert!(app
        .audit_actions()
        .await
        .contains(&"client_disconnected".to_string()));
    // Refreshing a disconnected client is refused and calls nobody.
    assert_eq!(post_json(&app, &refresh_path(&client)).await.status(), 502);
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        0
    );
}

#[tokio::test]
async fn disconnect_still_destroys_secrets_when_revocation_fails() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("KLAVIYO_REVOKE_URL", "http://127.0.0.1:9/revoke"),
            ("PROVIDER_MAX_RETRIES", "1"),
        ],
    )
    .await;
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    app.post_form(&disconnect_path(&client), &[]).await;
    let toast = app.toast_on("/admin/clients").await;
    assert!(
        toast.starts_with("error: Disconnected Acme Store and deleted its secrets, but Klaviyo did not confirm the revocation"),
        "{toast}"
    );
    assert_eq!(stored_tokens(&app, &client.id).await, (None, None));
    assert_eq!(app.clients().await[0].status.as_str(), "disconnected");
}

async fn members_cannot_touch_other_peoples_clients(app: TestApp) {
    app.login_as(Role::Member).await;
    let client = connected(&app, "AcmeK1").await;
    let other = app.new_browser();
    other.login_as(Role::Member).await;
    // Another owner's client is "not found", like an unknown one (no existence oracle).
    for path in [refresh_path(&client), disconnect_path(&client)] {
        let response = other.post_form(&path, &[]).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(
        other
            .post_form(
                "/api/integrations/klaviyo/oauth/refresh/no-such-client",
                &[]
            )
            .await
            .status(),
        404
    );
    assert_eq!(
        app.post_form(
            &format!("/api/integrations/kustomer/disconnect/{}", client.id),
            &[]
        )
        .await
        .status(),
        404,
        "wrong provider"
    );
    assert_eq!(
        other
            .post_form(
                "/admin/clients/bulk",
                &[("action", "disconnect"), ("client_id", &client.id)]
            )
            .await
            .status(),
        403
    );
    // Nothing changed.
    let after = app.clients().await.remove(0);
    assert_eq!(after.status.as_str(), "active");
    assert!(stored_tokens(&app, &client.id).await.0.is_some());
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        0
    );
    // Without the CSRF token the owner is refused too.
    let forged = app
        .client
        .post(app.url(&disconnect_path(&client)))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(app.clients().await[0].status.as_str(), "active");
    // Members see only their own clients.
    assert!(!other
        .get_html("/admin/clients")
        .await
        .contains("Acme Store"));
}

async fn bulk_actions_for_admins(app: TestApp) {
    app.login_as(Role::Admin).await;
    let acme = connected(&app, "AcmeK1").await;
    let globex = connected(&app, "GlobexK2").await;
    let hooli = connected(&app, "HooliK3").await;
    let html = app.get_html("/admin/clients").await;
    assert!(html.contains(r#"id="bulk-form""#));
    let response = app
        .post_form(
            "/admin/clients/bulk",
            &[
                ("action", "refresh"),
                ("client_id", &acme.id),
                ("client_id", &globex.id),
            ],
        )
        .await;
    assert_eq!(location(&response), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: Refreshed 2 client(s); 0 failed"
    );
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        2
    );

    app.post_form(
        "/admin/clients/bulk",
        &[
            ("action", "disconnect"),
            ("client_id", &acme.id),
            ("client_id", &globex.id),
        ],
    )
    .await;
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: Disconnected 2 client(s); 0 failed"
    );
    let statuses: Vec<(String, String)> = app
        .db(|conn| {
            clients::table
                .order(clients::created_at.asc())
                .select((clients::provider_account_id, clients::status))
                .load(conn)
        })
        .await;
    assert_eq!(
        statuses,
        [
            ("AcmeK1".to_string(), "disconnected".to_string()),
            ("GlobexK2".to_string(), "disconnected".to_string()),
            ("HooliK3".to_string(), "active".to_string())
        ]
    );
    bulk_bad_input_changes_nothing(&app, &hooli.id).await;
}

/// Bad input: clear 400, nothing changed. A malformed id is bad input; a well-formed
/// unknown one is a client that failed.
async fn bulk_bad_input_changes_nothing(app: &TestApp, hooli: &str) {
    assert_eq!(
        app.post_form("/admin/clients/bulk", &[("action", "refresh")])
            .await
            .status(),
        400
    );
    assert_eq!(
        app.post_form(
            "/admin/clients/bulk",
            &[("action", "explode"), ("client_id", hooli)]
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        app.post_form(
            "/admin/clients/bulk",
            &[("action", "disconnect"), ("client_id", "nope")],
        )
        .await
        .status(),
        400
    );
    let unknown = app
        .post_form(
            "/admin/clients/bulk",
            &[
                ("action", "disconnect"),
                ("client_id", "00000000-0000-4000-8000-000000000000"),
            ],
        )
        .await;
    assert_eq!(location(&unknown), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "error: Disconnected 0 client(s); 1 failed"
    );
    assert_eq!(app.clients().await[2].status.as_str(), "active");
}

async fn metrics_and_the_refresh_alert(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    assert_eq!(post_json(&app, &refresh_path(&client)).await.status(), 200);
    assert!(
        !app.get_html("/admin/clients")
            .await
            .contains("refresh-alert"),
        "no alert while refreshes succeed"
    );
    app.sandbox_faults(json!({"provider": "klaviyo", "revoke_all": true}))
        .await;
    assert_eq!(post_json(&app, &refresh_path(&client)).await.status(), 409);
    let html = crate::helpers::unescape(&app.get_html("/admin/clients").await);
    assert!(
        html.contains("1 of 2 token refreshes failed in the last 5 minutes (50%)"),
        "the alert banner shows"
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"connecthub_oauth_flows_total{provider="klaviyo",stage="started"} 1"#,
        r#"connecthub_oauth_flows_total{provider="klaviyo",stage="completed"} 1"#,
        r#"connecthub_token_refreshes_total{outcome="success",provider="klaviyo"} 1"#,
        r#"connecthub_token_refreshes_total{outcome="invalid_grant",provider="klaviyo"} 1"#,
        r#"connecthub_clients{provider="klaviyo",status="needs_reauth"} 1"#,
        "connecthub_token_refresh_duration_seconds_count{provider=\"klaviyo\"} 2",
    ] {
        assert!(metrics.contains(line), "metrics lack {line}:\n{metrics}");
    }
    assert!(!metrics.contains("skla_"), "no token in metrics");
}

#[tokio::test]
async fn metrics_token_protects_the_endpoint() {
    let app = spawn_app_with(Backend::Sqlite, &[("METRICS_TOKEN", "scrape-secret")]).await;
    assert_eq!(app.get("/metrics").await.status(), 401);
    let ok = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// The background refresher renews a token that is about to expire, on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refresher_renews_expiring_tokens() {
    let app = spawn_app_with(Backend::Sqlite, &[("SANDBOX_ACCESS_TOKEN_TTL_SECS", "3")]).await;
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let (first, _) = stored_tokens(&app, &client.id).await;
    let mut refreshed = false;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if app.clients().await[0].last_refreshed_at.is_some() {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "refreshed within 6 s of connecting");
    let (second, _) = stored_tokens(&app, &client.id).await;
    assert_ne!(first, second);
    assert!(app.sandbox_token_active("klaviyo", &second.unwrap()).await);
    let calls = app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"]
        .as_i64()
        .unwrap();
    assert!(
        (1..=2).contains(&calls),
        "one refresh per expiry, not a busy loop: {calls}"
    );
}

/// A token endpoint that times out once is retried and the refresh succeeds.
#[tokio::test]
async fn refresh_timeout_then_success() {
    let app = spawn_app_with(Backend::Sqlite, &[("PROVIDER_TIMEOUT_SECS", "1")]).await;
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 1, "token_fault": {"kind": "delay", "ms": 1500}}))
        .await;
    let response = post_json(&app, &refresh_path(&client)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        2
    );
    assert!(app.clients().await[0].last_refreshed_at.is_some());
}
