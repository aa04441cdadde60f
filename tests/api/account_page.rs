//! The account page: anyone sees their account and changes their own password.

use crate::helpers::{header, location, unescape, TestApp, PASSWORD};
use crate::on_both_backends;
use crate::users::{change_password, find, login_status, session_count};
use connecthub::auth::users::Role;

on_both_backends!(
    account_shows_the_user_and_refuses_bad_changes,
    changing_the_password_keeps_this_session_and_ends_the_others,
    guessing_the_current_password_is_rate_limited,
);

async fn account_shows_the_user_and_refuses_bad_changes(app: TestApp) {
    let member = app.login_as(Role::Member).await;
    let page = app.get("/account").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!(r#"<dd id="account-email">{}</dd>"#, member.email)));
    assert!(html.contains(">member</span>"));
    assert!(
        html.contains(r#"<a class="who" href="/account""#)
            && html.contains(r#"aria-current="page""#)
    );
    let before = find(&app, &member.id).await.password_hash;

    let new = "a brand new password";
    for (current, new, repeat, message) in [
        (
            "not my password",
            new,
            new,
            "Your current password is incorrect.",
        ),
        (
            PASSWORD,
            "too short",
            "too short",
            "The password must have at least 12 characters.",
        ),
        (
            PASSWORD,
            new,
            "a different password",
            "The new passwords do not match.",
        ),
    ] {
        let response = change_password(&app, current, new, repeat).await;
        assert_eq!(response.status(), 400, "{message}");
        let html = unescape(&response.text().await.unwrap());
        assert!(html.contains(message), "{message}");
        assert!(
            !html.contains(new) && !html.contains(PASSWORD),
            "no password echoed"
        );
    }
    assert_eq!(find(&app, &member.id).await.password_hash, before);
    assert_eq!(app.get("/account").await.status(), 200, "still signed in");
    assert_eq!(login_status(&app, &member.email, PASSWORD).await, 303);
}

async fn changing_the_password_keeps_this_session_and_ends_the_others(app: TestApp) {
    let member = app.login_as(Role::Member).await;
    let elsewhere = app.new_browser();
    assert_eq!(elsewhere.login(&member.email, PASSWORD).await.status(), 303);
    assert_eq!(session_count(&app, &member.id).await, 2);

    let new = "a brand new password";
    let response = change_password(&app, PASSWORD, new, new).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/account");
    assert_eq!(
        app.toast_on("/account").await,
        "success: Your password was changed"
    );
    assert_eq!(
        app.get("/admin/clients").await.status(),
        200,
        "this one stays"
    );
    assert_eq!(
        elsewhere.get("/admin/clients").await.status(),
        303,
        "the other ended"
    );
    assert_eq!(session_count(&app, &member.id).await, 1);
    assert_eq!(login_status(&app, &member.email, new).await, 303);
    assert_eq!(login_status(&app, &member.email, PASSWORD).await, 401);
}

async fn guessing_the_current_password_is_rate_limited(app: TestApp) {
    // Sign-in and the account page share the budget of wrong passwords per account and
    // address (5 a minute; the successful sign-in does not count).
    let member = app.login_as(Role::Member).await;
    let new = "a brand new password";
    for _ in 0..5 {
        assert_eq!(change_password(&app, "guess", new, new).await.status(), 400);
    }
    let limited = change_password(&app, PASSWORD, new, new).await;
    assert_eq!(limited.status(), 429);
    assert!(!header(limited.headers(), "retry-after").is_empty());
    let hash = find(&app, &member.id).await.password_hash;
    assert!(connecthub::auth::password::verify(
        &secrecy::SecretString::from(PASSWORD),
        &hash
    ));
}
