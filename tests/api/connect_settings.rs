//! `/admin/settings`: the hosted connect page's branding and the signing secret, for
//! admins only, audited, bad input refused with nothing changed.

use crate::helpers::{unescape, TestApp};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use serde_json::json;

on_both_backends!(
    an_admin_brands_the_connect_page_and_end_users_see_it,
    bad_settings_are_refused_and_change_nothing,
    members_cannot_see_or_change_the_settings,
    replacing_the_secret_stops_old_signatures_verifying,
);

fn secret_on(html: &str) -> String {
    html.split(r#"<code id="signing-secret" class="secret">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the page shows the secret")
        .to_string()
}

async fn connect_page(app: &TestApp) -> String {
    let key = app.api_key(&[Scope::ConnectWrite]).await;
    let session: serde_json::Value = app
        .client
        .post(app.url("/api/v1/connect-sessions"))
        .bearer_auth(&key)
        .json(&json!({"end_user": {"id": "42"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = reqwest::Url::parse(session["connect_url"].as_str().unwrap()).unwrap();
    app.new_browser().get_html(url.path()).await
}

async fn an_admin_brands_the_connect_page_and_end_users_see_it(app: TestApp) {
    app.login_as(Role::Admin).await;
    let page = unescape(&app.get_html("/admin/settings").await);
    assert!(
        page.contains(r#"value="connecthub""#),
        "default product name"
    );
    assert!(secret_on(&page).starts_with("chs_"));
    assert!(page.contains("/static/connect.js?v="));
    let saved = app
        .post_form(
            "/admin/settings",
            &[
                ("product_name", "Acme Chat"),
                ("logo_url", "https://acme.example/logo.png"),
                ("accent_color", "#AA3366"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303);
    assert!(app
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "connect_settings_changed"));
    let hosted = connect_page(&app).await;
    assert!(
        hosted.contains("<title>Connect an account · Acme Chat</title>"),
        "{hosted}"
    );
    assert!(hosted.contains(r#"<img class="connect-logo" src="https://acme.example/logo.png""#));
    assert!(hosted.contains("/connect/_theme.css?c=aa3366"));
    let theme = app
        .get("/connect/_theme.css?c=aa3366")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(theme.trim(), ":root { --accent: #aa3366; }");
    let injected = app
        .get("/connect/_theme.css?c=red;}body{")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        injected.trim(),
        ":root { --accent: #2563eb; }",
        "only hex digits are written"
    );
}

async fn bad_settings_are_refused_and_change_nothing(app: TestApp) {
    app.login_as(Role::Admin).await;
    let before = unescape(&app.get_html("/admin/settings").await);
    for (name, logo, accent, message) in [
        ("", "", "#112233", "Enter a product name."),
        (
            "Acme\u{7}",
            "",
            "#112233",
            "The product name cannot contain control characters",
        ),
        (
            "Acme",
            "http://acme.example/logo.png",
            "#112233",
            "The logo URL must be an https:// address",
        ),
        (
            "Acme",
            "javascript:alert(1)",
            "#112233",
            "The logo URL must be an https:// address",
        ),
        (
            "Acme",
            "",
            "red",
            "The accent colour must look like #2563eb.",
        ),
        (
            "Acme",
            "",
            "#11223",
            "The accent colour must look like #2563eb.",
        ),
    ] {
        let response = app
            .post_form(
                "/admin/settings",
                &[
                    ("product_name", name),
                    ("logo_url", logo),
                    ("accent_color", accent),
                ],
            )
            .await;
        assert_eq!(response.status(), 400, "{name:?} {logo:?} {accent:?}");
        assert!(
            unescape(&response.text().await.unwrap()).contains(message),
            "{message}"
        );
    }
    let no_csrf = app
        .client
        .post(app.url("/admin/settings"))
        .form(&[
            ("product_name", "Evil"),
            ("logo_url", ""),
            ("accent_color", "#000000"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let after = unescape(&app.get_html("/admin/settings").await);
    assert!(after.contains(r#"value="connecthub""#));
    assert_eq!(secret_on(&before), secret_on(&after));
    assert!(!app
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "connect_settings_changed"));
}

async fn members_cannot_see_or_change_the_settings(app: TestApp) {
    app.login_as(Role::Member).await;
    assert_eq!(app.get("/admin/settings").await.status(), 403);
    let response = app
        .post_form(
            "/admin/settings",
            &[
                ("product_name", "Evil"),
                ("logo_url", ""),
                ("accent_color", "#000000"),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        app.post_form("/admin/settings/rotate-secret", &[])
            .await
            .status(),
        403
    );
    assert!(!connect_page(&app).await.contains("Evil"));
}

async fn replacing_the_secret_stops_old_signatures_verifying(app: TestApp) {
    app.login_as(Role::Admin).await;
    let old = secret_on(&app.get_html("/admin/settings").await);
    let params = connecthub::connect::signature::ReturnParams {
        connection_id: Some("c1".into()),
        end_user_id: "42".into(),
        provider: "klaviyo".into(),
        status: "success",
        error: None,
    };
    let old_secret = secrecy::SecretString::from(old.clone());
    let url = connecthub::connect::signature::signed_url(
        "https://app.example.com/done",
        &params,
        &old_secret,
        1,
    );
    assert_eq!(
        app.post_form("/admin/settings/rotate-secret", &[])
            .await
            .status(),
        303
    );
    let new = secret_on(&app.get_html("/admin/settings").await);
    assert_ne!(old, new);
    assert!(!connecthub::connect::signature::verify(
        &url,
        &secrecy::SecretString::from(new)
    ));
    assert!(app
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "connect_signing_secret_rotated"));
}

/// `connecthub key rotate` re-seals the signing secret too: it opens under the new key
/// alone and is the same secret.
#[tokio::test]
async fn the_signing_secret_survives_key_rotation() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    app.login_as(Role::Admin).await;
    let before = secret_on(&app.get_html("/admin/settings").await);
    let new_key = connecthub::config::EncryptionKey::generate();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .args(["key", "rotate"])
        .env("DATABASE_URL", &app.database_url)
        .env("ENCRYPTION_KEY", new_key.to_base64())
        .env("ENCRYPTION_KEY_PREVIOUS", crate::helpers::TEST_KEY)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = app
        .db(move |conn| {
            let vault = connecthub::vault::Vault::new(&new_key, None);
            connecthub::connect::settings::load(conn, &vault)
                .map_err(|_| diesel::result::Error::NotFound)
        })
        .await;
    use secrecy::ExposeSecret;
    assert_eq!(after.signing_secret.expose_secret(), before);
}
