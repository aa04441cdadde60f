//! The refresh history of a connection: each attempt with its trigger, outcome, duration
//! and the provider's error, on the client's page and at `GET /api/v1/clients/{id}/refreshes`;
//! never a token; at most 20 kept per connection.

use crate::helpers::{location, unescape, TestApp};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::{credentials, refresh_attempts};
use diesel::prelude::*;
use serde_json::{json, Value};

on_both_backends!(
    good_and_failed_refreshes_are_shown_with_the_providers_error,
    the_21st_attempt_prunes_the_oldest,
    the_history_endpoint_refuses_unknown_clients_and_missing_scopes,
    a_history_that_cannot_be_written_does_not_lose_the_rotated_tokens,
);

mod background {
    crate::with_each_backend!(the_background_refresher_is_named_as_the_trigger);
    use super::*;
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

/// The Refresh button of the client's page, as a JSON caller.
async fn refresh(app: &TestApp, client: &connecthub::clients::Client) -> reqwest::Response {
    let token = app.csrf_token().await;
    app.client
        .post(app.url(&format!(
            "/api/integrations/{}/oauth/refresh/{}",
            client.provider, client.id
        )))
        .header("X-CSRF-Token", token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
}

async fn history(app: &TestApp, key: &str, client_id: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/clients/{client_id}/refreshes")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn good_and_failed_refreshes_are_shown_with_the_providers_error(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let key = app.api_key(&[Scope::ClientsRead, Scope::TokensRead]).await;
    let (status, body) = history(&app, &key, &client.id).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"client_id": client.id, "attempts": []}));
    let page = app.get_html(&format!("/admin/clients/{}", client.id)).await;
    assert!(page.contains("No token refresh has been attempted yet."));

    assert_eq!(refresh(&app, &client).await.status(), 200);
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 1,
        "token_fault": {"kind": "status", "status": 401, "error": "invalid_client"}}))
        .await;
    // The provider refused: 502, and the client is marked Error.
    assert_eq!(refresh(&app, &client).await.status(), 502);
    // A hand-out of a token that is due refreshes first.
    let id = client.id.clone();
    app.db(move |conn| {
        diesel::update(credentials::table.find(id))
            .set((
                credentials::refresh_at.eq(connecthub::db::now() - chrono::TimeDelta::minutes(1)),
                credentials::retry_after.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(conn)
    })
    .await;
    let handed = app.service_token(&key, &client.id).await;
    assert_eq!(handed.status(), 200);
    let handed: Value = handed.json().await.unwrap();
    let token = handed["access_token"].as_str().unwrap().to_string();

    let (status, body) = history(&app, &key, &client.id).await;
    assert_eq!(status, 200);
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{body}");
    let (newest, failed, first) = (&attempts[0], &attempts[1], &attempts[2]);
    assert_eq!(newest["trigger"], "hand_out");
    assert_eq!(newest["outcome"], "success");
    assert_eq!(failed["trigger"], "manual");
    assert_eq!(failed["outcome"], "rejected");
    assert_eq!(failed["error_code"], "invalid_client");
    assert_eq!(
        failed["error_description"],
        "Injected by the sandbox control API"
    );
    assert_eq!(first["trigger"], "manual");
    assert_eq!(first["outcome"], "success");
    assert_eq!(first["error_code"], Value::Null);
    for attempt in attempts {
        assert!(attempt["duration_ms"].as_i64().is_some_and(|ms| ms >= 0));
        assert!(attempt["at"].as_str().unwrap().ends_with('Z'));
    }
    // Never a token, in the answer or on the page.
    let (access, refresh_token) = crate::lifecycle::stored_tokens(&app, &client.id).await;
    let text = body.to_string();
    for secret in [Some(token), access, refresh_token].into_iter().flatten() {
        assert!(!text.contains(&secret));
    }
    let page = unescape(&app.get_html(&format!("/admin/clients/{}", client.id)).await);
    let table = page
        .split(r#"<table class="table" id="refreshes">"#)
        .nth(1)
        .unwrap();
    let table = table.split("</table>").next().unwrap();
    assert_eq!(table.matches(r#"<tr class="refresh-attempt">"#).count(), 3);
    assert!(table.contains(r#"<code class="error-code">invalid_client</code>"#));
    assert!(table.contains("Injected by the sandbox control API"));
    assert!(table.contains("hand_out") && table.contains("manual"));
    assert!(table.contains(r#"<span class="badge badge-danger">rejected</span>"#));
}

async fn the_21st_attempt_prunes_the_oldest(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    // The first attempt fails, so it can be told apart from the others.
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 1,
        "token_fault": {"kind": "status", "status": 400, "error": "invalid_scope"}}))
        .await;
    assert_eq!(refresh(&app, &client).await.status(), 502);
    for _ in 0..19 {
        assert_eq!(refresh(&app, &client).await.status(), 200);
    }
    let (_, body) = history(&app, &key, &client.id).await;
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 20);
    assert_eq!(attempts[19]["error_code"], "invalid_scope");

    assert_eq!(refresh(&app, &client).await.status(), 200);
    let (_, body) = history(&app, &key, &client.id).await;
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 20);
    assert!(
        attempts.iter().all(|a| a["outcome"] == "success"),
        "the oldest went"
    );
    let id = client.id.clone();
    let stored: i64 = app
        .db(move |conn| {
            refresh_attempts::table
                .filter(refresh_attempts::client_id.eq(id))
                .count()
                .get_result(conn)
        })
        .await;
    assert_eq!(stored, 20, "pruned in the database, not only in the answer");
}

async fn the_history_endpoint_refuses_unknown_clients_and_missing_scopes(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let tokens_only = app.api_key(&[Scope::TokensRead]).await;
    let (status, body) = history(&app, &tokens_only, &client.id).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "insufficient_scope");
    let key = app.api_key(&[Scope::ClientsRead]).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) = history(&app, &key, &unknown).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    let (status, _) = history(&app, &key, "not-a-uuid").await;
    assert!(status == 404 || status == 400, "{status}");
}

/// Makes every insert into the refresh history fail (`on` true) or work again.
async fn refuse_history(app: &TestApp, on: bool) {
    app.db(move |conn| {
        let statements: &[&str] = match (&*conn, on) {
            (connecthub::db::DbConnection::Sqlite(_), true) => &["CREATE TRIGGER refuse_history \
                BEFORE INSERT ON refresh_attempts BEGIN SELECT RAISE(ABORT, 'refused'); END"],
            (connecthub::db::DbConnection::Sqlite(_), false) => &["DROP TRIGGER refuse_history"],
            (connecthub::db::DbConnection::Postgresql(_), true) => &[
                "CREATE FUNCTION refuse_history() RETURNS trigger LANGUAGE plpgsql \
                 AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
                "CREATE TRIGGER refuse_history BEFORE INSERT ON refresh_attempts \
                 FOR EACH ROW EXECUTE FUNCTION refuse_history()",
            ],
            (connecthub::db::DbConnection::Postgresql(_), false) => {
                &["DROP TRIGGER refuse_history ON refresh_attempts"]
            }
        };
        for statement in statements {
            diesel::sql_query(*statement).execute(conn)?;
        }
        Ok(())
    })
    .await;
}

/// The new tokens and their record are committed together; should the record fail, the
/// tokens are stored alone, since the provider has already rotated the refresh token.
async fn a_history_that_cannot_be_written_does_not_lose_the_rotated_tokens(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    let before = crate::lifecycle::stored_tokens(&app, &client.id).await;
    refuse_history(&app, true).await;
    assert_eq!(refresh(&app, &client).await.status(), 200);
    let after = crate::lifecycle::stored_tokens(&app, &client.id).await;
    assert_ne!(after.0, before.0, "the new access token is stored");
    assert_ne!(after.1, before.1, "the rotated refresh token is stored");
    let (_, body) = history(&app, &key, &client.id).await;
    assert_eq!(body["attempts"], json!([]), "the record was refused");

    // The stored refresh token is the live one: the sandbox would kill the grant on a
    // rotated one presented again, and answer invalid_grant.
    refuse_history(&app, false).await;
    assert_eq!(refresh(&app, &client).await.status(), 200);
    let (_, body) = history(&app, &key, &client.id).await;
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{body}");
    assert_eq!(attempts[0]["outcome"], "success");
}

/// With 2-s tokens the background refresher renews the token every second or so.
async fn the_background_refresher_is_named_as_the_trigger(backend: crate::helpers::Backend) {
    let app =
        crate::helpers::spawn_app_with(backend, &[("SANDBOX_ACCESS_TOKEN_TTL_SECS", "2")]).await;
    app.login_as(Role::Admin).await;
    let client = connected(&app, "AcmeK1").await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    let mut attempts = Vec::new();
    for _ in 0..60 {
        let (_, body) = history(&app, &key, &client.id).await;
        attempts = body["attempts"].as_array().unwrap().clone();
        if !attempts.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let first = attempts.last().expect("the refresher refreshed within 6 s");
    assert_eq!(first["trigger"], "refresher");
    assert_eq!(first["outcome"], "success");
}
