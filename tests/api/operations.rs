//! Typed operations (`/api/v1/clients/{id}/kustomer/…`, `…/klaviyo/…`) on either provider:
//! typed errors, retries, usage, the OpenAPI document and revoked credentials, and the
//! helpers `kustomer_operations` and `klaviyo_operations` share.

use crate::helpers::{location, TestApp, ACME_CONNECT_CALLS, KUSTOMER_KEY_CONNECT_CALLS};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::{clients, synced_conversations};
use diesel::prelude::*;
use serde_json::{json, Value};

on_both_backends!(
    wrong_provider_unknown_client_and_missing_scope_are_refused,
    rate_limited_gets_are_retried_and_posts_are_not,
    usage_is_recorded_for_each_operation,
    a_revoked_credential_marks_the_client_for_reconnecting,
);

/// The seed customer of the sandbox's first Kustomer org (acme-support).
pub(crate) const JANE: &str = "5f3a1f6c8b2d4a0017c6e131";

pub(crate) const ACME_KEY: &str = connecthub_sandbox::KUSTOMER_API_KEYS[0].1;

/// A Kustomer client connected with the acme-support API key.
pub(crate) async fn kustomer_client(app: &TestApp) -> String {
    app.login_as(Role::Admin).await;
    app.post_form(
        "/api/integrations/kustomer/test-connection",
        &[("api_key", ACME_KEY)],
    )
    .await;
    client_of(app, "kustomer").await
}

/// A Klaviyo client connected with OAuth to the AcmeK1 account (23 lists, 7 segments).
pub(crate) async fn klaviyo_client(app: &TestApp) -> String {
    app.login_as(Role::Admin).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    client_of(app, "klaviyo").await
}

pub(crate) async fn client_of(app: &TestApp, provider: &str) -> String {
    app.clients()
        .await
        .into_iter()
        .find(|c| c.provider == provider)
        .expect("client connected")
        .id
}

pub(crate) async fn proxy_key(app: &TestApp) -> String {
    app.api_key(&[Scope::Proxy, Scope::ClientsRead]).await
}

/// Calls an operation: `path` is under `/api/v1/clients/{client}/`.
pub(crate) async fn op(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    client: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, app.url(&format!("/api/v1/clients/{client}/{path}")))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn get(app: &TestApp, key: &str, client: &str, path: &str) -> (u16, Value) {
    op(app, key, reqwest::Method::GET, client, path, None).await
}

pub(crate) async fn post(
    app: &TestApp,
    key: &str,
    client: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    op(app, key, reqwest::Method::POST, client, path, Some(body)).await
}

pub(crate) async fn kustomer_api_calls(app: &TestApp) -> u64 {
    app.sandbox_stats("kustomer").await["api_calls"]
        .as_u64()
        .unwrap()
}

pub(crate) async fn synced_rows(app: &TestApp) -> Vec<(String, Option<String>)> {
    app.db(|conn| {
        synced_conversations::table
            .select((
                synced_conversations::external_id,
                synced_conversations::conversation_id,
            ))
            .load(conn)
    })
    .await
}

