//! Token endpoints that depart from RFC 6749, each against the sandbox configured to behave
//! that way (`POST /sandbox/_control/quirks`): tokens that never expire and have no refresh
//! token (GitHub OAuth apps), refresh tokens rotated on every use (Xero), tokens nested in
//! the answer (Slack's `authed_user`), granted scopes other than those asked, client
//! authentication by Basic or in the body, JSON token requests (Notion), extra token
//! parameters, access tokens sent in a header of their own (Shopify), and values captured
//! from the callback (QuickBooks' `realmId`) or the profile (Mailchimp's `dc`).

use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use connecthub::auth::users::Role;
use connecthub::clients::Client;
use connecthub::db::schema::credentials;
use diesel::prelude::*;
use serde_json::json;

/// A provider on the sandbox's Klaviyo server; `{keys}` takes extra top-level keys and
/// `{tables}` extra tables.
const QUIRKY: &str = r#"
[[provider]]
name = "{name}"
display_name = "{display}"
authorize_url = "{address}/sandbox/klaviyo/oauth/authorize"
token_url = "{address}/sandbox/klaviyo/oauth/token"
profile_url = "{address}/sandbox/klaviyo/api/accounts"
account_id_field = "data.0.id"
account_name_field = "data.0.attributes.contact_information.organization_name"
scopes = ["accounts:read", "lists:read"]
client_auth = "basic"
api_base_url = "{address}/sandbox/klaviyo"
{keys}
[provider.headers]
revision = "2024-10-15"
{tables}
"#;

fn quirky(name: &str, display: &str, keys: &str, tables: &str) -> String {
    QUIRKY
        .replace("{name}", name)
        .replace("{display}", display)
        .replace("{keys}", keys)
        .replace("{tables}", tables)
}

