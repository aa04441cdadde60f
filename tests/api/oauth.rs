//! Connecting Klaviyo and Kustomer through the sandbox: happy paths, idempotency, every bad
//! input, encryption at rest.

use crate::helpers::{location, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::{credentials, oauth_states};
use diesel::prelude::*;
use serde_json::json;

on_both_backends!(
    klaviyo_connect_creates_the_client_from_the_profile,
    kustomer_connect_creates_the_client_from_the_org,
    reconnecting_updates_the_same_row,
    one_user_can_connect_two_accounts,
    racing_callbacks_for_one_account_make_one_row,
    state_problems_are_refused_and_store_nothing,
    provider_errors_are_explained_and_store_nothing,
    token_endpoint_failures_are_explained_and_store_nothing,
    transient_token_failures_are_retried,
    profile_failure_leaves_no_half_created_client,
    unsafe_redirect_paths_fall_back_to_the_clients_page,
    tokens_are_sealed_in_the_database,
    status_lists_the_callers_connections_without_tokens,
    api_key_connections_are_checked_before_they_are_stored,
    unknown_provider_is_404_and_callback_needs_a_session,
    a_callback_refused_to_another_session_still_works_for_its_own,
    a_signed_out_callback_keeps_code_and_state_out_of_the_login_url,
);

fn assert_clean_url(path: &str) {
    for word in ["code=", "state=", "error="] {
        assert!(!path.contains(word), "{path} still carries {word}");
    }
}

/// Connects and checks the browser lands back on the clients page.
async fn connect_ok(app: &TestApp, provider: &str, account: Option<&str>) {
    let done = app.connect(provider, account).await;
    assert_eq!(done.status(), 303);
    let landing = location(&done);
    assert_eq!(landing, "/admin/clients");
    assert_clean_url(&landing);
}

async fn klaviyo_connect_creates_the_client_from_the_profile(app: TestApp) {
    let user = app.login_as(Role::Admin).await;
    let start = app.start_connect("klaviyo", "/admin/clients").await;
    assert_eq!(start.status(), 302);
    let authorize = reqwest::Url::parse(&location(&start)).unwrap();
    assert_eq!(authorize.path(), "/sandbox/klaviyo/oauth/authorize");
    let query: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], connecthub_sandbox::KLAVIYO_CLIENT_ID);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert!(
        query["state"].len() >= 43,
        "state carries at least 32 random bytes"
    );
    assert_eq!(
        query["scope"],
        "accounts:read lists:read segments:read profiles:read"
    );
    assert_eq!(
        query["redirect_uri"],
        app.url("/api/integrations/klaviyo/oauth/callback")
    );
    let stored_state: String = app
        .db(|conn| oauth_states::table.select(oauth_states::id).first(conn))
        .await;
    assert_ne!(stored_state, query["state"], "the state is stored hashed");

    let callback = app
        .consent(authorize.as_str(), "allow", Some("AcmeK1"))
        .await;
    let done = app.callback(&callback).await;
    assert_eq!(location(&done), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: Connected Klaviyo account Acme Store"
    );
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "",
        "a flash shows once"
    );

    let clients = app.clients().await;
    assert_eq!(clients.len(), 1);
    let client = &clients[0];
    assert_eq!(
        (
            client.provider.as_str(),
            client.provider_account_id.as_str()
        ),
        ("klaviyo", "AcmeK1")
    );
    assert_eq!(client.display_name, "Acme Store");
    assert_eq!(client.status.as_str(), "active");
    assert_eq!(client.owner_user_id, user.id);
    assert_eq!(client.tag_list(), ["new", "oauth"]);
    assert!(client.is_default);
    let profile = client.profile_value();
    assert_eq!(profile["account_id"], "AcmeK1");
    assert_eq!(profile["account_name"], "Acme Store");
    assert_eq!(profile["email_domain"], "acme-store.example");
    assert_eq!(profile["lists_count"], 23);
    assert_eq!(profile["segments_count"], 7);
    assert_eq!(profile["test_account"], false);
    assert_eq!(profile["timezone"], "America/New_York");
    assert_eq!(profile["preferred_currency"], "USD");
    assert_eq!(profile["locale"], "en-US");
    assert!(profile["company_id"].is_string() && profile["contact_email"].is_string());

    let html = app.get_html("/admin/clients").await;
    assert!(html.contains("Acme Store") && html.contains("AcmeK1"));
    let actions = app.audit_actions().await;
    for action in ["oauth_initiated", "token_exchanged", "oauth_completed"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} missing from {actions:?}"
        );
    }
    assert_eq!(
        app.sandbox_stats("klaviyo").await["token_calls"]["authorization_code"],
        1
    );
}

