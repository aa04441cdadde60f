//! Several instances on one PostgreSQL: a disconnect or a revoked service key on one
//! instance stops being served by the others within a second (LISTEN/NOTIFY), although
//! each caches tokens and keys for SERVICE_CACHE_SECS (300 s here, so the TTL cannot be
//! what makes these pass). SQLite serves one instance; nothing to test there.

use crate::helpers::{location, second_instance_with, spawn_app_with, Backend, TestApp};
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use diesel::prelude::*;
use std::time::{Duration, Instant};

const LONG_CACHE: [(&str, &str); 1] = [("SERVICE_CACHE_SECS", "300")];

async fn two_instances() -> Option<(TestApp, TestApp)> {
    if !crate::helpers::postgres_available() {
        return None;
    }
    let a = spawn_app_with(Backend::Postgres, &LONG_CACHE).await;
    let b = second_instance_with(&a, &LONG_CACHE).await;
    Some((a, b))
}

async fn connected_client(app: &TestApp) -> String {
    app.login_as(Role::Admin).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    app.clients().await.remove(0).id
}

/// Polls `b` every 5 ms until the answer's status is no longer 200; the time it took.
async fn until_refused(b: &TestApp, key: &str, client_id: &str) -> (Duration, reqwest::Response) {
    let started = Instant::now();
    loop {
        let response = b.service_token(key, client_id).await;
        if response.status() != 200 {
            return (started.elapsed(), response);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the other instance still serves it after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Serves the token from both instances twice, so both hold key and token in memory.
async fn warm(a: &TestApp, b: &TestApp, key: &str, client_id: &str) {
    for instance in [a, b, a, b] {
        assert_eq!(instance.service_token(key, client_id).await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_on_one_instance_stops_the_others_within_a_second() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let client_id = connected_client(&a).await;
    let key = a.api_key(&[Scope::TokensRead]).await;
    warm(&a, &b, &key, &client_id).await;

    let disconnect = a
        .post_form(
            &format!("/api/integrations/klaviyo/disconnect/{client_id}"),
            &[],
        )
        .await;
    assert!(
        disconnect.status().is_redirection(),
        "{}",
        disconnect.status()
    );
    let (latency, refused) = until_refused(&b, &key, &client_id).await;
    eprintln!(
        "invalidation latency (disconnect): {} ms",
        latency.as_millis()
    );
    assert!(latency < Duration::from_secs(1), "took {latency:?}");

    let on_a = a.service_token(&key, &client_id).await;
    let (status, body) = (refused.status(), refused.text().await.unwrap());
    assert_eq!(status, on_a.status(), "B answers as A does: {body}");
    assert_eq!(body, on_a.text().await.unwrap());
    assert!(!body.contains("access_token"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_instance_is_refused_by_the_others_within_a_second() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let client_id = connected_client(&a).await;
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let key = a.api_key(&[Scope::TokensRead]).await;
        warm(&a, &b, &key, &client_id).await;
        let id = key_id(&a, &key).await;
        let revoke = a
            .post_form(&format!("/admin/api-keys/{id}/revoke"), &[])
            .await;
        assert_eq!(revoke.status(), 303);
        let (latency, refused) = until_refused(&b, &key, &client_id).await;
        assert_eq!(refused.status(), 401);
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "invalid_api_key", "{body}");
        latencies.push(latency);
    }
    latencies.sort();
    eprintln!(
        "invalidation latency (key revoked, 5 runs): min {} ms, median {} ms, max {} ms",
        latencies[0].as_millis(),
        latencies[2].as_millis(),
        latencies[4].as_millis()
    );
    assert!(latencies[4] < Duration::from_secs(1), "{latencies:?}");
}

/// The listener's connection is killed (as a PostgreSQL restart or a proxy would): it
/// connects again on its own and the next revocation is still seen within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_after_its_connection_drops() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let client_id = connected_client(&a).await;
    let before = listener_pids(&a).await;
    assert_eq!(before.len(), 2, "one listener per instance");
    let killed = a
        .db(|conn| {
            let connecthub::db::DbConnection::Postgresql(pg) = conn else {
                unreachable!("PostgreSQL only")
            };
            diesel::sql_query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'connecthub-invalidation'",
            )
            .execute(pg)
        })
        .await;
    assert_eq!(killed, 2);
    let started = Instant::now();
    loop {
        let now = listener_pids(&a).await;
        if now.len() == 2 && now.iter().all(|pid| !before.contains(pid)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no new listeners"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("listeners back after {} ms", started.elapsed().as_millis());

    let key = a.api_key(&[Scope::TokensRead]).await;
    warm(&a, &b, &key, &client_id).await;
    let id = key_id(&a, &key).await;
    let revoke = a
        .post_form(&format!("/admin/api-keys/{id}/revoke"), &[])
        .await;
    assert_eq!(revoke.status(), 303);
    let (latency, refused) = until_refused(&b, &key, &client_id).await;
    assert_eq!(refused.status(), 401);
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// The backends of this database's invalidation listeners.
async fn listener_pids(app: &TestApp) -> Vec<i32> {
    let rows: Vec<Pid> = app
        .db(|conn| {
            let connecthub::db::DbConnection::Postgresql(pg) = conn else {
                unreachable!("PostgreSQL only")
            };
            diesel::sql_query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'connecthub-invalidation'",
            )
            .load(pg)
        })
        .await;
    rows.into_iter().map(|row| row.pid).collect()
}

async fn key_id(app: &TestApp, key: &str) -> String {
    use connecthub::db::schema::api_keys;
    let hash = connecthub::api_keys::hash(key);
    app.db(move |conn| {
        api_keys::table
            .filter(api_keys::key_hash.eq(hash))
            .select(api_keys::id)
            .first(conn)
    })
    .await
}

/// Behind a reverse proxy named in TRUSTED_PROXIES, the audit log (and the per-address
/// limits) see the address the proxy forwarded for; without it, X-Forwarded-For is ignored
/// (any client could send one).
#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let trusting = spawn_app_with(Backend::Sqlite, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    failed_login_from(&trusting, "198.51.100.1, 203.0.113.9").await;
    assert_eq!(last_audited_ip(&trusting).await, "203.0.113.9");

    let direct = crate::helpers::spawn_app(Backend::Sqlite).await;
    failed_login_from(&direct, "203.0.113.9").await;
    assert_eq!(last_audited_ip(&direct).await, "127.0.0.1");
}

async fn failed_login_from(app: &TestApp, forwarded: &str) {
    let mut browser = app.new_browser();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", forwarded.parse().unwrap());
    browser.client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    let response = browser
        .login("nobody@example.com", "not-the-password")
        .await;
    assert_eq!(response.status(), 401, "refused");
}

async fn last_audited_ip(app: &TestApp) -> String {
    use connecthub::db::schema::audit_log;
    app.db(|conn| {
        audit_log::table
            .order(audit_log::id.desc())
            .select(audit_log::ip)
            .first::<Option<String>>(conn)
    })
    .await
    .unwrap_or_default()
}
