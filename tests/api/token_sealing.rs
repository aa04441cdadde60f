//! Tokens at rest: sealed in the database, and still readable after `key rotate`.

use crate::helpers::TestApp;
use crate::oauth::connect_ok;
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::credentials;
use diesel::prelude::*;

on_both_backends!(tokens_are_sealed_in_the_database,);

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

/// `key rotate` re-seals every token under the new key; the old key is then unneeded.
#[tokio::test]
async fn key_rotation_keeps_every_token() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    app.login_as(Role::Admin).await;
    connect_ok(&app, "klaviyo", Some("AcmeK1")).await;
    connect_ok(&app, "klaviyo", Some("GlobexK2")).await;
    let key = app
        .api_key(&[connecthub::api_keys::Scope::WebhooksWrite])
        .await;
    let (endpoint, secret) =
        crate::webhooks::endpoint(&app, &key, "https://hooks.example.com/in", &[]).await;
    let old_key = connecthub::config::EncryptionKey::parse(crate::helpers::TEST_KEY).unwrap();
    let old_vault = connecthub::vault::Vault::new(&old_key, None);
    let new_key = connecthub::config::EncryptionKey::generate();
    let output = key_rotate(&app, &new_key, crate::helpers::TEST_KEY);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("re-sealed 2 credentials and 1 webhook secrets under key "),
        "{stdout}"
    );

    let new_vault = connecthub::vault::Vault::new(&new_key, None);
    every_token_opens_under_the_new_key_alone(&app, &old_vault, &new_vault).await;
    let opened = app
        .db(move |conn| {
            Ok(
                connecthub::webhooks::endpoints::signing_secrets(conn, &new_vault, &endpoint)
                    .unwrap(),
            )
        })
        .await;
    use secrecy::ExposeSecret;
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0].expose_secret(),
        secret,
        "the webhook secret opens under the new key alone"
    );
    // Running it again has nothing left to do; a wrong previous key is named.
    let again = key_rotate(&app, &new_key, "short");
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

/// Runs `connecthub key rotate` on the app's database.
fn key_rotate(
    app: &TestApp,
    new_key: &connecthub::config::EncryptionKey,
    previous: &str,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .args(["key", "rotate"])
        .env("DATABASE_URL", &app.database_url)
        .env("ENCRYPTION_KEY", new_key.to_base64())
        .env("ENCRYPTION_KEY_PREVIOUS", previous)
        .output()
        .unwrap()
}

async fn every_token_opens_under_the_new_key_alone(
    app: &TestApp,
    old_vault: &connecthub::vault::Vault,
    new_vault: &connecthub::vault::Vault,
) {
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
}
