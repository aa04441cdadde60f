//! `GET /api/v1/clients/{id}/token`: fresh tokens for services, refresh first when needed,
//! exactly one refresh under concurrency (one process, and two instances on PostgreSQL).

use crate::helpers::{location, second_instance, TestApp};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::{credentials, sessions};
use diesel::prelude::*;
use serde_json::json;

on_both_backends!(
    a_fresh_token_is_handed_out_without_refreshing,
    an_expired_token_is_refreshed_first,
    api_key_clients_get_their_key,
    errors_have_stable_codes,
    concurrent_requests_share_one_refresh,
    a_service_call_leaves_a_browser_session_alone,
);

async fn connected_client(app: &TestApp) -> connecthub::clients::Client {
    app.login_as(Role::Admin).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    app.clients().await.remove(0)
}

/// Makes the stored token look expired, as if an hour had passed.
async fn expire(app: &TestApp, client_id: &str) {
    let id = client_id.to_string();
    app.db(move |conn| {
        diesel::update(credentials::table.find(id))
            .set((
                credentials::expires_at
                    .eq(Some(connecthub::db::now() - chrono::TimeDelta::seconds(5))),
                credentials::refresh_at.eq(Some(
                    connecthub::db::now() - chrono::TimeDelta::seconds(305),
                )),
            ))
            .execute(conn)
    })
    .await;
}

async fn a_fresh_token_is_handed_out_without_refreshing(app: TestApp) {
    let client = connected_client(&app).await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let response = app.service_token(&key, &client.id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        crate::helpers::header(response.headers(), "cache-control"),
        "no-store"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["provider"], "klaviyo");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        body["scopes"],
        json!([
            "accounts:read",
            "lists:read",
            "segments:read",
            "profiles:read"
        ])
    );
    let token = body["access_token"].as_str().unwrap();
    assert!(app.sandbox_token_active("klaviyo", token).await);
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        0
    );
    // Audited (counted, written within a second or two) without the token.
    let mut handed = None;
    for _ in 0..150 {
        let entries = app
            .db(|conn| connecthub::audit::recent(conn, None, 5))
            .await;
        handed = entries.into_iter().find(|e| e.action == "token_handed_out");
        if handed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let handed = handed.expect("audited");
    assert_eq!(handed.actor_type, "api_key");
    assert_eq!(handed.target_id.as_deref(), Some(client.id.as_str()));
    assert!(!handed.details.contains(token));
    let details: serde_json::Value = serde_json::from_str(&handed.details).unwrap();
    assert_eq!(details["count"], 1, "each hand-out is counted");
}

async fn an_expired_token_is_refreshed_first(app: TestApp) {
    let client = connected_client(&app).await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let (before, _) = crate::lifecycle::stored_tokens(&app, &client.id).await;
    expire(&app, &client.id).await;
    let after: serde_json::Value = app
        .service_token(&key, &client.id)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(before.as_deref(), after["access_token"].as_str());
    assert!(
        app.sandbox_token_active("klaviyo", after["access_token"].as_str().unwrap())
            .await
    );
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        1
    );
    // The new one is fresh: no second refresh.
    let again: serde_json::Value = app
        .service_token(&key, &client.id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["access_token"], after["access_token"]);
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        1
    );
}

async fn api_key_clients_get_their_key(app: TestApp) {
    app.login_as(Role::Admin).await;
    let (_, secret) = connecthub_sandbox::KUSTOMER_API_KEYS[0];
    app.post_form(
        "/api/integrations/kustomer/test-connection",
        &[("api_key", secret)],
    )
    .await;
    let client = app.clients().await.remove(0);
    let key = app.api_key(&[Scope::TokensRead]).await;
    let body: serde_json::Value = app
        .service_token(&key, &client.id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "api_key");
    assert_eq!(body["api_key"], secret);
    assert_eq!(body["expires_at"], serde_json::Value::Null);
}

async fn errors_have_stable_codes(app: TestApp) {
    let client = connected_client(&app).await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let status_and_code = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (
            status,
            body["error"].as_str().unwrap_or_default().to_string(),
            body,
        )
    };
    let anonymous = app
        .client
        .get(app.url(&format!("/api/v1/clients/{}/token", client.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_code(anonymous).await.1, "invalid_api_key");
    let (status, code, _) =
        status_and_code(app.service_token("chk_not-a-real-key", &client.id).await).await;
    assert_eq!((status, code.as_str()), (401, "invalid_api_key"));
    let listing_only = app.api_key(&[Scope::ClientsRead]).await;
    let (status, code, _) =
        status_and_code(app.service_token(&listing_only, &client.id).await).await;
    assert_eq!((status, code.as_str()), (403, "insufficient_scope"));
    let (status, code, _) = status_and_code(app.service_token(&key, "no-such-client").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, _, _) = status_and_code(app.service_token(&key, &"x".repeat(5000)).await).await;
    assert_eq!(status, 404);

    // Provider down after retries: 503, and the client keeps its refresh token.
    expire(&app, &client.id).await;
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 20, "token_fault": {"kind": "status", "status": 502}})).await;
    let (status, code, _) = status_and_code(app.service_token(&key, &client.id).await).await;
    assert_eq!((status, code.as_str()), (503, "provider_unavailable"));
    app.client
        .post(app.url("/sandbox/_control/reset"))
        .send()
        .await
        .unwrap();

    // Grant revoked at the provider: 409 with the way back.
    app.sandbox_faults(json!({"provider": "klaviyo", "revoke_all": true}))
        .await;
    let (status, code, body) = status_and_code(app.service_token(&key, &client.id).await).await;
    assert_eq!((status, code.as_str()), (409, "needs_reauth"));
    assert_eq!(
        body["reconnect_url"],
        format!("{}/admin/clients/{}/reconnect", app.address, client.id)
    );
    // Disconnected: 409 disconnected.
    app.post_form(
        &format!("/api/integrations/klaviyo/disconnect/{}", client.id),
        &[],
    )
    .await;
    let (status, code, _) = status_and_code(app.service_token(&key, &client.id).await).await;
    assert_eq!((status, code.as_str()), (409, "disconnected"));
}

