//! The metered proxy against the sandbox: round trips, retries, path escapes, refresh on
//! the way, and usage numbers that match the calls made.

use crate::helpers::{location, TestApp, ACME_CONNECT_CALLS, KUSTOMER_KEY_CONNECT_CALLS};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use serde_json::json;

on_both_backends!(
    get_round_trip_with_provider_headers_and_usage,
    post_round_trip_with_an_api_key_client,
    rate_limits_are_retried_and_counted,
    unsafe_paths_and_bad_callers_are_refused,
    an_expired_token_is_refreshed_on_the_way,
);

async fn klaviyo_client(app: &TestApp) -> String {
    app.login_as(Role::Admin).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    app.clients().await.remove(0).id
}

async fn get_round_trip_with_provider_headers_and_usage(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&[Scope::Proxy, Scope::ClientsRead]).await;
    // The sandbox refuses calls without Klaviyo's `revision` header: connecthub adds it.
    let lists = app.proxy_get(&key, &client, "api/lists").await;
    assert_eq!(lists.status(), 200);
    assert!(
        !crate::helpers::header(lists.headers(), "ratelimit-limit").is_empty(),
        "provider headers come back"
    );
    let body: serde_json::Value = lists.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 10);
    let next = body["links"]["next"].as_str().unwrap();
    let query = next.split_once('?').unwrap().1;
    let second = app
        .proxy_get(&key, &client, &format!("api/lists/?{query}"))
        .await;
    assert_eq!(second.status(), 200);
    let account = app.proxy_get(&key, &client, "api/accounts").await;
    assert_eq!(account.status(), 200);
    let body: serde_json::Value = account.json().await.unwrap();
    assert_eq!(body["data"][0]["id"], "AcmeK1");

    // Three calls here, after those connecting made (account, 3 pages of lists, 1 of
    // segments).
    let calls = 3 + ACME_CONNECT_CALLS;
    let usage = app.usage_after(&key, calls, "days=30").await;
    let stats = &usage["stats"];
    assert_eq!(stats["totalErrors"], 0);
    assert_eq!(stats["rateLimitHits"], 0);
    assert_eq!(
        stats["byEndpoint"],
        json!({
            "lists": {"calls": 2 + 3, "errors": 0},
            "accounts": {"calls": 1 + 1, "errors": 0},
            "segments": {"calls": 1, "errors": 0},
        })
    );
    assert_eq!(stats["perDay"].as_array().unwrap().len(), 1);
    let by_client = app
        .usage_after(&key, calls, &format!("client_id={client}"))
        .await;
    assert_eq!(by_client["stats"]["totalCalls"], calls);
    let none = app.usage(&key, "provider=kustomer").await;
    assert_eq!(none["stats"]["totalCalls"], 0);
}

