//! The admin app and session-made connections: the end user on the clients list and the
//! details page, search by end user, the end user's page with Disconnect, the completion
//! rate KPI; members see none of it.

use crate::connect_sessions::{end_user_connects, session_for, team_key};
use crate::helpers::{location, unescape, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use serde_json::json;

on_both_backends!(
    admins_find_session_made_connections_by_their_end_user,
    an_admin_disconnects_a_connection_from_the_end_users_page,
    members_see_no_end_users_and_no_end_user_page,
    the_usage_page_shows_the_connect_session_completion_rate,
);

/// End user 42 (jane@acme.example) connects Klaviyo through a session.
async fn end_user_42_connected(app: &TestApp) -> connecthub::clients::Client {
    let key = team_key(app).await;
    let session = session_for(
        app,
        &key,
        json!({"end_user": {"id": "42", "email": "jane@acme.example"}, "allowed_providers": ["klaviyo"]}),
    )
    .await;
    let done = end_user_connects(
        &app.new_browser(),
        session["connect_url"].as_str().unwrap(),
        "klaviyo",
        Some("AcmeK1"),
        "allow",
    )
    .await;
    assert_eq!(done.status(), 200);
    app.clients().await.remove(0)
}

async fn admins_find_session_made_connections_by_their_end_user(app: TestApp) {
    let client = end_user_42_connected(&app).await;
    app.login_as(Role::Admin).await;
    let list = unescape(&app.get_html("/admin/clients").await);
    assert!(
        list.contains(r#"end user <a href="/admin/end-users/42">42</a> · jane@acme.example"#),
        "{list}"
    );
    for search in ["jane%40acme", "42"] {
        let found = app.get_html(&format!("/admin/clients?q={search}")).await;
        assert!(
            found.contains(&format!("client-{}", client.id)),
            "search {search}"
        );
    }
    let none = app.get_html("/admin/clients?q=nobody-like-this").await;
    assert!(!none.contains(&format!("client-{}", client.id)));
    let details = unescape(&app.get_html(&format!("/admin/clients/{}", client.id)).await);
    assert!(
        details.contains(
            r#"<dt>End user</dt><dd><a href="/admin/end-users/42">42</a> · jane@acme.example"#
        ),
        "{details}"
    );
}

async fn an_admin_disconnects_a_connection_from_the_end_users_page(app: TestApp) {
    let client = end_user_42_connected(&app).await;
    app.login_as(Role::Admin).await;
    let page = unescape(&app.get_html("/admin/end-users/42").await);
    assert!(page.contains("<h1>End user 42</h1>"));
    assert!(page.contains("jane@acme.example"));
    assert!(page.contains(&format!(
        "/api/integrations/klaviyo/disconnect/{}",
        client.id
    )));
    assert_eq!(app.get("/admin/end-users/43").await.status(), 404);
    let response = app
        .post_form(
            &format!("/api/integrations/klaviyo/disconnect/{}", client.id),
            &[("redirect_path", "/admin/end-users/42")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/end-users/42");
    assert!(app.clients().await[0].status.is_disconnected());
    assert!(unescape(&app.get_html("/admin/end-users/42").await).contains("Disconnected"));
}

async fn members_see_no_end_users_and_no_end_user_page(app: TestApp) {
    let client = end_user_42_connected(&app).await;
    app.login_as(Role::Member).await;
    assert_eq!(app.get("/admin/end-users/42").await.status(), 403);
    let list = app.get_html("/admin/clients?q=42").await;
    assert!(
        !list.contains(&format!("client-{}", client.id)),
        "not the member's client"
    );
    assert_eq!(
        app.get(&format!("/admin/clients/{}", client.id))
            .await
            .status(),
        404
    );
}

async fn the_usage_page_shows_the_connect_session_completion_rate(app: TestApp) {
    end_user_42_connected(&app).await;
    let key = team_key(&app).await;
    session_for(&app, &key, json!({"end_user": {"id": "43"}})).await;
    app.login_as(Role::Admin).await;
    let page = unescape(&app.get_html("/admin/usage").await);
    assert!(page.contains("Connect session completion"), "{page}");
    assert!(page.contains("50.0 % (1 of 2)"), "{page}");
}