async fn kustomer_connect_creates_the_client_from_the_org(app: TestApp) {
    app.login_as(Role::Member).await;
    connect_ok(&app, "kustomer", None).await;
    let toast = app.toast_on("/admin/clients").await;
    assert!(
        toast.starts_with("success: Connected Kustomer account "),
        "{toast}"
    );
    let client = app.clients().await.remove(0);
    assert_eq!(client.provider, "kustomer");
    let profile = client.profile_value();
    assert_eq!(profile["org_id"], client.provider_account_id.as_str());
    assert!(
        profile["teams"].as_array().is_some_and(|t| !t.is_empty()),
        "{profile}"
    );
    assert_eq!(client.auth_type.as_str(), "oauth2");
}

async fn reconnecting_updates_the_same_row(app: TestApp) {
    app.login_as(Role::Admin).await;
    connect_ok(&app, "klaviyo", Some("AcmeK1")).await;
    let first = app.clients().await.remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    connect_ok(&app, "klaviyo", Some("AcmeK1")).await;
    let clients = app.clients().await;
    assert_eq!(clients.len(), 1, "no duplicate");
    assert_eq!(clients[0].id, first.id);
    assert_eq!(clients[0].created_at, first.created_at);
    assert!(clients[0].updated_at > first.updated_at, "updated_at moved");
}

async fn one_user_can_connect_two_accounts(app: TestApp) {
    app.login_as(Role::Member).await;
    connect_ok(&app, "klaviyo", Some("AcmeK1")).await;
    connect_ok(&app, "klaviyo", Some("GlobexK2")).await;
    let clients = app.clients().await;
    assert_eq!(clients.len(), 2);
    assert!(
        clients[0].is_default && !clients[1].is_default,
        "the first is the default"
    );
    assert_eq!(clients[1].display_name, "Globex Retail");
    assert_eq!(clients[1].profile_value()["test_account"], true);
}

async fn racing_callbacks_for_one_account_make_one_row(app: TestApp) {
    app.login_as(Role::Admin).await;
    let mut callbacks = Vec::new();
    for _ in 0..4 {
        let start = app.start_connect("klaviyo", "/admin/clients").await;
        callbacks.push(
            app.consent(&location(&start), "allow", Some("AcmeK1"))
                .await,
        );
    }
    let results = futures_util::future::join_all(callbacks.iter().map(|c| app.callback(c))).await;
    assert!(results.iter().all(|r| r.status() == 303));
    assert_eq!(app.clients().await.len(), 1);
    let completed = app
        .audit_actions()
        .await
        .iter()
        .filter(|a| *a == "oauth_completed")
        .count();
    assert_eq!(completed, 4);
}

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

