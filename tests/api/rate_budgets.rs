//! Rate budgets: connecthub paces proxied calls, typed operations and sync pages under
//! Klaviyo's published tiers, against a sandbox that enforces the same budgets, so the
//! provider never answers 429; callers that would wait too long get connecthub's own 429;
//! what the provider's headers report about calls made elsewhere tightens the budget.

use crate::helpers::{header, spawn_app_with, Backend, TestApp};
use crate::operations::{get, klaviyo_client, proxy_key};
use crate::with_each_backend;
use std::time::{Duration, Instant};

with_each_backend!(
    a_burst_of_200_proxied_calls_stays_under_the_budget,
    callers_past_the_wait_get_our_429_with_retry_after,
    calls_made_elsewhere_tighten_the_budget,
    a_sync_is_paced_under_the_profiles_budget,
);

async fn paced_app(backend: Backend, wait: &str) -> TestApp {
    spawn_app_with(
        backend,
        &[("PROVIDER_BUDGETS", "on"), ("PROVIDER_BUDGET_WAIT", wait)],
    )
    .await
}

/// Forgets the calls connecting made (reading the account is not paced) and makes the
/// sandbox answer 429 past Klaviyo's budgets, as Klaviyo does.
async fn enforce_klaviyo_budgets(app: &TestApp) {
    let reset = app
        .client
        .post(app.url("/sandbox/_control/reset?provider=klaviyo"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    app.sandbox_faults(serde_json::json!({"provider": "klaviyo", "enforce_budgets": true}))
        .await;
}

/// A counter of `/metrics` for Klaviyo.
async fn counter(app: &TestApp, family: &str) -> u64 {
    let text = app.get_html("/metrics").await;
    let prefix = format!("{family}{{provider=\"klaviyo\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{family} missing"))
}

async fn a_burst_of_200_proxied_calls_stays_under_the_budget(backend: Backend) {
    let app = paced_app(backend, "10s").await;
    let client = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    // One call first (another tier), so the burst finds the key and token in memory.
    assert_eq!(
        app.proxy_get(&key, &client, "api/accounts").await.status(),
        200
    );
    enforce_klaviyo_budgets(&app).await;

    // Lists are in Klaviyo's L tier: 75 a second (and 700 a minute) per account. 200 at
    // once take three one-second windows (each padded by 250 ms): at least 2.5 s.
    let started = Instant::now();
    let calls = (0..200).map(|_| app.proxy_get(&key, &client, "api/lists"));
    let answers = futures_util::future::join_all(calls).await;
    let elapsed = started.elapsed();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        elapsed >= Duration::from_millis(2_400) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["rate_limited"], 0, "the provider never said 429");
    assert_eq!(stats["api_calls"], 200, "no call was retried");
    // At most 75 go at once per window; the others waited their turn. On a loaded machine
    // the calls may reach the pacer spread over a window or so, and the late ones find
    // room in the next window without waiting: at least 200 - 2 x 75 waited.
    let delayed = counter(&app, "connecthub_provider_budget_delays_total").await;
    assert!((50..=125).contains(&delayed), "{delayed} delayed");
    assert_eq!(
        counter(&app, "connecthub_provider_budget_refusals_total").await,
        0
    );
}

