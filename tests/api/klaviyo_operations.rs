//! Typed Klaviyo operations (`/api/v1/clients/{id}/klaviyo/…`): the account's lists and
//! segments read in full, and the audited profile refresh (API, details page, browser).

use crate::helpers::{location, TestApp};
use crate::on_both_backends;
use crate::operations::{client_of, get, klaviyo_client, kustomer_client, post, proxy_key};
use connecthub::db::schema::clients;
use diesel::prelude::*;
use serde_json::{json, Value};

on_both_backends!(
    klaviyo_account_lists_and_segments_are_read_in_full,
    klaviyo_profile_refresh_stores_counts_and_is_audited,
    the_details_page_refreshes_klaviyo_counts,
);

async fn klaviyo_account_lists_and_segments_are_read_in_full(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    let (status, account) = get(&app, &key, &client, "klaviyo/account").await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["account_id"], "AcmeK1");
    assert_eq!(account["account_name"], "Acme Store");
    assert_eq!(account["email_domain"], "acme-store.example");
    assert_eq!(account["timezone"], "America/New_York");

    let (_, lists) = get(&app, &key, &client, "klaviyo/lists").await;
    let list_ids: std::collections::HashSet<&str> = lists["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!((lists["count"].as_u64(), list_ids.len()), (Some(23), 23));
    assert_eq!(lists["data"][8]["name"], "Newsletter 2");
    let (_, segments) = get(&app, &key, &client, "klaviyo/segments").await;
    assert_eq!(segments["count"], 7);
    assert_eq!(segments["data"][0]["name"], "Engaged (30 days)");
}

/// As if the account had had no lists or segments when it was connected.
async fn zero_counts(app: &TestApp, client: &str) {
    let id = client.to_string();
    app.db(move |conn| {
        let profile: String = clients::table
            .find(&id)
            .select(clients::profile)
            .first(conn)?;
        let mut profile: Value = serde_json::from_str(&profile).unwrap();
        profile["lists_count"] = json!(0);
        profile["segments_count"] = json!(0);
        profile["note"] = json!("kept");
        diesel::update(clients::table.find(&id))
            .set(clients::profile.eq(profile.to_string()))
            .execute(conn)
    })
    .await;
}

async fn stored_profile(app: &TestApp, client: &str) -> Value {
    let stored = app.clients().await.into_iter().find(|c| c.id == client);
    stored.unwrap().profile_value()
}

async fn klaviyo_profile_refresh_stores_counts_and_is_audited(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    zero_counts(&app, &client).await;
    let (status, refreshed) = post(&app, &key, &client, "klaviyo/profile/refresh", json!({})).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(
        refreshed["before"],
        json!({"lists_count": 0, "segments_count": 0})
    );
    assert_eq!(
        refreshed["after"],
        json!({"lists_count": 23, "segments_count": 7})
    );

    let profile = stored_profile(&app, &client).await;
    assert_eq!(
        (
            profile["lists_count"].as_u64(),
            profile["segments_count"].as_u64()
        ),
        (Some(23), Some(7))
    );
    assert_eq!(profile["account_name"], "Acme Store");
    assert_eq!(profile["note"], "kept", "fields Klaviyo does not send stay");

    let entries = app
        .db(move |conn| connecthub::audit::for_target(conn, "client", &client, 10))
        .await;
    let entry = entries
        .iter()
        .find(|e| e.action == "client_profile_refreshed")
        .expect("the refresh is audited");
    assert_eq!(entry.actor_type, "api_key");
    assert_eq!(entry.actor_label, "test service");
    let details: Value = serde_json::from_str(&entry.details).unwrap();
    assert_eq!(details["after"]["lists_count"], 23);
    assert_eq!(details["before"]["segments_count"], 0);
    let verdict = app.db(connecthub::audit::verify).await;
    assert!(matches!(verdict, connecthub::audit::Verdict::Intact { .. }));
}