async fn wrong_provider_unknown_client_and_missing_scope_are_refused(app: TestApp) {
    let klaviyo = klaviyo_client(&app).await;
    let kustomer = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    let sent = (
        app.sandbox_stats("klaviyo").await["api_calls"].clone(),
        kustomer_api_calls(&app).await,
    );
    let (status, wrong) = get(&app, &key, &klaviyo, "kustomer/teams").await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (409, Some("wrong_provider"))
    );
    assert_eq!(
        wrong["message"],
        "this is a klaviyo client; the operation needs a kustomer client"
    );
    let (status, wrong) = post(&app, &key, &kustomer, "klaviyo/profile/refresh", json!({})).await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (409, Some("wrong_provider"))
    );
    let now = (
        app.sandbox_stats("klaviyo").await["api_calls"].clone(),
        kustomer_api_calls(&app).await,
    );
    assert_eq!(now, sent, "nothing was sent to either provider");

    let (status, unknown) = get(&app, &key, "no-such-client", "kustomer/teams").await;
    assert_eq!(
        (status, unknown["error"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = get(&app, &key, &"x".repeat(100), "kustomer/teams").await;
    assert_eq!(status, 404);
    let (status, no_such_op) = get(&app, &key, &kustomer, "kustomer/widgets").await;
    assert_eq!(status, 404);
    assert!(
        no_such_op["error"].is_string(),
        "JSON like every /api/v1 error"
    );

    let tokens_only = app.api_key(&[Scope::TokensRead, Scope::ClientsRead]).await;
    let (status, forbidden) = get(&app, &tokens_only, &kustomer, "kustomer/teams").await;
    assert_eq!(
        (status, forbidden["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, _) = get(&app, "chk_wrong", &kustomer, "kustomer/teams").await;
    assert_eq!(status, 401);

    // A client that must be reconnected says so, with where to do it.
    let id = klaviyo.clone();
    app.db(move |conn| {
        diesel::update(clients::table.find(id))
            .set(clients::status.eq("needs_reauth"))
            .execute(conn)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // SERVICE_CACHE_SECS=1
    let (status, reauth) = get(&app, &key, &klaviyo, "klaviyo/lists").await;
    assert_eq!(
        (status, reauth["error"].as_str()),
        (409, Some("needs_reauth"))
    );
    assert!(reauth["reconnect_url"]
        .as_str()
        .unwrap()
        .ends_with("/reconnect"));
}

async fn rate_limited_gets_are_retried_and_posts_are_not(app: TestApp) {
    let client = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    app.sandbox_faults(
        json!({"provider": "kustomer", "rate_limit_next": 1, "retry_after_secs": 1}),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, teams) = get(&app, &key, &client, "kustomer/teams").await;
    assert_eq!(status, 200, "retried after Retry-After: {teams}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(950));

    app.sandbox_faults(
        json!({"provider": "kustomer", "rate_limit_next": 1, "retry_after_secs": 7}),
    )
    .await;
    let response = app
        .client
        .post(app.url(&format!("/api/v1/clients/{client}/kustomer/conversations")))
        .bearer_auth(&key)
        .json(&json!({"customer_id": JANE, "external_id": "throttled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        crate::helpers::header(response.headers(), "retry-after"),
        "7"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), &body["retry_after"]),
        (Some("rate_limited"), &json!(7))
    );
    assert!(synced_rows(&app).await.is_empty(), "the claim was given up");
    // One call each (the GET's retry happens inside it), both throttled once.
    let usage = app
        .usage_after(&key, 2 + KUSTOMER_KEY_CONNECT_CALLS, "days=1")
        .await;
    assert_eq!(usage["stats"]["rateLimitHits"], 2);

    // A provider that keeps failing is unavailable, after the retries.
    app.sandbox_faults(json!({"provider": "kustomer", "api_failures": 10, "api_status": 503}))
        .await;
    let (status, down) = get(&app, &key, &client, "kustomer/teams").await;
    assert_eq!(
        (status, down["error"].as_str()),
        (503, Some("provider_unavailable"))
    );
}

async fn usage_is_recorded_for_each_operation(app: TestApp) {
    let kustomer = kustomer_client(&app).await;
    let klaviyo = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    let (status, _) = get(
        &app,
        &key,
        &kustomer,
        "kustomer/customers?email=jane.doe%40example.com",
    )
    .await;
    assert_eq!(status, 200);
    let (_, created) = post(
        &app,
        &key,
        &kustomer,
        "kustomer/conversations",
        json!({"customer_id": JANE}),
    )
    .await;
    let conversation = created["conversation"]["id"].as_str().unwrap();
    let (status, _) = post(
        &app,
        &key,
        &kustomer,
        &format!("kustomer/conversations/{conversation}/notes"),
        json!({"body": "metered"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(get(&app, &key, &kustomer, "kustomer/teams").await.0, 200);
    // 23 lists: three pages, three calls.
    let (status, lists) = get(&app, &key, &klaviyo, "klaviyo/lists").await;
    assert_eq!((status, &lists["count"]), (200, &json!(23)));

    // Seven calls here; connecting made the others (Kustomer: key check, org, teams;
    // Klaviyo: account, 3 pages of lists, 1 of segments).
    let usage = app
        .usage_after(
            &key,
            7 + KUSTOMER_KEY_CONNECT_CALLS + ACME_CONNECT_CALLS,
            "days=1",
        )
        .await;
    let stats = &usage["stats"];
    assert_eq!(stats["totalErrors"], 0);
    assert_eq!(
        stats["byEndpoint"],
        json!({
            "customers": {"calls": 1, "errors": 0},
            "conversations": {"calls": 1, "errors": 0},
            "notes": {"calls": 1, "errors": 0},
            "teams": {"calls": 1 + 1, "errors": 0},
            "lists": {"calls": 3 + 3, "errors": 0},
            "auth": {"calls": 1, "errors": 0},
            "orgs": {"calls": 1, "errors": 0},
            "accounts": {"calls": 1, "errors": 0},
            "segments": {"calls": 1, "errors": 0},
        })
    );
    let per_client = app
        .client
        .get(app.url(&format!("/api/v1/usage?client_id={klaviyo}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let per_client: Value = per_client.json().await.unwrap();
    assert_eq!(per_client["stats"]["totalCalls"], 3 + ACME_CONNECT_CALLS);
}

/// The OpenAPI document lists every operation, and its schemas have the fields a real
/// answer has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_the_operations() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let base = "/api/v1/clients/{id}";
    for (path, method) in [
        ("kustomer/customers", "get"),
        ("kustomer/customers", "post"),
        ("kustomer/conversations", "post"),
        ("kustomer/conversations/{conversation_id}/notes", "post"),
        ("kustomer/conversations/{conversation_id}/messages", "post"),
        ("kustomer/conversations/{conversation_id}/team", "put"),
        ("kustomer/teams", "get"),
        ("klaviyo/account", "get"),
        ("klaviyo/lists", "get"),
        ("klaviyo/segments", "get"),
        ("klaviyo/profile/refresh", "post"),
    ] {
        assert!(
            doc["paths"][format!("{base}/{path}")][method].is_object(),
            "{method} {path} is documented"
        );
    }
    let client = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    let body = json!({"customer_id": JANE, "external_id": "documented"});
    let (_, real) = post(&app, &key, &client, "kustomer/conversations", body).await;
    let schemas = &doc["components"]["schemas"];
    for (schema, answer) in [
        ("ConversationCreated", &real),
        ("Conversation", &real["conversation"]),
    ] {
        let mut documented: Vec<&String> = schemas[schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let mut actual: Vec<&String> = answer.as_object().unwrap().keys().collect();
        documented.sort();
        actual.sort();
        assert_eq!(documented, actual, "{schema}");
    }
}

/// Consent withdrawn at the provider: its API answers 401 to the stored token. The client
/// is then marked for reconnecting (list, page, audit) and later calls stop at connecthub.
async fn a_revoked_credential_marks_the_client_for_reconnecting(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    let (status, _) = get(&app, &key, &client, "klaviyo/lists").await;
    assert_eq!(status, 200);
    app.sandbox_faults(json!({"provider": "klaviyo", "revoke_all": true}))
        .await;

    let (status, refused) = get(&app, &key, &client, "klaviyo/lists").await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("needs_reauth"))
    );
    assert!(refused["reconnect_url"]
        .as_str()
        .unwrap()
        .ends_with("/reconnect"));
    let id = client.clone();
    let (status, last_error): (String, Option<String>) = app
        .db(move |conn| {
            clients::table
                .find(id)
                .select((clients::status, clients::last_error))
                .first(conn)
        })
        .await;
    assert_eq!(status, "needs_reauth");
    assert!(last_error.unwrap().contains("HTTP 401"));
    assert!(app
        .audit_actions()
        .await
        .contains(&"credential_rejected".to_string()));

    let calls = app.sandbox_stats("klaviyo").await["api_calls"].clone();
    let (status, _) = get(&app, &key, &client, "klaviyo/segments").await;
    assert_eq!(status, 409);
    assert_eq!(
        app.sandbox_stats("klaviyo").await["api_calls"],
        calls,
        "nothing more is sent with a refused credential"
    );
}
