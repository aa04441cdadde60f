//! The Kustomer subdomain in a real browser: asked on the admin connect form and on the
//! hosted connect page, refused when it is not one DNS label, kept with the connection
//! and shown on its page. Screenshots go to target/screenshots/settings-*.png.

use crate::browser::Browser;
use crate::connect_sessions::{session_for, team_key};
use crate::helpers::{spawn_app, Backend};
use connecthub::auth::users::Role;
use fantoccini::Locator;
use serde_json::json;

/// Waits (up to 10 s, across page loads) until an element matching `css` contains `part`.
async fn wait_for_part(browser: &Browser, css: &str, part: &str) {
    let mut seen = String::new();
    for _ in 0..100 {
        if let Ok(elements) = browser.client.find_all(Locator::Css(css)).await {
            for element in elements {
                if let Ok(text) = element.text().await {
                    if text.contains(part) {
                        return;
                    }
                    seen = text;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css} never contained {part:?}; last seen {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subdomain_is_asked_on_the_admin_and_hosted_connect_pages() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.create_user(Role::Admin).await;
    browser.sign_in(&app, &admin).await;
    browser.wait_for_text("h1", "Clients").await;
    browser.screenshot("settings-admin-form").await;

    // A host instead of a label: refused with the reason, nothing started.
    browser
        .fill("#connect-kustomer-subdomain", "evil.com")
        .await;
    browser.click("#connect-kustomer").await;
    wait_for_part(
        &browser,
        ".toast",
        "Kustomer subdomain: use only letters a-z",
    )
    .await;
    browser.screenshot("settings-admin-refused").await;
    assert!(app.clients().await.is_empty());

    browser.fill("#connect-kustomer-subdomain", "Acme").await;
    browser.click("#connect-kustomer").await;
    browser.click("#allow").await;
    wait_for_part(&browser, ".toast", "Connected Kustomer account").await;
    let rows = app.clients().await;
    assert_eq!(rows[0].connection_config, r#"{"subdomain":"acme"}"#);
    browser
        .goto(&app.url(&format!("/admin/clients/{}", rows[0].id)))
        .await;
    wait_for_part(&browser, "dl.facts", "Kustomer subdomain").await;
    wait_for_part(&browser, "code.connection-setting", "acme").await;
    browser.screenshot("settings-client-details").await;

    // The hosted page asks the end user the same, with the same help text.
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["kustomer"]}),
    )
    .await;
    browser.goto(session["connect_url"].as_str().unwrap()).await;
    browser.wait_for_text("h1", "Connect an account").await;
    wait_for_part(
        &browser,
        ".setting-help",
        "The part before .kustomerapp.com",
    )
    .await;
    browser.fill("#connect-kustomer-subdomain", "initech").await;
    browser.screenshot("settings-hosted-form").await;
    browser.click("#connect-kustomer").await;
    browser.click("#allow").await;
    wait_for_part(&browser, "#connect-result h1", "connected").await;
    browser.screenshot("settings-hosted-result").await;
    let rows = app.clients().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].connection_config, r#"{"subdomain":"initech"}"#);
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;
}