async fn the_details_page_refreshes_klaviyo_counts(app: TestApp) {
    let client = klaviyo_client(&app).await;
    zero_counts(&app, &client).await;
    let page = format!("/admin/clients/{client}");
    let action = format!("{page}/profile/refresh");
    assert!(app.get_html(&page).await.contains(r#"id="refresh-counts""#));

    // Without the CSRF token nothing happens.
    let forged = app.client.post(app.url(&action)).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(stored_profile(&app, &client).await["lists_count"], 0);

    // htmx: the profile facts come back with the new counts, and a toast.
    let response = app
        .client
        .post(app.url(&action))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", app.csrf_token().await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let toast = crate::helpers::header(response.headers(), "hx-trigger");
    assert!(toast.contains("23 lists, 7 segments"), "{toast}");
    let html = response.text().await.unwrap();
    assert!(
        html.trim_start()
            .starts_with(r#"<dl class="facts" id="profile">"#),
        "{html}"
    );
    let lists = html.split("<dt>Lists count</dt>").nth(1).unwrap();
    assert!(lists.trim_start().starts_with("<dd>23</dd>"), "{html}");
    assert_eq!(stored_profile(&app, &client).await["segments_count"], 7);
    let audited = app
        .db(move |conn| connecthub::audit::for_target(conn, "client", &client, 1))
        .await;
    assert_eq!(
        (audited[0].action.as_str(), audited[0].actor_type.as_str()),
        ("client_profile_refreshed", "user")
    );

    // Without JavaScript: back to the page, which shows the toast.
    let plain = app.post_form(&action, &[]).await;
    assert_eq!(location(&plain), page);
    let toast = app.toast_on(&page).await;
    assert!(
        toast.starts_with("success: Refreshed Acme Store"),
        "{toast}"
    );

    // Kustomer clients have no such button, and the action refuses them.
    let kustomer = kustomer_client(&app).await;
    let kustomer_page = format!("/admin/clients/{kustomer}");
    assert!(!app
        .get_html(&kustomer_page)
        .await
        .contains("refresh-counts"));
    let refused = app
        .post_form(&format!("{kustomer_page}/profile/refresh"), &[])
        .await;
    assert_eq!(location(&refused), kustomer_page);
    let toast = app.toast_on(&kustomer_page).await;
    assert!(
        toast.starts_with("error: Counts of Acme Support not refreshed"),
        "{toast}"
    );
}

mod in_the_browser {
    use crate::browser::Browser;
    use crate::helpers::{spawn_app, Backend};
    use connecthub::auth::users::Role;

    /// "Refresh counts" swaps the new counts into the profile, with a toast, no reload.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refresh_counts_on_the_details_page() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let admin = app.login_as(Role::Admin).await;
        app.connect("klaviyo", Some("AcmeK1")).await;
        let client = super::client_of(&app, "klaviyo").await;
        super::zero_counts(&app, &client).await;
        browser.goto(&app.url("/login")).await;
        browser.fill("#email", &admin.email).await;
        browser.fill("#password", &admin.password).await;
        browser.click("button[type=submit]").await;
        browser.wait_for_text("h1", "Clients").await;

        browser
            .goto(&app.url(&format!("/admin/clients/{client}")))
            .await;
        browser.wait_for_text("#client-name", "Acme Store").await;
        let mark = "window.sameDocument = true; return true;";
        browser.client.execute(mark, vec![]).await.unwrap();
        browser.click("#refresh-counts").await;
        browser
            .wait_for_text(
                "#toasts .toast",
                "Refreshed Acme Store: 23 lists, 7 segments",
            )
            .await;
        browser.wait_for_text("#profile dd", "23").await;
        let same = "return window.sameDocument === true;";
        let same = browser.client.execute(same, vec![]).await.unwrap();
        assert_eq!(same, serde_json::json!(true), "without a page reload");
        browser.screenshot("client-details-refresh-counts").await;
        browser.close().await;
    }
}
