//! The binary: configuration errors, `user add`, `key gen`, `migrate`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_connecthub");

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run connecthub");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

crate::with_each_backend!(
    user_add_racing_itself_creates_one_account_and_says_why_the_other_failed,
    user_passwd_follows_the_password_rules_of_the_users_page,
);

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn bad_configuration_stops_serve_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db").display().to_string();
    let key = crate::helpers::TEST_KEY;
    let good = [
        ("DATABASE_URL", db.as_str()),
        ("PUBLIC_URL", "http://localhost:1"),
        ("ENCRYPTION_KEY", key),
        ("BIND", "127.0.0.1:0"),
    ];
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("ENCRYPTION_KEY", None, "error: ENCRYPTION_KEY must be 32 bytes of base64; generate one with `connecthub key gen`"),
        ("ENCRYPTION_KEY", Some("dG9vLXNob3J0"), "error: ENCRYPTION_KEY must be 32 bytes of base64"),
        ("DATABASE_URL", None, "error: DATABASE_URL is required"),
        ("DATABASE_URL", Some("mysql://db/x"), "error: DATABASE_URL must be a SQLite file path or a postgres:// URL"),
        ("PUBLIC_URL", Some("ftp://x"), "error: PUBLIC_URL must be an absolute http(s) URL"),
        ("LOG_FORMAT", Some("yaml"), "error: LOG_FORMAT must be text or json"),
    ];
    for (variable, value, expected) in cases {
        let mut env: Vec<(&str, &str)> = good
            .iter()
            .copied()
            .filter(|(k, _)| *k != variable)
            .collect();
        if let Some(value) = value {
            env.push((variable, value));
        }
        let output = run(&["serve"], &env, None);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{variable}: {message}");
        assert!(message.starts_with(expected), "{variable}: {message}");
        assert_eq!(
            message.trim_end().lines().count(),
            1,
            "one line only: {message}"
        );
        assert!(!message.contains("panicked") && !message.contains("backtrace"));
    }
}

#[test]
fn unreachable_postgres_reports_the_real_error() {
    let env = [
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
        ("PUBLIC_URL", "http://localhost:1"),
        ("ENCRYPTION_KEY", crate::helpers::TEST_KEY),
    ];
    let output = run(&["migrate"], &env, None);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        message.starts_with("error: cannot open the database:"),
        "{message}"
    );
    assert!(
        message.contains("127.0.0.1") || message.contains("onnection"),
        "{message}"
    );
}

#[test]
fn key_gen_prints_a_usable_key() {
    let output = run(&["key", "gen"], &[], None);
    assert!(output.status.success());
    let key = String::from_utf8(output.stdout).unwrap();
    assert!(connecthub::config::EncryptionKey::parse(key.trim()).is_some());
    let other = String::from_utf8(run(&["key", "gen"], &[], None).stdout).unwrap();
    assert_ne!(key, other);
}

#[test]
fn help_is_available_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
        vec!["migrate", "--help"],
        vec!["user", "add", "--help"],
        vec!["key", "gen", "--help"],
    ] {
        let output = run(&args, &[], None);
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn user_add_creates_an_account_that_can_sign_in() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let env = [("DATABASE_URL", app.database_url.as_str())];
    let output = run(
        &[
            "user",
            "add",
            "--email",
            "Ops@Example.com",
            "--role",
            "admin",
        ],
        &env,
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("created ops@example.com (admin)"),
        "{stdout}"
    );
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("password printed")
        .to_string();
    assert_eq!(app.login("ops@example.com", &password).await.status(), 303);
    assert_eq!(app.get("/admin/users").await.status(), 200);

    // --password-stdin, and the clear errors.
    let scripted = run(
        &[
            "user",
            "add",
            "--email",
            "bot@example.com",
            "--password-stdin",
        ],
        &env,
        Some("a-long-enough-secret\n"),
    );
    assert!(scripted.status.success(), "{}", stderr(&scripted));
    assert!(!String::from_utf8_lossy(&scripted.stdout).contains("a-long-enough-secret"));
    let browser = app.new_browser();
    assert_eq!(
        browser
            .login("bot@example.com", "a-long-enough-secret")
            .await
            .status(),
        303
    );
    assert_eq!(
        browser.get("/admin/users").await.status(),
        403,
        "default role is member"
    );

    bad_user_add_input_is_explained(&env);
    let actions = app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "user_created").count(), 2);
}