/// 500 concurrent requests for one expired client: one refresh at the provider, and all
/// 500 get the same new token.
async fn concurrent_requests_share_one_refresh(app: TestApp) {
    let client = connected_client(&app).await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    expire(&app, &client.id).await;
    let requests = (0..500).map(|_| async {
        let response = app.service_token(&key, &client.id).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    });
    let tokens = futures_util::future::join_all(requests).await;
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        1
    );
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "every caller got the new token"
    );
    assert!(app.sandbox_token_active("klaviyo", &tokens[0]).await);
}

/// Two instances on one PostgreSQL race for the same expired client: the lease lets one
/// refresh; the other waits and hands out the same new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_refresh_once() {
    if !crate::helpers::postgres_available() {
        return;
    }
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
    let other = second_instance(&app).await;
    let client = connected_client(&app).await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    expire(&app, &client.id).await;
    let requests = (0..100).map(|i| {
        let (instance, key, id) = (
            if i % 2 == 0 { &app } else { &other },
            key.clone(),
            client.id.clone(),
        );
        async move {
            let response = instance.service_token(&key, &id).await;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap().to_string()
        }
    });
    let tokens = futures_util::future::join_all(requests).await;
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        1
    );
    assert!(tokens.iter().all(|t| t == &tokens[0]));
}

/// The published OpenAPI document describes the endpoints as they answer.
#[tokio::test]
async fn openapi_document_describes_the_service_api() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: serde_json::Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let token = &doc["paths"]["/api/v1/clients/{id}/token"]["get"];
    for status in ["200", "401", "403", "404", "409", "503"] {
        assert!(
            token["responses"][status].is_object(),
            "token endpoint documents {status}"
        );
    }
    let names: Vec<&str> = doc["paths"]["/api/v1/clients"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "q",
            "provider",
            "owner",
            "status",
            "tag",
            "sort",
            "limit",
            "cursor",
            "end_user_id"
        ],
        "the list's search, filters, sort and keyset cursor"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    // The documented fields are the ones a real answer has.
    let client = connected_client(&app).await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let real: serde_json::Value = app
        .service_token(&key, &client.id)
        .await
        .json()
        .await
        .unwrap();
    let documented = doc["components"]["schemas"]["TokenResponse"]["properties"]
        .as_object()
        .unwrap();
    for field in real.as_object().unwrap().keys() {
        assert!(documented.contains_key(field), "{field} is documented");
    }

    // Usage statistics and the proxy are documented too, usage as it answers.
    for method in ["get", "post", "put", "patch", "delete"] {
        assert!(
            doc["paths"]["/api/v1/proxy/{client_id}/{path}"][method].is_object(),
            "proxy {method}"
        );
    }
    let reader = app.api_key(&[Scope::ClientsRead]).await;
    let usage = app.usage(&reader, "days=7").await;
    assert!(doc["paths"]["/api/v1/usage"]["get"]["responses"]["200"].is_object());
    let documented = doc["components"]["schemas"]["Stats"]["properties"]
        .as_object()
        .unwrap();
    for field in usage["stats"].as_object().unwrap().keys() {
        assert!(
            documented.contains_key(field),
            "usage {field} is documented"
        );
    }
}

/// The service API goes without the page middleware: a call that happens to carry a
/// signed-in browser's cookie neither sets a cookie nor extends that session in the
/// database, and the session still works for the pages afterwards.
async fn a_service_call_leaves_a_browser_session_alone(app: TestApp) {
    let client = connected_client(&app).await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let expiries = || {
        app.db(|conn| {
            sessions::table
                .select(sessions::expires_at)
                .order(sessions::id)
                .load::<chrono::NaiveDateTime>(conn)
        })
    };
    // Five minutes spent, so that an extension would be written (sessions move their
    // expiry in steps of a minute).
    let spent = connecthub::db::now() + chrono::TimeDelta::minutes(115);
    app.db(move |conn| {
        diesel::update(sessions::table)
            .set(sessions::expires_at.eq(spent))
            .execute(conn)
    })
    .await;
    let before = expiries().await;
    assert!(!before.is_empty(), "the test client is signed in");
    let response = app.service_token(&key, &client.id).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "a service answer sets no cookie"
    );
    assert_eq!(expiries().await, before, "no session was extended");
    assert_eq!(app.get("/admin/clients").await.status(), 200);
    assert!(expiries().await > before, "a page view does extend it");
}