async fn tokens_are_sealed_in_the_database(app: TestApp) {
    app.login_as(Role::Admin).await;
    connect_ok(&app, "klaviyo", None).await;
    let client = app.clients().await.remove(0);
    let id = client.id.clone();
    let (access, refresh, key_id): (Option<String>, Option<String>, String) = app
        .db(move |conn| {
            credentials::table
                .find(id)
                .select((
                    credentials::access_token,
                    credentials::refresh_token,
                    credentials::key_id,
                ))
                .first(conn)
        })
        .await;
    let (access, refresh) = (access.unwrap(), refresh.unwrap());
    for sealed in [&access, &refresh] {
        assert!(sealed.starts_with(&format!("ch1.{key_id}.")), "{sealed}");
        assert!(!sealed.contains("skla_"), "no token prefix in clear");
    }
    // The sealed value opens to a token the sandbox accepts; the raw column is not it.
    let key = connecthub::config::EncryptionKey::parse(crate::helpers::TEST_KEY).unwrap();
    let vault = connecthub::vault::Vault::new(&key, None);
    let binding = connecthub::vault::Binding {
        table: "credentials",
        row: &client.id,
        field: "access_token",
    };
    let token = vault.open(&access, &binding).unwrap();
    use secrecy::ExposeSecret;
    assert!(
        app.sandbox_token_active("klaviyo", token.expose_secret())
            .await
    );
    assert!(!access.contains(token.expose_secret()));
    // Copied to another field, it does not open.
    let wrong = connecthub::vault::Binding {
        table: "credentials",
        row: &client.id,
        field: "refresh_token",
    };
    assert!(vault.open(&access, &wrong).is_err());
    // Nothing in any other table holds it either.
    let secret = token.expose_secret().to_string();
    let dump: Vec<String> = app
        .db(|conn| {
            use connecthub::db::schema::{audit_log, clients};
            let mut all: Vec<String> = clients::table.select(clients::profile).load(conn)?;
            all.extend(
                audit_log::table
                    .select(audit_log::details)
                    .load::<String>(conn)?,
            );
            Ok(all)
        })
        .await;
    assert!(dump.iter().all(|text| !text.contains(&secret)));
}

async fn status_lists_the_callers_connections_without_tokens(app: TestApp) {
    let anonymous = app.get("/api/integrations/klaviyo/status").await;
    assert_eq!(anonymous.status(), 401);
    app.login_as(Role::Member).await;
    let empty: serde_json::Value = app
        .get("/api/integrations/klaviyo/status")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["connected"], false);
    assert_eq!(empty["connections"], json!([]));
    connect_ok(&app, "klaviyo", Some("AcmeK1")).await;
    let response = app.get("/api/integrations/klaviyo/status").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("skla_") && !text.contains("ch1."),
        "no token: {text}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["connected"], true);
    let connection = &body["connections"][0];
    assert_eq!(connection["account_id"], "AcmeK1");
    assert_eq!(connection["status"], "active");
    assert!(connection["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        connection["scopes"],
        json!([
            "accounts:read",
            "lists:read",
            "segments:read",
            "profiles:read"
        ])
    );
    // Another user sees none of them.
    let other = app.new_browser();
    other.login_as(Role::Member).await;
    let theirs: serde_json::Value = other
        .get("/api/integrations/klaviyo/status")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["connections"], json!([]));
}

