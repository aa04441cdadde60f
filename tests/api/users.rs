//! The users page: admins add people (generated or typed passwords), members and requests
//! without the CSRF token are refused, and every action is audited without passwords.
//! Actions on an existing account are in `user_actions`, the account page in `account_page`.

use crate::helpers::{header, location, unescape, TestApp, PASSWORD};
use crate::on_both_backends;
use connecthub::auth::users::{self, Role, User};
use connecthub::db::schema::sessions;
use diesel::prelude::*;

on_both_backends!(
    an_admin_adds_a_user_with_a_generated_password,
    an_admin_adds_a_user_with_a_typed_password,
    bad_or_duplicate_input_is_explained_and_creates_nothing,
    members_are_refused_every_users_route,
    actions_without_the_csrf_token_are_refused,
    unknown_users_are_404,
    every_action_is_audited_without_passwords,
);

pub(crate) const SHOWN_MARKER: &str = r#"<code id="new-password" class="secret">"#;

pub(crate) fn shown_password(html: &str) -> Option<String> {
    let rest = html.split(SHOWN_MARKER).nth(1)?;
    Some(rest.split("</code>").next()?.to_string())
}

async fn add_user(app: &TestApp, fields: &[(&str, &str)]) -> reqwest::Response {
    app.post_form("/admin/users", fields).await
}

/// Adds a member through the page; returns the generated password it showed.
async fn add_with_generated_password(app: &TestApp, email: &str) -> String {
    let response = add_user(app, &[("email", email), ("name", ""), ("role", "member")]).await;
    assert_eq!(response.status(), 200);
    shown_password(&response.text().await.unwrap()).expect("the page shows the password")
}

async fn find_by_email(app: &TestApp, email: &str) -> Option<User> {
    let email = users::Email::parse(email).unwrap();
    app.db(move |conn| users::find_by_email(conn, &email)).await
}

pub(crate) async fn find(app: &TestApp, id: &str) -> User {
    let id = id.to_string();
    app.db(move |conn| users::find(conn, &id)).await.unwrap()
}

/// What the actions may change, for every user: to show that nothing changed.
async fn snapshot(app: &TestApp) -> Vec<(String, String, bool, String)> {
    let all = app.db(users::list).await;
    all.into_iter()
        .map(|u| (u.id.clone(), u.role.clone(), u.is_active(), u.password_hash))
        .collect()
}

pub(crate) async fn session_count(app: &TestApp, user_id: &str) -> i64 {
    let id = user_id.to_string();
    app.db(move |conn| {
        sessions::table
            .filter(sessions::user_id.eq(id))
            .count()
            .get_result(conn)
    })
    .await
}

/// Signs in from a fresh browser; the status of the sign-in answer.
pub(crate) async fn login_status(app: &TestApp, email: &str, password: &str) -> u16 {
    app.new_browser()
        .login(email, password)
        .await
        .status()
        .as_u16()
}

pub(crate) fn action(id: &str, name: &str) -> String {
    format!("/admin/users/{id}/{name}")
}

