//! Signing in and out, sessions, CSRF and the sign-in rate limit.

use crate::helpers::{csrf_from, header, location, new_client, spawn_app_with, Backend, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::{sessions, users};
use diesel::prelude::*;

on_both_backends!(
    login_succeeds_and_shows_the_clients_page,
    wrong_password_and_unknown_email_get_the_same_answer,
    logout_ends_the_session_and_the_old_cookie_is_useless,
    session_id_is_renewed_at_login,
    member_is_refused_admin_pages,
    anonymous_user_is_sent_to_login_and_back,
    open_redirects_are_refused,
    missing_csrf_token_is_refused_and_changes_nothing,
    repeated_failures_are_slowed_down,
    disabled_user_cannot_sign_in_and_loses_sessions,
    expired_sessions_are_refused,
    page_views_extend_the_session_in_steps_of_a_minute,
    auth_events_are_audited_in_an_intact_chain,
    signed_in_pages_are_never_stored_by_the_browser,
    a_malformed_email_is_answered_like_an_unknown_one,
    anonymous_visitors_store_no_session,
    a_guesser_elsewhere_cannot_lock_the_owner_out,
);

async fn login_succeeds_and_shows_the_clients_page(app: TestApp) {
    let user = app.create_user(Role::Admin).await;
    let response = app.login(&user.email, &user.password).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/clients");
    let cookie = header(response.headers(), "set-cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http must not set Secure: {cookie}"
    );

    let page = app.get("/admin/clients").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for expected in [
        "Connect Klaviyo",
        "Connect Kustomer",
        "Sign out",
        &user.email,
        "Users",
        "Audit log",
        "Usage",
    ] {
        assert!(html.contains(expected), "clients page lacks {expected}");
    }
}

async fn wrong_password_and_unknown_email_get_the_same_answer(app: TestApp) {
    let user = app.create_user(Role::Member).await;
    let wrong = app.login(&user.email, "not-the-password").await;
    assert_eq!(wrong.status(), 401);
    let wrong = wrong.text().await.unwrap();
    let unknown = app.login("nobody@example.com", "not-the-password").await;
    assert_eq!(unknown.status(), 401);
    let unknown = unknown.text().await.unwrap();
    assert!(wrong.contains("Incorrect email or password."));
    assert!(unknown.contains("Incorrect email or password."));
    let message = |html: &str| {
        html.lines()
            .find(|l| l.contains("role=\"alert\""))
            .map(str::to_string)
    };
    assert_eq!(message(&wrong), message(&unknown));
    // Still signed out.
    assert_eq!(app.get("/admin/clients").await.status(), 303);
}

async fn logout_ends_the_session_and_the_old_cookie_is_useless(app: TestApp) {
    let user = app.create_user(Role::Admin).await;
    let response = app.login(&user.email, &user.password).await;
    let cookie = header(response.headers(), "set-cookie");
    let cookie_pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(app.get("/admin/clients").await.status(), 200);

    let html = app.get_html("/admin/clients").await;
    let token = csrf_from(&html);
    let logout = app
        .client
        .post(app.url("/logout"))
        .form(&[("csrf_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    assert_eq!(location(&logout), "/login?signed_out=1");
    assert!(app
        .get_html("/login?signed_out=1")
        .await
        .contains("You have signed out."));

    // Replaying the stolen cookie from another client gets the login page.
    let thief = new_client();
    let replay = thief
        .get(app.url("/admin/clients"))
        .header("cookie", cookie_pair)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
    assert!(location(&replay).starts_with("/login?next="));
    let user_sessions: i64 = app
        .db({
            let id = user.id.clone();
            move |conn| {
                sessions::table
                    .filter(sessions::user_id.eq(id))
                    .count()
                    .get_result(conn)
            }
        })
        .await;
    assert_eq!(user_sessions, 0);
}

async fn session_id_is_renewed_at_login(app: TestApp) {
    let user = app.create_user(Role::Member).await;
    let form = app.get("/login").await;
    let before = header(form.headers(), "set-cookie");
    assert!(!before.is_empty(), "the login form sets its cookie");
    let login = app.login(&user.email, &user.password).await;
    let after = header(login.headers(), "set-cookie");
    assert_ne!(
        before.split(';').next(),
        after.split(';').next(),
        "the pre-login session must not survive sign-in"
    );
    let rows: Vec<String> = app
        .db(|conn| sessions::table.select(sessions::id).load(conn))
        .await;
    assert_eq!(rows.len(), 1);
}

/// The login form stores nothing: its CSRF token travels in a signed cookie. Sign-in
/// then creates the one row, and the form is still protected.
async fn anonymous_visitors_store_no_session(app: TestApp) {
    for _ in 0..20 {
        assert_eq!(app.new_browser().get("/login").await.status(), 200);
        assert_eq!(app.get("/login").await.status(), 200);
        assert_eq!(app.get("/admin/clients").await.status(), 303);
    }
    assert_eq!(session_count(&app).await, 0);

    let user = app.create_user(Role::Admin).await;
    let post = |client: &TestApp, token: Option<String>| {
        let mut form = vec![
            ("email", user.email.clone()),
            ("password", user.password.clone()),
        ];
        if let Some(token) = token {
            form.push(("csrf_token", token));
        }
        let request = client.client.post(client.url("/login")).form(&form);
        async move { request.send().await.unwrap().status() }
    };
    let other_browser = app.new_browser();
    let others_token = other_browser.csrf_token().await;
    assert_eq!(post(&app, None).await, 403, "no token");
    assert_eq!(post(&app, Some("forged".into())).await, 403, "wrong token");
    assert_eq!(
        post(&app, Some(others_token)).await,
        403,
        "another browser's token"
    );
    let no_cookie = app.new_browser();
    assert_eq!(
        post(&no_cookie, Some(other_browser.csrf_token().await)).await,
        403,
        "a token without its cookie"
    );
    assert_eq!(session_count(&app).await, 0);

    let token = app.csrf_token().await;
    assert_eq!(post(&app, Some(token)).await, 303);
    assert_eq!(app.get("/admin/clients").await.status(), 200);
    assert_eq!(session_count(&app).await, 1);
}

async fn session_count(app: &TestApp) -> i64 {
    app.db(|conn| sessions::table.count().get_result(conn))
        .await
}

async fn member_is_refused_admin_pages(app: TestApp) {
    app.login_as(Role::Member).await;
    let users_page = app.get("/admin/users").await;
    assert_eq!(users_page.status(), 403);
    assert!(users_page
        .text()
        .await
        .unwrap()
        .contains("you do not have access"));
    let clients = app.get_html("/admin/clients").await;
    assert!(
        !clients.contains("href=\"/admin/users\""),
        "members do not see the Users link"
    );

    let admin_client = app.new_browser();
    admin_client.login_as(Role::Admin).await;
    assert_eq!(admin_client.get("/admin/users").await.status(), 200);
}

async fn anonymous_user_is_sent_to_login_and_back(app: TestApp) {
    let response = app.get("/admin/users?sort=email").await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        "/login?next=%2Fadmin%2Fusers%3Fsort%3Demail"
    );
    let form = app
        .get_html("/login?next=%2Fadmin%2Fusers%3Fsort%3Demail")
        .await;
    assert!(form.contains(r#"name="next" value="/admin/users?sort=email""#));
    let user = app.create_user(Role::Admin).await;
    let token = csrf_from(&form);
    let response = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("email", user.email.as_str()),
            ("password", &user.password),
            ("next", "/admin/users?sort=email"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/admin/users?sort=email");
}

async fn open_redirects_are_refused(app: TestApp) {
    let form = app.get_html("/login?next=//evil.example").await;
    assert!(form.contains(r#"name="next" value="/admin/clients""#));
    let user = app.create_user(Role::Admin).await;
    for next in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "evil.example",
    ] {
        let client = app.new_browser();
        let token = client.csrf_token().await;
        let response = client
            .client
            .post(client.url("/login"))
            .form(&[
                ("email", user.email.as_str()),
                ("password", &user.password),
                ("next", next),
                ("csrf_token", &token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(location(&response), "/admin/clients", "next={next}");
    }
}

async fn missing_csrf_token_is_refused_and_changes_nothing(app: TestApp) {
    let user = app.create_user(Role::Admin).await;
    // Sign-in form without the token.
    app.get("/login").await;
    let response = app
        .client
        .post(app.url("/login"))
        .form(&[("email", user.email.as_str()), ("password", &user.password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("reload the page"));
    assert_eq!(
        app.get("/admin/clients").await.status(),
        303,
        "still signed out"
    );

    // Sign out with a wrong token, then with a wrong header: still signed in.
    app.login(&user.email, &user.password).await;
    let bad = app
        .client
        .post(app.url("/logout"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    let bad = app
        .client
        .post(app.url("/logout"))
        .header("X-CSRF-Token", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    assert_eq!(
        app.get("/admin/clients").await.status(),
        200,
        "still signed in"
    );
    // The htmx header form works.
    let token = app.csrf_token().await;
    let good = app
        .client
        .post(app.url("/logout"))
        .header("X-CSRF-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 303);
    assert_eq!(app.get("/admin/clients").await.status(), 303);
}

async fn repeated_failures_are_slowed_down(app: TestApp) {
    let user = app.create_user(Role::Member).await;
    for _ in 0..5 {
        assert_eq!(app.login(&user.email, "wrong-password").await.status(), 401);
    }
    let limited = app.login(&user.email, &user.password).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = header(limited.headers(), "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(limited
        .text()
        .await
        .unwrap()
        .contains("Too many sign-in attempts"));
    assert_eq!(
        app.get("/admin/clients").await.status(),
        303,
        "not signed in while limited"
    );
    // Another account from the same address is still allowed.
    let other = app.create_user(Role::Member).await;
    assert_eq!(app.login(&other.email, &other.password).await.status(), 303);
}

async fn disabled_user_cannot_sign_in_and_loses_sessions(app: TestApp) {
    let user = app.login_as(Role::Member).await;
    assert_eq!(app.get("/admin/clients").await.status(), 200);
    let id = user.id.clone();
    app.db(move |conn| {
        diesel::update(users::table.find(id))
            .set(users::disabled_at.eq(Some(connecthub::db::now())))
            .execute(conn)
    })
    .await;
    assert_eq!(
        app.get("/admin/clients").await.status(),
        303,
        "a disabled user's session stops working"
    );
    let again = app.new_browser();
    assert_eq!(again.login(&user.email, &user.password).await.status(), 401);
}

/// Every page view keeps the session alive, but the row is written only when that moves
/// its expiry by more than a minute: a burst of page views writes it once.
async fn page_views_extend_the_session_in_steps_of_a_minute(app: TestApp) {
    app.login_as(Role::Member).await;
    let expiry = || {
        app.db(|conn| {
            sessions::table
                .select(sessions::expires_at)
                .first::<chrono::NaiveDateTime>(conn)
        })
    };
    // Idle for 10 of its 120 minutes.
    let idle = connecthub::db::now() + chrono::TimeDelta::minutes(110);
    app.db(move |conn| {
        diesel::update(sessions::table)
            .set(sessions::expires_at.eq(idle))
            .execute(conn)
    })
    .await;
    assert_eq!(app.get("/admin/clients").await.status(), 200);
    let extended = expiry().await;
    assert!(
        extended > idle + chrono::TimeDelta::minutes(9),
        "extended to two hours from now: {extended} after {idle}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.get("/admin/clients").await.status(), 200);
    assert_eq!(
        expiry().await,
        extended,
        "a second later: not written again"
    );
}

async fn expired_sessions_are_refused(app: TestApp) {
    app.login_as(Role::Member).await;
    // Idle expiry: the row's expiry has passed.
    app.db(|conn| {
        diesel::update(sessions::table)
            .set(sessions::expires_at.eq(connecthub::db::now() - chrono::TimeDelta::seconds(1)))
            .execute(conn)
    })
    .await;
    assert_eq!(app.get("/admin/clients").await.status(), 303);

    // Absolute expiry: signed in 13 hours ago, however active since.
    let app = app.new_browser();
    app.login_as(Role::Member).await;
    let stale = (chrono::Utc::now().timestamp() - 13 * 3600).to_string();
    app.db(move |conn| {
        let rows: Vec<(String, String)> = sessions::table
            .select((sessions::id, sessions::data))
            .load(conn)?;
        for (id, data) in rows {
            let mut map: std::collections::HashMap<String, String> =
                serde_json::from_str(&data).unwrap();
            if map.contains_key("login_at") {
                map.insert("login_at".into(), stale.clone());
                diesel::update(sessions::table.find(id))
                    .set(sessions::data.eq(serde_json::to_string(&map).unwrap()))
                    .execute(conn)?;
            }
        }
        Ok(())
    })
    .await;
    assert_eq!(app.get("/admin/clients").await.status(), 303);
}

async fn auth_events_are_audited_in_an_intact_chain(app: TestApp) {
    let user = app.create_user(Role::Admin).await;
    app.login(&user.email, "wrong-password").await;
    app.login(&user.email, &user.password).await;
    app.post_form("/logout", &[]).await;
    assert_eq!(
        app.audit_actions().await,
        ["login_failed", "login", "logout"]
    );
    let entries = app
        .db(|conn| connecthub::audit::recent(conn, None, 10))
        .await;
    assert!(entries.iter().all(|e| e.ip.as_deref() == Some("127.0.0.1")));
    assert!(entries
        .iter()
        .all(|e| !e.details.contains(crate::helpers::PASSWORD)));
    let verdict = app.db(connecthub::audit::verify).await;
    assert_eq!(verdict, connecthub::audit::Verdict::Intact { entries: 3 });
}

#[tokio::test]
async fn secure_cookie_under_https_public_url() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("PUBLIC_URL", "https://hub.example.com")],
    )
    .await;
    let response = app.get("/login").await;
    let cookie = header(response.headers(), "set-cookie");
    assert!(cookie.starts_with("__Host-connecthub="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

async fn signed_in_pages_are_never_stored_by_the_browser(app: TestApp) {
    app.login_as(Role::Admin).await;
    app.connect("klaviyo", None).await;
    let client_id = app.clients().await[0].id.clone();
    let client_page = format!("/admin/clients/{client_id}");
    for path in [
        "/admin/clients",
        "/admin/clients/rows",
        client_page.as_str(),
        "/admin/users",
        "/admin/api-keys",
        "/admin/audit",
        "/admin/audit/export.csv",
        "/admin/usage",
        "/account",
        "/connections",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        // no-store: the browser keeps no copy, so after sign-out the back button has to
        // ask the server again and gets the login page instead of the old page.
        assert_eq!(
            header(response.headers(), "cache-control"),
            "no-store",
            "{path}"
        );
    }
    // Assets keep their long cache (their URLs carry a content hash).
    let css = app.get("/static/app.css").await;
    assert!(header(css.headers(), "cache-control").contains("immutable"));
}

/// `email=q%00@x.io`: refused up front as an unknown address would be, on both databases:
/// same status and message, the same password-hash time, the same `login_failed` entry.
async fn a_malformed_email_is_answered_like_an_unknown_one(app: TestApp) {
    let attempt = |email: &'static str| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            let response = app.login(email, "not-the-password").await;
            let status = response.status();
            let html = response.text().await.unwrap();
            (status, html, started.elapsed())
        }
    };
    let mut fastest = [std::time::Duration::MAX; 2];
    for _ in 0..3 {
        for (n, email) in ["nobody@x.io", "q\0@x.io"].into_iter().enumerate() {
            let (status, html, took) = attempt(email).await;
            assert_eq!(status, 401, "{email:?}");
            assert!(html.contains("Incorrect email or password."), "{email:?}");
            fastest[n] = fastest[n].min(took);
        }
    }
    let [unknown, malformed] = fastest;
    assert!(
        malformed * 3 > unknown,
        "a malformed email skips the password hash: {malformed:?} vs {unknown:?}"
    );
    let entries = app
        .db(|conn| connecthub::audit::recent(conn, None, 10))
        .await;
    assert_eq!(entries.len(), 6);
    assert!(entries.iter().all(|e| e.action == "login_failed"));
    assert!(
        entries.iter().any(|e| e.actor_label == "q\\u{0}@x.io"),
        "{:?}",
        entries.iter().map(|e| &e.actor_label).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_address() {
    let app = spawn_app_with(Backend::Sqlite, &[("ANONYMOUS_REQUESTS_PER_MINUTE", "5")]).await;
    for _ in 0..5 {
        assert_eq!(app.new_browser().get("/login").await.status(), 200);
    }
    let limited = app.new_browser().get("/login").await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = header(limited.headers(), "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    let limited = app
        .client
        .post(app.url("/login"))
        .form(&[("email", "a@b.io")])
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429, "sign-in attempts count too");
    // Assets and the health check are not counted; another address has its own budget.
    assert_eq!(app.get("/static/app.css").await.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);
    let elsewhere = app.browser_at("127.0.0.2");
    assert_eq!(elsewhere.get("/login").await.status(), 200);
}

async fn a_guesser_elsewhere_cannot_lock_the_owner_out(app: TestApp) {
    let user = app.create_user(Role::Member).await;
    let guesser = app.browser_at("127.0.0.2");
    for _ in 0..5 {
        assert_eq!(
            guesser.login(&user.email, "wrong-password").await.status(),
            401
        );
    }
    assert_eq!(
        guesser.login(&user.email, "wrong-password").await.status(),
        429
    );
    assert_eq!(
        guesser.login(&user.email, &user.password).await.status(),
        429,
        "the guessing address stays limited"
    );
    // The owner, from an address with no failures, signs in during the lock-out.
    assert_eq!(app.login(&user.email, &user.password).await.status(), 303);
    assert_eq!(app.get("/admin/clients").await.status(), 200);
}

/// Past the per-account ceiling (failures from all addresses), addresses that already
/// failed are refused; a clean address with the right password still gets in.
#[tokio::test]
async fn the_account_ceiling_spares_clean_addresses() {
    let mut backends = vec![Backend::Sqlite];
    if crate::helpers::postgres_available() {
        backends.push(Backend::Postgres);
    }
    for backend in backends {
        let app = spawn_app_with(
            backend,
            &[
                ("LOGIN_MAX_ATTEMPTS_PER_ACCOUNT", "2"),
                ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "3"),
            ],
        )
        .await;
        let user = app.create_user(Role::Member).await;
        let (first, second) = (app.browser_at("127.0.0.2"), app.browser_at("127.0.0.3"));
        for guesser in [&first, &first, &second] {
            assert_eq!(
                guesser.login(&user.email, "wrong-password").await.status(),
                401
            );
        }
        assert_eq!(first.login(&user.email, &user.password).await.status(), 429);
        assert_eq!(
            second.login(&user.email, "wrong-password").await.status(),
            429,
            "{backend:?}"
        );
        let owner = app.browser_at("127.0.0.4");
        assert_eq!(owner.login(&user.email, &user.password).await.status(), 303);
    }
}
