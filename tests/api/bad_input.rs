//! Malformed input on every route that reads an id or text: NUL bytes and other control
//! characters get the same clear 4xx on SQLite and PostgreSQL (which refuses NUL in text
//! with an error) and change nothing. And JSON callers get JSON errors.

use crate::helpers::{TestApp, TestUser};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::{api_keys, audit_log, clients, credentials, users};
use diesel::prelude::*;
use serde_json::{json, Value};

on_both_backends!(
    nul_and_control_characters_get_a_4xx_and_change_nothing,
    json_callers_get_json_errors,
);

const ACME_KEY: &str = connecthub_sandbox::KUSTOMER_API_KEYS[0].1;

/// Who sends a request: the signed-in admin's browser, or a service with an API key.
#[derive(Clone, Copy)]
enum Caller {
    Browser,
    Service,
}

enum Body {
    None,
    Form(Vec<(&'static str, String)>),
    Json(Value),
}

struct Case {
    method: reqwest::Method,
    path: String,
    body: Body,
    caller: Caller,
    expected: u16,
}

fn case(method: &str, path: String, body: Body, caller: Caller, expected: u16) -> Case {
    Case {
        method: reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        path,
        body,
        caller,
        expected,
    }
}

/// Every route that takes an id or text which reaches the database, with `bad` in it:
/// `encoded` as it goes into a URL, `raw` as a form or JSON field carries it.
fn cases(encoded: &str, raw: &str, kustomer: &str, klaviyo: &str) -> Vec<Case> {
    use Body::{Form, Json, None};
    use Caller::{Browser, Service};
    let form = |pairs: &[(&'static str, &str)]| {
        Form(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    };
    let client = format!("/admin/clients/{encoded}");
    let user = format!("/admin/users/{encoded}");
    let v1 = format!("/api/v1/clients/{encoded}");
    let conversation = format!("/api/v1/clients/{kustomer}/kustomer/conversations/{encoded}");
    vec![
        // The pages.
        case("GET", client.clone(), None, Browser, 404),
        case("GET", format!("{client}/tags"), None, Browser, 404),
        case("GET", format!("{client}/tags/edit"), None, Browser, 404),
        case(
            "POST",
            format!("{client}/tags"),
            form(&[("tags", "x")]),
            Browser,
            404,
        ),
        case("POST", format!("{client}/default"), form(&[]), Browser, 404),
        case(
            "POST",
            format!("{client}/profile/refresh"),
            form(&[]),
            Browser,
            404,
        ),
        case("GET", format!("{client}/reconnect"), None, Browser, 404),
        case(
            "POST",
            "/admin/clients/bulk".into(),
            form(&[("action", "refresh"), ("client_id", raw)]),
            Browser,
            400,
        ),
        case(
            "POST",
            "/admin/clients/bulk".into(),
            form(&[("action", "tag"), ("tag", "x"), ("client_id", raw)]),
            Browser,
            400,
        ),
        case(
            "POST",
            format!("{user}/role"),
            form(&[("role", "member")]),
            Browser,
            404,
        ),
        case("POST", format!("{user}/disable"), form(&[]), Browser, 404),
        case("POST", format!("{user}/enable"), form(&[]), Browser, 404),
        case(
            "POST",
            format!("{user}/reset-password"),
            form(&[]),
            Browser,
            404,
        ),
        case(
            "POST",
            format!("/admin/api-keys/{encoded}/revoke"),
            form(&[]),
            Browser,
            404,
        ),
        case(
            "GET",
            format!("/admin/usage?client={encoded}"),
            None,
            Browser,
            400,
        ),
        case(
            "GET",
            format!("/admin/usage?user={encoded}"),
            None,
            Browser,
            400,
        ),
        case("GET", format!("/admin/audit/{encoded}"), None, Browser, 404),
        case(
            "GET",
            format!("/admin/audit?client={encoded}"),
            None,
            Browser,
            400,
        ),
        case(
            "GET",
            format!("/admin/audit?actor={encoded}"),
            None,
            Browser,
            400,
        ),
        case(
            "GET",
            format!("/admin/audit/export.csv?client={encoded}"),
            None,
            Browser,
            400,
        ),
        case(
            "GET",
            format!("/admin/clients?q={encoded}"),
            None,
            Browser,
            400,
        ),
        case(
            "GET",
            format!("/admin/clients?owner={encoded}"),
            None,
            Browser,
            400,
        ),
        case(
            "POST",
            "/admin/users".into(),
            form(&[("email", &format!("q{raw}@x.io")), ("role", "member")]),
            Browser,
            400,
        ),
        case(
            "POST",
            "/admin/users".into(),
            form(&[("email", "new@x.io"), ("name", raw), ("role", "member")]),
            Browser,
            400,
        ),
        case(
            "POST",
            "/admin/api-keys".into(),
            form(&[("name", raw), ("scope", "proxy")]),
            Browser,
            400,
        ),
        // The integrations API.
        case(
            "POST",
            format!("/api/integrations/klaviyo/oauth/refresh/{encoded}"),
            form(&[]),
            Browser,
            404,
        ),
        case(
            "POST",
            format!("/api/integrations/klaviyo/disconnect/{encoded}"),
            form(&[]),
            Browser,
            404,
        ),
        case(
            "GET",
            format!("/api/integrations/{encoded}/status"),
            None,
            Browser,
            404,
        ),
        // The service API.
        case("GET", format!("{v1}/token"), None, Service, 404),
        case(
            "GET",
            format!("/api/v1/providers/klaviyo/token?owner={encoded}"),
            None,
            Service,
            400,
        ),
        case(
            "GET",
            format!("/api/v1/clients?owner={encoded}"),
            None,
            Service,
            400,
        ),
        case(
            "GET",
            format!("/api/v1/usage?client_id={encoded}"),
            None,
            Service,
            400,
        ),
        case(
            "GET",
            format!("/api/v1/usage?user_id={encoded}"),
            None,
            Service,
            400,
        ),
        case(
            "GET",
            format!("/api/v1/proxy/{encoded}/api/accounts"),
            None,
            Service,
            404,
        ),
        case(
            "GET",
            format!("/api/v1/proxy/{klaviyo}/api/accounts/{encoded}"),
            None,
            Service,
            400,
        ),
        case(
            "GET",
            format!("{v1}/kustomer/customers?email=a@x.io"),
            None,
            Service,
            404,
        ),
        case(
            "POST",
            format!("{v1}/kustomer/customers"),
            Json(json!({"email": "a@x.io"})),
            Service,
            404,
        ),
        case(
            "POST",
            format!("{v1}/kustomer/conversations"),
            Json(json!({"customer_id": "c1"})),
            Service,
            404,
        ),
        case(
            "POST",
            format!("{v1}/kustomer/conversations/c1/notes"),
            Json(json!({"body": "hi"})),
            Service,
            404,
        ),
        case(
            "POST",
            format!("{v1}/kustomer/conversations/c1/messages"),
            Json(json!({"body": "hi", "direction": "out"})),
            Service,
            404,
        ),
        case(
            "PUT",
            format!("{v1}/kustomer/conversations/c1/team"),
            Json(json!({"team_id": "t1"})),
            Service,
            404,
        ),
        case("GET", format!("{v1}/kustomer/teams"), None, Service, 404),
        case("GET", format!("{v1}/klaviyo/account"), None, Service, 404),
        case("GET", format!("{v1}/klaviyo/lists"), None, Service, 404),
        case("GET", format!("{v1}/klaviyo/segments"), None, Service, 404),
        case(
            "POST",
            format!("{v1}/klaviyo/profile/refresh"),
            None,
            Service,
            404,
        ),
        // Text a valid client's operation stores or sends on.
        case(
            "POST",
            format!("/api/v1/clients/{kustomer}/kustomer/conversations"),
            Json(
                json!({"customer_id": "5f3a1f6c8b2d4a0017c6e131", "external_id": format!("x{raw}")}),
            ),
            Service,
            400,
        ),
        case(
            "POST",
            format!("/api/v1/clients/{kustomer}/kustomer/conversations"),
            Json(json!({"customer_id": raw})),
            Service,
            400,
        ),
        case(
            "POST",
            format!("/api/v1/clients/{kustomer}/kustomer/customers"),
            Json(json!({"email": "a@x.io", "name": format!("x{raw}")})),
            Service,
            400,
        ),
        case(
            "POST",
            format!("{conversation}/notes"),
            Json(json!({"body": "hi"})),
            Service,
            400,
        ),
    ]
}

/// What the database holds that a refused request must not change.
async fn snapshot(app: &TestApp) -> String {
    app.db(|conn| {
        let clients: Vec<(String, String, String, bool, chrono::NaiveDateTime)> = clients::table
            .order(clients::id)
            .select((
                clients::id,
                clients::status,
                clients::tags,
                clients::is_default,
                clients::updated_at,
            ))
            .load(conn)?;
        let users: Vec<(String, String, String, Option<chrono::NaiveDateTime>)> = users::table
            .order(users::id)
            .select((
                users::id,
                users::role,
                users::password_hash,
                users::disabled_at,
            ))
            .load(conn)?;
        let keys: Vec<(String, Option<chrono::NaiveDateTime>)> = api_keys::table
            .order(api_keys::id)
            .select((api_keys::id, api_keys::revoked_at))
            .load(conn)?;
        let tokens: Vec<(String, Option<String>)> = credentials::table
            .order(credentials::client_id)
            .select((credentials::client_id, credentials::access_token))
            .load(conn)?;
        let audited: i64 = audit_log::table.count().get_result(conn)?;
        Ok(format!(
            "{clients:?}\n{users:?}\n{keys:?}\n{tokens:?}\n{audited}"
        ))
    })
    .await
}

async fn send(app: &TestApp, key: &str, case: &Case) -> reqwest::Response {
    let mut request = app.client.request(case.method.clone(), app.url(&case.path));
    request = match case.caller {
        Caller::Service => request.bearer_auth(key),
        Caller::Browser => request.header("x-csrf-token", app.csrf_token().await),
    };
    request = match &case.body {
        Body::None => request,
        Body::Form(pairs) => request.form(pairs),
        Body::Json(value) => request.json(value),
    };
    request.send().await.expect("request")
}

async fn nul_and_control_characters_get_a_4xx_and_change_nothing(app: TestApp) {
    app.login_as(Role::Admin).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(done.status(), 303);
    app.post_form(
        "/api/integrations/kustomer/test-connection",
        &[("api_key", ACME_KEY)],
    )
    .await;
    let ids = |provider: &'static str| {
        let app = &app;
        async move {
            app.clients()
                .await
                .into_iter()
                .find(|c| c.provider == provider)
                .expect("connected")
                .id
        }
    };
    let (klaviyo, kustomer) = (ids("klaviyo").await, ids("kustomer").await);
    let key = app.api_key(&Scope::ALL).await;
    let member: TestUser = app.create_user(Role::Member).await;
    let before = snapshot(&app).await;
    // A NUL, another control character, and a NUL in an id of the right length.
    let near_id = format!("{}%00", &member.id[..35]);
    let near_raw = format!("{}\0", &member.id[..35]);
    let mut refused = 0;
    for (encoded, raw) in [
        ("a%00b", "a\0b"),
        ("%00", "\0"),
        ("a%1Bb", "a\u{1b}b"),
        (near_id.as_str(), near_raw.as_str()),
    ] {
        for case in cases(encoded, raw, &kustomer, &klaviyo) {
            let response = send(&app, &key, &case).await;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert_eq!(
                status, case.expected,
                "{} {} answered {status}: {body}",
                case.method, case.path
            );
            refused += 1;
        }
    }
    assert!(refused >= 200, "{refused} requests");
    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused request changed nothing"
    );
    // The app still works after all that.
    let token = app.service_token(&key, &klaviyo).await;
    assert_eq!(token.status(), 200);
}

/// A form-less POST that asks for JSON, with the CSRF token when one is given.
async fn post_json(
    browser: &TestApp,
    path: String,
    csrf: Option<String>,
) -> reqwest::Result<reqwest::Response> {
    let mut request = browser
        .client
        .post(browser.url(&path))
        .header("accept", "application/json");
    if let Some(token) = csrf {
        request = request.header("x-csrf-token", token);
    }
    request.send().await
}

async fn json_callers_get_json_errors(app: TestApp) {
    let owner = app.login_as(Role::Member).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(done.status(), 303);
    let client = app
        .clients()
        .await
        .into_iter()
        .find(|c| c.owner_user_id == owner.id)
        .unwrap();
    let other = app.new_browser();
    other.login_as(Role::Member).await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    // Another member's client and an unknown id: the same JSON 404, on each JSON route.
    for path in [
        format!("/api/integrations/klaviyo/oauth/refresh/{}", client.id),
        format!("/api/integrations/klaviyo/oauth/refresh/{unknown}"),
        "/api/integrations/klaviyo/oauth/refresh/not-an-id".to_string(),
        format!("/api/integrations/klaviyo/disconnect/{}", client.id),
        format!("/api/integrations/klaviyo/disconnect/{unknown}"),
        format!("/admin/clients/{}/default", client.id),
        format!("/admin/clients/{unknown}/default"),
        "/api/integrations/nope/oauth/refresh/x".to_string(),
    ] {
        let response = post_json(&other, path.clone(), Some(other.csrf_token().await))
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            crate::helpers::header(response.headers(), "content-type")
                .starts_with("application/json"),
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}: {body}");
    }
    // Without the CSRF token: a JSON 403.
    let forged = post_json(
        &other,
        format!("/api/integrations/klaviyo/oauth/refresh/{}", client.id),
        None,
    )
    .await
    .unwrap();
    assert_eq!(forged.status(), 403);
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["error"], "forbidden", "{body}");
    // Signed out: a JSON 401, not the login page.
    let stranger = app.new_browser();
    let token = stranger.csrf_token().await;
    let signed_out = post_json(
        &stranger,
        format!("/api/integrations/klaviyo/oauth/refresh/{}", client.id),
        Some(token),
    )
    .await
    .unwrap();
    assert_eq!(signed_out.status(), 401);
    let body: Value = signed_out.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated", "{body}");
    // The owner's own refresh still answers JSON, and nothing else changed.
    let own = post_json(
        &app,
        format!("/api/integrations/klaviyo/oauth/refresh/{}", client.id),
        Some(app.csrf_token().await),
    )
    .await
    .unwrap();
    assert_eq!(own.status(), 200);
    let body: Value = own.json().await.unwrap();
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(app.clients().await[0].status.as_str(), "active");
    // A browser still gets the HTML page.
    let html = other.get(&format!("/admin/clients/{}", client.id)).await;
    assert_eq!(html.status(), 404);
    assert!(html.text().await.unwrap().contains("<html"));
}
