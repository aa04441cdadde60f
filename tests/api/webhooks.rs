//! Outgoing webhooks: endpoints over the service API, every connection event produced by
//! the real action at the sandbox, signatures checked by the receiver with the
//! `standardwebhooks` crate, retries, 410/4xx, rotation, bad input.

use crate::helpers::receiver::Receiver;
use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use serde_json::{json, Value};
use std::time::Duration;

with_each_backend!(
    every_connection_event_reaches_the_receiver_signed_and_without_tokens,
    a_receiver_that_is_down_gets_retries_with_the_same_id_then_success,
    gone_disables_the_endpoint_and_other_client_errors_end_the_delivery,
    after_rotation_both_secrets_verify_during_the_overlap,
    bad_endpoints_are_refused_and_nothing_is_stored,
    an_endpoint_failing_for_too_long_is_disabled_and_the_page_says_why,
    connect_sessions_report_their_end_to_the_team,
);

/// Retries in tests come after 50, 100 and 150 ms.
pub const FAST: [(&str, &str); 1] = [("WEBHOOK_RETRY_SCHEDULE", "50ms,100ms,150ms")];

pub async fn webhook_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &FAST).await
}

/// Creates an endpoint through the service API; answers its id and secret.
pub async fn endpoint(app: &TestApp, key: &str, url: &str, types: &[&str]) -> (String, String) {
    let response = app
        .client
        .post(app.url("/api/v1/webhook-endpoints"))
        .bearer_auth(key)
        .json(&json!({"url": url, "description": "the team's backend", "event_types": types}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    (body["id"].as_str().unwrap().to_string(), secret)
}

pub async fn service_post(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn endpoint_view(app: &TestApp, key: &str, id: &str) -> Value {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/webhook-endpoints/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

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

async fn every_connection_event_reaches_the_receiver_signed_and_without_tokens(backend: Backend) {
    let app = webhook_app(backend).await;
    let receiver = Receiver::start().await;
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    let (_, secret) = endpoint(&app, &key, &receiver.url, &[]).await;
    app.login_as(Role::Admin).await;

    assert_eq!(
        location(&app.connect("klaviyo", Some("AcmeK1")).await),
        "/admin/clients"
    );
    let created = receiver.wait_for_type("connection.created").await;
    let client = app.clients().await.remove(0);
    assert_eq!(created.json()["data"]["connection_id"], client.id.as_str());
    assert_eq!(created.json()["data"]["provider"], "klaviyo");
    assert_eq!(created.json()["data"]["account_id"], "AcmeK1");
    app.connect("klaviyo", Some("AcmeK1")).await;
    receiver.wait_for_type("connection.reconnected").await;

    let refresh = format!("/api/integrations/klaviyo/oauth/refresh/{}", client.id);
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 20, "token_fault": {"kind": "status", "status": 503}})).await;
    assert_eq!(post_json(&app, &refresh).await.status(), 503);
    let failed = receiver.wait_for_type("connection.refresh_failed").await;
    assert_eq!(failed.json()["data"]["failures"], 1);
    let alert = receiver.wait_for_type("alert.refresh_failure_rate").await;
    assert_eq!(alert.json()["data"]["failed"], 1);

    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 0}))
        .await;
    assert_eq!(post_json(&app, &refresh).await.status(), 200);
    receiver.wait_for_type("connection.recovered").await;

    app.sandbox_faults(json!({"provider": "klaviyo", "revoke_all": true}))
        .await;
    assert_eq!(post_json(&app, &refresh).await.status(), 409);
    receiver.wait_for_type("connection.needs_reauth").await;

    let disconnect = format!("/api/integrations/klaviyo/disconnect/{}", client.id);
    assert!(post_json(&app, &disconnect).await.status().is_success());
    receiver.wait_for_type("connection.disconnected").await;

    let (access, refresh_token) = crate::lifecycle::stored_tokens(&app, &client.id).await;
    assert_eq!(
        (access, refresh_token),
        (None, None),
        "disconnect destroyed the secrets"
    );
    for delivery in receiver.received() {
        assert!(
            delivery.verifies_with(&secret),
            "{} verifies",
            delivery.event_type()
        );
        assert!(delivery.id.starts_with("msg_"));
        assert!(
            !delivery.body.contains("access_token") && !delivery.body.contains("refresh_token")
        );
    }
    // In order of creation.
    let types: Vec<String> = receiver.received().iter().map(|d| d.event_type()).collect();
    let position = |t: &str| types.iter().position(|x| x == t).unwrap();
    assert!(position("connection.created") < position("connection.reconnected"));
    assert!(position("connection.recovered") < position("connection.needs_reauth"));
    assert!(position("connection.needs_reauth") < position("connection.disconnected"));
}

