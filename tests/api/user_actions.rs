//! The users page's actions on an existing account: role changes (never the last active
//! admin), disabling and enabling, password resets.

use crate::helpers::{header, location, unescape, TestApp, PASSWORD};
use crate::on_both_backends;
use crate::users::{action, find, login_status, session_count, shown_password};
use connecthub::auth::users::Role;

on_both_backends!(
    the_role_changes_and_is_audited,
    the_last_active_admin_cannot_demote_themself,
    disabling_signs_the_user_out_at_once_and_enabling_restores,
    resetting_a_password_shows_it_once_and_ends_sessions,
);

async fn the_role_changes_and_is_audited(app: TestApp) {
    app.login_as(Role::Admin).await;
    let member = app.create_user(Role::Member).await;
    let response = app
        .post_form(&action(&member.id, "role"), &[("role", "admin")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/users");
    assert_eq!(
        app.toast_on("/admin/users").await,
        format!("success: {} is now an admin", member.email)
    );
    assert!(find(&app, &member.id).await.is_admin());
    let entries = app
        .db(|conn| connecthub::audit::recent(conn, None, 10))
        .await;
    let entry = entries
        .iter()
        .find(|e| e.action == "user_role_changed")
        .expect("audited");
    assert_eq!(entry.target_id.as_deref(), Some(member.id.as_str()));
    let details: serde_json::Value = serde_json::from_str(&entry.details).unwrap();
    assert_eq!(
        (details["from"].as_str(), details["to"].as_str()),
        (Some("member"), Some("admin"))
    );

    // The same role again changes nothing; a promoted user sees the admin pages.
    app.post_form(&action(&member.id, "role"), &[("role", "admin")])
        .await;
    assert_eq!(
        app.toast_on("/admin/users").await,
        format!("info: {} is already an admin", member.email)
    );
    let promoted = app.new_browser();
    promoted.login(&member.email, PASSWORD).await;
    assert_eq!(promoted.get("/admin/users").await.status(), 200);

    let response = app
        .post_form(&action(&member.id, "role"), &[("role", "member")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(find(&app, &member.id).await.role(), Role::Member);
    assert_eq!(promoted.get("/admin/users").await.status(), 403, "at once");

    for bad in [&[("role", "owner")][..], &[("role", "")][..], &[][..]] {
        let response = app.post_form(&action(&member.id, "role"), bad).await;
        assert_eq!(response.status(), 400, "{bad:?}");
    }
    assert_eq!(find(&app, &member.id).await.role(), Role::Member);
    let changes = app.audit_actions().await;
    assert_eq!(
        changes.iter().filter(|a| *a == "user_role_changed").count(),
        2
    );
}

async fn the_last_active_admin_cannot_demote_themself(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    // A disabled admin does not count.
    let dormant = app.create_user(Role::Admin).await;
    app.post_form(&action(&dormant.id, "disable"), &[]).await;
    assert!(!find(&app, &dormant.id).await.is_active());

    let response = app
        .post_form(&action(&admin.id, "role"), &[("role", "member")])
        .await;
    assert_eq!(response.status(), 400);
    let html = unescape(&response.text().await.unwrap());
    assert!(html.contains("You are the last active admin. Make another user an admin first"));
    assert!(find(&app, &admin.id).await.is_admin(), "nothing changed");
    assert!(!app
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "user_role_changed"));

    // With a second active admin, stepping down works.
    let other = app.create_user(Role::Admin).await;
    let response = app
        .post_form(&action(&admin.id, "role"), &[("role", "member")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        "/admin/clients",
        "not to a page they cannot see"
    );
    assert_eq!(
        app.toast_on("/admin/clients").await,
        format!("success: {} is now a member", admin.email)
    );
    assert_eq!(find(&app, &admin.id).await.role(), Role::Member);
    assert_eq!(app.get("/admin/users").await.status(), 403);
    assert!(find(&app, &other.id).await.is_admin());
}

async fn disabling_signs_the_user_out_at_once_and_enabling_restores(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let theirs = app.new_browser();
    let member = theirs.login_as(Role::Member).await;
    assert_eq!(theirs.get("/admin/clients").await.status(), 200);

    let response = app.post_form(&action(&member.id, "disable"), &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.toast_on("/admin/users").await,
        format!(
            "success: Disabled {}; they have been signed out",
            member.email
        )
    );
    assert!(!find(&app, &member.id).await.is_active());
    assert_eq!(session_count(&app, &member.id).await, 0);
    let next = theirs.get("/admin/clients").await;
    assert_eq!(next.status(), 303);
    assert!(location(&next).starts_with("/login?next="));
    assert_eq!(login_status(&app, &member.email, PASSWORD).await, 401);
    assert!(app.get_html("/admin/users").await.contains("disabled"));

    // An admin cannot disable themself.
    let response = app.post_form(&action(&admin.id, "disable"), &[]).await;
    assert_eq!(response.status(), 400);
    assert!(
        unescape(&response.text().await.unwrap()).contains("You cannot disable your own account.")
    );
    assert!(find(&app, &admin.id).await.is_active());
    assert_eq!(app.get("/admin/users").await.status(), 200);

    let response = app.post_form(&action(&member.id, "enable"), &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.toast_on("/admin/users").await,
        format!("success: Enabled {}; they can sign in again", member.email)
    );
    assert!(find(&app, &member.id).await.is_active());
    assert_eq!(theirs.login(&member.email, PASSWORD).await.status(), 303);
    assert_eq!(theirs.get("/admin/clients").await.status(), 200);
    app.post_form(&action(&member.id, "enable"), &[]).await;
    assert_eq!(
        app.toast_on("/admin/users").await,
        format!("info: {} is already active", member.email)
    );
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"user_disabled".to_string()));
    assert!(actions.contains(&"user_enabled".to_string()));
}

async fn resetting_a_password_shows_it_once_and_ends_sessions(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let theirs = app.new_browser();
    let member = theirs.login_as(Role::Member).await;

    let response = app
        .post_form(&action(&member.id, "reset-password"), &[])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "cache-control"), "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains(&format!("New password for {}", member.email)));
    let secret = shown_password(&html).unwrap();
    assert_eq!(session_count(&app, &member.id).await, 0);
    assert_eq!(
        theirs.get("/admin/clients").await.status(),
        303,
        "signed out"
    );
    assert_eq!(login_status(&app, &member.email, PASSWORD).await, 401);
    assert_eq!(login_status(&app, &member.email, &secret).await, 303);
    assert!(!app.get_html("/admin/users").await.contains(&secret));

    // Their own password admins change on the account page, which asks for the current one.
    let before = find(&app, &admin.id).await.password_hash;
    let response = app
        .post_form(&action(&admin.id, "reset-password"), &[])
        .await;
    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(html.contains("Change your own password on your account page."));
    assert!(shown_password(&html).is_none());
    assert_eq!(find(&app, &admin.id).await.password_hash, before);
}