/// An app whose file defines `providers` (names), all with the sandbox Klaviyo app.
async fn app_with(backend: Backend, toml: &str, names: &[&str]) -> TestApp {
    let mut vars: Vec<(String, String)> = vec![("PROVIDERS_TOML".into(), toml.to_string())];
    for name in names {
        let prefix = name.to_uppercase().replace('-', "_");
        vars.push((
            format!("{prefix}_OAUTH_CLIENT_ID"),
            connecthub_sandbox::KLAVIYO_CLIENT_ID.into(),
        ));
        vars.push((
            format!("{prefix}_OAUTH_CLIENT_SECRET"),
            connecthub_sandbox::KLAVIYO_CLIENT_SECRET.into(),
        ));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(backend, &vars).await;
    app.login_as(Role::Admin).await;
    app
}

async fn set_quirks(app: &TestApp, quirks: serde_json::Value) {
    let response = app
        .client
        .post(app.url("/sandbox/_control/quirks"))
        .json(&json!({"provider": "klaviyo", "quirks": quirks}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Connects `provider` through the consent page; returns the toast shown.
async fn connect(app: &TestApp, provider: &str) -> String {
    let done = app.connect(provider, Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    app.toast_on("/admin/clients").await
}

async fn only_client(app: &TestApp) -> Client {
    let clients = app.clients().await;
    assert_eq!(clients.len(), 1, "one client");
    clients.into_iter().next().unwrap()
}

/// expires_at and refresh_at of a client's credentials.
type Times = (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>);

async fn stored_times(app: &TestApp, client_id: &str) -> Times {
    let id = client_id.to_string();
    app.db(move |conn| {
        credentials::table
            .filter(credentials::client_id.eq(id))
            .select((credentials::expires_at, credentials::refresh_at))
            .first(conn)
    })
    .await
}

/// Tokens that never expire and come without a refresh token (GitHub OAuth apps): stored
/// as never expiring, handed out and used as they are, never sent for refreshing.
async fn tokens_that_never_expire(backend: Backend) {
    let app = app_with(backend, &quirky("forever", "Forever", "", ""), &["forever"]).await;
    set_quirks(
        &app,
        json!({"never_expires": true, "no_refresh_token": true}),
    )
    .await;
    assert_eq!(
        connect(&app, "forever").await,
        "success: Connected Forever account Acme Store"
    );
    let client = only_client(&app).await;
    assert_eq!(stored_times(&app, &client.id).await, (None, None));
    let (access, refresh) = crate::lifecycle::stored_tokens(&app, &client.id).await;
    assert!(refresh.is_none(), "no refresh token was issued");
    let access = access.expect("an access token");

    let key = app.api_key(&connecthub::api_keys::Scope::ALL).await;
    let handed: serde_json::Value = app
        .service_token(&key, &client.id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(handed["access_token"], json!(access));
    assert_eq!(handed["expires_at"], json!(null));
    assert_eq!(
        app.proxy_get(&key, &client.id, "api/accounts")
            .await
            .status(),
        200
    );
    let html = app.get_html("/admin/clients").await;
    assert!(html.contains("does not expire"), "the list says so");

    // "Refresh now" has nothing to refresh with: the token stays, the client stays active.
    let refreshed = app.refresh_now("forever", &client.id).await;
    assert_eq!(refreshed.status(), 200);
    let path = format!("/api/integrations/forever/oauth/refresh/{}", client.id);
    let from_page = app
        .post_form(&path, &[("redirect_path", "/admin/clients")])
        .await;
    assert_eq!(location(&from_page), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: The token of Acme Store does not expire: nothing to refresh"
    );
    assert_eq!(only_client(&app).await.status.as_str(), "active");
    assert_eq!(
        crate::lifecycle::stored_tokens(&app, &client.id).await.0,
        Some(access)
    );
    // No refresher churn: a few seconds later still only the code exchange was made.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["token_calls"]["total"], 1, "{stats}");
    assert_eq!(stats["token_calls"]["refresh_token"], 0);
}

/// Refresh tokens rotated on every use (Xero): several refreshes in a row each store the
/// new pair, and a refresh token used once is refused when it comes back; strict
/// providers then end the whole grant, which connecthub reports as "reconnect".
async fn rotating_refresh_tokens(backend: Backend) {
    let app = app_with(backend, &quirky("rotor", "Rotor", "", ""), &["rotor"]).await;
    connect(&app, "rotor").await;
    let client = only_client(&app).await;
    let mut used = Vec::new();
    for _ in 0..3 {
        let (_, before) = crate::lifecycle::stored_tokens(&app, &client.id).await;
        let before = before.expect("a refresh token");
        assert_eq!(app.refresh_now("rotor", &client.id).await.status(), 200);
        let (access, after) = crate::lifecycle::stored_tokens(&app, &client.id).await;
        let after = after.expect("a new refresh token");
        assert_ne!(before, after, "rotated");
        assert!(!app.sandbox_token_active("klaviyo", &before).await);
        assert!(app.sandbox_token_active("klaviyo", &access.unwrap()).await);
        used.push(before);
    }
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["token_calls"]["refresh_token"], 3);

    // An old refresh token presented again is refused by the provider…
    let replay = app
        .client
        .post(app.url("/sandbox/klaviyo/oauth/token"))
        .basic_auth(
            connecthub_sandbox::KLAVIYO_CLIENT_ID,
            Some(connecthub_sandbox::KLAVIYO_CLIENT_SECRET),
        )
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &used[0])])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    let body: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // …which ends the grant: the next refresh says the account needs reconnecting.
    let next = app.refresh_now("rotor", &client.id).await;
    assert_eq!(next.status(), 409);
    assert_eq!(only_client(&app).await.status.as_str(), "needs_reauth");
}

/// Tokens nested in the answer (Slack v2's `authed_user`, token type `user`, scopes with
/// commas): read where `token_path` says. Without it the answer is refused and nothing is
/// stored.
async fn tokens_nested_in_the_answer(backend: Backend) {
    let toml = [
        quirky(
            "slackish",
            "Slackish",
            "token_path = \"authed_user\"\ntoken_type = \"user\"",
            "",
        ),
        quirky("flat", "Flat", "", ""),
    ]
    .concat();
    let app = app_with(backend, &toml, &["slackish", "flat"]).await;
    set_quirks(
        &app,
        json!({"nest_under": "authed_user", "token_type": "user", "scope_separator": ","}),
    )
    .await;
    assert_eq!(
        connect(&app, "flat").await,
        "error: Could not connect Flat: Flat refused: the code exchange failed (the token response has no access_token)"
    );
    assert!(app.clients().await.is_empty(), "nothing stored");

    assert_eq!(
        connect(&app, "slackish").await,
        "success: Connected Slackish account Acme Store"
    );
    let client = only_client(&app).await;
    assert_eq!(client.scopes, "accounts:read lists:read");
    let (access, refresh) = crate::lifecycle::stored_tokens(&app, &client.id).await;
    assert!(app.sandbox_token_active("klaviyo", &access.unwrap()).await);
    assert!(refresh.is_some());
    let (expires_at, _) = stored_times(&app, &client.id).await;
    assert!(expires_at.is_some(), "expires_in was read from authed_user");
    // Refresh answers are nested the same way.
    assert_eq!(app.refresh_now("slackish", &client.id).await.status(), 200);
    let (access, _) = crate::lifecycle::stored_tokens(&app, &client.id).await;
    assert!(app.sandbox_token_active("klaviyo", &access.unwrap()).await);
}

/// Scopes granted other than asked (a subset, comma-separated): what is stored and shown is
/// what the provider granted.
async fn granted_scopes_are_what_is_kept(backend: Backend) {
    let app = app_with(backend, &quirky("narrow", "Narrow", "", ""), &["narrow"]).await;
    set_quirks(
        &app,
        json!({"grant_only": ["accounts:read", "profiles:read"], "scope_separator": ","}),
    )
    .await;
    connect(&app, "narrow").await;
    let client = only_client(&app).await;
    assert_eq!(client.scopes, "accounts:read");
    let html = app.get_html(&format!("/admin/clients/{}", client.id)).await;
    let scopes = html.split(r#"id="scopes""#).nth(1).expect("scope list");
    let scopes = scopes.split("</ul>").next().unwrap();
    assert!(scopes.contains("<code>accounts:read</code>"), "{scopes}");
    assert!(scopes.contains("<code>lists:read</code>"));
    assert_eq!(scopes.matches("requested, not granted").count(), 1);
}

/// A refresh that grants less than before (consent withdrawn at the provider): the stored
/// scopes follow the answer.
async fn a_refresh_may_narrow_the_scopes(backend: Backend) {
    let app = app_with(backend, &quirky("shrink", "Shrink", "", ""), &["shrink"]).await;
    connect(&app, "shrink").await;
    let client = only_client(&app).await;
    assert_eq!(client.scopes, "accounts:read lists:read");
    set_quirks(
        &app,
        json!({"grant_only": ["lists:read"], "scope_separator": ","}),
    )
    .await;
    assert_eq!(app.refresh_now("shrink", &client.id).await.status(), 200);
    assert_eq!(only_client(&app).await.scopes, "lists:read");
}

/// Client authentication by HTTP Basic (the sandbox's Klaviyo wants it) and in the body
/// (its Kustomer wants that); each the wrong way is refused and nothing is stored.
async fn client_authentication_basic_and_body(backend: Backend) {
    let machine =
        |name: &str, server: &str, auth: &str, profile: &str, id: &str, name_field: &str| {
            format!(
                r#"
[[provider]]
name = "{name}"
display_name = "{name}"
auth_type = "client_credentials"
token_url = "{{address}}/sandbox/{server}/oauth/token"
profile_url = "{{address}}/sandbox/{server}{profile}"
account_id_field = "{id}"
account_name_field = "{name_field}"
client_auth = "{auth}"
api_base_url = "{{address}}/sandbox/{server}"
[provider.headers]
revision = "2024-10-15"
"#
            )
        };
    let klaviyo = (
        "/api/accounts",
        "data.0.id",
        "data.0.attributes.contact_information.organization_name",
    );
    let kustomer = ("/v1/orgs/current", "data.id", "data.attributes.displayName");
    let toml = [
        machine(
            "by-basic", "klaviyo", "basic", klaviyo.0, klaviyo.1, klaviyo.2,
        ),
        machine(
            "by-body", "kustomer", "post", kustomer.0, kustomer.1, kustomer.2,
        ),
        machine(
            "basic-wrong",
            "kustomer",
            "basic",
            kustomer.0,
            kustomer.1,
            kustomer.2,
        ),
        machine(
            "body-wrong",
            "klaviyo",
            "post",
            klaviyo.0,
            klaviyo.1,
            klaviyo.2,
        ),
    ]
    .concat();
    let mut vars: Vec<(String, String)> = vec![("PROVIDERS_TOML".into(), toml)];
    for (prefix, server) in [
        ("BY_BASIC", "klaviyo"),
        ("BODY_WRONG", "klaviyo"),
        ("BY_BODY", "kustomer"),
        ("BASIC_WRONG", "kustomer"),
    ] {
        let (id, secret) = match server {
            "klaviyo" => (
                connecthub_sandbox::KLAVIYO_CLIENT_ID,
                connecthub_sandbox::KLAVIYO_CLIENT_SECRET,
            ),
            _ => (
                connecthub_sandbox::KUSTOMER_CLIENT_ID,
                connecthub_sandbox::KUSTOMER_CLIENT_SECRET,
            ),
        };
        vars.push((format!("{prefix}_OAUTH_CLIENT_ID"), id.into()));
        vars.push((format!("{prefix}_OAUTH_CLIENT_SECRET"), secret.into()));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(backend, &vars).await;
    app.login_as(Role::Admin).await;
    let connect = |name: &'static str| {
        let app = &app;
        async move {
            let done = app
                .post_form(
                    &format!("/api/integrations/{name}/connect"),
                    &[("redirect_path", "/admin/clients")],
                )
                .await;
            assert_eq!(location(&done), "/admin/clients");
            app.toast_on("/admin/clients").await
        }
    };
    assert_eq!(
        connect("basic-wrong").await,
        "error: Could not connect basic-wrong: basic-wrong refused: the client-credentials grant failed (invalid_client: Send client_id and client_secret in the request body, not in a header)"
    );
    assert_eq!(
        connect("body-wrong").await,
        "error: Could not connect body-wrong: body-wrong refused: the client-credentials grant failed (invalid_client: Client credentials must be sent with HTTP Basic authentication, not in the body)"
    );
    assert!(app.clients().await.is_empty(), "nothing stored");
    assert_eq!(
        connect("by-basic").await,
        "success: Connected by-basic account Acme Store"
    );
    assert_eq!(
        connect("by-body").await,
        "success: Connected by-body account Acme Support"
    );
    let providers: Vec<String> = app
        .clients()
        .await
        .into_iter()
        .map(|c| c.provider)
        .collect();
    assert_eq!(providers, ["by-basic", "by-body"]);
}

/// Token requests as JSON (Notion) with a parameter the provider requires: both keys are
/// needed, and a provider missing either is refused with the provider's reason.
async fn json_requests_and_token_params(backend: Backend) {
    let toml = [
        quirky(
            "notionish",
            "Notionish",
            "token_request_format = \"json\"",
            "[provider.token_params]\naudience = \"api.quirky\"",
        ),
        quirky(
            "formy",
            "Formy",
            "",
            "[provider.token_params]\naudience = \"api.quirky\"",
        ),
        quirky("jsony", "Jsony", "token_request_format = \"json\"", ""),
    ]
    .concat();
    let app = app_with(backend, &toml, &["notionish", "formy", "jsony"]).await;
    set_quirks(
        &app,
        json!({"json_requests": true, "required_params": {"audience": "api.quirky"}}),
    )
    .await;
    assert_eq!(
        connect(&app, "formy").await,
        "error: Could not connect Formy: Formy refused: the code exchange failed (invalid_request: the body must be application/json)"
    );
    assert_eq!(
        connect(&app, "jsony").await,
        "error: Could not connect Jsony: Jsony refused: the code exchange failed (invalid_request: audience must be \"api.quirky\")"
    );
    assert!(app.clients().await.is_empty(), "nothing stored");
    assert_eq!(
        connect(&app, "notionish").await,
        "success: Connected Notionish account Acme Store"
    );
    let client = only_client(&app).await;
    // The refresh is sent the same way.
    assert_eq!(app.refresh_now("notionish", &client.id).await.status(), 200);
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(stats["token_calls"]["refresh_token"], 1);
    // Formy's form body was refused before its grant type was read.
    assert_eq!(stats["token_calls"]["authorization_code"], 2);
    assert_eq!(stats["token_calls"]["total"], 4);
}

/// A bad quirks request changes nothing at the sandbox.
async fn bad_quirks_are_refused(backend: Backend) {
    let app = app_with(backend, &quirky("plain", "Plain", "", ""), &["plain"]).await;
    for (body, message) in [
        (
            json!({"provider": "nope", "quirks": {}}),
            "provider must be",
        ),
        (
            json!({"provider": "klaviyo", "quirks": {"nest_under": "a.b"}}),
            "nest_under",
        ),
        (
            json!({"provider": "klaviyo", "quirks": {"typo": true}}),
            "unknown field",
        ),
        (
            json!({"provider": "klaviyo", "quirks": {"callback_params": {"code": "x"}}}),
            "callback_params",
        ),
    ] {
        let response = app
            .client
            .post(app.url("/sandbox/_control/quirks"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert!(
            response.text().await.unwrap().contains(message),
            "{message}"
        );
    }
    assert_eq!(
        connect(&app, "plain").await,
        "success: Connected Plain account Acme Store"
    );
}

/// Access tokens in a named header (Shopify's `X-Shopify-Access-Token`, bare): the profile
/// read and the proxy both place them there, with no Authorization header; a provider
/// left on Bearer is refused by the same API.
async fn access_tokens_in_a_named_header(backend: Backend) {
    let placed = "[provider.access_token]\nheader = \"X-Shopify-Access-Token\"\n";
    let toml = [
        quirky("shopco", "Shop Co", "", placed),
        quirky("plain", "Plain", "", ""),
    ]
    .concat();
    let app = app_with(backend, &toml, &["shopco", "plain"]).await;
    set_quirks(&app, json!({"token_header": "X-Shopify-Access-Token"})).await;
    assert_eq!(
        connect(&app, "shopco").await,
        "success: Connected Shop Co account Acme Store"
    );
    let client = only_client(&app).await;
    let key = app.api_key(&connecthub::api_keys::Scope::ALL).await;
    let called = app
        .client
        .get(app.url(&format!("/api/v1/proxy/{}/api/accounts", client.id)))
        .bearer_auth(&key)
        .header("X-Shopify-Access-Token", "callers-own")
        .send()
        .await
        .unwrap();
    assert_eq!(called.status(), 200, "the caller's own header is replaced");

    let plain = connect(&app, "plain").await;
    assert!(plain.starts_with("error: "), "{plain}");
    assert_eq!(app.clients().await.len(), 1, "nothing stored for plain");
}

/// Values the provider sends back on the callback (QuickBooks' `realmId`) are captured
/// into the connection's settings; a missing or unsafe one refuses the connection and
/// stores nothing.
async fn values_from_the_callback_are_captured(backend: Backend) {
    let capture = "[provider.capture]\nrealm_id = \"callback.realmId\"\n";
    let app = app_with(backend, &quirky("books", "Books", "", capture), &["books"]).await;

    let missing = connect(&app, "books").await;
    assert!(
        missing.starts_with("error: ") && missing.contains("realmId"),
        "{missing}"
    );
    assert!(app.clients().await.is_empty(), "nothing stored without it");

    let too_long = "4".repeat(129);
    for bad in ["../evil", "a/b", "4620%2F1", too_long.as_str()] {
        set_quirks(&app, json!({"callback_params": {"realmId": bad}})).await;
        let refused = connect(&app, "books").await;
        assert!(
            refused.contains("the provider sent a value that is refused"),
            "{bad}: {refused}"
        );
        assert!(app.clients().await.is_empty(), "nothing stored for {bad}");
    }

    set_quirks(
        &app,
        json!({"callback_params": {"realmId": "4620816365178461080"}}),
    )
    .await;
    assert_eq!(
        connect(&app, "books").await,
        "success: Connected Books account Acme Store"
    );
    let client = only_client(&app).await;
    assert!(
        client
            .connection_config
            .contains(r#""realm_id":"4620816365178461080""#),
        "{}",
        client.connection_config
    );
}

/// Mailchimp's API host depends on the account's data center, read from the profile (its
/// metadata answer): the value fills the API base, and a bad one stores nothing.
async fn values_from_the_profile_fill_the_api_host(backend: Backend) {
    let toml = quirky(
        "chimp",
        "Chimp",
        "",
        "[provider.capture]\ndc = \"profile.dc\"\n",
    )
    .replace(
        r#"api_base_url = "{address}/sandbox/klaviyo""#,
        r#"api_base_url = "{address}/sandbox/${connection.dc}""#,
    );
    let app = app_with(backend, &toml, &["chimp"]).await;

    let missing = connect(&app, "chimp").await;
    assert!(
        missing.starts_with("error: ") && missing.contains("profile field dc"),
        "{missing}"
    );
    assert!(app.clients().await.is_empty(), "nothing stored without it");
    for bad in [
        "evil.com",
        "a/b",
        "..",
        "klaviyo?x=1",
        "klaviyo#x",
        "%2e%2e",
    ] {
        set_quirks(&app, json!({"profile_fields": {"dc": bad}})).await;
        let refused = connect(&app, "chimp").await;
        assert!(
            refused.contains("the provider sent a value that is refused"),
            "{bad}: {refused}"
        );
        assert!(app.clients().await.is_empty(), "nothing stored for {bad}");
    }

    set_quirks(&app, json!({"profile_fields": {"dc": "klaviyo"}})).await;
    assert_eq!(
        connect(&app, "chimp").await,
        "success: Connected Chimp account Acme Store"
    );
    let client = only_client(&app).await;
    assert_eq!(client.connection_config, r#"{"dc":"klaviyo"}"#);
    // The proxy reaches the API at the host the profile named.
    let key = crate::operations::proxy_key(&app).await;
    let answer = app.proxy_get(&key, &client.id, "api/accounts").await;
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["data"][0]["id"], "AcmeK1");
}

crate::with_each_backend!(
    tokens_that_never_expire,
    rotating_refresh_tokens,
    tokens_nested_in_the_answer,
    granted_scopes_are_what_is_kept,
    a_refresh_may_narrow_the_scopes,
    client_authentication_basic_and_body,
    json_requests_and_token_params,
    bad_quirks_are_refused,
    access_tokens_in_a_named_header,
    values_from_the_callback_are_captured,
    values_from_the_profile_fill_the_api_host,
);
