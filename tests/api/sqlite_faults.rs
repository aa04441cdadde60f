//! SQLite when its disk is full (a small tmpfs of the test's own, filled up) and when its
//! file is read-only at start. Full: writes answer 503 with a clear message (page or
//! JSON), cached token hand-outs keep working, everything works again once there
//! is room, and `PRAGMA integrity_check` is ok. Read-only: a start-up error naming the
//! file. (A file system cannot be remounted read-only while SQLite holds its files open
//! for writing, so "read-only while running" is not staged; its errors are classified
//! like a full disk's: `db::outage`.)

use crate::connect_sessions::create_session;
use crate::helpers::{location, spawn_app_at, Backend, TestApp, TestUser, PASSWORD};
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use diesel::prelude::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of a few MiB of the test's own (mounting needs root; else the test is skipped,
/// and fails under CI=true).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Self { dir }),
            other => {
                let why = format!("cannot mount a tmpfs (needs root): {other:?}");
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("CI=true but {why}");
                }
                crate::helpers::skipped::record("small disk", why);
                None
            }
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while filler.write_all(&block).is_ok() {}
        // The last partial blocks, byte by byte in 4 KiB steps.
        while filler.write_all(&block[..4096]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A sign-in (a session row and an audit entry) and a connect session (rows) per round;
/// every answer is a success or a clear 503. Returns how many were 503.
async fn writes(app: &TestApp, user: &TestUser, key: &str, rounds: usize) -> usize {
    let mut unavailable = 0;
    for round in 0..rounds {
        let browser = app.new_browser();
        let login = browser.login(&user.email, PASSWORD).await;
        match login.status().as_u16() {
            303 => {}
            503 => {
                let page = login.text().await.unwrap();
                assert!(
                    page.contains("the database is unavailable; try again later"),
                    "{page}"
                );
                unavailable += 1;
            }
            other => panic!("sign-in answered {other}: {}", login.text().await.unwrap()),
        }
        let body = serde_json::json!({"end_user": {"id": format!("user-{round}")}});
        let session = create_session(app, key, body).await;
        match session.status().as_u16() {
            201 | 200 => {}
            503 => {
                let body: serde_json::Value = session.json().await.unwrap();
                assert_eq!(body["error"], "service_unavailable", "{body}");
                unavailable += 1;
            }
            other => panic!(
                "connect session answered {other}: {}",
                session.text().await.unwrap()
            ),
        }
    }
    unavailable
}

/// A service's hand-out (its key, no cookie) is served from memory.
async fn token_is_served(app: &TestApp, key: &str, client_id: &str) {
    let response = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/clients/{client_id}/token")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(
        status,
        200,
        "cached hand-out: {}",
        response.text().await.unwrap()
    );
}

/// Waits until writes succeed again.
async fn until_writable(app: &TestApp, user: &TestUser, key: &str) {
    let started = Instant::now();
    while writes(app, user, key, 1).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "still failing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_503_and_stays_intact() {
    let Some(disk) = SmallDisk::mount("6m") else {
        return;
    };
    let path = disk.path("connecthub.db");
    let settings = [
        ("SERVICE_CACHE_SECS", "300"),
        ("LOGIN_MAX_ATTEMPTS_PER_IP", "10000"),
        ("LOGIN_MAX_ATTEMPTS_PER_ACCOUNT", "10000"),
    ];
    let app = spawn_app_at(Backend::Sqlite, &path, &settings).await;
    app.login_as(Role::Admin).await;
    assert_eq!(
        location(&app.connect("klaviyo", Some("AcmeK1")).await),
        "/admin/clients"
    );
    let client_id = app.clients().await.remove(0).id;
    let key = app
        .api_key(&[Scope::TokensRead, Scope::ConnectWrite, Scope::ClientsRead])
        .await;
    let user = app.create_user(Role::Member).await;
    assert_eq!(writes(&app, &user, &key, 2).await, 0, "writable at first");
    token_is_served(&app, &key, &client_id).await;

    disk.fill();
    let full = writes(&app, &user, &key, 30).await;
    eprintln!("disk full: {full} of 60 writes answered 503");
    assert!(full > 0, "a full disk is noticed");
    token_is_served(&app, &key, &client_id).await;
    // A signed-in page renews its session's expiry, a write: a clear 503 too.
    let page = app.get("/admin/clients").await;
    let status = page.status();
    let text = page.text().await.unwrap();
    eprintln!("disk full: a signed-in page answers {status}");
    assert!(
        status == 200 || (status == 503 && text.contains("the database is unavailable")),
        "{status}: {text}"
    );
    disk.free();
    until_writable(&app, &user, &key).await;

    drop(app);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(integrity(&path), "ok");
}

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

fn integrity(path: &str) -> String {
    let mut conn = diesel::SqliteConnection::establish(path).unwrap();
    let rows: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .unwrap();
    rows.into_iter()
        .map(|r| r.integrity_check)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A database file and folder that cannot be written: `serve` refuses to start with a
/// message naming the problem, and the file is left as it was.
#[tokio::test]
async fn a_read_only_sqlite_file_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("connecthub.db").display().to_string();
    let bin = env!("CARGO_BIN_EXE_connecthub");
    let migrated = Command::new(bin)
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &path)
        .env("ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let as_nobody = running_as_root();
    if as_nobody {
        // Root ignores file modes: the server runs as nobody, who can read the folder.
        Command::new("chown")
            .args(["-R", "nobody"])
            .arg(dir.path())
            .status()
            .unwrap();
    }
    set_mode(&path, 0o444);
    set_mode(&dir.path().display().to_string(), 0o555);
    let mut command = if as_nobody {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", bin]);
        c
    } else {
        Command::new(bin)
    };
    let out = command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &path)
        .env("ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .env("PUBLIC_URL", "http://127.0.0.1:9")
        .env("BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    set_mode(&dir.path().display().to_string(), 0o755);
    assert!(!out.status.success(), "refused to start");
    assert!(stderr.contains("read-only"), "says why: {stderr}");
    assert!(stderr.contains(&path), "names the file: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(integrity(&path), "ok");
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn set_mode(path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
