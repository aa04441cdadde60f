//! Stopping a real `connecthub demo` process with SIGTERM while it works: the refresher
//! stops calling providers at once, requests in flight finish, and every usage row of a
//! completed call is written before the process exits. The providers are another app's
//! sandbox, so the calls the stopped process made can still be counted afterwards.

use crate::helpers::{location, spawn_app_with, spawn_process, Backend, TestApp};
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

with_each_backend!(
    sigterm_stops_refreshing_at_once_and_finishes_requests_in_flight,
    sigterm_during_load_writes_the_usage_of_every_completed_call,
);

/// The app whose sandbox plays the providers (its own database has no clients).
async fn provider_host(ttl_secs: &str) -> TestApp {
    spawn_app_with(
        Backend::Sqlite,
        &[("SANDBOX_ACCESS_TOKEN_TTL_SECS", ttl_secs)],
    )
    .await
}

async fn connect_klaviyo(app: &TestApp) -> String {
    app.login_as(Role::Admin).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    app.clients().await.remove(0).id
}

async fn refresh_calls(host: &TestApp) -> i64 {
    host.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"]
        .as_i64()
        .unwrap()
}

/// 2-s tokens keep the refresher busy (a refresh a second). After SIGTERM, while the server
/// drains for 3 s (a proxied call waits out the provider's `Retry-After: 3`), no refresh
/// may start; before, the refresher went on calling providers through the whole shutdown.
async fn sigterm_stops_refreshing_at_once_and_finishes_requests_in_flight(backend: Backend) {
    let host = provider_host("2").await;
    let mut process = spawn_process(backend, &host, &[]).await;
    connect_klaviyo(&process.app).await;
    let key = process.app.api_key(&[Scope::Proxy]).await;
    for _ in 0..100 {
        if refresh_calls(&host).await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refresh_calls(&host).await >= 2, "the refresher runs");

    // An API-key client's call waits out the 429 (a key does not expire meanwhile).
    let kustomer = process
        .app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", "sandbox-kustomer-key-acme-support")],
        )
        .await;
    assert_eq!(kustomer.status(), 303);
    let kustomer_id = process.app.clients().await[1].id.clone();
    host.sandbox_faults(
        json!({"provider": "kustomer", "rate_limit_next": 1, "retry_after_secs": 3}),
    )
    .await;
    let url = process
        .app
        .url(&format!("/api/v1/proxy/{kustomer_id}/v1/teams"));
    let in_flight = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        response.status()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_stop = refresh_calls(&host).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        process.child.try_wait().unwrap().is_none(),
        "the server waits for the request in flight"
    );
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the request in flight finished"
    );
    assert!(
        process.wait_for_exit(Duration::from_secs(10)).await,
        "clean exit"
    );
    assert_eq!(
        refresh_calls(&host).await,
        at_stop,
        "no refresh started while the server was stopping"
    );
    let klaviyo = process.app.clients().await.remove(0);
    assert_eq!(
        klaviyo.status.as_str(),
        "active",
        "the last rotation was stored"
    );
}

/// Eight callers use the proxy as fast as they can; SIGTERM arrives mid-load. Every call
/// that got its answer has its usage row once the process has exited.
async fn sigterm_during_load_writes_the_usage_of_every_completed_call(backend: Backend) {
    let host = provider_host("3600").await;
    let mut process = spawn_process(backend, &host, &[]).await;
    let client_id = connect_klaviyo(&process.app).await;
    let key = process.app.api_key(&[Scope::Proxy]).await;
    let url = process
        .app
        .url(&format!("/api/v1/proxy/{client_id}/api/accounts"));
    let completed = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (url, key) = (url.clone(), key.clone());
            let (completed, stopped) = (completed.clone(), stopped.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stopped.load(Ordering::SeqCst) {
                    match http.get(&url).bearer_auth(&key).send().await {
                        Ok(response) if response.status() == 200 => {
                            if response.bytes().await.is_ok() {
                                completed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    process.terminate();
    assert!(
        process.wait_for_exit(Duration::from_secs(15)).await,
        "clean exit"
    );
    stopped.store(true, Ordering::SeqCst);
    for caller in callers {
        caller.await.unwrap();
    }
    let completed = completed.load(Ordering::SeqCst) as i64;
    assert!(completed > 20, "the load ran: {completed} calls");
    let id = client_id.clone();
    let recorded: i64 = process
        .app
        .db(move |conn| {
            use connecthub::db::schema::api_usage_rollup as rollup;
            use diesel::prelude::*;
            rollup::table
                .filter(rollup::grouping_set.eq("full_hour"))
                .filter(rollup::client_id.eq(id))
                .filter(rollup::endpoint.eq("accounts"))
                .select(diesel::dsl::sum(rollup::calls))
                .first::<Option<i64>>(conn)
        })
        .await
        .unwrap_or(0);
    // Connecting read the account once too. A call may also have been answered as the
    // connection closed, too late for its caller to count it (at most one per caller).
    assert!(
        (completed + 1..=completed + 9).contains(&recorded),
        "every completed call was recorded: {recorded} calls for {completed} answers"
    );
}