async fn a_receiver_that_is_down_gets_retries_with_the_same_id_then_success(backend: Backend) {
    let app = webhook_app(backend).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(503, None), (429, Some("1")), (500, None)]);
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    let (id, secret) = endpoint(&app, &key, &receiver.url, &["connection.created"]).await;
    let test = service_post(
        &app,
        &key,
        &format!("/api/v1/webhook-endpoints/{id}/test"),
        json!({}),
    )
    .await;
    assert_eq!(test.status(), 202);
    let event_id = test.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let received = receiver.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 4, "three failures, then the success");
    assert!(
        received.iter().all(|d| d.id == event_id),
        "the same webhook-id every time"
    );
    assert!(received.iter().all(|d| d.verifies_with(&secret)));
    assert!(
        received[0].body == received[3].body,
        "the same bytes every time"
    );
    let waited = received[2].at - received[1].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured ({waited:?})"
    );
    let first_wait = received[1].at - received[0].at;
    assert!(
        first_wait >= Duration::from_millis(40),
        "the first retry waited ({first_wait:?})"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 4, "nothing after the success");
    let view = endpoint_view(&app, &key, &id).await;
    let statuses: Vec<i64> = view["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [200, 500, 429, 503],
        "the delivery log, newest first"
    );
    assert_eq!(view["attempts"][0]["response"], "ok");
}

async fn gone_disables_the_endpoint_and_other_client_errors_end_the_delivery(backend: Backend) {
    let app = webhook_app(backend).await;
    let receiver = Receiver::start().await;
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    let (id, _) = endpoint(&app, &key, &receiver.url, &[]).await;
    receiver.answer(&[(400, None)]);
    service_post(
        &app,
        &key,
        &format!("/api/v1/webhook-endpoints/{id}/test"),
        json!({}),
    )
    .await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), 1, "a 400 is not retried");
    assert_eq!(endpoint_view(&app, &key, &id).await["enabled"], true);

    receiver.answer(&[(410, None)]);
    service_post(
        &app,
        &key,
        &format!("/api/v1/webhook-endpoints/{id}/test"),
        json!({}),
    )
    .await;
    receiver.wait_for(2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), 2, "a 410 is not retried");
    let view = endpoint_view(&app, &key, &id).await;
    assert_eq!(view["enabled"], false);
    assert_eq!(view["disabled_reason"], "the receiver answered 410 Gone");

    // A disabled endpoint gets nothing: connecting now sends no event to it.
    app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some("AcmeK1")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2);
}

async fn after_rotation_both_secrets_verify_during_the_overlap(backend: Backend) {
    let app = webhook_app(backend).await;
    let receiver = Receiver::start().await;
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    let (id, old_secret) = endpoint(&app, &key, &receiver.url, &[]).await;
    let rotated = service_post(
        &app,
        &key,
        &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
        json!({}),
    )
    .await;
    assert_eq!(rotated.status(), 200);
    let new_secret = rotated.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_secret, old_secret);
    service_post(
        &app,
        &key,
        &format!("/api/v1/webhook-endpoints/{id}/test"),
        json!({}),
    )
    .await;
    let delivery = receiver.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert!(delivery.verifies_with(&new_secret));
    assert!(delivery.verifies_with(&old_secret));
    let signature = delivery.headers["webhook-signature"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(signature.matches("v1,").count(), 2, "{signature}");
    let forged = "whsec_".to_string() + &"A".repeat(32);
    assert!(!delivery.verifies_with(&forged));
    let view = endpoint_view(&app, &key, &id).await;
    assert!(view["previous_secret_valid_until"].is_string());
}

