//! Connecting Klaviyo and Kustomer through the sandbox: happy paths, idempotency, API-key
//! connections and the connections status. Failures are in `oauth_failures`, tokens at
//! rest in `token_sealing`.

use crate::helpers::{location, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::oauth_states;
use diesel::prelude::*;
use serde_json::json;

on_both_backends!(
    klaviyo_connect_creates_the_client_from_the_profile,
    kustomer_connect_creates_the_client_from_the_org,
    reconnecting_updates_the_same_row,
    one_user_can_connect_two_accounts,
    racing_callbacks_for_one_account_make_one_row,
    status_lists_the_callers_connections_without_tokens,
    api_key_connections_are_checked_before_they_are_stored,
);

pub(crate) fn assert_clean_url(path: &str) {
    for word in ["code=", "state=", "error="] {
        assert!(!path.contains(word), "{path} still carries {word}");
    }
}

/// Connects and checks the browser lands back on the clients page.
pub(crate) async fn connect_ok(app: &TestApp, provider: &str, account: Option<&str>) {
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
    assert_acme_profile(&client.profile_value());

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

/// What the sandbox's AcmeK1 account reads as: the profile fields the Clients page shows.
fn assert_acme_profile(profile: &serde_json::Value) {
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
