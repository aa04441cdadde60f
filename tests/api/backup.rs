//! `connecthub backup --to FILE` while the server is busy, and restoring the copy into a
//! fresh instance: every token opens and is handed out, and the audit chain is intact.

use crate::helpers::{location, spawn_app, spawn_app_on_restored, Backend, TestApp};
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

with_each_backend!(a_backup_taken_under_load_restores_into_a_working_instance);

const BIN: &str = env!("CARGO_BIN_EXE_connecthub");

fn connecthub(args: &[&str], database_url: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run connecthub")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

async fn connect(app: &TestApp, account: &str) -> String {
    let done = app.connect("klaviyo", Some(account)).await;
    assert_eq!(location(&done), "/admin/clients");
    app.clients()
        .await
        .into_iter()
        .find(|c| c.provider_account_id == account)
        .expect("client created")
        .id
}

async fn token_of(app: &TestApp, key: &str, client_id: &str) -> String {
    let response = app.service_token(key, client_id).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// Token hand-outs in a loop until `stop` (each one audited: the buffered entries are
/// appended to the chain once a second, so the chain grows while the backup runs).
fn load(
    app: &TestApp,
    key: &str,
    clients: &[String],
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let done = Arc::new(AtomicUsize::new(0));
    let (http, base, key, clients, counter) = (
        crate::helpers::new_client(),
        app.address.clone(),
        key.to_string(),
        clients.to_vec(),
        done.clone(),
    );
    let task = tokio::spawn(async move {
        let mut round = 0_usize;
        while !stop.load(Ordering::SeqCst) {
            let id = &clients[round % clients.len()];
            let token = http
                .get(format!("{base}/api/v1/clients/{id}/token"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(token.status(), 200);
            counter.fetch_add(1, Ordering::SeqCst);
            round += 1;
        }
    });
    (task, done)
}

async fn a_backup_taken_under_load_restores_into_a_working_instance(backend: Backend) {
    let app = spawn_app(backend).await;
    app.login_as(Role::Admin).await;
    let clients = vec![
        connect(&app, "AcmeK1").await,
        connect(&app, "GlobexK2").await,
    ];
    let key = app.api_key(&[Scope::TokensRead]).await;
    let mut tokens = Vec::new();
    for id in &clients {
        tokens.push(token_of(&app, &key, id).await);
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connecthub.backup");
    let file_arg = file.display().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (task, requests) = load(&app, &key, &clients, stop.clone());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = requests.load(Ordering::SeqCst);
    let (url, arg) = (app.database_url.clone(), file_arg.clone());
    let output = tokio::task::spawn_blocking(move || connecthub(&["backup", "--to", &arg], &url))
        .await
        .unwrap();
    let during = requests.load(Ordering::SeqCst) - before;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    task.await
        .expect("every request during the backup succeeded");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(
        said.starts_with(&format!("backed up to {file_arg} (")),
        "{said}"
    );
    match backend {
        Backend::Sqlite => assert!(said.contains("integrity_check ok"), "{said}"),
        Backend::Postgres => {
            assert!(said.contains("tables' data"), "{said}");
            assert!(said.contains("pg_dump --format=custom"), "{said}");
            assert!(!said.contains("postgres://"), "no URL printed: {said}");
        }
    }
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    println!("requests served while the backup ran: {during}");

    // A backup never overwrites a file.
    let copy = std::fs::read(&file).unwrap();
    let again = connecthub(&["backup", "--to", &file_arg], &app.database_url);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again.stderr),
        format!(
            "error: {file_arg} already exists: choose a new file (a backup never overwrites one)"
        )
    );
    assert_eq!(std::fs::read(&file).unwrap(), copy);

    // Restore into a fresh instance: SQLite by copying the file back, PostgreSQL with
    // pg_restore into an empty database.
    let source = file.clone();
    let restored = spawn_app_on_restored(backend, move |target| match backend {
        Backend::Sqlite => {
            std::fs::copy(&source, target).unwrap();
        }
        Backend::Postgres => {
            let status = Command::new("pg_restore")
                .args(["--no-owner", "--exit-on-error", "--dbname", target])
                .arg(&source)
                .status()
                .unwrap();
            assert!(status.success(), "pg_restore");
        }
    })
    .await;
    // The service key and every token came along; the tokens open with the same key.
    for (id, token) in clients.iter().zip(&tokens) {
        assert_eq!(&token_of(&restored, &key, id).await, token);
        let (access, refresh) = crate::lifecycle::stored_tokens(&restored, id).await;
        assert_eq!(access.as_ref(), Some(token));
        assert!(refresh.is_some());
    }
    let verify = connecthub(&["audit", "verify"], &restored.database_url);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stdout).starts_with("intact: "),
        "{}",
        text(&verify.stdout)
    );
}

#[test]
fn backup_refuses_a_missing_database_and_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.db").display().to_string();
    let to = dir.path().join("out.db").display().to_string();
    let output = connecthub(&["backup", "--to", &to], &absent);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!("error: there is no SQLite database at {absent}")
    );
    assert!(
        !std::path::Path::new(&absent).exists(),
        "nothing was created"
    );
    let nowhere = dir.path().join("no/such/dir/out.db").display().to_string();
    let output = connecthub(&["backup", "--to", &nowhere], &absent);
    assert_eq!(
        text(&output.stderr),
        format!("error: the directory of {nowhere} does not exist")
    );
}
