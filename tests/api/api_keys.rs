//! Service API keys: the admin page that creates and revokes them, and `/api/v1` calls
//! authenticated with them.

use crate::helpers::{header, location, new_client, unescape, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::{api_keys, audit_log};
use diesel::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

on_both_backends!(
    a_new_key_is_shown_once_then_only_its_prefix,
    the_database_holds_only_a_hash_and_the_prefix,
    a_valid_key_lists_clients_without_tokens,
    use_is_recorded_at_most_once_a_minute,
    missing_wrong_or_malformed_keys_get_401,
    a_revoked_key_gets_401,
    a_key_without_the_scope_gets_403,
    members_cannot_see_or_create_keys,
    creating_without_the_csrf_token_is_refused,
    bad_form_input_is_explained_and_stores_nothing,
    bad_filters_get_400,
    key_events_are_audited_without_the_secret,
);

const NEW_KEY_MARKER: &str = r#"<code id="new-api-key" class="secret">"#;
const ONCE: &str = "Copy it now: it will not be shown again.";

/// Submits the create form.
async fn submit(app: &TestApp, name: &str, scopes: &[&str]) -> reqwest::Response {
    let mut fields = vec![("name", name)];
    fields.extend(scopes.iter().map(|s| ("scope", *s)));
    app.post_form("/admin/api-keys", &fields).await
}

/// Creates a key through the page; returns the secret it showed.
async fn create_key(app: &TestApp, name: &str, scopes: &[&str]) -> String {
    let response = submit(app, name, scopes).await;
    assert_eq!(response.status(), 200);
    new_key_on(&response.text().await.unwrap()).expect("the page shows the new key")
}

fn new_key_on(html: &str) -> Option<String> {
    let rest = html.split(NEW_KEY_MARKER).nth(1)?;
    Some(rest.split("</code>").next()?.to_string())
}

/// A call from a service: no cookies, only the Authorization header (if any).
async fn service_get(app: &TestApp, path: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = new_client().get(app.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

async fn list_with(app: &TestApp, key: &str, query: &str) -> reqwest::Response {
    let bearer = format!("Bearer {key}");
    service_get(app, &format!("/api/v1/clients{query}"), Some(&bearer)).await
}

async fn key_count(app: &TestApp) -> i64 {
    app.db(|conn| api_keys::table.count().get_result(conn))
        .await
}

async fn key_id(app: &TestApp, name: &str) -> String {
    let name = name.to_string();
    app.db(move |conn| {
        api_keys::table
            .filter(api_keys::name.eq(name))
            .select(api_keys::id)
            .first(conn)
    })
    .await
}

async fn revoked_at(app: &TestApp, id: &str) -> Option<chrono::NaiveDateTime> {
    let id = id.to_string();
    app.db(move |conn| {
        api_keys::table
            .find(id)
            .select(api_keys::revoked_at)
            .first(conn)
    })
    .await
}

async fn last_used(app: &TestApp) -> Option<chrono::NaiveDateTime> {
    app.db(|conn| api_keys::table.select(api_keys::last_used_at).first(conn))
        .await
}

async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert!(header(response.headers(), "content-type").starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body
}

async fn a_new_key_is_shown_once_then_only_its_prefix(app: TestApp) {
    app.login_as(Role::Admin).await;
    let page = app.get("/admin/api-keys").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"href="/admin/api-keys" aria-current="page""#));
    assert!(html.contains("No API keys yet"));

    let response = submit(&app, "billing-service", &["clients:read", "tokens:read"]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "cache-control"), "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains(ONCE));
    let secret = new_key_on(&html).unwrap();
    assert_eq!(secret.len(), 44);
    assert!(secret.starts_with("chk_"));
    assert!(secret[4..].chars().all(|c| c.is_ascii_alphanumeric()));

    let later = app.get_html("/admin/api-keys").await;
    assert!(!later.contains(&secret[12..]), "the key is shown only once");
    assert!(!later.contains(ONCE) && new_key_on(&later).is_none());
    assert!(later.contains(&format!("<code>{}…</code>", &secret[..12])));
    assert!(later.contains("<td>billing-service</td>"));
    assert!(later.contains("tokens:read") && later.contains("clients:read"));
    assert!(later.contains("never"));
    assert!(later.contains(r#"data-confirm="Revoke this key? Services using it stop working.""#));
    // A second key gets a different secret and is listed first.
    let second = create_key(&app, "crm-sync", &["proxy"]).await;
    assert_ne!(second, secret);
    let later = app.get_html("/admin/api-keys").await;
    let row = |name: &str| later.find(&format!("<td>{name}</td>")).unwrap();
    assert!(row("crm-sync") < row("billing-service"), "newest first");
}

async fn the_database_holds_only_a_hash_and_the_prefix(app: TestApp) {
    app.login_as(Role::Admin).await;
    let secret = create_key(&app, "warehouse", &["clients:read"]).await;
    let row: (String, String, String, String, String, String) = app
        .db(|conn| {
            api_keys::table
                .select((
                    api_keys::id,
                    api_keys::name,
                    api_keys::prefix,
                    api_keys::key_hash,
                    api_keys::scopes,
                    api_keys::created_by,
                ))
                .first(conn)
        })
        .await;
    let (id, name, prefix, key_hash, scopes, created_by) = row;
    assert_eq!(prefix, &secret[..12]);
    assert_eq!(key_hash, hex::encode(Sha256::digest(secret.as_bytes())));
    assert_eq!(scopes, "clients:read");
    let stored = [id, name, prefix, key_hash, scopes, created_by].join(" ");
    let hidden = &secret[12..];
    for start in 0..=hidden.len() - 8 {
        let piece = &hidden[start..start + 8];
        assert!(
            !stored.contains(piece),
            "the row holds part of the secret: {piece}"
        );
    }
}

async fn a_valid_key_lists_clients_without_tokens(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    assert_eq!(app.connect("klaviyo", Some("AcmeK1")).await.status(), 303);
    let key = create_key(&app, "reporting", &["clients:read"]).await;

    let response = list_with(&app, &key, "").await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "cache-control"), "no-store");
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("skla_") && !text.contains("ch1.") && !text.contains("token"),
        "no token: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    let clients = body["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{body}");
    let client = &clients[0];
    assert_eq!(client["provider"], "klaviyo");
    assert_eq!(client["account_id"], "AcmeK1");
    assert!(client["account_name"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    assert_eq!(client["owner_user_id"], admin.id.as_str());
    assert_eq!(client["owner_email"], admin.email.as_str());
    assert_eq!(client["status"], "active");
    assert_eq!(client["auth_type"], "oauth2");
    assert_eq!(client["is_default"], true);
    assert!(client["scopes"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(client["tags"].is_array());
    for field in ["connected_at", "updated_at"] {
        assert!(client[field].as_str().unwrap().ends_with('Z'), "{field}");
    }

    let count = |body: Value| body["clients"].as_array().unwrap().len();
    for (query, expected) in [
        ("?provider=klaviyo", 1),
        ("?provider=kustomer", 0),
        (&format!("?owner={}", admin.id) as &str, 1),
        (&format!("?owner={}", admin.email), 1),
        ("?owner=someone%40example.com", 0),
        ("?provider=&owner=", 1),
    ] {
        let response = list_with(&app, &key, query).await;
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(count(response.json().await.unwrap()), expected, "{query}");
    }
}

async fn use_is_recorded_at_most_once_a_minute(app: TestApp) {
    app.login_as(Role::Admin).await;
    let key = create_key(&app, "poller", &["clients:read"]).await;
    assert_eq!(last_used(&app).await, None);

    assert_eq!(list_with(&app, &key, "").await.status(), 200);
    let first = last_used(&app)
        .await
        .expect("last_used_at is set after use");
    assert_eq!(list_with(&app, &key, "").await.status(), 200);
    assert_eq!(
        last_used(&app).await,
        Some(first),
        "no write within a minute"
    );
    assert!(!app.get_html("/admin/api-keys").await.contains(">never<"));

    let earlier = connecthub::db::now() - chrono::TimeDelta::minutes(2);
    app.db(move |conn| {
        diesel::update(api_keys::table)
            .set(api_keys::last_used_at.eq(earlier))
            .execute(conn)
    })
    .await;
    // Past the key cache (SERVICE_CACHE_SECS=1 in tests) the next use is recorded.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(list_with(&app, &key, "").await.status(), 200);
    assert!(
        last_used(&app).await.unwrap() > earlier,
        "refreshed after a minute"
    );
}

async fn missing_wrong_or_malformed_keys_get_401(app: TestApp) {
    app.login_as(Role::Admin).await;
    let key = create_key(&app, "checker", &["clients:read"]).await;
    let unknown = format!("chk_{}", "A".repeat(40));
    let refused = [
        None,
        Some("Bearer".to_string()),
        Some("Bearer ".to_string()),
        Some(format!("Basic {key}")),
        Some(key.clone()),
        Some(format!("Bearer {unknown}")),
        Some(format!("Bearer {}", &key[..20])),
        Some(format!("Bearer {key}x")),
        Some(format!("Bearer {}", key.replacen("chk_", "xyz_", 1))),
    ];
    for authorization in refused {
        let response = service_get(&app, "/api/v1/clients", authorization.as_deref()).await;
        assert_eq!(
            header(response.headers(), "www-authenticate"),
            "Bearer",
            "{authorization:?}"
        );
        assert_error(response, 401, "invalid_api_key").await;
    }
    // The session cookie of a signed-in admin is no API key.
    let with_cookie = app.get("/api/v1/clients").await;
    assert_error(with_cookie, 401, "invalid_api_key").await;
    // The scheme is case-insensitive.
    let lower = service_get(&app, "/api/v1/clients", Some(&format!("bearer {key}"))).await;
    assert_eq!(lower.status(), 200);
}

async fn a_revoked_key_gets_401(app: TestApp) {
    app.login_as(Role::Admin).await;
    let key = create_key(&app, "old-service", &["clients:read"]).await;
    assert_eq!(list_with(&app, &key, "").await.status(), 200);
    let id = key_id(&app, "old-service").await;

    let revoke = app
        .post_form(&format!("/admin/api-keys/{id}/revoke"), &[])
        .await;
    assert_eq!(revoke.status(), 303);
    assert_eq!(location(&revoke), "/admin/api-keys");
    assert_eq!(
        app.toast_on("/admin/api-keys").await,
        "success: Revoked key old-service"
    );
    assert_error(list_with(&app, &key, "").await, 401, "invalid_api_key").await;
    let html = app.get_html("/admin/api-keys").await;
    assert!(html.contains("revoked"));
    assert!(
        !html.contains(&format!("/admin/api-keys/{id}/revoke")),
        "no button"
    );

    let first = revoked_at(&app, &id).await.expect("revoked_at is set");
    let again = app
        .post_form(&format!("/admin/api-keys/{id}/revoke"), &[])
        .await;
    assert_eq!(again.status(), 303);
    assert_eq!(
        app.toast_on("/admin/api-keys").await,
        "info: Key old-service was already revoked"
    );
    assert_eq!(revoked_at(&app, &id).await, Some(first), "revoked once");

    for unknown in ["00000000-0000-0000-0000-000000000000", "not-an-id"] {
        let response = app
            .post_form(&format!("/admin/api-keys/{unknown}/revoke"), &[])
            .await;
        assert_eq!(response.status(), 404, "{unknown}");
    }
}

async fn a_key_without_the_scope_gets_403(app: TestApp) {
    app.login_as(Role::Admin).await;
    let key = create_key(&app, "token-reader", &["tokens:read", "proxy"]).await;
    let body = assert_error(list_with(&app, &key, "").await, 403, "insufficient_scope").await;
    assert_eq!(body["scope"], "clients:read");
}

async fn members_cannot_see_or_create_keys(app: TestApp) {
    app.login_as(Role::Member).await;
    assert_eq!(app.get("/admin/api-keys").await.status(), 403);
    let response = submit(&app, "sneaky", &["clients:read"]).await;
    assert_eq!(response.status(), 403);
    assert!(new_key_on(&response.text().await.unwrap()).is_none());
    assert_eq!(key_count(&app).await, 0);
    let nav = app.get_html("/admin/clients").await;
    assert!(!nav.contains("/admin/api-keys"), "no nav link for members");
    // Anonymous visitors are sent to sign in.
    let anonymous = app.new_browser().get("/admin/api-keys").await;
    assert_eq!(anonymous.status(), 303);
}

async fn creating_without_the_csrf_token_is_refused(app: TestApp) {
    app.login_as(Role::Admin).await;
    let response = app
        .client
        .post(app.url("/admin/api-keys"))
        .form(&[("name", "no-token"), ("scope", "clients:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(key_count(&app).await, 0);
}

async fn bad_form_input_is_explained_and_stores_nothing(app: TestApp) {
    app.login_as(Role::Admin).await;
    let long = "n".repeat(81);
    let cases: [(&str, &[&str], &str); 6] = [
        ("", &["clients:read"], "Enter a name for the key."),
        ("   ", &["clients:read"], "Enter a name for the key."),
        (
            &long,
            &["clients:read"],
            "The name can be at most 80 characters.",
        ),
        ("line\nbreak", &["clients:read"], "control characters"),
        ("no-scope", &[], "Choose at least one scope."),
        (
            "too-powerful",
            &["clients:read", "admin"],
            "Unknown scope admin: choose from tokens:read, clients:read, proxy, connect:write, webhooks:write, records:read, syncs:write.",
        ),
    ];
    for (name, scopes, message) in cases {
        let response = submit(&app, name, scopes).await;
        assert_eq!(response.status(), 400, "{name:?} {scopes:?}");
        let html = unescape(&response.text().await.unwrap());
        assert!(
            html.contains(message),
            "{name:?} {scopes:?}: no {message:?}"
        );
        assert!(html.contains(r#"role="alert""#));
        assert!(new_key_on(&html).is_none() && !html.contains(ONCE));
    }
    assert_eq!(key_count(&app).await, 0);
    // The form keeps what was typed.
    let html = submit(&app, "keep-me", &[]).await.text().await.unwrap();
    assert!(html.contains(r#"value="keep-me""#));
    // An 80-character name is fine.
    create_key(&app, &"n".repeat(80), &["proxy"]).await;
    assert_eq!(key_count(&app).await, 1);
}

async fn bad_filters_get_400(app: TestApp) {
    app.login_as(Role::Admin).await;
    let key = create_key(&app, "filters", &["clients:read"]).await;
    let long = format!("?provider={}", "k".repeat(101));
    for query in [
        "?provider=klaviyo%20x",
        "?provider=%3Cscript%3E",
        "?owner=a%2Fb",
        long.as_str(),
    ] {
        let body = assert_error(list_with(&app, &key, query).await, 400, "invalid_request").await;
        assert!(!body.to_string().contains("script"), "{query}: {body}");
    }
    let just_right = format!("?provider={}", "k".repeat(100));
    assert_eq!(list_with(&app, &key, &just_right).await.status(), 200);
    // Unknown endpoints and methods answer JSON too (a known path's other method: 405).
    let bearer = format!("Bearer {key}");
    let unknown = service_get(&app, "/api/v1/nothing-here", Some(&bearer)).await;
    assert_error(unknown, 404, "not_found").await;
    let post = new_client()
        .post(app.url("/api/v1/clients"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_error(post, 405, "method_not_allowed").await;
}

async fn key_events_are_audited_without_the_secret(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let secret = create_key(&app, "audited", &["proxy", "clients:read"]).await;
    let id = key_id(&app, "audited").await;
    app.post_form(&format!("/admin/api-keys/{id}/revoke"), &[])
        .await;
    let actions = app.audit_actions().await;
    assert!(actions.ends_with(&["api_key_created".into(), "api_key_revoked".into()]));

    let entries: Vec<(String, Option<String>, Option<String>, String)> = app
        .db(|conn| {
            audit_log::table
                .filter(audit_log::action.like("api_key_%"))
                .order(audit_log::id.asc())
                .select((
                    audit_log::action,
                    audit_log::actor_id,
                    audit_log::target_id,
                    audit_log::details,
                ))
                .load(conn)
        })
        .await;
    assert_eq!(entries.len(), 2);
    for (_, actor, target, details) in &entries {
        assert_eq!(actor.as_deref(), Some(admin.id.as_str()));
        assert_eq!(target.as_deref(), Some(id.as_str()));
        assert!(
            !details.contains(&secret[12..]),
            "no secret in the audit log"
        );
    }
    let created: Value = serde_json::from_str(&entries[0].3).unwrap();
    assert_eq!(
        created,
        json!({"name": "audited", "scopes": ["clients:read", "proxy"], "prefix": &secret[..12]})
    );
    let verdict = app.db(connecthub::audit::verify).await;
    assert!(matches!(verdict, connecthub::audit::Verdict::Intact { .. }));
}

/// The page in a real browser: create a key, see it once, revoke it through the
/// confirmation dialog. Skipped where Chromium is missing (see browser.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_creates_and_revokes_a_key() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let user = app.create_user(Role::Admin).await;
    browser.goto(&app.url("/login")).await;
    browser.fill("#email", &user.email).await;
    browser.fill("#password", &user.password).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("h1", "Clients").await;

    browser.click(r#"a[href="/admin/api-keys"]"#).await;
    browser.wait_for_text("h1", "API keys").await;
    browser.fill("#api-key-name", "browser-made").await;
    browser.click(r#"input[value="clients:read"]"#).await;
    browser.click("form.stack button[type=submit]").await;
    browser
        .wait_for_text(".new-key p", "Copy it now: it will not be shown again.")
        .await;
    let secret = browser
        .client
        .find(fantoccini::Locator::Css("#new-api-key"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(secret.starts_with("chk_") && secret.len() == 44, "{secret}");
    browser.screenshot("api-keys-created").await;
    assert_eq!(list_with(&app, &secret, "").await.status(), 200);

    browser.click("#api-keys-table .row-form button").await;
    browser.client.accept_alert().await.expect("confirm dialog");
    browser
        .wait_for_text("#toasts .toast", "Revoked key browser-made")
        .await;
    browser.screenshot("api-keys-revoked").await;
    assert_eq!(list_with(&app, &secret, "").await.status(), 401);
    browser.close().await;
}
