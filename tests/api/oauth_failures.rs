//! Connecting when something goes wrong: bad or foreign state, provider and token endpoint
//! errors, retries and timeouts, unsafe redirect paths, signed-out callbacks. Nothing is
//! stored, and the person is told what happened.

use crate::helpers::{location, TestApp};
use crate::oauth::{assert_clean_url, connect_ok};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::{credentials, oauth_states};
use diesel::prelude::*;
use serde_json::json;

on_both_backends!(
    state_problems_are_refused_and_store_nothing,
    provider_errors_are_explained_and_store_nothing,
    token_endpoint_failures_are_explained_and_store_nothing,
    transient_token_failures_are_retried,
    profile_failure_leaves_no_half_created_client,
    unsafe_redirect_paths_fall_back_to_the_clients_page,
    unknown_provider_is_404_and_callback_needs_a_session,
    a_callback_refused_to_another_session_still_works_for_its_own,
    a_signed_out_callback_keeps_code_and_state_out_of_the_login_url,
);

/// Runs a callback and returns (landing path, toast).
async fn callback_result(app: &TestApp, url: &str) -> (String, String) {
    let response = app.callback(url).await;
    assert_eq!(response.status(), 303, "{url}");
    let landing = location(&response);
    assert_clean_url(&landing);
    let toast = app.toast_on(&landing).await;
    (landing, toast)
}

async fn state_problems_are_refused_and_store_nothing(app: TestApp) {
    app.login_as(Role::Admin).await;
    let base = app.url("/api/integrations/klaviyo/oauth/callback");
    let (_, toast) = callback_result(&app, &format!("{base}?code=abc")).await;
    assert_eq!(
        toast,
        "error: Could not connect Klaviyo: the answer had no state; start again"
    );
    let (_, toast) = callback_result(&app, &format!("{base}?code=abc&state=forged")).await;
    assert_eq!(
        toast,
        "error: Could not connect Klaviyo: the authorization is unknown; start again"
    );

    // Reused: the first use succeeds, a replay is refused.
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    let callback = app.consent(&location(&start), "allow", None).await;
    callback_result(&app, &callback).await;
    let (_, toast) = callback_result(&app, &callback).await;
    assert_eq!(
        toast,
        "error: Could not connect Klaviyo: this authorization was already used; start again"
    );
    assert_eq!(app.clients().await.len(), 1);

    // Expired.
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    let callback = app
        .consent(&location(&start), "allow", Some("GlobexK2"))
        .await;
    app.db(|conn| {
        diesel::update(oauth_states::table.filter(oauth_states::consumed_at.is_null()))
            .set(oauth_states::expires_at.eq(connecthub::db::now() - chrono::TimeDelta::seconds(1)))
            .execute(conn)
    })
    .await;
    let (_, toast) = callback_result(&app, &callback).await;
    assert_eq!(
        toast,
        "error: Could not connect Klaviyo: the authorization expired after 10 minutes; start again"
    );

    // Another user's browser cannot finish this user's authorization.
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    let callback = app
        .consent(&location(&start), "allow", Some("GlobexK2"))
        .await;
    let other = app.new_browser();
    other.login_as(Role::Admin).await;
    let (_, toast) = callback_result(&other, &callback).await;
    assert_eq!(toast, "error: Could not connect Klaviyo: the authorization was started in another session; start again");
    assert_eq!(
        app.clients().await.len(),
        1,
        "only the first, successful connection exists"
    );
    assert!(
        app.audit_actions()
            .await
            .iter()
            .filter(|a| *a == "oauth_failed")
            .count()
            >= 5
    );
}

