//! Allowed address ranges per service key: set on the create form, shown in the list, and
//! enforced on every `/api/v1` call (403 JSON from anywhere else); a bad range is refused
//! on the form with nothing stored.

use crate::helpers::{unescape, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::{api_keys, audit_log};
use diesel::prelude::*;
use serde_json::Value;

on_both_backends!(
    a_key_works_from_its_ranges_only,
    bad_ranges_are_refused_on_the_form_and_nothing_is_stored,
    the_command_line_sets_ranges_too,
);

const NEW_KEY_MARKER: &str = r#"<code id="new-api-key" class="secret">"#;

async fn create(app: &TestApp, name: &str, ranges: &str) -> reqwest::Response {
    app.post_form(
        "/admin/api-keys",
        &[
            ("name", name),
            ("scope", "clients:read"),
            ("allowed_ips", ranges),
        ],
    )
    .await
}

async fn created_key(app: &TestApp, name: &str, ranges: &str) -> String {
    let response = create(app, name, ranges).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let rest = html
        .split(NEW_KEY_MARKER)
        .nth(1)
        .expect("the new key is shown");
    rest.split("</code>").next().unwrap().to_string()
}

/// `GET /api/v1/clients` with the key, from `from` (any 127.x.y.z reaches the server).
async fn list_from(app: &TestApp, from: &str, key: &str) -> reqwest::Response {
    app.browser_at(from)
        .client
        .get(app.url("/api/v1/clients"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn a_key_works_from_its_ranges_only(app: TestApp) {
    app.login_as(Role::Admin).await;
    let narrow = created_key(&app, "office", "127.0.0.0/24, 2001:db8::/32").await;
    let open = created_key(&app, "anywhere", "").await;
    let single = created_key(&app, "one host", "127.0.3.9").await;

    assert_eq!(list_from(&app, "127.0.0.1", &narrow).await.status(), 200);
    assert_eq!(list_from(&app, "127.0.0.200", &narrow).await.status(), 200);
    let refused = list_from(&app, "127.0.1.5", &narrow).await;
    assert_eq!(refused.status(), 403);
    assert!(refused
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/json")));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "ip_not_allowed");
    assert_eq!(
        body["message"],
        "this API key may not be used from 127.0.1.5; an admin sets its allowed address ranges on the API keys page"
    );
    // Refused again from memory (the key is cached after the first call).
    assert_eq!(list_from(&app, "127.0.1.5", &narrow).await.status(), 403);
    assert_eq!(list_from(&app, "127.0.1.5", &open).await.status(), 200);
    assert_eq!(list_from(&app, "127.0.3.9", &single).await.status(), 200);
    assert_eq!(list_from(&app, "127.0.3.8", &single).await.status(), 403);

    // The list shows each key's ranges, normalised; the stored form is the same.
    let page = unescape(&app.get_html("/admin/api-keys").await);
    assert!(
        page.contains("<code>127.0.0.0/24</code> <code>2001:db8::/32</code>"),
        "{page}"
    );
    assert!(page.contains("<code>127.0.3.9/32</code>"));
    assert!(page.contains("any address"));
    let stored: Vec<Option<String>> = app
        .db(|conn| {
            api_keys::table
                .order(api_keys::name.asc())
                .select(api_keys::allowed_ips)
                .load(conn)
        })
        .await;
    assert_eq!(
        stored,
        vec![
            None,
            Some("127.0.0.0/24 2001:db8::/32".to_string()),
            Some("127.0.3.9/32".to_string()),
        ]
    );
    // The audit entry of a restricted key names its ranges.
    let details: Vec<String> = app
        .db(|conn| {
            audit_log::table
                .filter(audit_log::action.eq("api_key_created"))
                .select(audit_log::details)
                .load(conn)
        })
        .await;
    assert!(details
        .iter()
        .any(|d| d.contains(r#""allowed_ips":"127.0.0.0/24 2001:db8::/32""#)));
}

async fn bad_ranges_are_refused_on_the_form_and_nothing_is_stored(app: TestApp) {
    app.login_as(Role::Admin).await;
    let audit_before: i64 = app
        .db(|conn| audit_log::table.count().get_result(conn))
        .await;
    let cases = [
        ("10.0.0.1/8", "10.0.0.1/8 is not an address range: the address has bits set past /8 (did you mean 10.0.0.0/8?)."),
        ("10.0.0.0/33", "10.0.0.0/33 is not an address range: the prefix length must be 0 to 32."),
        ("2001:db8::/200", "2001:db8::/200 is not an address range: the prefix length must be 0 to 128."),
        ("office-network", "office-network is not an address range: write it as 203.0.113.0/24 or 2001:db8::/32."),
        ("10.0.0.0/8, 10.0.0/8", "10.0.0/8 is not an address range: write it as"),
        ("10.0.0.0/8\u{0}", "The allowed addresses contain a control character."),
    ];
    for (ranges, message) in cases {
        let response = create(&app, "typo", ranges).await;
        assert_eq!(response.status(), 400, "{ranges}");
        let html = unescape(&response.text().await.unwrap());
        assert!(html.contains(message), "{ranges}: {message}");
        assert!(!html.contains(NEW_KEY_MARKER));
        // The form keeps what was typed, to correct it.
        assert!(html.contains(r#"value="typo""#));
    }
    let keys: i64 = app
        .db(|conn| api_keys::table.count().get_result(conn))
        .await;
    assert_eq!(keys, 0);
    let audit_after: i64 = app
        .db(|conn| audit_log::table.count().get_result(conn))
        .await;
    assert_eq!(audit_after, audit_before);
}

fn api_key_create(app: &TestApp, owner: &str, ranges: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .args([
            "api-key",
            "create",
            "--name",
            "cron",
            "--scope",
            "clients:read",
        ])
        .args(["--owner", owner, "--allowed-ips", ranges])
        .env_clear()
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap()
}

async fn the_command_line_sets_ranges_too(app: TestApp) {
    let admin = app.create_user(Role::Admin).await;
    let bad = api_key_create(&app, &admin.email, "127.0.0.1/8");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("127.0.0.1/8 is not an address range"));
    let keys: i64 = app
        .db(|conn| api_keys::table.count().get_result(conn))
        .await;
    assert_eq!(keys, 0);
    let good = api_key_create(&app, &admin.email, "127.0.5.0/24");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let key = String::from_utf8_lossy(&good.stdout).trim().to_string();
    assert_eq!(list_from(&app, "127.0.5.1", &key).await.status(), 200);
    assert_eq!(list_from(&app, "127.0.0.1", &key).await.status(), 403);
}
