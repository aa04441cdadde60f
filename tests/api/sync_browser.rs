//! Syncs in headless Chromium (issue 15): the client page's Syncs card (last and next run,
//! counts, "Sync now" through htmx without a page load, the card following the run, the
//! latest records) and /admin/syncs (failing syncs first, filters by provider and status).

use crate::browser::Browser;
use crate::helpers::{spawn_app, Backend};
use crate::operations::{klaviyo_client, kustomer_client};
use crate::syncs::{run_and_wait, sync_key, volume, KLAVIYO_ACCOUNT};
use connecthub::auth::users::Role;
use fantoccini::Locator;
use serde_json::json;

/// Brings the Syncs card into view for the screenshot.
async fn show_card(browser: &Browser) {
    browser
        .client
        .execute(
            "document.querySelector('#syncs-card').scrollIntoView(); window.scrollBy(0, -110)",
            vec![],
        )
        .await
        .unwrap();
}

/// The texts of the elements matching `css`.
async fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in browser.client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(element.text().await.unwrap().trim().to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_syncs_card_and_the_syncs_page_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    volume(&app, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "count": 120})).await;
    let klaviyo = klaviyo_client(&app).await;
    let kustomer = kustomer_client(&app).await;
    let key = app.api_key(&sync_key()).await;
    // A Kustomer sync that failed at the provider, for the syncs page.
    app.sandbox_faults(json!({"provider": "kustomer", "api_failures": 1, "api_status": 400}))
        .await;
    let failed = run_and_wait(&app, &key, &kustomer, "customers", false).await;
    assert_eq!(failed["last_outcome"], "failed", "{failed}");
    let user = app.create_user(Role::Admin).await;
    browser.sign_in(&app, &user).await;

    browser
        .goto(&app.url(&format!("/admin/clients/{klaviyo}")))
        .await;
    browser.wait_for_text("#syncs-title", "Syncs").await;
    assert_eq!(
        texts(&browser, "#syncs tbody td:first-child").await,
        ["lists", "segments", "profiles"]
    );
    browser
        .wait_for_text("#sync-profiles td:nth-child(2)", "never run")
        .await;
    browser
        .wait_for_text("#latest-records", "No records synced yet.")
        .await;
    show_card(&browser).await;
    browser.screenshot("sync-card-before").await;

    // "Sync now" goes through htmx: the page is not loaded again (the marker stays), a
    // toast shows, and the card follows the run until it ends.
    browser
        .client
        .execute("window.syncMarker = 1", vec![])
        .await
        .unwrap();
    browser.click("#sync-now-profiles").await;
    browser
        .wait_for_text("#toasts .toast", "A profiles sync of Acme Store starts now")
        .await;
    browser
        .wait_for_text("#sync-profiles td:nth-child(4)", "succeeded")
        .await;
    browser
        .wait_for_text("#sync-profiles td:nth-child(6)", "120")
        .await;
    // The next run is the definition's frequency (15 min) away.
    let next = texts(&browser, "#sync-profiles td:nth-child(9)").await;
    assert!(
        ["in 14 min", "in 15 min"].contains(&next[0].as_str()),
        "{next:?}"
    );
    let marker = browser
        .client
        .execute("return window.syncMarker", vec![])
        .await
        .unwrap();
    assert_eq!(marker, json!(1), "no page load");
    let latest = texts(&browser, "#latest-records tbody td:first-child").await;
    assert_eq!(latest, vec!["profiles"; 10]);
    assert_eq!(
        texts(&browser, "#latest-records tbody td:nth-child(4)").await,
        vec!["present"; 10]
    );
    // The card stops reloading once nothing waits or runs.
    let polling = browser
        .client
        .execute(
            "return document.querySelector('#syncs-card').hasAttribute('hx-trigger')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(polling, json!(false));
    show_card(&browser).await;
    browser.screenshot("sync-card-after").await;
    assert!(browser.console_errors().await.is_empty());

    // Every sync, the failing one first; then filtered.
    browser.goto(&app.url("/admin/syncs")).await;
    browser.wait_for_text("h1", "Syncs").await;
    let first = texts(&browser, "#syncs tbody tr:first-child td").await;
    assert_eq!(
        (first[1].as_str(), first[2].as_str(), first[3].as_str()),
        ("kustomer", "customers", "failing"),
        "{first:?}"
    );
    assert_eq!(texts(&browser, "#syncs tbody tr").await.len(), 2);
    browser.screenshot("syncs-page").await;
    let choose = |field: &str, value: &str| {
        format!("document.querySelector('#sync-filters select[name={field}]').value = '{value}'")
    };
    browser
        .client
        .execute(&choose("provider", "klaviyo"), vec![])
        .await
        .unwrap();
    browser.click("#sync-filters button[type=submit]").await;
    browser
        .wait_for_text("#syncs tbody tr:first-child td:nth-child(3)", "profiles")
        .await;
    assert_eq!(
        browser.path().await,
        "/admin/syncs?provider=klaviyo&status="
    );
    assert_eq!(texts(&browser, "#syncs tbody tr").await.len(), 1);
    browser
        .client
        .execute(&choose("provider", ""), vec![])
        .await
        .unwrap();
    browser
        .client
        .execute(&choose("status", "failing"), vec![])
        .await
        .unwrap();
    browser.click("#sync-filters button[type=submit]").await;
    browser
        .wait_for_text("#syncs tbody tr:first-child td:nth-child(2)", "kustomer")
        .await;
    assert_eq!(texts(&browser, "#syncs tbody tr").await.len(), 1);
    browser.screenshot("syncs-page-failing").await;
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
}
