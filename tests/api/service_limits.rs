//! Limits of the service API: wrong keys per address (429, `/metrics`, one audit entry per
//! burst) and the optional request budget per key on the token and proxy endpoints.

use crate::helpers::{header, location, spawn_app_with, Backend, TestApp};
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use serde_json::Value;

fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    if crate::helpers::postgres_available() {
        backends.push(Backend::Postgres);
    }
    backends
}

async fn list_clients(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/v1/clients"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

fn random_key() -> String {
    format!("chk_{}", uuid::Uuid::new_v4().simple())
}

/// `connecthub_service_key_rejections_total{reason="…"}` as /metrics shows it.
async fn rejections(app: &TestApp, reason: &str) -> String {
    let text = app.get_html("/metrics").await;
    let prefix = format!("connecthub_service_key_rejections_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or("absent")
        .to_string()
}

/// The `service_key_rejected` entries, as (ip, count), once the writer has caught up.
async fn rejected_entries(app: &TestApp, expected: usize) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for _ in 0..50 {
        let entries = app
            .db(|conn| connecthub::audit::recent(conn, None, 100))
            .await;
        found = entries
            .into_iter()
            .filter(|e| e.action == "service_key_rejected")
            .map(|e| {
                let details: Value = serde_json::from_str(&e.details).unwrap();
                assert_eq!(details["ip"].as_str(), e.ip.as_deref());
                (e.ip.unwrap_or_default(), details["count"].as_u64().unwrap())
            })
            .collect();
        if found.len() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_limited_per_address_counted_and_audited_once_per_burst() {
    for backend in backends() {
        let app = spawn_app_with(
            backend,
            &[
                ("SERVICE_KEY_MAX_FAILURES_PER_IP", "5"),
                ("SERVICE_KEY_FAILURE_WINDOW_SECS", "1"),
            ],
        )
        .await;
        let key = app.api_key(&[Scope::ClientsRead]).await;
        for n in 0..8 {
            let response = list_clients(&app, &random_key()).await;
            let status = response.status().as_u16();
            let retry_after = header(response.headers(), "retry-after");
            let body: Value = response.json().await.unwrap();
            if n < 5 {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (401, Some("invalid_api_key"))
                );
            } else {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (429, Some("rate_limited")),
                    "{backend:?}"
                );
                assert_eq!(retry_after, "1");
                assert_eq!(body["retry_after"], 1);
            }
        }
        // Another address has its own budget.
        let elsewhere = app.browser_at("127.0.0.2");
        assert_eq!(list_clients(&elsewhere, &random_key()).await.status(), 401);
        assert_eq!(rejections(&app, "invalid_key").await, "6");
        assert_eq!(rejections(&app, "rate_limited").await, "3");

        // One entry per address and burst, with the count, written when the burst ends.
        let entries = rejected_entries(&app, 2).await;
        assert_eq!(
            entries,
            [("127.0.0.1".to_string(), 8), ("127.0.0.2".to_string(), 1)],
            "{backend:?}"
        );
        // The window is over: the right key works again from the same address.
        assert_eq!(list_clients(&app, &key).await.status(), 200);
        assert_eq!(list_clients(&app, &random_key()).await.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_request_budget_gets_429_on_tokens_and_proxy() {
    for backend in backends() {
        let app = spawn_app_with(backend, &[("SERVICE_KEY_REQUESTS_PER_MINUTE", "3")]).await;
        app.login_as(Role::Admin).await;
        let done = app.connect("klaviyo", Some("AcmeK1")).await;
        assert_eq!(location(&done), "/admin/clients");
        let client = app.clients().await.remove(0);
        let key = app
            .api_key(&[Scope::TokensRead, Scope::Proxy, Scope::ClientsRead])
            .await;
        for _ in 0..3 {
            assert_eq!(app.service_token(&key, &client.id).await.status(), 200);
        }
        let limited = app.service_token(&key, &client.id).await;
        assert_eq!(limited.status(), 429, "{backend:?}");
        let retry_after: u64 = header(limited.headers(), "retry-after").parse().unwrap();
        assert!((1..=20).contains(&retry_after), "{retry_after}");
        let body: Value = limited.json().await.unwrap();
        assert_eq!(body["error"], "rate_limited");
        assert!(body["message"].as_str().unwrap().contains("API key"));
        assert_eq!(body["retry_after"], retry_after);

        let proxied = app
            .client
            .get(app.url(&format!("/api/v1/proxy/{}/api/lists", client.id)))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(proxied.status(), 429, "the proxy shares the key's budget");
        // Other endpoints are not limited, and another key has its own budget.
        assert_eq!(list_clients(&app, &key).await.status(), 200);
        let other = app.api_key(&[Scope::TokensRead]).await;
        assert_eq!(app.service_token(&other, &client.id).await.status(), 200);
    }
}