async fn an_admin_adds_a_user_with_a_generated_password(app: TestApp) {
    app.login_as(Role::Admin).await;
    let page = app.get("/admin/users").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"href="/admin/users" aria-current="page""#));
    assert!(html.contains(r#"<label for="new-user-email">Email</label>"#));
    assert!(shown_password(&html).is_none());

    let response = add_user(
        &app,
        &[
            ("email", " Ann@Example.com "),
            ("name", "Ann Lee"),
            ("role", "member"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "cache-control"), "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains("Password for ann@example.com"));
    let secret = shown_password(&html).unwrap();
    assert_eq!(secret.len(), 20);
    assert!(html.contains("<td>Ann Lee</td>") && html.contains("<td>ann@example.com</td>"));

    let ann = find_by_email(&app, "ann@example.com").await.unwrap();
    assert_eq!(ann.role(), Role::Member);
    assert!(ann.is_active());
    assert_eq!(login_status(&app, "ann@example.com", &secret).await, 303);
    let later = app.get_html("/admin/users").await;
    assert!(!later.contains(&secret), "shown once");
    assert!(shown_password(&later).is_none());

    // An admin with no name given gets the part of the email before @.
    let response = add_user(&app, &[("email", "bo@example.com"), ("role", "admin")]).await;
    assert_eq!(response.status(), 200);
    let bo = find_by_email(&app, "bo@example.com").await.unwrap();
    assert_eq!((bo.display_name.as_str(), bo.role()), ("bo", Role::Admin));
}

async fn an_admin_adds_a_user_with_a_typed_password(app: TestApp) {
    app.login_as(Role::Admin).await;
    let typed = "a typed initial password";
    let response = add_user(
        &app,
        &[
            ("email", "cy@example.com"),
            ("name", "Cy"),
            ("role", "member"),
            ("password", typed),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/users");
    assert_eq!(
        app.toast_on("/admin/users").await,
        "success: Added cy@example.com"
    );
    assert_eq!(login_status(&app, "cy@example.com", typed).await, 303);
}

async fn bad_or_duplicate_input_is_explained_and_creates_nothing(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let before = snapshot(&app).await;
    let taken = admin.email.to_uppercase();
    let duplicate = format!("A user with email {} already exists.", admin.email);
    let long_name = "n".repeat(81);
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("email", taken.as_str()), ("role", "member")], &duplicate),
        (
            &[("email", "not-an-email"), ("role", "member")],
            "\"not-an-email\" is not a valid email address.",
        ),
        (
            &[("email", ""), ("role", "member")],
            "\"\" is not a valid email address.",
        ),
        (
            &[("email", "dee@example.com"), ("role", "owner")],
            "Choose admin or member as the role.",
        ),
        (
            &[
                ("email", "dee@example.com"),
                ("role", "member"),
                ("password", "short"),
            ],
            "The password must have at least 12 characters.",
        ),
        (
            &[
                ("email", "dee@example.com"),
                ("role", "member"),
                ("name", long_name.as_str()),
            ],
            "The name can be at most 80 characters.",
        ),
        (
            &[
                ("email", "dee@example.com"),
                ("role", "member"),
                ("name", "a\nb"),
            ],
            "control characters",
        ),
    ];
    for (fields, message) in cases {
        let response = add_user(&app, fields).await;
        assert_eq!(response.status(), 400, "{fields:?}");
        let html = unescape(&response.text().await.unwrap());
        assert!(html.contains(message), "{fields:?}: no {message:?}");
        assert!(shown_password(&html).is_none());
    }
    assert_eq!(snapshot(&app).await, before, "nothing created or changed");
    // The form keeps what was typed, except the password.
    let response = add_user(
        &app,
        &[
            ("email", "dee@example.com"),
            ("name", "Dee"),
            ("role", "admin"),
            ("password", "short-pass"),
        ],
    )
    .await;
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"value="dee@example.com""#) && html.contains(r#"value="Dee""#));
    assert!(html.contains(r#"<option value="admin" selected>"#));
    assert!(!html.contains("short-pass"));
}

async fn members_are_refused_every_users_route(app: TestApp) {
    let admin = app.create_user(Role::Admin).await;
    let member = app.login_as(Role::Member).await;
    let before = snapshot(&app).await;
    let sessions_before = session_count(&app, &admin.id).await;

    assert_eq!(app.get("/admin/users").await.status(), 403);
    let add = add_user(&app, &[("email", "eve@example.com"), ("role", "admin")]).await;
    assert_eq!(add.status(), 403);
    for target in [&admin.id, &member.id] {
        for (name, fields) in [
            ("role", &[("role", "admin")][..]),
            ("disable", &[][..]),
            ("enable", &[][..]),
            ("reset-password", &[][..]),
        ] {
            let response = app.post_form(&action(target, name), fields).await;
            assert_eq!(response.status(), 403, "{name}");
            assert!(shown_password(&response.text().await.unwrap()).is_none());
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");
    assert!(find_by_email(&app, "eve@example.com").await.is_none());
    assert_eq!(session_count(&app, &admin.id).await, sessions_before);
    assert!(!app
        .get_html("/admin/clients")
        .await
        .contains("/admin/users"));
    // Members have an account page; anonymous visitors are sent to sign in.
    assert_eq!(app.get("/account").await.status(), 200);
    let anonymous = app.new_browser();
    for path in ["/admin/users", "/account"] {
        let response = anonymous.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert!(location(&response).starts_with("/login?next="));
    }
}

async fn actions_without_the_csrf_token_are_refused(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let member = app.create_user(Role::Member).await;
    let before = snapshot(&app).await;
    let post = |path: String, fields: Vec<(&'static str, &'static str)>| {
        let request = app.client.post(app.url(&path)).form(&fields);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        post(
            "/admin/users".into(),
            vec![("email", "fay@example.com"), ("role", "member")]
        )
        .await,
        403
    );
    assert_eq!(
        post(action(&member.id, "role"), vec![("role", "admin")]).await,
        403
    );
    assert_eq!(post(action(&member.id, "disable"), vec![]).await, 403);
    assert_eq!(
        post(action(&member.id, "reset-password"), vec![]).await,
        403
    );
    let change = vec![
        ("current_password", PASSWORD),
        ("new_password", "a brand new password"),
        ("repeat_password", "a brand new password"),
    ];
    assert_eq!(post("/account/password".into(), change).await, 403);
    assert_eq!(snapshot(&app).await, before, "nothing changed");
    assert!(find_by_email(&app, "fay@example.com").await.is_none());
    assert_eq!(login_status(&app, &admin.email, PASSWORD).await, 303);
}

async fn unknown_users_are_404(app: TestApp) {
    app.login_as(Role::Admin).await;
    let before = snapshot(&app).await;
    for id in ["00000000-0000-0000-0000-000000000000", "not-an-id", "%20"] {
        for (name, fields) in [
            ("role", &[("role", "admin")][..]),
            ("disable", &[][..]),
            ("enable", &[][..]),
            ("reset-password", &[][..]),
        ] {
            let response = app.post_form(&action(id, name), fields).await;
            assert_eq!(response.status(), 404, "{id} {name}");
            assert!(shown_password(&response.text().await.unwrap()).is_none());
        }
    }
    assert_eq!(snapshot(&app).await, before);
}

pub(crate) async fn change_password(
    app: &TestApp,
    current: &str,
    new: &str,
    repeat: &str,
) -> reqwest::Response {
    app.post_form(
        "/account/password",
        &[
            ("current_password", current),
            ("new_password", new),
            ("repeat_password", repeat),
        ],
    )
    .await
}

async fn every_action_is_audited_without_passwords(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let generated = add_with_generated_password(&app, "gil@example.com").await;
    let typed = "typed initial password";
    add_user(
        &app,
        &[
            ("email", "hal@example.com"),
            ("role", "member"),
            ("password", typed),
        ],
    )
    .await;
    let gil = find_by_email(&app, "gil@example.com").await.unwrap();
    app.post_form(&action(&gil.id, "role"), &[("role", "admin")])
        .await;
    app.post_form(&action(&gil.id, "disable"), &[]).await;
    app.post_form(&action(&gil.id, "enable"), &[]).await;
    let reset = app.post_form(&action(&gil.id, "reset-password"), &[]).await;
    let reset = shown_password(&reset.text().await.unwrap()).unwrap();
    let new = "the admin's new password";
    change_password(&app, "wrong current password", new, new).await;
    assert_eq!(
        change_password(&app, PASSWORD, new, new).await.status(),
        303
    );

    let entries = app
        .db(|conn| connecthub::audit::recent(conn, None, 100))
        .await;
    for expected in [
        "user_created",
        "user_role_changed",
        "user_disabled",
        "user_enabled",
        "password_reset",
        "password_changed",
    ] {
        let entry = entries
            .iter()
            .find(|e| e.action == expected)
            .expect(expected);
        assert_eq!(entry.outcome, "success", "{expected}");
        assert_eq!(
            entry.actor_id.as_deref(),
            Some(admin.id.as_str()),
            "{expected}"
        );
        assert_eq!(entry.ip.as_deref(), Some("127.0.0.1"), "{expected}");
    }
    let created = entries
        .iter()
        .filter(|e| e.action == "user_created")
        .count();
    assert_eq!(created, 2);
    let failed = entries
        .iter()
        .find(|e| e.action == "password_changed" && e.outcome == "failure");
    assert!(failed.is_some(), "a wrong current password is recorded");
    for entry in &entries {
        for secret in [generated.as_str(), typed, &reset, new, PASSWORD] {
            assert!(
                !entry.details.contains(secret),
                "{}: {}",
                entry.action,
                entry.details
            );
        }
    }
    let verdict = app.db(connecthub::audit::verify).await;
    assert!(matches!(verdict, connecthub::audit::Verdict::Intact { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_adds_a_user_who_then_signs_in() {
    let Some(admin_browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let admin = app.create_user(Role::Admin).await;
    admin_browser.goto(&app.url("/login")).await;
    admin_browser.fill("#email", &admin.email).await;
    admin_browser.fill("#password", &admin.password).await;
    admin_browser.click("button[type=submit]").await;
    admin_browser.wait_for_text("h1", "Clients").await;

    admin_browser.click(r#"a[href="/admin/users"]"#).await;
    admin_browser.wait_for_text("h1", "Users").await;
    admin_browser
        .fill("#new-user-email", "ivy@example.com")
        .await;
    admin_browser.fill("#new-user-name", "Ivy Park").await;
    admin_browser
        .click("form.add-user button[type=submit]")
        .await;
    admin_browser
        .wait_for_text("#new-password-title", "Password for ivy@example.com")
        .await;
    let secret = admin_browser
        .client
        .find(fantoccini::Locator::Css("#new-password"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(secret.len(), 20, "{secret}");
    admin_browser.screenshot("users").await;
    admin_browser.close().await;

    let Some(ivy_browser) = crate::browser::Browser::start().await else {
        return;
    };
    ivy_browser.goto(&app.url("/login")).await;
    ivy_browser.fill("#email", "ivy@example.com").await;
    ivy_browser.fill("#password", &secret).await;
    ivy_browser.click("button[type=submit]").await;
    ivy_browser.wait_for_text("h1", "Clients").await;
    ivy_browser.click(r#"a.who[href="/account"]"#).await;
    ivy_browser.wait_for_text("h1", "Your account").await;
    ivy_browser
        .wait_for_text("#account-email", "ivy@example.com")
        .await;
    ivy_browser.screenshot("account").await;
    ivy_browser.close().await;
}
