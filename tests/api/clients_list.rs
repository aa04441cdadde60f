//! The Clients list at volume: search, filters, sort, pages, bad input, live updates,
//! bulk tagging, last-used times.

use crate::helpers::{location, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;

on_both_backends!(
    search_filter_sort_and_pages,
    bad_list_input_is_refused_clearly,
    members_see_only_their_own_clients,
    live_updates_poll_for_changes,
    bulk_tagging_for_admins,
    bulk_tagging_refuses_a_client_that_already_has_the_most_tags,
    last_used_follows_token_hand_outs,
);

/// 120 seeded clients: names "<Word> <Kind> <n>", 20 owners, statuses, tags by n.
async fn seeded(app: &TestApp) {
    app.db(|conn| Ok(connecthub::seed::seed(conn, 120).unwrap()))
        .await;
}

/// The "1–50 of 120" line of the list.
async fn count_line(app: &TestApp, query: &str) -> String {
    let response = app.get(&format!("/admin/clients{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    let html = crate::helpers::unescape(&response.text().await.unwrap());
    html.split(r#"id="client-count">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default()
        .to_string()
}

async fn search_filter_sort_and_pages(app: TestApp) {
    app.login_as(Role::Admin).await;
    seeded(&app).await;
    assert_eq!(count_line(&app, "").await, "1–50 of 120");
    assert_eq!(count_line(&app, "?page=3").await, "101–120 of 120");
    assert_eq!(
        count_line(&app, "?page=9").await,
        "Page 9 is past the end (120 in all)"
    );
    // Names: n % 12 == 1 is "Globex" → 10 of 120; case does not matter.
    assert_eq!(count_line(&app, "?q=globex").await, "1–10 of 10");
    assert_eq!(count_line(&app, "?q=GLOBEX").await, "1–10 of 10");
    // Account id, email domain, owner email.
    assert_eq!(count_line(&app, "?q=seed-klaviyo-000007").await, "1–1 of 1");
    assert_eq!(count_line(&app, "?q=wonka7.example").await, "1–1 of 1");
    assert_eq!(
        count_line(&app, "?q=seed-owner-3%40example.com").await,
        "1–6 of 6"
    );
    // LIKE wildcards typed by a user are plain characters.
    assert_eq!(count_line(&app, "?q=%25").await, "No clients");
    assert_eq!(count_line(&app, "?q=_").await, "No clients");
    // Filters: status n%4==2 → 30, kustomer n%3==0 → 40, tag vip n%5==0 → 24, combined.
    assert_eq!(count_line(&app, "?status=needs_reauth").await, "1–30 of 30");
    assert_eq!(count_line(&app, "?provider=kustomer").await, "1–40 of 40");
    assert_eq!(count_line(&app, "?tag=vip").await, "1–24 of 24");
    assert_eq!(count_line(&app, "?tag=VIP").await, "1–24 of 24");
    assert_eq!(
        count_line(&app, "?provider=kustomer&tag=vip").await,
        "1–8 of 8"
    );
    // Sort by name: "Acme Labs 12"... the first row is the alphabetically first name.
    let html = app.get_html("/admin/clients?sort=name").await;
    let first_name = html
        .split(r#"class="client-name""#)
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_string();
    assert!(first_name.starts_with("Acme"), "{first_name}");
    // Links keep the view (bookmarkable, back button).
    let html = app.get_html("/admin/clients?q=acme&sort=name").await;
    assert!(
        html.contains(r#"href="/admin/clients?q=acme&amp;sort=name&amp;page=2""#)
            || !html.contains("rel=\"next\"")
    );
    assert!(
        html.contains(r#"value="acme""#),
        "the search box shows the query"
    );
    // htmx searches get the list only.
    let partial = app
        .client
        .get(app.url("/admin/clients?q=globex"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        partial.starts_with(r#"<div id="client-list""#),
        "{}",
        &partial[..80.min(partial.len())]
    );
    assert!(!partial.contains("<html"));
}

async fn bad_list_input_is_refused_clearly(app: TestApp) {
    app.login_as(Role::Admin).await;
    seeded(&app).await;
    for (query, message) in [
        (
            "?status=happy",
            "status must be active, needs_reauth, error or disconnected",
        ),
        ("?page=0", "page must be a number"),
        ("?page=abc", "page must be a number"),
        ("?sort=random", "sort must be updated, name or expires"),
        ("?provider=a%20b", "the provider filter must be"),
        ("?tag=%3Cb%3E", "the tag filter must be"),
        (
            &format!("?q={}", "x".repeat(101)),
            "search for at most 100 characters",
        ),
    ] {
        let response = app.get(&format!("/admin/clients{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let html = crate::helpers::unescape(&response.text().await.unwrap());
        assert!(html.contains(message), "{query}: {message}");
    }
    let huge = app
        .get(&format!("/admin/clients?q={}", "y".repeat(20_000)))
        .await;
    assert!(
        huge.status() == 400 || huge.status() == 414 || huge.status() == 431,
        "{}",
        huge.status()
    );
    assert_eq!(
        app.get("/admin/clients/rows?status=happy").await.status(),
        400
    );
}

async fn members_see_only_their_own_clients(app: TestApp) {
    seeded(&app).await;
    app.login_as(Role::Member).await;
    assert_eq!(count_line(&app, "").await, "No clients");
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    assert_eq!(count_line(&app, "").await, "1–1 of 1");
    assert_eq!(
        count_line(&app, "?q=globex").await,
        "No clients",
        "seeded clients of others stay hidden"
    );
    let html = app.get_html("/admin/clients").await;
    assert!(
        !html.contains(r#"id="bulk-form""#),
        "no bulk actions for members"
    );
    assert!(!html.contains(r#"id="filter-owner""#));
}

async fn live_updates_poll_for_changes(app: TestApp) {
    app.login_as(Role::Admin).await;
    let html = app.get_html("/admin/clients").await;
    let poll = html
        .split(r#"hx-get="/admin/clients/rows?"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the list polls")
        .replace("&amp;", "&");
    let unchanged = app.get(&format!("/admin/clients/rows?{poll}")).await;
    assert_eq!(unchanged.status(), 204, "nothing changed: nothing to swap");
    // Another admin connects a client: the next poll brings it.
    let other = app.new_browser();
    other.login_as(Role::Admin).await;
    other.connect("klaviyo", Some("GlobexK2")).await;
    let changed = app.get(&format!("/admin/clients/rows?{poll}")).await;
    assert_eq!(changed.status(), 200);
    let body = changed.text().await.unwrap();
    assert!(body.contains("Globex Retail"));
    assert!(
        body.contains(r#"hx-get="/admin/clients/rows?version="#),
        "the new list polls from its own version"
    );
}

async fn bulk_tagging_for_admins(app: TestApp) {
    app.login_as(Role::Admin).await;
    seeded(&app).await;
    let ids: Vec<String> = app
        .clients()
        .await
        .into_iter()
        .take(2)
        .map(|c| c.id)
        .collect();
    let response = app
        .post_form(
            "/admin/clients/bulk",
            &[
                ("action", "tag"),
                ("tag", " Priority "),
                ("client_id", &ids[0]),
                ("client_id", &ids[1]),
            ],
        )
        .await;
    assert_eq!(location(&response), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: Tagged 2 client(s); 0 failed"
    );
    let tagged = app.clients().await;
    for client in tagged.iter().filter(|c| ids.contains(&c.id)) {
        assert!(
            client.tag_list().contains(&"priority".to_string()),
            "{:?}",
            client.tag_list()
        );
    }
    assert_eq!(count_line(&app, "?tag=priority").await, "1–2 of 2");
    let bad = app
        .post_form(
            "/admin/clients/bulk",
            &[
                ("action", "tag"),
                ("tag", "no spaces allowed"),
                ("client_id", &ids[0]),
            ],
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        count_line(&app, "?tag=priority").await,
        "1–2 of 2",
        "nothing changed"
    );
    assert!(
        app.audit_actions()
            .await
            .iter()
            .filter(|a| *a == "client_tags_changed")
            .count()
            == 2
    );
}

async fn bulk_tagging_refuses_a_client_that_already_has_the_most_tags(app: TestApp) {
    use connecthub::clients::tags::MAX_TAGS;
    use connecthub::db::schema::clients;
    use diesel::prelude::*;
    app.login_as(Role::Admin).await;
    seeded(&app).await;
    let listed = app.clients().await;
    let (full, other) = (listed[0].clone(), listed[1].clone());
    let twenty: Vec<String> = (0..MAX_TAGS).map(|n| format!("t{n}")).collect();
    let stored = serde_json::to_string(&twenty).unwrap();
    let full_id = full.id.clone();
    app.db(move |conn| {
        diesel::update(clients::table.find(full_id))
            .set(clients::tags.eq(stored))
            .execute(conn)
    })
    .await;
    let audited_before = app.audit_actions().await.len();

    let response = app
        .post_form(
            "/admin/clients/bulk",
            &[
                ("action", "tag"),
                ("tag", "extra"),
                ("client_id", &full.id),
                ("client_id", &other.id),
            ],
        )
        .await;
    assert_eq!(location(&response), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        format!(
            "error: Tagged 1 client(s); 1 failed. {} already has 20 tags, the most a client can have",
            full.display_name
        )
    );
    let after = app.clients().await;
    let tags_of = |id: &str| after.iter().find(|c| c.id == id).unwrap().tag_list();
    assert_eq!(tags_of(&full.id), twenty, "the full client is unchanged");
    assert!(tags_of(&other.id).contains(&"extra".to_string()));
    let actions = app.audit_actions().await;
    assert_eq!(
        actions.len(),
        audited_before + 1,
        "only the tagged client is audited: {actions:?}"
    );
}

async fn last_used_follows_token_hand_outs(app: TestApp) {
    app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some("AcmeK1")).await;
    let client = app.clients().await.remove(0);
    assert!(client.last_used_at.is_none());
    let key = app
        .api_key(&[connecthub::api_keys::Scope::TokensRead])
        .await;
    assert_eq!(app.service_token(&key, &client.id).await.status(), 200);
    let mut used = None;
    for _ in 0..40 {
        used = app.clients().await.remove(0).last_used_at;
        if used.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        used.is_some(),
        "last used is written within a couple of seconds"
    );
    assert_eq!(
        app.clients().await.remove(0).updated_at,
        client.updated_at,
        "use is not a change"
    );
    let html = app.get_html("/admin/clients").await;
    assert!(
        html.contains("just now") || html.contains(" s ago"),
        "the list shows when it was used"
    );
}
