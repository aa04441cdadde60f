//! API-key clients switched to OAuth: "Switch to OAuth" on the client's page runs the
//! OAuth flow, and the consent for the same account upgrades the client in place (same
//! row and id, tags and default flag kept, key destroyed, audited, webhook event). OAuth
//! then takes precedence: the hand-out and the proxy use the tokens, and an API key for
//! the same account is refused without changing anything.

use crate::helpers::{location, unescape, TestApp};
use crate::on_both_backends;
use crate::operations::ACME_KEY;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::clients::Client;
use connecthub::db::schema::{credentials, webhook_events};
use connecthub::providers::AuthType;
use diesel::prelude::*;

on_both_backends!(
    an_api_key_client_is_upgraded_in_place_and_oauth_then_wins,
    only_the_owner_is_offered_the_switch,
);

async fn api_key_client(app: &TestApp) -> Client {
    let answer = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", ACME_KEY)],
        )
        .await;
    assert_eq!(answer.status(), 303);
    let client = app.clients().await.remove(0);
    assert_eq!(client.auth_type, AuthType::ApiKey);
    client
}

/// (api_key, access_token, refresh_token) sealed columns are set.
async fn sealed(app: &TestApp, id: &str) -> (bool, bool, bool) {
    let id = id.to_string();
    let row: (Option<String>, Option<String>, Option<String>) = app
        .db(move |conn| {
            credentials::table
                .find(id)
                .select((
                    credentials::api_key,
                    credentials::access_token,
                    credentials::refresh_token,
                ))
                .first(conn)
        })
        .await;
    (row.0.is_some(), row.1.is_some(), row.2.is_some())
}

fn switch_link(html: &str) -> Option<String> {
    let rest = html.split(r#"id="switch-to-oauth" href=""#).nth(1)?;
    Some(unescape(rest.split('"').next()?))
}

async fn an_api_key_client_is_upgraded_in_place_and_oauth_then_wins(app: TestApp) {
    app.login_as(Role::Admin).await;
    let before = api_key_client(&app).await;
    let page_path = format!("/admin/clients/{}", before.id);
    let tagged = app
        .post_form(&format!("{page_path}/tags"), &[("tags", "vip, team-a")])
        .await;
    assert!(tagged.status().is_redirection() || tagged.status().is_success());
    let before = app.clients().await.remove(0);
    assert_eq!(before.tag_list(), ["vip", "team-a"]);
    assert_eq!(sealed(&app, &before.id).await, (true, false, false));

    // The page offers the switch; it runs the OAuth flow and comes back to the page.
    let html = app.get_html(&page_path).await;
    let link = switch_link(&html).expect("Switch to OAuth offered");
    let start = app.get(&link).await;
    assert_eq!(start.status(), 302, "{link}");
    let callback = app.consent(&location(&start), "allow", None).await;
    let done = app.callback(&callback).await;
    assert_eq!(location(&done), page_path);

    let clients = app.clients().await;
    assert_eq!(clients.len(), 1, "no second client");
    let after = &clients[0];
    assert_eq!(after.id, before.id);
    assert_eq!(after.auth_type, AuthType::Oauth2);
    assert_eq!(after.tag_list(), before.tag_list());
    assert_eq!(after.is_default, before.is_default);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(
        sealed(&app, &after.id).await,
        (false, true, true),
        "the key is destroyed, the tokens sealed"
    );
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"client_upgraded_to_oauth".to_string()));
    let events: Vec<String> = app
        .db(|conn| {
            webhook_events::table
                .filter(webhook_events::event_type.eq("connection.reconnected"))
                .select(webhook_events::body)
                .load(conn)
        })
        .await;
    let event: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(event["data"]["upgraded_from"], "api_key");
    assert_eq!(event["data"]["connection_id"], after.id.as_str());

    // The page shows the upgrade in the client's history, and no switch any more.
    let html = unescape(&app.get_html(&page_path).await);
    assert!(switch_link(&html).is_none());
    assert!(
        html.contains("client_upgraded_to_oauth"),
        "history lists the upgrade"
    );

    // OAuth takes precedence: the hand-out and the proxy use the tokens.
    let key = app
        .api_key(&[Scope::TokensRead, Scope::Proxy, Scope::ClientsRead])
        .await;
    let token: serde_json::Value = app
        .service_token(&key, &after.id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "bearer", "{token}");
    assert!(token.get("api_key").is_none());
    assert_eq!(
        app.proxy_get(&key, &after.id, "v1/teams").await.status(),
        200
    );

    // An API key for the same account no longer replaces the tokens.
    let refused = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", ACME_KEY)],
        )
        .await;
    let toast = app.toast_on(&location(&refused)).await;
    assert!(toast.contains("takes precedence"), "{toast}");
    let unchanged = app.clients().await.remove(0);
    assert_eq!(unchanged.auth_type, AuthType::Oauth2);
    assert_eq!(sealed(&app, &unchanged.id).await, (false, true, true));
    assert_eq!(
        app.audit_actions()
            .await
            .iter()
            .filter(|a| *a == "api_key_stored")
            .count(),
        1,
        "only the first key was stored"
    );
}

async fn only_the_owner_is_offered_the_switch(app: TestApp) {
    app.login_as(Role::Admin).await;
    let client = api_key_client(&app).await;
    let page_path = format!("/admin/clients/{}", client.id);
    let other = app.new_browser();
    other.login_as(Role::Admin).await;
    let html = other.get_html(&page_path).await;
    assert!(switch_link(&html).is_none());
    assert!(html.contains(r#"id="switch-owner-only""#), "{html}");
    // An OAuth client has nothing to switch.
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    let klaviyo = app
        .clients()
        .await
        .into_iter()
        .find(|c| c.provider == "klaviyo")
        .unwrap();
    let html = app
        .get_html(&format!("/admin/clients/{}", klaviyo.id))
        .await;
    assert!(switch_link(&html).is_none());
    assert!(!html.contains("switch-owner-only"));
}

/// "Switch to OAuth" in Chromium: the button, the consent page, back on the same client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_to_oauth_in_the_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let user = app.create_user(Role::Admin).await;
    app.login(&user.email, &user.password).await;
    let client = api_key_client(&app).await;
    let page_path = format!("/admin/clients/{}", client.id);
    browser.sign_in(&app, &user).await;
    browser.goto(&app.url(&page_path)).await;
    browser
        .wait_for_text("#switch-to-oauth", "Switch to OAuth")
        .await;
    browser.screenshot("client-switch-to-oauth").await;
    browser.click("#switch-to-oauth").await;
    browser.wait_for_text("#allow", "Allow").await;
    browser.click("#allow").await;
    browser
        .wait_for_text("#history code", "client_upgraded_to_oauth")
        .await;
    assert_eq!(browser.path().await, page_path, "back on the same client");
    browser.screenshot("client-switched-to-oauth").await;
    let after = app.clients().await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].auth_type, AuthType::Oauth2);
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
}
