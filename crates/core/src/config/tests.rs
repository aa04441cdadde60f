use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

#[test]
fn complete_production_settings_load() {
    let vars = env(&[
        ("DATABASE_URL", "postgres://postgres@localhost/ch"),
        ("PUBLIC_URL", "https://hub.example.com"),
        ("ENCRYPTION_KEY", KEY),
    ]);
    let config = Config::load(&vars, &Defaults::default()).unwrap();
    assert!(config.database_url.is_postgres());
    assert!(config.secure_cookies());
    assert_eq!(config.bind, "127.0.0.1:8080");
}

#[test]
fn each_bad_setting_names_its_variable() {
    let base = [
        ("DATABASE_URL", "data/x.db"),
        ("PUBLIC_URL", "http://localhost:8080"),
        ("ENCRYPTION_KEY", KEY),
    ];
    let cases = [
        (
            "ENCRYPTION_KEY",
            "c2hvcnQ=",
            "ENCRYPTION_KEY must be 32 bytes of base64",
        ),
        ("ENCRYPTION_KEY", "", "ENCRYPTION_KEY must be 32 bytes"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must be"),
        ("PUBLIC_URL", "not a url", "PUBLIC_URL must be"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be text or json"),
        ("SESSION_IDLE_MINUTES", "-3", "SESSION_IDLE_MINUTES must be"),
        (
            "USAGE_RETENTION_DAYS",
            "1",
            "USAGE_RETENTION_DAYS must be a whole number of days, 2 or more",
        ),
    ];
    for (name, value, message) in cases {
        let mut vars = env(&base);
        if value.is_empty() {
            vars.remove(name);
        } else {
            vars.insert(name.into(), value.into());
        }
        let err = Config::load(&vars, &Defaults::default()).unwrap_err();
        assert!(err.to_string().starts_with(message), "{name}: {err}");
    }
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let key_file = write("key", &format!("{KEY}\n"));
    let secret_file = write("klaviyo", "from-a-file\n");
    let metrics_file = write("metrics", "metrics-secret");
    let vars = env(&[
        ("DATABASE_URL", "data/x.db"),
        ("PUBLIC_URL", "http://localhost:8080"),
        ("ENCRYPTION_KEY_FILE", &key_file),
        ("ENCRYPTION_KEY_PREVIOUS_FILE", &key_file),
        ("KLAVIYO_OAUTH_CLIENT_ID", "id"),
        ("KLAVIYO_OAUTH_CLIENT_SECRET_FILE", &secret_file),
        ("METRICS_TOKEN_FILE", &metrics_file),
    ]);
    let config = Config::load(&vars, &Defaults::default()).unwrap();
    assert_eq!(config.encryption_key.to_base64(), KEY);
    assert!(config.encryption_key_previous.is_some());
    let klaviyo = config.providers.get("klaviyo").unwrap();
    let app = klaviyo.app.as_ref().unwrap();
    assert_eq!(app.client_secret.expose_secret(), "from-a-file");
    assert_eq!(
        config.metrics_token.as_ref().unwrap().expose_secret(),
        "metrics-secret"
    );
}

#[test]
fn a_secret_set_twice_or_in_a_missing_file_stops_the_start() {
    let base = [
        ("DATABASE_URL", "data/x.db"),
        ("PUBLIC_URL", "http://localhost:8080"),
        ("ENCRYPTION_KEY", KEY),
    ];
    let mut vars = env(&base);
    vars.insert("ENCRYPTION_KEY_FILE".into(), "/nonexistent/key".into());
    let err = Config::load(&vars, &Defaults::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ENCRYPTION_KEY and ENCRYPTION_KEY_FILE are both set: set only one of them"
    );
    let mut vars = env(&base);
    vars.insert(
        "KUSTOMER_OAUTH_CLIENT_SECRET_FILE".into(),
        "/nonexistent/kustomer".into(),
    );
    let err = Config::load(&vars, &Defaults::default()).unwrap_err();
    assert_eq!(
            err.to_string(),
            "KUSTOMER_OAUTH_CLIENT_SECRET_FILE names a file that cannot be read: /nonexistent/kustomer (entity not found)"
        );
}

#[test]
fn key_debug_is_redacted() {
    let key = EncryptionKey::parse(KEY).unwrap();
    assert_eq!(format!("{key:?}"), "EncryptionKey([REDACTED])");
    assert_eq!(key.to_base64(), KEY);
}
