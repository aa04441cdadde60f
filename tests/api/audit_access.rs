//! Who may read which audit entries (members see only what concerns them), and chain
//! verification from the page.

use crate::audit_page::{all_entries, count_line, csv, failed_login, listed_ids};
use crate::helpers::{TestApp, TestUser};
use crate::on_both_backends;
use connecthub::audit::{self, Actor, Entry, Event};
use connecthub::auth::users::Role;
use connecthub::db::schema::audit_log;
use diesel::prelude::*;

on_both_backends!(
    members_see_only_entries_about_themselves,
    verify_finds_an_edited_entry,
);

async fn members_see_only_entries_about_themselves(app: TestApp) {
    let (admin, member_browser, member, theirs, admins) = activity_about_a_member(&app).await;
    let entries = all_entries(&app).await;
    let visible: Vec<i64> = entries
        .iter()
        .filter(|e| {
            e.actor_id.as_deref() == Some(member.id.as_str())
                || (e.target_type.as_deref() == Some("client")
                    && e.target_id.as_deref() == Some(theirs.as_str()))
                || (e.target_type.as_deref() == Some("user")
                    && e.target_id.as_deref() == Some(member.id.as_str()))
        })
        .map(|e| e.id)
        .collect();
    let html = member_browser.get_html("/admin/audit").await;
    assert_eq!(listed_ids(&html), visible);
    for action in [
        "login",
        "oauth_completed",
        "client_disconnected",
        "user_role_changed",
    ] {
        assert!(html.contains(&format!("<code>{action}</code>")), "{action}");
    }
    assert!(!html.contains("login_failed") && !html.contains(&admins));
    assert!(!html.contains(r#"id="verify-chain""#), "no verify button");
    // Filters apply inside the scope: the admin's entries are only those about the member.
    let by_admin = member_browser
        .get_html(&format!("/admin/audit?actor={}", admin.email))
        .await;
    let expected: Vec<i64> = entries
        .iter()
        .filter(|e| visible.contains(&e.id) && e.actor_label == admin.email)
        .map(|e| e.id)
        .collect();
    assert_eq!(expected.len(), 2, "disconnect and role change");
    assert_eq!(listed_ids(&by_admin), expected);
    assert_eq!(
        count_line(&member_browser, &format!("?client={admins}")).await,
        "No entries"
    );
    entries_outside_the_scope_are_hidden(&app, &member_browser, &entries, &visible).await;
}

/// A Klaviyo client for an admin and one for a member (in its own browser); the admin
/// disconnects the member's and changes their role; a stranger fails to sign in. Returns
/// the admin, the member's browser, the member, and the member's and the admin's client.
async fn activity_about_a_member(app: &TestApp) -> (TestUser, TestApp, TestUser, String, String) {
    let admin = app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some("GlobexK2")).await;
    let member_browser = app.new_browser();
    let member = member_browser.login_as(Role::Member).await;
    member_browser.connect("klaviyo", Some("AcmeK1")).await;
    let clients = app.clients().await;
    let theirs = clients
        .iter()
        .find(|c| c.owner_user_id == member.id)
        .unwrap()
        .id
        .clone();
    let admins = clients
        .iter()
        .find(|c| c.owner_user_id == admin.id)
        .unwrap()
        .id
        .clone();
    // The admin disconnects the member's client, and something is done to the member.
    app.post_form(
        &format!("/api/integrations/klaviyo/disconnect/{theirs}"),
        &[],
    )
    .await;
    let (admin_id, admin_email, member_id) =
        (admin.id.clone(), admin.email.clone(), member.id.clone());
    app.db(move |conn| {
        audit::append(
            conn,
            Event::new(Actor::user(&admin_id, &admin_email), "user_role_changed")
                .target("user", member_id),
        )
    })
    .await;
    failed_login(app, "someone-else@example.com", "test-agent").await;
    (admin, member_browser, member, theirs, admins)
}

async fn entries_outside_the_scope_are_hidden(
    app: &TestApp,
    member_browser: &TestApp,
    entries: &[Entry],
    visible: &[i64],
) {
    // Entries outside the scope do not exist for the member.
    let hidden = entries.iter().find(|e| !visible.contains(&e.id)).unwrap();
    let own = visible[0];
    assert_eq!(
        member_browser
            .get(&format!("/admin/audit/{}", hidden.id))
            .await
            .status(),
        404
    );
    assert_eq!(
        member_browser
            .get(&format!("/admin/audit/{own}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/admin/audit/{}", hidden.id))
            .await
            .status(),
        200
    );
    // Nor in the export; and verification is for admins.
    let exported = csv(member_browser, "").await;
    let exported_ids: Vec<i64> = exported
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(exported_ids, visible);
    let verify = member_browser.post_form("/admin/audit/verify", &[]).await;
    assert_eq!(verify.status(), 403);
    // An admin sees everything.
    assert_eq!(
        listed_ids(&app.get_html("/admin/audit").await).len(),
        entries.len()
    );
}

async fn verify_finds_an_edited_entry(app: TestApp) {
    app.login_as(Role::Admin).await;
    failed_login(&app, "a@example.com", "test-agent").await;
    failed_login(&app, "b@example.com", "test-agent").await;
    let html = app.get_html("/admin/audit").await;
    assert!(html.contains(r#"id="verify-chain""#));
    let response = app.post_form("/admin/audit/verify", &[]).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<span id="verify-message">Intact: 3 entries</span>"#));
    assert_eq!(listed_ids(&html).len(), 3, "the list is still shown");
    // The view the admin was looking at comes back with the result.
    let response = app
        .post_form("/admin/audit/verify", &[("view", "action=login_failed")])
        .await;
    let html = response.text().await.unwrap();
    assert!(html.contains("Intact: 3 entries"));
    assert_eq!(listed_ids(&html).len(), 2);
    // Without the CSRF token nothing runs.
    let forged = app
        .client
        .post(app.url("/admin/audit/verify"))
        .form(&[("view", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Someone edits the second entry in the database.
    let edited = all_entries(&app).await[1].id;
    app.db(move |conn| {
        diesel::update(audit_log::table.find(edited))
            .set(audit_log::actor_label.eq("x"))
            .execute(conn)
    })
    .await;
    let html = app
        .post_form("/admin/audit/verify", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            "Broken at entry {edited}: its content does not match its hash (the entry was edited)"
        )),
        "{html}"
    );
    assert!(html.contains(&format!(
        r#"<a href="/admin/audit/{edited}">Open entry {edited}</a>"#
    )));
}