async fn provider_errors_are_explained_and_store_nothing(app: TestApp) {
    app.login_as(Role::Admin).await;
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    let denied = app.consent(&location(&start), "deny", None).await;
    assert!(denied.contains("error=access_denied"));
    let (_, toast) = callback_result(&app, &denied).await;
    assert_eq!(
        toast,
        "error: Could not connect Klaviyo: access was denied on the consent page"
    );

    app.sandbox_faults(
        json!({"provider": "klaviyo", "authorize_error": "temporarily_unavailable"}),
    )
    .await;
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    let failed = app.consent(&location(&start), "allow", None).await;
    let (_, toast) = callback_result(&app, &failed).await;
    assert_eq!(
        toast,
        "error: Could not connect Klaviyo: the provider is temporarily unavailable"
    );

    // An issuer other than the provider's (RFC 9207 mix-up defence).
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    let callback = app.consent(&location(&start), "allow", None).await;
    let (before, _) = callback.split_once("&iss=").unwrap();
    let (_, toast) =
        callback_result(&app, &format!("{before}&iss=https%3A%2F%2Fevil.example")).await;
    assert_eq!(
        toast,
        "error: Could not connect Klaviyo: the answer came from an unexpected issuer (iss)"
    );

    // Unknown error codes and oversized parameters.
    let base = app.url("/api/integrations/klaviyo/oauth/callback");
    let (_, toast) = callback_result(&app, &format!("{base}?error=weird&state=x")).await;
    assert!(
        toast.starts_with("error: Could not connect Klaviyo: "),
        "{toast}"
    );
    let huge = "a".repeat(3000);
    let (_, toast) = callback_result(&app, &format!("{base}?code={huge}&state=x")).await;
    assert_eq!(
        toast,
        "error: Could not connect Klaviyo: the provider's answer was too large"
    );
    assert!(app.clients().await.is_empty());
}

async fn token_endpoint_failures_are_explained_and_store_nothing(app: TestApp) {
    app.login_as(Role::Admin).await;
    let cases = [
        (
            json!({"kind": "status", "status": 400, "error": "invalid_grant"}),
            "the code exchange failed (invalid_grant",
        ),
        (
            json!({"kind": "status", "status": 401}),
            "the code exchange failed (invalid_client",
        ),
        (
            json!({"kind": "invalid_json"}),
            "the code exchange failed (the token response is not valid JSON)",
        ),
        (
            json!({"kind": "missing_access_token"}),
            "the code exchange failed (the token response has no access_token)",
        ),
        (
            json!({"kind": "token_type", "value": "mac"}),
            "the code exchange failed (the token type \"mac\" is not supported (only Bearer))",
        ),
        (
            json!({"kind": "status", "status": 500}),
            "Klaviyo did not answer; try again in a minute",
        ),
    ];
    for (fault, expected) in cases {
        app.sandbox_faults(
            json!({"provider": "klaviyo", "token_failures": 10, "token_fault": fault}),
        )
        .await;
        let done = app.connect("klaviyo", None).await;
        let toast = app.toast_on(&location(&done)).await;
        assert!(toast.contains(expected), "{fault}: {toast}");
        app.client
            .post(app.url("/sandbox/_control/reset"))
            .send()
            .await
            .unwrap();
    }
    assert!(app.clients().await.is_empty());
    let stored: i64 = app
        .db(|conn| credentials::table.count().get_result(conn))
        .await;
    assert_eq!(stored, 0);
}

async fn transient_token_failures_are_retried(app: TestApp) {
    app.login_as(Role::Admin).await;
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 2, "token_fault": {"kind": "status", "status": 503}})).await;
    connect_ok(&app, "klaviyo", None).await;
    assert!(app.toast_on("/admin/clients").await.starts_with("success:"));
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["token_calls"]["failed"], 2, "{stats}");
    assert_eq!(app.clients().await.len(), 1);
}

async fn profile_failure_leaves_no_half_created_client(app: TestApp) {
    app.login_as(Role::Admin).await;
    app.sandbox_faults(json!({"provider": "klaviyo", "api_failures": 20, "api_status": 500}))
        .await;
    let done = app.connect("klaviyo", None).await;
    assert_eq!(
        app.toast_on(&location(&done)).await,
        "error: Could not connect Klaviyo: Klaviyo did not answer; try again in a minute"
    );
    assert!(app.clients().await.is_empty());
    let stored: i64 = app
        .db(|conn| credentials::table.count().get_result(conn))
        .await;
    assert_eq!(stored, 0);
}