/// A duplicate email, an unknown role, a malformed email and a short password: each a
/// clear one-line error.
fn bad_user_add_input_is_explained(env: &[(&str, &str)]) {
    let duplicate = run(&["user", "add", "--email", "ops@example.com"], env, None);
    assert_eq!(
        stderr(&duplicate).trim(),
        "error: a user with email ops@example.com already exists"
    );
    let bad_role = run(
        &["user", "add", "--email", "x@example.com", "--role", "owner"],
        env,
        None,
    );
    assert!(stderr(&bad_role).contains("role must be admin or member"));
    let bad_email = run(&["user", "add", "--email", "nope"], env, None);
    assert!(stderr(&bad_email).contains("\"nope\" is not a valid email address"));
    let short = run(
        &[
            "user",
            "add",
            "--email",
            "y@example.com",
            "--password-stdin",
        ],
        env,
        Some("short"),
    );
    assert!(stderr(&short).contains("at least 12 characters"));
}

/// Several `user add` runs for one email at once: the database decides, in the same
/// transaction as the audit entry, so exactly one account (and one entry) is made and every
/// other run gets the clear message, never a database error.
async fn user_add_racing_itself_creates_one_account_and_says_why_the_other_failed(
    backend: crate::helpers::Backend,
) {
    use connecthub::db::schema::users;
    use diesel::prelude::*;
    let app = crate::helpers::spawn_app(backend).await;
    let url = app.database_url.clone();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let args = ["user", "add", "--email", "twice@example.com"];
                run(&args, &[("DATABASE_URL", url.as_str())], None)
            })
        })
        .collect();
    let outputs: Vec<Output> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    let succeeded = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        succeeded,
        1,
        "{:?}",
        outputs.iter().map(stderr).collect::<Vec<_>>()
    );
    for output in outputs.iter().filter(|o| !o.status.success()) {
        assert_eq!(
            stderr(output).trim(),
            "error: a user with email twice@example.com already exists"
        );
    }
    let rows: i64 = app
        .db(|conn| {
            users::table
                .filter(users::email.eq("twice@example.com"))
                .count()
                .get_result(conn)
        })
        .await;
    assert_eq!(rows, 1);
    let actions = app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "user_created").count(), 1);
}

/// `user passwd` holds a typed password to the users page's rules (the upper bound as well
/// as the lower), and records the reset like the page does.
async fn user_passwd_follows_the_password_rules_of_the_users_page(
    backend: crate::helpers::Backend,
) {
    let app = crate::helpers::spawn_app(backend).await;
    let user = app.create_user(connecthub::auth::users::Role::Member).await;
    let env = [("DATABASE_URL", app.database_url.as_str())];
    let args = [
        "user",
        "passwd",
        "--email",
        user.email.as_str(),
        "--password-stdin",
    ];
    let too_long = "x".repeat(1025);
    let refused = run(&args, &env, Some(&too_long));
    assert_eq!(
        stderr(&refused).trim(),
        "error: The password can be at most 1024 characters."
    );
    let changed = run(&args, &env, Some("a-new-long-enough-secret\n"));
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert_eq!(
        app.new_browser()
            .login(&user.email, "a-new-long-enough-secret")
            .await
            .status(),
        303
    );
    let actions = app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "password_reset").count(), 1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `connecthub demo` in `dir` and reads its banner; returns the child and the lines.