async fn post_round_trip_with_an_api_key_client(app: TestApp) {
    app.login_as(Role::Admin).await;
    let (_, secret) = connecthub_sandbox::KUSTOMER_API_KEYS[0];
    app.post_form(
        "/api/integrations/kustomer/test-connection",
        &[("api_key", secret)],
    )
    .await;
    let client = app.clients().await.remove(0).id;
    let key = app.api_key(&[Scope::Proxy, Scope::ClientsRead]).await;
    let created = app
        .client
        .post(app.url(&format!("/api/v1/proxy/{client}/v1/customers")))
        .bearer_auth(&key)
        .json(&json!({"name": "Zed Example", "emails": [{"email": "zed@example.com"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let found = app
        .proxy_get(&key, &client, "v1/customers/email=zed%40example.com")
        .await;
    assert_eq!(found.status(), 200);
    let body: serde_json::Value = found.json().await.unwrap();
    assert_eq!(body["data"]["attributes"]["name"], "Zed Example");
    let missing = app
        .proxy_get(&key, &client, "v1/customers/email=nobody%40example.com")
        .await;
    assert_eq!(missing.status(), 404, "provider errors pass through");
    let usage = app
        .usage_after(&key, 3 + KUSTOMER_KEY_CONNECT_CALLS, "provider=kustomer")
        .await;
    assert_eq!(usage["stats"]["totalErrors"], 1);
    assert_eq!(
        usage["stats"]["byEndpoint"]["customers"],
        json!({"calls": 3, "errors": 1})
    );
}

async fn rate_limits_are_retried_and_counted(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&[Scope::Proxy, Scope::ClientsRead]).await;
    app.sandbox_faults(json!({"provider": "klaviyo", "rate_limit_next": 1, "retry_after_secs": 1}))
        .await;
    let started = std::time::Instant::now();
    let response = app.proxy_get(&key, &client, "api/segments").await;
    assert_eq!(response.status(), 200, "retried after Retry-After");
    assert!(started.elapsed() >= std::time::Duration::from_millis(950));
    let usage = app.usage_after(&key, 1 + ACME_CONNECT_CALLS, "").await;
    assert_eq!(usage["stats"]["rateLimitHits"], 1);
    assert_eq!(usage["stats"]["totalErrors"], 0);
    // A POST is not repeated: the 429 goes back to the caller.
    let (_, secret) = connecthub_sandbox::KUSTOMER_API_KEYS[0];
    app.post_form(
        "/api/integrations/kustomer/test-connection",
        &[("api_key", secret)],
    )
    .await;
    let kustomer = app
        .clients()
        .await
        .into_iter()
        .find(|c| c.provider == "kustomer")
        .unwrap()
        .id;
    app.sandbox_faults(
        json!({"provider": "kustomer", "rate_limit_next": 1, "retry_after_secs": 1}),
    )
    .await;
    let post = app
        .client
        .post(app.url(&format!("/api/v1/proxy/{kustomer}/v1/customers")))
        .bearer_auth(&key)
        .json(&json!({"name": "Once Only", "emails": [{"email": "once@example.com"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 429);
    assert_eq!(crate::helpers::header(post.headers(), "retry-after"), "1");
    let usage = app
        .usage_after(
            &key,
            2 + ACME_CONNECT_CALLS + KUSTOMER_KEY_CONNECT_CALLS,
            "",
        )
        .await;
    assert_eq!(usage["stats"]["rateLimitHits"], 2);
    assert_eq!(usage["stats"]["totalErrors"], 1);
    let created = app
        .proxy_get(&key, &kustomer, "v1/customers/email=once%40example.com")
        .await;
    assert_eq!(
        created.status(),
        404,
        "the POST was sent once and refused, not repeated"
    );
}

async fn unsafe_paths_and_bad_callers_are_refused(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&[Scope::Proxy]).await;
    for path in [
        "..%2F..%2Fadmin",
        "api/%2E%2E%2F%2E%2E%2Fsandbox",
        "api%2F%2Fevil.example",
        "https:%2F%2Fevil.example/x",
        "api/%5C..%5Cx",
    ] {
        let response = app.proxy_get(&key, &client, path).await;
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
    }
    assert_eq!(
        app.proxy_get(&key, "no-such-client", "api/lists")
            .await
            .status(),
        404
    );
    let no_scope = app.api_key(&[Scope::TokensRead]).await;
    assert_eq!(
        app.proxy_get(&no_scope, &client, "api/lists")
            .await
            .status(),
        403
    );
    assert_eq!(
        app.proxy_get("chk_wrong", &client, "api/lists")
            .await
            .status(),
        401
    );
    let usage_key = app.api_key(&[Scope::ClientsRead]).await;
    let bad_days = app
        .client
        .get(app.url("/api/v1/usage?days=0"))
        .bearer_auth(&usage_key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_days.status(), 400);
    let bad_client = app
        .client
        .get(app.url("/api/v1/usage?client_id=%27%3B"))
        .bearer_auth(&usage_key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_client.status(), 400);
}

async fn an_expired_token_is_refreshed_on_the_way(app: TestApp) {
    use connecthub::db::schema::credentials;
    use diesel::prelude::*;
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&[Scope::Proxy]).await;
    let id = client.clone();
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
    let response = app.proxy_get(&key, &client, "api/accounts").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"],
        1
    );
}