async fn unsafe_redirect_paths_fall_back_to_the_clients_page(app: TestApp) {
    app.login_as(Role::Admin).await;
    for target in ["https://evil.example/", "//evil.example", "/\\evil.example"] {
        let start = app.start_connect("klaviyo", target).await;
        let callback = app.consent(&location(&start), "allow", None).await;
        assert_eq!(
            location(&app.callback(&callback).await),
            "/admin/clients",
            "{target}"
        );
    }
    let start = app.start_connect("klaviyo", "/admin/audit").await;
    let callback = app.consent(&location(&start), "allow", None).await;
    assert_eq!(
        location(&app.callback(&callback).await),
        "/admin/audit",
        "a local path is kept"
    );
}

async fn unknown_provider_is_404_and_callback_needs_a_session(app: TestApp) {
    app.login_as(Role::Admin).await;
    assert_eq!(
        app.start_connect("nope", "/admin/clients").await.status(),
        404
    );
    assert_eq!(app.get("/api/integrations/nope/status").await.status(), 404);
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    let callback = app.consent(&location(&start), "allow", None).await;
    // A browser without a session is sent to sign in first...
    let stranger = app.new_browser();
    let response = stranger.callback(&callback).await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login?next="));
    // ...and after signing in as someone else the authorization is refused clearly.
    stranger.login_as(Role::Admin).await;
    let (_, toast) = callback_result(&stranger, &callback).await;
    assert!(toast.contains("started in another session"), "{toast}");
    assert!(app.clients().await.is_empty());
}

async fn a_callback_refused_to_another_session_still_works_for_its_own(app: TestApp) {
    // B starts a flow and consents; A opens B's callback first.
    let b = app.new_browser();
    b.login_as(Role::Member).await;
    let start = b.start_connect("klaviyo", "/admin/clients").await;
    let callback = b.consent(&location(&start), "allow", None).await;
    app.login_as(Role::Admin).await;
    let (_, toast) = callback_result(&app, &callback).await;
    assert!(toast.contains("started in another session"), "{toast}");
    assert!(app.clients().await.is_empty());
    // The refusal did not use up B's authorization: B's own callback still connects.
    let (landing, toast) = callback_result(&b, &callback).await;
    assert_eq!(landing, "/admin/clients");
    assert_eq!(toast, "success: Connected Klaviyo account Acme Store");
    assert_eq!(app.clients().await.len(), 1);
}

async fn a_signed_out_callback_keeps_code_and_state_out_of_the_login_url(app: TestApp) {
    app.login_as(Role::Admin).await;
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    let callback = app.consent(&location(&start), "allow", None).await;
    assert!(callback.contains("code=") && callback.contains("state="));

    // The same browser, signed out in the meantime (another tab, an expired session).
    let signed_out = app.new_browser();
    let response = signed_out.callback(&callback).await;
    assert_eq!(response.status(), 303);
    let login = location(&response);
    assert_eq!(
        login,
        "/login?next=%2Fapi%2Fintegrations%2Fklaviyo%2Foauth%2Fcallback"
    );
    assert_clean_url(&login);
    let page = signed_out.get_html(&login).await;
    assert!(
        page.contains("Sign in and connect the account again."),
        "the login page says what happened"
    );
    // After sign-in the browser goes home: the callback cannot be resumed without its code.
    assert!(page.contains(r#"name="next" value="/admin/clients""#));
    assert_clean_url(&page);
    assert!(app.clients().await.is_empty());
}

/// A token endpoint that does not answer in time is retried, then reported.
#[tokio::test]
async fn token_endpoint_timeout_is_reported() {
    let app = crate::helpers::spawn_app_with(
        crate::helpers::Backend::Sqlite,
        &[
            ("PROVIDER_TIMEOUT_SECS", "1"),
            ("PROVIDER_MAX_RETRIES", "1"),
        ],
    )
    .await;
    app.login_as(Role::Admin).await;
    app.sandbox_faults(json!({"provider": "klaviyo", "token_failures": 2, "token_fault": {"kind": "delay", "ms": 1500}})).await;
    let done = app.connect("klaviyo", None).await;
    assert_eq!(
        app.toast_on(&location(&done)).await,
        "error: Could not connect Klaviyo: Klaviyo did not answer; try again in a minute"
    );
    assert!(app.clients().await.is_empty());
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["authorization_code"],
        2,
        "one try and one retry"
    );
}