async fn api_key_connections_are_checked_before_they_are_stored(app: TestApp) {
    app.login_as(Role::Admin).await;
    let (org, key) = connecthub_sandbox::KUSTOMER_API_KEYS[0];
    let bad = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[
                ("api_key", "not-a-key"),
                ("redirect_path", "/admin/clients"),
            ],
        )
        .await;
    assert_eq!(location(&bad), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "error: Could not connect Kustomer: Kustomer refused: the API key was rejected"
    );
    assert!(app.clients().await.is_empty());
    let blank = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", "  ")],
        )
        .await;
    assert_eq!(location(&blank), "/admin/clients");
    assert!(app.clients().await.is_empty());

    let good = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", key)],
        )
        .await;
    assert_eq!(location(&good), "/admin/clients");
    assert!(app
        .toast_on("/admin/clients")
        .await
        .starts_with("success: Connected Kustomer account"));
    let client = app.clients().await.remove(0);
    assert_eq!(client.auth_type.as_str(), "api_key");
    assert_eq!(client.tag_list(), ["new", "api_key"]);
    assert_eq!(client.profile_value()["org_name"], org);

    // JSON callers get JSON; Klaviyo takes no API keys here.
    let token = app.csrf_token().await;
    let json_bad = app
        .client
        .post(app.url("/api/integrations/kustomer/test-connection"))
        .header("X-CSRF-Token", &token)
        .json(&json!({"api_key": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_bad.status(), 422);
    let body: serde_json::Value = json_bad.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert!(body["error"].as_str().unwrap().contains("rejected"));
    let klaviyo = app
        .client
        .post(app.url("/api/integrations/klaviyo/test-connection"))
        .header("X-CSRF-Token", &token)
        .json(&json!({"api_key": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(klaviyo.status(), 422);
    assert_eq!(app.clients().await.len(), 1);
    // Without the CSRF token: 403 and nothing stored.
    let forged = app
        .client
        .post(app.url("/api/integrations/kustomer/test-connection"))
        .form(&[("api_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
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

/// `key rotate` re-seals every token under the new key; the old key is then unneeded.
#[tokio::test]
async fn key_rotation_keeps_every_token() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    app.login_as(Role::Admin).await;
    connect_ok(&app, "klaviyo", Some("AcmeK1")).await;
    connect_ok(&app, "klaviyo", Some("GlobexK2")).await;
    let old_key = connecthub::config::EncryptionKey::parse(crate::helpers::TEST_KEY).unwrap();
    let old_vault = connecthub::vault::Vault::new(&old_key, None);
    let new_key = connecthub::config::EncryptionKey::generate();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .args(["key", "rotate"])
        .env("DATABASE_URL", &app.database_url)
        .env("ENCRYPTION_KEY", new_key.to_base64())
        .env("ENCRYPTION_KEY_PREVIOUS", crate::helpers::TEST_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("re-sealed 2 credentials under key "),
        "{stdout}"
    );

    let new_vault = connecthub::vault::Vault::new(&new_key, None);
    let rows: Vec<(String, String, Option<String>, Option<String>)> = app
        .db(|conn| {
            credentials::table
                .select((
                    credentials::client_id,
                    credentials::key_id,
                    credentials::access_token,
                    credentials::refresh_token,
                ))
                .load(conn)
        })
        .await;
    use secrecy::ExposeSecret;
    for (client_id, key_id, access, refresh) in rows {
        assert_eq!(key_id, new_vault.current_key_id());
        let binding = connecthub::vault::Binding {
            table: "credentials",
            row: &client_id,
            field: "access_token",
        };
        let token = new_vault
            .open(access.as_deref().unwrap(), &binding)
            .expect("opens under the new key alone");
        assert!(
            app.sandbox_token_active("klaviyo", token.expose_secret())
                .await,
            "nothing lost"
        );
        assert!(old_vault
            .open(access.as_deref().unwrap(), &binding)
            .is_err());
        let binding = connecthub::vault::Binding {
            table: "credentials",
            row: &client_id,
            field: "refresh_token",
        };
        assert!(new_vault
            .open(refresh.as_deref().unwrap(), &binding)
            .is_ok());
    }
    // Running it again has nothing left to do; a wrong previous key is named.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .args(["key", "rotate"])
        .env("DATABASE_URL", &app.database_url)
        .env("ENCRYPTION_KEY", new_key.to_base64())
        .env("ENCRYPTION_KEY_PREVIOUS", "short")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        format!(
            "error: ENCRYPTION_KEY_PREVIOUS {}",
            connecthub::config::EncryptionKey::HINT
        )
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"key_rotated".to_string()));
}

/// The API-key form submitted by htmx: a toast event on the same page either way, and on
/// success the event that re-renders the list.
#[tokio::test]
async fn htmx_api_key_form_answers_with_toasts() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    app.login_as(Role::Admin).await;
    let token = app.csrf_token().await;
    let post = |key: &'static str| {
        app.client
            .post(app.url("/api/integrations/kustomer/test-connection"))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", token.clone())
            .form(&[("api_key", key), ("redirect_path", "/admin/clients")])
            .send()
    };
    let bad = post("wrong-key").await.unwrap();
    assert_eq!(bad.status(), 200);
    let trigger: serde_json::Value =
        serde_json::from_str(&crate::helpers::header(bad.headers(), "hx-trigger")).unwrap();
    assert_eq!(trigger["toast"]["kind"], "error");
    assert_eq!(
        trigger["toast"]["message"],
        "Could not connect Kustomer: Kustomer refused: the API key was rejected"
    );
    assert!(app.clients().await.is_empty());
    let good = post(connecthub_sandbox::KUSTOMER_API_KEYS[1].1)
        .await
        .unwrap();
    let trigger: serde_json::Value =
        serde_json::from_str(&crate::helpers::header(good.headers(), "hx-trigger")).unwrap();
    assert_eq!(
        trigger["toast"]["message"],
        "Connected Kustomer account Initech Helpdesk"
    );
    assert_eq!(
        trigger["clients-changed"], true,
        "the list re-renders in place"
    );
    assert_eq!(app.clients().await.len(), 1);
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
