//! A refresh cut short by a crash: the provider rotated the refresh token but its answer
//! never arrived (the sandbox holds the answer back, the process is killed meanwhile). The
//! mark written before the call survives the crash; once the dead refresh's lease is over
//! the connection says that the outcome is unknown (page and service API), the next
//! refresh runs at once and settles it — here the strict sandbox kills the grant because
//! the old refresh token came back, and the connection says it needs reconnecting and why.

use crate::helpers::{spawn_process, Backend};
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use serde_json::{json, Value};
use std::time::Duration;

crate::with_each_backend!(a_refresh_killed_mid_call_says_its_outcome_is_unknown_then_settles);

async fn a_refresh_killed_mid_call_says_its_outcome_is_unknown_then_settles(backend: Backend) {
    let provider = crate::helpers::spawn_app(backend).await;
    let mut process = spawn_process(backend, &provider, &[]).await;
    let app = &process.app;
    let admin = app.login_as(Role::Admin).await;
    assert_eq!(app.connect("klaviyo", Some("AcmeK1")).await.status(), 303);
    let id = app.clients().await[0].id.clone();
    let key = app.api_key(&Scope::ALL).await;
    provider
        .sandbox_faults(json!({"provider": "klaviyo", "storm": {"calls": 1, "kinds": ["late_answer"], "slow_ms": 4000}}))
        .await;
    let refresh = app
        .client
        .post(app.url(&format!("/api/integrations/klaviyo/oauth/refresh/{id}")))
        .header("x-csrf-token", app.csrf_token().await)
        .header("accept", "application/json")
        .send();
    let pid = process.child.id().to_string();
    tokio::select! {
        _ = refresh => panic!("the refresh answered before the kill"),
        _ = async {
            // The provider has rotated by now; its answer is held back.
            wait_for_refresh_calls(&provider, 1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let killed = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            assert!(killed.unwrap().success());
        } => {}
    }
    process.child.wait().unwrap();
    process.restart().await;
    let app = &process.app;
    if app.get("/account").await.status() != 200 {
        app.login(&admin.email, &admin.password).await;
    }

    // Once the dead lease (30 s) is over: reported, then settled by the next refresh.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let settled = loop {
        let listed = service_view(app, &key, &id).await;
        let error = listed["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !seen.contains(&error) {
            seen.push(error.clone());
        }
        if listed["status"] == "needs_reauth" {
            break listed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never settled: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let error = settled["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains("invalid_grant") && error.contains("was interrupted"),
        "{error}"
    );
    let actions = app.audit_actions().await;
    assert!(
        actions.contains(&"token_refresh_interrupted".to_string()),
        "{actions:?}"
    );
    let page = app.get_html(&format!("/admin/clients/{id}")).await;
    assert!(
        crate::helpers::unescape(&page).contains("was interrupted by a stop"),
        "{page}"
    );
    let stats = provider.sandbox_stats("klaviyo").await;
    assert_eq!(
        stats["live_refresh_tokens"], 0,
        "the strict sandbox killed the grant: {stats}"
    );
    println!("messages the connection showed: {seen:#?}");
}

async fn wait_for_refresh_calls(provider: &crate::helpers::TestApp, n: u64) {
    for _ in 0..200 {
        let stats = provider.sandbox_stats("klaviyo").await;
        if stats["token_calls"]["refresh_token"].as_u64() >= Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the refresh never reached the provider");
}

async fn service_view(app: &crate::helpers::TestApp, key: &str, id: &str) -> Value {
    let list: Value = app
        .client
        .get(app.url("/api/v1/clients"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["clients"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("the client is listed: {list}"))
}