async fn bad_endpoints_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app_with(backend, &[("WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    for (body, expected) in [
        (json!({"url": "http://127.0.0.1:9/hooks"}), "private"),
        (json!({"url": "http://169.254.169.254/latest"}), "private"),
        (json!({"url": "http://localhost/hooks"}), "private"),
        (json!({"url": "ftp://hooks.example.com/"}), "http"),
        (json!({"url": "not a url"}), "valid"),
        (
            json!({"url": "https://hooks.example.com/", "event_types": ["connection.exploded"]}),
            "unknown event type",
        ),
        (
            json!({"url": "https://hooks.example.com/", "description": "two\nlines"}),
            "one line",
        ),
        (
            json!({"url": "https://hooks.example.com/", "secret": "mine"}),
            "",
        ),
    ] {
        let response = service_post(&app, &key, "/api/v1/webhook-endpoints", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.unwrap();
        assert!(text.contains(expected), "{body}: {text}");
    }
    let other = app.api_key(&[Scope::ClientsRead]).await;
    let refused = service_post(
        &app,
        &other,
        "/api/v1/webhook-endpoints",
        json!({"url": "https://hooks.example.com/"}),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let listed: Value = app
        .client
        .get(app.url("/api/v1/webhook-endpoints"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]), "nothing was stored");
    let missing = service_post(&app, &key, "/api/v1/webhook-endpoints/nope/test", json!({})).await;
    assert_eq!(missing.status(), 404);
}

/// The published OpenAPI document describes the webhook endpoints as they answer.
#[tokio::test]
async fn the_openapi_document_describes_the_webhook_endpoints() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let create = &doc["paths"]["/api/v1/webhook-endpoints"]["post"];
    for status in ["201", "400", "401", "403"] {
        assert!(
            create["responses"][status].is_object(),
            "create documents {status}"
        );
    }
    for path in [
        "/api/v1/webhook-endpoints/{id}/rotate-secret",
        "/api/v1/webhook-endpoints/{id}/test",
        "/api/v1/webhook-endpoints/{id}/replay",
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path}");
    }
    let documented: Vec<String> = doc["components"]["schemas"]["EndpointView"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    let created: Value = service_post(
        &app,
        &key,
        "/api/v1/webhook-endpoints",
        json!({"url": "https://hooks.example.com/"}),
    )
    .await
    .json()
    .await
    .unwrap();
    for field in created.as_object().unwrap().keys() {
        assert!(documented.contains(field), "{field} is documented");
    }
}

async fn an_endpoint_failing_for_too_long_is_disabled_and_the_page_says_why(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("WEBHOOK_RETRY_SCHEDULE", "100ms,100ms,100ms,100ms,100ms"),
            ("WEBHOOK_DISABLE_AFTER", "250ms"),
        ],
    )
    .await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(500, None); 10]);
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    let (id, _) = endpoint(&app, &key, &receiver.url, &[]).await;
    service_post(
        &app,
        &key,
        &format!("/api/v1/webhook-endpoints/{id}/test"),
        json!({}),
    )
    .await;
    let mut view = Value::Null;
    for _ in 0..100 {
        view = endpoint_view(&app, &key, &id).await;
        if view["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view["enabled"], false, "{view}");
    let reason = view["disabled_reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("every delivery has failed since"),
        "{reason}"
    );
    let attempts = receiver.received().len();
    assert!(
        (3..=5).contains(&attempts),
        "stopped once disabled: {attempts}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        receiver.received().len(),
        attempts,
        "nothing more to a disabled endpoint"
    );
    app.login_as(Role::Admin).await;
    let page = crate::helpers::unescape(&app.get_html(&format!("/admin/webhooks/{id}")).await);
    assert!(page.contains(&reason), "the page shows why");
    // Enabling it again clears the reason and delivers again.
    let enabled = app
        .client
        .patch(app.url(&format!("/api/v1/webhook-endpoints/{id}")))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url, "enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 200);
    let enabled: Value = enabled.json().await.unwrap();
    assert_eq!(enabled["disabled_reason"], Value::Null);
    assert_eq!(enabled["failing_since"], Value::Null);
}

/// An end user's failed attempt, then the success on the same session: the team hears
/// `connect_session.failed` and then `connect_session.completed` with the connection.
async fn connect_sessions_report_their_end_to_the_team(backend: Backend) {
    use crate::connect_sessions::{end_user_connects, session_for, team_key};
    let app = webhook_app(backend).await;
    let receiver = Receiver::start().await;
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    let types = [
        "connect_session.completed",
        "connect_session.failed",
        "connection.created",
    ];
    let (_, secret) = endpoint(&app, &key, &receiver.url, &types).await;
    let team = team_key(&app).await;
    let body = json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"], "tags": {"plan": "pro"}});
    let session = session_for(&app, &team, body).await;
    let url = session["connect_url"].as_str().unwrap();
    let browser = app.new_browser();

    let denied = end_user_connects(&browser, url, "klaviyo", None, "deny").await;
    assert_eq!(denied.status(), 400);
    let failed = receiver.wait_for_type("connect_session.failed").await;
    assert!(failed.verifies_with(&secret));
    assert_eq!(failed.json()["data"]["end_user_id"], "42");
    assert_eq!(failed.json()["data"]["session_id"], session["session_id"]);
    assert!(failed.json()["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("denied"));

    let done = end_user_connects(&browser, url, "klaviyo", None, "allow").await;
    assert_eq!(done.status(), 200);
    let created = receiver.wait_for_type("connection.created").await;
    assert_eq!(
        created.json()["data"]["end_user_id"],
        "42",
        "the team's id, not ours"
    );
    let completed = receiver.wait_for_type("connect_session.completed").await;
    assert!(completed.verifies_with(&secret));
    let client = app.clients().await.remove(0);
    let data = &completed.json()["data"];
    assert_eq!(data["connection_id"], client.id.as_str());
    assert_eq!(
        (data["end_user_id"].as_str(), data["provider"].as_str()),
        (Some("42"), Some("klaviyo"))
    );
    assert_eq!(data["tags"], json!(["plan-pro"]));
    let token = session["token"].as_str().unwrap();
    for delivery in receiver.received() {
        assert!(
            !delivery.json().to_string().contains(token),
            "no session token in webhooks"
        );
    }
    assert_eq!(
        receiver.received().len(),
        3,
        "only the types the endpoint asked for"
    );
}
