//! Crash consistency: a real `connecthub demo` process is killed with SIGKILL at random
//! moments during a mix of connects, refreshes (2-second sandbox tokens, so the refresher
//! and every hand-out refresh all the time), token hand-outs, proxied calls and webhook
//! deliveries, then started again on the same database. The providers are another app's
//! sandbox, which outlives the kills and is strict: a rotated-out refresh token presented
//! again kills its grant, as certified servers do. After each kill: `PRAGMA
//! integrity_check` (SQLite) or a consistency query (PostgreSQL) and `connecthub audit
//! verify`; at the end, how many refreshes were interrupted (the connection said so) and
//! how many connections were lost (their grant killed), each lost one among the
//! interrupted. `five_kills` runs in the suite; `scripts/crash-test.sh` runs the ignored
//! `fifty_kills_*` (CRASH_KILLS overrides the count).

use crate::helpers::{spawn_process, Backend, TestApp, TestProcess};
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use diesel::prelude::*;
use rand::Rng;
use serde_json::json;
use std::time::Duration;

crate::with_each_backend!(five_kills_break_nothing_and_every_lost_connection_says_so);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/crash-test.sh"]
async fn fifty_kills_sqlite() {
    crash_run(Backend::Sqlite, kills_asked(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/crash-test.sh"]
async fn fifty_kills_postgres() {
    if crate::helpers::postgres_available() {
        crash_run(Backend::Postgres, kills_asked(50)).await;
    }
}

fn kills_asked(default: usize) -> usize {
    std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

async fn five_kills_break_nothing_and_every_lost_connection_says_so(backend: Backend) {
    crash_run(backend, 5).await;
}

const ACCOUNTS: [&str; 3] = ["AcmeK1", "GlobexK2", "HooliK3"];

#[derive(Debug, Default)]
struct Figures {
    kills: usize,
    integrity_failures: usize,
    audit_failures: usize,
    connects_started: usize,
    klaviyo_clients: usize,
    refreshes_at_provider: u64,
    interrupted_reported: usize,
    lost: usize,
    webhook_deliveries: usize,
}

async fn crash_run(backend: Backend, kills: usize) {
    let provider =
        crate::helpers::spawn_app_with(backend, &[("SANDBOX_ACCESS_TOKEN_TTL_SECS", "2")]).await;
    let receiver = crate::helpers::receiver::Receiver::start().await;
    let mut process = spawn_process(
        backend,
        &provider,
        &[
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
            ("WEBHOOK_RETRY_SCHEDULE", "50ms,100ms"),
        ],
    )
    .await;
    let app = &process.app;
    let admin = app.login_as(Role::Admin).await;
    let key = app.api_key(&Scope::ALL).await;
    let created = app
        .client
        .post(app.url("/api/v1/webhook-endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url, "description": "crash test", "event_types": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let endpoint: serde_json::Value = created.json().await.unwrap();
    let endpoint = endpoint["id"].as_str().unwrap().to_string();
    for account in &ACCOUNTS[..2] {
        assert_eq!(app.connect("klaviyo", Some(account)).await.status(), 303);
    }
    // CRASH_SLOW_PROVIDER_MS: every Klaviyo call waits that long before it is served (a
    // slow provider), which widens the window in which a kill cuts a refresh short.
    if let Some(ms) = std::env::var("CRASH_SLOW_PROVIDER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        provider
            .sandbox_faults(json!({"provider": "klaviyo", "storm": {"calls": 1_000_000, "kinds": ["slow"], "slow_ms": ms}}))
            .await;
    }
    let mut figures = Figures::default();
    for _ in 0..kills {
        let after = Duration::from_millis(rand::thread_rng().gen_range(150..1500));
        let pid = process.child.id().to_string();
        let connects = std::sync::atomic::AtomicUsize::new(0);
        tokio::select! {
            _ = traffic(&process.app, &key, &endpoint, &connects) => {}
            _ = async {
                tokio::time::sleep(after).await;
                // Killed while the traffic's requests are in flight (the client side is
                // dropped only afterwards).
                let killed = std::process::Command::new("kill").args(["-KILL", &pid]).status();
                assert!(killed.expect("run kill").success());
            } => {}
        }
        process.child.wait().expect("reap the killed process");
        figures.connects_started += connects.into_inner();
        figures.kills += 1;
        check_after_kill(&process, &mut figures).await;
        process.restart().await;
        if process.app.get("/account").await.status() != 200 {
            process.app.login(&admin.email, &admin.password).await;
        }
    }
    settle(&process, &key, &provider, &mut figures).await;
    figures.webhook_deliveries = receiver.received().len();
    println!("crash figures ({backend:?}): {figures:#?}");
    assert_eq!(figures.integrity_failures, 0);
    assert_eq!(figures.audit_failures, 0);
}

/// One round of traffic after another until the kill: a connect, and for each client a
/// hand-out, a proxied call and a forced refresh, plus a webhook test event. Errors are
/// expected (a refresh racing another, a provider token already due) and ignored; only
/// the kill ends it. Counts the connects it starts.
async fn traffic(
    app: &TestApp,
    key: &str,
    endpoint: &str,
    connects: &std::sync::atomic::AtomicUsize,
) {
    loop {
        let account = ACCOUNTS[rand::thread_rng().gen_range(0..ACCOUNTS.len())];
        connects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let clients = app.clients().await;
        let csrf = app.csrf_token().await;
        let mut calls = Vec::new();
        for c in clients.iter().filter(|c| c.provider == "klaviyo") {
            calls.push(
                app.client
                    .get(app.url(&format!("/api/v1/clients/{}/token", c.id))),
            );
            calls.push(
                app.client
                    .get(app.url(&format!("/api/v1/proxy/{}/api/accounts/", c.id))),
            );
            calls.push(
                app.client
                    .post(app.url(&format!("/api/integrations/klaviyo/oauth/refresh/{}", c.id)))
                    .header("x-csrf-token", &csrf)
                    .header("accept", "application/json"),
            );
        }
        calls.push(
            app.client
                .post(app.url(&format!("/api/v1/webhook-endpoints/{endpoint}/test")))
                .json(&json!({})),
        );
        let sends = calls
            .into_iter()
            .map(|call| async move { call.bearer_auth(key).send().await.map(|r| r.status()) });
        let (_, connected) = tokio::join!(
            futures_util::future::join_all(sends),
            app.connect("klaviyo", Some(account))
        );
        assert_ne!(connected.status(), 500);
    }
}

async fn check_after_kill(process: &TestProcess, figures: &mut Figures) {
    let app = &process.app;
    let consistent = match app.backend {
        Backend::Sqlite => {
            #[derive(QueryableByName)]
            struct Check {
                #[diesel(sql_type = diesel::sql_types::Text)]
                integrity_check: String,
            }
            let rows = app
                .db(|conn| diesel::sql_query("PRAGMA integrity_check").load::<Check>(conn))
                .await;
            let ok = rows.len() == 1 && rows[0].integrity_check == "ok";
            if !ok {
                let said: Vec<&str> = rows.iter().map(|r| r.integrity_check.as_str()).collect();
                eprintln!("integrity_check after kill {}: {said:?}", figures.kills);
            }
            ok
        }
        Backend::Postgres => app.db(postgres_inconsistencies).await == 0,
    };
    if !consistent {
        figures.integrity_failures += 1;
    }
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .args(["audit", "verify"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .env("ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .env("LOG_LEVEL", "error")
        .output()
        .expect("run connecthub audit verify");
    if !verify.status.success() {
        eprintln!("audit verify: {}", String::from_utf8_lossy(&verify.stderr));
        figures.audit_failures += 1;
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Rows that point at nothing or contradict each other: credentials without a client,
/// live OAuth clients without a sealed token, a client's account twice for one owner.
fn postgres_inconsistencies(conn: &mut connecthub::db::DbConnection) -> QueryResult<i64> {
    let checks = [
        "SELECT COUNT(*) AS n FROM credentials c LEFT JOIN clients k ON k.id = c.client_id \
         WHERE k.id IS NULL",
        "SELECT COUNT(*) AS n FROM clients k LEFT JOIN credentials c ON c.client_id = k.id \
         WHERE k.status = 'active' AND (c.client_id IS NULL OR (c.access_token IS NULL \
         AND c.api_key IS NULL))",
        "SELECT COUNT(*) AS n FROM (SELECT provider, provider_account_id, owner_user_id \
         FROM clients GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) twice",
        "SELECT COUNT(*) AS n FROM audit_log a JOIN audit_log b ON a.id < b.id \
         AND a.hash = b.hash",
    ];
    let mut total = 0;
    for sql in checks {
        let rows = diesel::sql_query(sql).load::<Count>(conn)?;
        total += rows.first().map_or(0, |r| r.n);
    }
    Ok(total)
}

/// After the last restart: once every lease of a killed refresh has run out, the
/// refresher reports each interrupted refresh; then every Klaviyo connection is refreshed
/// once, which shows the grants that died (409, needs reconnecting).
async fn settle(process: &TestProcess, key: &str, provider: &TestApp, figures: &mut Figures) {
    let app = &process.app;
    tokio::time::sleep(Duration::from_secs(33)).await;
    let interrupted: Vec<String> = app
        .db(|conn| {
            use connecthub::db::schema::audit_log;
            audit_log::table
                .filter(audit_log::action.eq("token_refresh_interrupted"))
                .select(audit_log::target_id)
                .load::<Option<String>>(conn)
        })
        .await
        .into_iter()
        .flatten()
        .collect();
    figures.interrupted_reported = interrupted.len();
    let csrf = app.csrf_token().await;
    let clients = app.clients().await;
    let klaviyo: Vec<_> = clients.iter().filter(|c| c.provider == "klaviyo").collect();
    figures.klaviyo_clients = klaviyo.len();
    for client in klaviyo {
        let answer = app
            .client
            .post(app.url(&format!(
                "/api/integrations/klaviyo/oauth/refresh/{}",
                client.id
            )))
            .header("x-csrf-token", &csrf)
            .header("accept", "application/json")
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        if answer.status() == 409 {
            figures.lost += 1;
            assert!(
                interrupted.contains(&client.id),
                "{} was lost without a word: {:?}",
                client.id,
                client.last_error
            );
        } else {
            assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
        }
    }
    let stats = provider.sandbox_stats("klaviyo").await;
    figures.refreshes_at_provider = stats["token_calls"]["refresh_token"].as_u64().unwrap_or(0);
}