fn start_demo(dir: &std::path::Path, port: u16) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .arg("demo")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    for line in reader.by_ref() {
        let line = line.unwrap();
        let done = line.trim_start().starts_with("Password");
        lines.push(line);
        if done {
            break;
        }
    }
    // Keep draining what the server prints later.
    std::thread::spawn(move || reader.for_each(drop));
    (child, lines)
}

#[tokio::test]
async fn demo_starts_on_a_local_sqlite_file_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut child, banner) = start_demo(dir.path(), port);
    let text = banner.join("\n");
    assert!(
        text.contains(&format!("Open   http://localhost:{port}/")),
        "{text}"
    );
    assert!(text.contains("Email  admin@connecthub.local"), "{text}");
    let password = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("Password "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a password on first start")
        .to_string();
    assert!(dir.path().join("data/connecthub.db").exists());
    assert!(dir.path().join("data/demo.key").exists());

    let client = crate::helpers::new_client();
    let base = format!("http://127.0.0.1:{port}");
    let login_page = client
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = crate::helpers::csrf_from(&login_page);
    let login = client
        .post(format!("{base}/login"))
        .form(&[
            ("email", "admin@connecthub.local"),
            ("password", password.as_str()),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let clients = client
        .get(format!("{base}/admin/clients"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(clients.contains("Connect Klaviyo"));
    // The sandbox is mounted in demo mode.
    assert_eq!(
        client
            .get(format!("{base}/sandbox/_control/stats?provider=klaviyo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // A second start keeps the admin and prints no new password.
    let (mut again, banner) = start_demo(dir.path(), port);
    let text = banner.join("\n");
    assert!(
        text.contains("the one printed on the first start"),
        "{text}"
    );
    again.kill().unwrap();
    again.wait().unwrap();
}

#[tokio::test]
async fn serve_never_mounts_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", dir.path().join("serve.db"))
        .env("PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = crate::helpers::new_client();
    let base = format!("http://127.0.0.1:{port}");
    let mut health = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await {
            health = Some(response.status());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(health, Some(reqwest::StatusCode::OK));
    let sandbox = client
        .get(format!("{base}/sandbox/klaviyo/oauth/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(sandbox.status(), 404);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn audit_verify_finds_the_first_edited_entry() {
    use connecthub::db::schema::audit_log;
    use diesel::prelude::*;
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let user = app.create_user(connecthub::auth::users::Role::Admin).await;
    for _ in 0..3 {
        app.login(&user.email, "wrong-password").await;
    }
    let env = [("DATABASE_URL", app.database_url.as_str())];
    let intact = run(&["audit", "verify"], &env, None);
    assert!(intact.status.success(), "{}", stderr(&intact));
    assert_eq!(
        String::from_utf8_lossy(&intact.stdout).trim(),
        "intact: 3 entries"
    );
    // Someone edits the second entry in the database directly.
    let second: i64 = app
        .db(|conn| {
            audit_log::table
                .select(audit_log::id)
                .order(audit_log::id.asc())
                .offset(1)
                .first(conn)
        })
        .await;
    app.db(move |conn| {
        diesel::update(audit_log::table.find(second))
            .set(audit_log::actor_label.eq("someone-else@example.com"))
            .execute(conn)
    })
    .await;
    let broken = run(&["audit", "verify"], &env, None);
    assert_eq!(broken.status.code(), Some(1));
    assert_eq!(
        stderr(&broken).trim(),
        format!("error: broken at entry {second}: its content does not match its hash (the entry was edited)")
    );
    // A removed entry is found too.
    app.db(move |conn| diesel::delete(audit_log::table.find(second)).execute(conn))
        .await;
    let removed = run(&["audit", "verify"], &env, None);
    assert!(
        stderr(&removed).contains("does not link to the entry before it (an entry was removed)"),
        "{}",
        stderr(&removed)
    );
}