async fn callers_past_the_wait_get_our_429_with_retry_after(backend: Backend) {
    let app = paced_app(backend, "2s").await;
    let client = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    enforce_klaviyo_budgets(&app).await;

    // The account is Klaviyo's XS tier: one a second. With at most 2 s of waiting, two
    // of ten calls at once go (now and 1.25 s later); the others are refused at once.
    let started = Instant::now();
    let calls = (0..10).map(|_| app.proxy_get(&key, &client, "api/accounts"));
    let answers = futures_util::future::join_all(calls).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    let mut refused = Vec::new();
    for answer in answers {
        match answer.status().as_u16() {
            200 => {}
            429 => {
                let retry_after: u64 = header(answer.headers(), "retry-after").parse().unwrap();
                let body: serde_json::Value = answer.json().await.unwrap();
                refused.push((retry_after, body));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused.len(), 8, "{refused:?}");
    for (retry_after, body) in &refused {
        assert!((2..=4).contains(retry_after), "{retry_after}");
        assert_eq!(body["error"], "rate_limited");
        assert_eq!(body["budget"], "accounts per second");
        assert_eq!(body["retry_after"], *retry_after);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("\"accounts per second\""), "{message}");
    }
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["rate_limited"], 0);
    assert_eq!(stats["api_calls"], 2, "refused calls were never sent");
    assert_eq!(
        counter(&app, "connecthub_provider_budget_refusals_total").await,
        8
    );

    // Typed operations share the queue: the next room is 2.5 s after the first call,
    // within the 2 s allowed from now, so the operation waits for it.
    let asked = Instant::now();
    let (status, body) = get(&app, &key, &client, "klaviyo/account").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        asked.elapsed() >= Duration::from_millis(700),
        "{:?}",
        asked.elapsed()
    );
    // After the Retry-After, there is room again.
    tokio::time::sleep(Duration::from_secs(refused[0].0)).await;
    assert_eq!(
        app.proxy_get(&key, &client, "api/accounts").await.status(),
        200
    );
    assert_eq!(app.sandbox_stats("klaviyo").await["rate_limited"], 0);
}

async fn calls_made_elsewhere_tighten_the_budget(backend: Backend) {
    let app = paced_app(backend, "5s").await;
    let client = klaviyo_client(&app).await;
    let key = app
        .api_key(&[
            connecthub::api_keys::Scope::TokensRead,
            connecthub::api_keys::Scope::Proxy,
        ])
        .await;
    let reset = app
        .client
        .post(app.url("/sandbox/_control/reset?provider=klaviyo"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);

    // Another tool uses the same account's token: 14 of its 15 account calls this minute.
    let token: serde_json::Value = app.service_token(&key, &client).await.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    for _ in 0..14 {
        let direct = app
            .client
            .get(app.url("/sandbox/klaviyo/api/accounts"))
            .bearer_auth(&token)
            .header("revision", "2024-10-15")
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status(), 200);
    }
    // Past Klaviyo's one-second burst window, then the sandbox enforces its budgets.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.sandbox_faults(serde_json::json!({"provider": "klaviyo", "enforce_budgets": true}))
        .await;

    // connecthub counted none of them; the answer says none is left, so the next call is
    // held until the provider's window resets, which is past the 5 s allowed.
    let last = app.proxy_get(&key, &client, "api/accounts").await;
    assert_eq!(last.status(), 200);
    assert_eq!(header(last.headers(), "ratelimit-remaining"), "0");
    let held = app.proxy_get(&key, &client, "api/accounts").await;
    assert_eq!(held.status(), 429);
    let retry_after: u64 = header(held.headers(), "retry-after").parse().unwrap();
    assert!((5..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = held.json().await.unwrap();
    assert_eq!(body["budget"], "the provider's own limit");
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["rate_limited"], 0, "the provider never said 429");
    assert_eq!(stats["api_calls"], 15);
}

async fn a_sync_is_paced_under_the_profiles_budget(backend: Backend) {
    let app = paced_app(backend, "10s").await;
    crate::syncs::volume(
        &app,
        serde_json::json!({"provider": "klaviyo", "account": "AcmeK1", "model": "profiles", "count": 3_000}),
    )
    .await;
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&crate::syncs::sync_key()).await;
    enforce_klaviyo_budgets(&app).await;

    // 30 pages of 100 in Klaviyo's M tier (10 a second): at least two more windows.
    let started = Instant::now();
    let state = crate::syncs::run_and_wait(&app, &key, &client, "profiles", true).await;
    let elapsed = started.elapsed();
    assert_eq!(state["last_outcome"], "succeeded", "{state}");
    assert_eq!(crate::syncs::counts(&state).0, 3_000);
    assert!(elapsed >= Duration::from_millis(2_400), "{elapsed:?}");
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["rate_limited"], 0, "the provider never said 429");
    assert_eq!(stats["api_calls"], 30);
    // Here a sync reads about 13 pages a second, so some pages wait their turn (5 in our
    // runs); a slower machine may need none, hence no exact count.
}
