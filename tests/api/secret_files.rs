//! Secrets from files (`<VARIABLE>_FILE`), through the real binary: the content is used,
//! and a secret set twice or a file that cannot be read stops the start with one line
//! naming the variable and the path, never the content.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_connecthub");
/// What the secret files hold: must never appear in any output.
const METRICS_SECRET: &str = "metrics-secret-from-a-file";

fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

fn run(env: &[(&str, &str)]) -> Output {
    command(env)
        .stdin(Stdio::null())
        .output()
        .expect("run connecthub serve")
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[tokio::test]
async fn serve_reads_its_key_and_secrets_from_files() {
    let files = Files::new();
    let key = files.write("encryption_key", &format!("{}\n", crate::helpers::TEST_KEY));
    let metrics = files.write("metrics_token", &format!("{METRICS_SECRET}\r\n"));
    let klaviyo = files.write("klaviyo_secret", "klaviyo-secret\n");
    let database = files.path("hub.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("PUBLIC_URL", "http://localhost:1"),
        ("BIND", bind.as_str()),
        ("ENCRYPTION_KEY_FILE", key.as_str()),
        ("METRICS_TOKEN_FILE", metrics.as_str()),
        ("KLAVIYO_OAUTH_CLIENT_ID", "klaviyo-id"),
        ("KLAVIYO_OAUTH_CLIENT_SECRET_FILE", klaviyo.as_str()),
    ];
    let mut child = command(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{bind}");
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "serve started with secrets from files");
    // The metrics token is the file's content without its line break.
    let without = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let with = client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_secret_set_twice_or_an_unreadable_file_stops_serve_naming_variable_and_path() {
    let files = Files::new();
    let key = files.write("encryption_key", crate::helpers::TEST_KEY);
    let secret = files.write("klaviyo_secret", METRICS_SECRET);
    let database = files.path("hub.db");
    let missing = files.path("absent");
    let directory = files.dir.path().display().to_string();
    let empty = files.write("empty", "\n");
    let base = [
        ("DATABASE_URL", database.as_str()),
        ("PUBLIC_URL", "http://localhost:1"),
        ("BIND", "127.0.0.1:0"),
    ];
    let both_message =
        "error: ENCRYPTION_KEY and ENCRYPTION_KEY_FILE are both set: set only one of them"
            .to_string();
    let missing_message = format!(
        "error: ENCRYPTION_KEY_FILE names a file that cannot be read: {missing} (entity not found)"
    );
    let directory_message =
        format!("error: METRICS_TOKEN_FILE names a file that cannot be read: {directory}");
    let empty_message =
        format!("error: KLAVIYO_OAUTH_CLIENT_SECRET_FILE names an empty file: {empty}");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("ENCRYPTION_KEY", crate::helpers::TEST_KEY),
                ("ENCRYPTION_KEY_FILE", key.as_str()),
            ],
            both_message.as_str(),
        ),
        (
            vec![("ENCRYPTION_KEY_FILE", missing.as_str())],
            missing_message.as_str(),
        ),
        (
            vec![
                ("ENCRYPTION_KEY_FILE", key.as_str()),
                ("METRICS_TOKEN_FILE", directory.as_str()),
            ],
            directory_message.as_str(),
        ),
        (
            vec![
                ("ENCRYPTION_KEY_FILE", key.as_str()),
                ("KLAVIYO_OAUTH_CLIENT_ID", "id"),
                ("KLAVIYO_OAUTH_CLIENT_SECRET", METRICS_SECRET),
                ("KLAVIYO_OAUTH_CLIENT_SECRET_FILE", secret.as_str()),
            ],
            "error: KLAVIYO_OAUTH_CLIENT_SECRET and KLAVIYO_OAUTH_CLIENT_SECRET_FILE are both set",
        ),
        (
            vec![
                ("ENCRYPTION_KEY_FILE", key.as_str()),
                ("KLAVIYO_OAUTH_CLIENT_ID", "id"),
                ("KLAVIYO_OAUTH_CLIENT_SECRET_FILE", empty.as_str()),
            ],
            empty_message.as_str(),
        ),
    ];
    for (extra, expected) in cases {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        env.extend(extra);
        let output = run(&env);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert_eq!(output.status.code(), Some(2), "{expected}: {stderr}");
        assert!(stderr.starts_with(expected), "{expected}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        for secret in [METRICS_SECRET, crate::helpers::TEST_KEY] {
            assert!(!stderr.contains(secret) && !stdout.contains(secret));
        }
    }
}

#[test]
fn key_rotate_and_audit_verify_read_secret_files_too() {
    let files = Files::new();
    let database = files.path("hub.db");
    let url_file = files.write("database_url", &format!("{database}\n"));
    let verify = Command::new(BIN)
        .args(["audit", "verify"])
        .env_clear()
        .env("DATABASE_URL_FILE", &url_file)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&verify.stdout).trim(),
        "intact: 0 entries"
    );
    let current = files.write("current", &format!("{}\n", crate::helpers::TEST_KEY));
    let previous = files.path("previous-is-missing");
    let rotate = Command::new(BIN)
        .args(["key", "rotate"])
        .env_clear()
        .env("DATABASE_URL", &database)
        .env("ENCRYPTION_KEY_FILE", &current)
        .env("ENCRYPTION_KEY_PREVIOUS_FILE", &previous)
        .output()
        .unwrap();
    assert_eq!(rotate.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&rotate.stderr).trim(),
        format!("error: ENCRYPTION_KEY_PREVIOUS_FILE names a file that cannot be read: {previous} (entity not found)")
    );
}
