//! Incoming provider webhooks: the sandbox signs the way Klaviyo and Kustomer do, connecthub
//! checks it, finds the connection from the account or org id and forwards the event to
//! the team as `provider.webhook`; forged, unknown, oversized or unparseable ones are
//! refused and leave nothing behind.

use crate::helpers::receiver::Receiver;
use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use crate::webhooks::endpoint;
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::{provider_webhooks, webhook_events};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

with_each_backend!(
    signed_sandbox_webhooks_reach_the_team_with_the_connection_id,
    forged_unknown_oversized_and_unparseable_webhooks_are_refused_and_nothing_is_stored,
);

const KLAVIYO_SECRET: &str = "klaviyo-webhook-secret-for-tests";
const KUSTOMER_SECRET: &str = "kustomer-webhook-secret-for-tests";

async fn app_with_secrets(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        &[
            ("KLAVIYO_WEBHOOK_SECRET", KLAVIYO_SECRET),
            ("KUSTOMER_WEBHOOK_SECRET", KUSTOMER_SECRET),
            ("WEBHOOK_RETRY_SCHEDULE", "50ms"),
        ],
    )
    .await
}

/// Asks the sandbox to send a webhook to this app, signed like the real provider.
async fn sandbox_sends(
    app: &TestApp,
    provider: &str,
    secret: &str,
    account: &str,
    forge: bool,
) -> Value {
    let body = json!({"provider": provider, "url": app.url(&format!("/webhooks/{provider}")), "secret": secret, "account_id": account, "forge": forge});
    let response = app
        .client
        .post(app.url("/sandbox/_control/webhooks"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn signed_sandbox_webhooks_reach_the_team_with_the_connection_id(backend: Backend) {
    let app = app_with_secrets(backend).await;
    let receiver = Receiver::start().await;
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    let (_, secret) = endpoint(&app, &key, &receiver.url, &["provider.webhook"]).await;
    app.login_as(Role::Admin).await;
    assert_eq!(
        location(&app.connect("klaviyo", Some("AcmeK1")).await),
        "/admin/clients"
    );
    let kustomer = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", "sandbox-kustomer-key-acme-support")],
        )
        .await;
    assert_eq!(kustomer.status(), 303);
    let clients = app.clients().await;
    let klaviyo_client = clients
        .iter()
        .find(|c| c.provider == "klaviyo")
        .unwrap()
        .clone();
    let kustomer_client = clients
        .iter()
        .find(|c| c.provider == "kustomer")
        .unwrap()
        .clone();

    let started = Instant::now();
    let answer = sandbox_sends(&app, "klaviyo", KLAVIYO_SECRET, "AcmeK1", false).await;
    assert_eq!(answer["status"], 202, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1), "answered fast");
    assert_eq!(
        answer["answer"]["connection_ids"],
        json!([klaviyo_client.id])
    );
    let answer = sandbox_sends(
        &app,
        "kustomer",
        KUSTOMER_SECRET,
        &kustomer_client.provider_account_id,
        false,
    )
    .await;
    assert_eq!(answer["status"], 202, "{answer}");

    let received = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 2);
    for delivery in &received {
        assert!(delivery.verifies_with(&secret));
        assert_eq!(delivery.event_type(), "provider.webhook");
    }
    let by_provider = |p: &str| {
        received
            .iter()
            .map(|d| d.json())
            .find(|b| b["data"]["provider"] == p)
            .unwrap()
    };
    let klaviyo = by_provider("klaviyo");
    assert_eq!(klaviyo["data"]["connection_id"], klaviyo_client.id.as_str());
    assert_eq!(
        klaviyo["data"]["provider_event"]["data"][0]["topic"],
        "event:klaviyo.opened_email"
    );
    let kustomer = by_provider("kustomer");
    assert_eq!(
        kustomer["data"]["connection_id"],
        kustomer_client.id.as_str()
    );
    assert_eq!(
        kustomer["data"]["provider_event"]["name"],
        "kustomer.conversation.create"
    );

    // An account nobody connected is stored but goes nowhere.
    let answer = sandbox_sends(&app, "klaviyo", KLAVIYO_SECRET, "SomeoneElse", false).await;
    assert_eq!(answer["status"], 202);
    assert_eq!(answer["answer"]["connection_ids"], json!([]));
}

fn kustomer_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KUSTOMER_SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("X-Kustomer-Signature", signature);
    }
    request.send().await.unwrap()
}

async fn forged_unknown_oversized_and_unparseable_webhooks_are_refused_and_nothing_is_stored(
    backend: Backend,
) {
    let app = app_with_secrets(backend).await;
    let receiver = Receiver::start().await;
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    endpoint(&app, &key, &receiver.url, &["provider.webhook"]).await;
    app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some("AcmeK1")).await;

    let forged = sandbox_sends(&app, "klaviyo", KLAVIYO_SECRET, "AcmeK1", true).await;
    assert_eq!(forged["status"], 401, "{forged}");
    assert_eq!(forged["answer"]["error"], "invalid_signature");
    let wrong_secret = sandbox_sends(&app, "kustomer", "not-the-secret", "org", false).await;
    assert_eq!(wrong_secret["status"], 401);

    let body = br#"{"orgId":"org","name":"x"}"#.to_vec();
    let unsigned = post_raw(&app, "/webhooks/kustomer", body.clone(), None).await;
    assert_eq!(unsigned.status(), 401);
    assert!(unsigned
        .text()
        .await
        .unwrap()
        .contains("X-Kustomer-Signature header is missing"));
    assert_eq!(
        post_raw(&app, "/webhooks/acme", body.clone(), Some("00"))
            .await
            .status(),
        404
    );
    let not_json = b"{not json".to_vec();
    let signature = kustomer_signature(&not_json);
    let bad = post_raw(&app, "/webhooks/kustomer", not_json, Some(&signature)).await;
    assert_eq!(bad.status(), 400);
    let huge = format!(r#"{{"orgId":"org","pad":"{}"}}"#, "x".repeat(300 * 1024)).into_bytes();
    let signature = kustomer_signature(&huge);
    assert_eq!(
        post_raw(&app, "/webhooks/kustomer", huge, Some(&signature))
            .await
            .status(),
        413
    );

    let without = spawn_app_with(app.backend, &[]).await;
    let signature = kustomer_signature(&body);
    let disabled = post_raw(&without, "/webhooks/kustomer", body, Some(&signature)).await;
    assert_eq!(disabled.status(), 403);
    assert!(disabled
        .text()
        .await
        .unwrap()
        .contains("KUSTOMER_WEBHOOK_SECRET"));

    for checked in [&app, &without] {
        let stored: i64 = checked
            .db(|conn| provider_webhooks::table.count().get_result(conn))
            .await;
        assert_eq!(stored, 0, "nothing was stored");
        let forwarded: i64 = checked
            .db(|conn| {
                webhook_events::table
                    .filter(webhook_events::event_type.eq("provider.webhook"))
                    .count()
                    .get_result(conn)
            })
            .await;
        assert_eq!(forwarded, 0);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver
        .received()
        .iter()
        .all(|d| d.event_type() != "provider.webhook"));
}
