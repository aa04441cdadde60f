//! The usage page over real proxied calls: totals, periods, provider filter, member scope,
//! KPIs.

use crate::helpers::{TestApp, ACME_CONNECT_CALLS, GLOBEX_CONNECT_CALLS};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;

on_both_backends!(usage_page_counts_real_calls, members_see_their_own_usage);

/// Connects Klaviyo for the signed-in user and makes `ok` good calls and `bad` failing ones.
async fn calls(app: &TestApp, account: &str, ok: usize, bad: usize) {
    app.connect("klaviyo", Some(account)).await;
    let client = app
        .clients()
        .await
        .into_iter()
        .find(|c| c.provider_account_id == account)
        .unwrap()
        .id;
    let key = app.api_key(&[Scope::Proxy]).await;
    for i in 0..ok + bad {
        let path = if i < ok {
            "api/lists"
        } else {
            "api/no-such-endpoint"
        };
        app.proxy_get(&key, &client, path).await;
    }
}

async fn figure(app: &TestApp, path: &str, id: &str, expected: &str) {
    app.wait_for_figure(path, id, expected).await;
}

async fn usage_page_counts_real_calls(app: TestApp) {
    app.login_as(Role::Admin).await;
    calls(&app, "AcmeK1", 3, 1).await;
    // Connecting read the account's profile: those calls count too.
    let total = (4 + ACME_CONNECT_CALLS).to_string();
    figure(&app, "/admin/usage", "total-calls", &total).await;
    figure(&app, "/admin/usage", "total-errors", "1").await;
    figure(&app, "/admin/usage", "rate-limit-hits", "0").await;
    for period in ["24h", "7d", "30d"] {
        figure(
            &app,
            &format!("/admin/usage?period={period}"),
            "total-calls",
            &total,
        )
        .await;
    }
    figure(&app, "/admin/usage?provider=kustomer", "total-calls", "0").await;
    let html = crate::helpers::unescape(&app.get_html("/admin/usage").await);
    assert!(html.contains("<code>lists</code>"), "top endpoints");
    assert!(html.contains("Acme Store (klaviyo)"), "top clients");
    assert!(
        html.contains("OAuth completion rate") && html.contains("100.0 %"),
        "KPI from the audit log"
    );
    assert!(
        html.contains("API error rate") && html.contains("11.1 %") && html.contains("below target")
    );
    assert!(html.contains("<svg class=\"chart\""), "server-drawn chart");
    assert_eq!(app.get("/admin/usage?period=1y").await.status(), 400);
    assert_eq!(app.get("/admin/usage?provider=nope").await.status(), 400);
}

async fn members_see_their_own_usage(app: TestApp) {
    app.login_as(Role::Admin).await;
    calls(&app, "AcmeK1", 2, 0).await;
    let member = app.new_browser();
    member.login_as(Role::Member).await;
    calls(&member, "GlobexK2", 1, 0).await;
    let (admins, members) = (2 + ACME_CONNECT_CALLS, 1 + GLOBEX_CONNECT_CALLS);
    figure(
        &app,
        "/admin/usage",
        "total-calls",
        &(admins + members).to_string(),
    )
    .await;
    figure(&member, "/admin/usage", "total-calls", &members.to_string()).await;
    let html = member.get_html("/admin/usage").await;
    assert!(
        !html.contains("Acme Store"),
        "another user's client is not shown"
    );

    // An OAuth flow the admin abandoned lowers the admin's completion rate (2 of 3
    // flows), not the member's (their 1 of 1).
    let started = app
        .get("/api/integrations/klaviyo/oauth/start?redirect_path=/admin/clients")
        .await;
    assert_eq!(started.status(), 302);
    assert!(app.get_html("/admin/usage").await.contains("66.7 %"));
    let html = member.get_html("/admin/usage").await;
    assert!(html.contains("OAuth completion rate") && html.contains("100.0 %"));
    assert!(!html.contains("66.7 %"));
}
