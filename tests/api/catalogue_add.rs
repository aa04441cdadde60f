//! "Add from the catalogue" on `/admin/providers`: HubSpot added with one button, listed
//! with missing credentials, then connectable once its credentials are set (its connect
//! step sends the browser to HubSpot's real authorize URL, not followed: no network);
//! members get 403; a second add and an unknown name are refused and nothing changes.

use crate::helpers::{location, spawn_app_with, unescape, Backend, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::provider_settings;
use diesel::prelude::*;

on_both_backends!(
    hubspot_added_from_the_catalogue_connects_once_configured,
    a_member_gets_403_and_nothing_is_added,
    a_second_add_and_unknown_entries_are_refused,
);

async fn add(app: &TestApp, name: &str) -> reqwest::Response {
    app.post_form(&format!("/admin/providers/catalogue/{name}"), &[])
        .await
}

async fn stored_rows(app: &TestApp) -> i64 {
    app.db(|conn| provider_settings::table.count().get_result(conn))
        .await
}

async fn added_audit(app: &TestApp) -> usize {
    app.audit_actions()
        .await
        .iter()
        .filter(|a| *a == "provider_added")
        .count()
}

async fn hubspot_added_from_the_catalogue_connects_once_configured(app: TestApp) {
    app.login_as(Role::Admin).await;
    let page = app.get_html("/admin/providers").await;
    assert!(page.contains(r#"id="catalogue-hubspot""#), "offered");
    assert!(page.contains(r#"<form method="post" action="/admin/providers/catalogue/hubspot">"#));
    assert!(page.contains("https://developers.hubspot.com/"), "doc link");
    assert!(
        !page.contains(r#"id="catalogue-klaviyo""#),
        "a built-in is not offered again"
    );

    let added = add(&app, "hubspot").await;
    assert_eq!(location(&added), "/admin/providers/hubspot");
    assert_eq!(
        app.toast_on("/admin/providers/hubspot").await,
        "success: Provider hubspot added from the catalogue"
    );
    let page = app.get_html("/admin/providers/hubspot").await;
    assert!(page.contains("missing credentials"), "{page}");
    let listed = app.get_html("/admin/providers").await;
    assert!(listed.contains(r#"id="provider-hubspot""#) && listed.contains("added here"));
    assert!(
        !listed.contains(r#"id="catalogue-hubspot""#),
        "no longer offered"
    );
    assert_eq!(added_audit(&app).await, 1);

    let saved = app
        .post_form(
            "/admin/providers/hubspot",
            &[
                ("client_id", "hub-client-1"),
                ("client_secret", "hub-secret-1"),
            ],
        )
        .await;
    assert_eq!(location(&saved), "/admin/providers/hubspot");
    let start = app.start_connect("hubspot", "/admin/clients").await;
    assert_eq!(start.status(), 302);
    let authorize = reqwest::Url::parse(&location(&start)).unwrap();
    assert_eq!(
        &authorize.as_str()[..authorize.as_str().find('?').unwrap()],
        "https://app.hubspot.com/oauth/authorize"
    );
    let query: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    assert!(query.contains(&("client_id".into(), "hub-client-1".into())));
    assert!(query.iter().all(|(_, v)| !v.contains("hub-secret-1")));
}

async fn a_member_gets_403_and_nothing_is_added(app: TestApp) {
    app.login_as(Role::Member).await;
    assert_eq!(add(&app, "hubspot").await.status(), 403);
    assert_eq!(stored_rows(&app).await, 0);
    assert_eq!(added_audit(&app).await, 0);
}

async fn a_second_add_and_unknown_entries_are_refused(app: TestApp) {
    app.login_as(Role::Admin).await;
    assert_eq!(
        location(&add(&app, "github").await),
        "/admin/providers/github"
    );
    let rows = stored_rows(&app).await;

    let again = add(&app, "github").await;
    assert_eq!(again.status(), 400);
    let page = again.text().await.unwrap();
    assert!(
        unescape(&page).contains(
            r#"id="catalogue-error">Not added: the definition names provider "github", which exists already."#
        ),
        "{page}"
    );

    assert_eq!(add(&app, "no-such-entry").await.status(), 404);
    assert_eq!(add(&app, "bad%00name").await.status(), 404);
    assert_eq!(stored_rows(&app).await, rows);
    assert_eq!(added_audit(&app).await, 1);
}

/// The catalogue section in Chromium: HubSpot's Add button adds it and opens its page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_is_added_with_its_button_in_a_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let user = app.create_user(Role::Admin).await;
    browser.sign_in(&app, &user).await;
    browser.goto(&app.url("/admin/providers#catalogue")).await;
    browser
        .wait_for_text("#catalogue-title", "Add from the catalogue")
        .await;
    browser.screenshot("catalogue-section").await;
    browser.goto(&app.url("/admin/providers#catalogue")).await;
    browser
        .click(r#"form[action="/admin/providers/catalogue/hubspot"] button"#)
        .await;
    browser
        .wait_for_text(
            "#toasts .toast-success",
            "Provider hubspot added from the catalogue",
        )
        .await;
    assert_eq!(browser.path().await, "/admin/providers/hubspot");
    browser.screenshot("catalogue-hubspot-added").await;
    assert!(browser.console_errors().await.is_empty());
}
