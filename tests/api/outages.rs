//! The database goes away under traffic and comes back. PostgreSQL: a private cluster
//! (`initdb`/`pg_ctl`, own port) is stopped at once for OUTAGE_SECS (30 by default) while
//! a real `connecthub demo` process serves token hand-outs, proxied calls, an API list and
//! a page; then started again.

use crate::helpers::private_pg::PrivateCluster;
use crate::helpers::{location, spawn_app, spawn_process_on, Backend, TestApp, ACME_CONNECT_CALLS};
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use diesel::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a request may take at most, database or not: the pool's connection timeout.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Before,
    Down,
    Back,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Token,
    Proxy,
    ApiList,
    Page,
}

struct Answer {
    phase: Phase,
    kind: Kind,
    status: u16,
    took: Duration,
    body: String,
}

/// What the traffic saw, shared with the task that sends it.
#[derive(Default)]
struct Traffic {
    phase: AtomicU8,
    stop: AtomicBool,
    answers: Mutex<Vec<Answer>>,
}

impl Traffic {
    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Before,
            1 => Phase::Down,
            _ => Phase::Back,
        }
    }

    fn count(&self, phase: Phase, kind: Kind, status: u16) -> usize {
        let answers = self.answers.lock().unwrap();
        answers
            .iter()
            .filter(|a| a.phase == phase && a.kind == kind && a.status == status)
            .count()
    }

    /// "phase kind: status×count …, max N ms" lines, for the test's output.
    fn summary(&self) -> String {
        let answers = self.answers.lock().unwrap();
        let mut groups: BTreeMap<(Phase, Kind), (BTreeMap<u16, usize>, Duration)> = BTreeMap::new();
        for a in answers.iter() {
            let group = groups.entry((a.phase, a.kind)).or_default();
            *group.0.entry(a.status).or_default() += 1;
            group.1 = group.1.max(a.took);
        }
        groups
            .iter()
            .map(|((phase, kind), (statuses, max))| {
                format!(
                    "{phase:?} {kind:?}: {statuses:?}, slowest {} ms\n",
                    max.as_millis()
                )
            })
            .collect()
    }
}

/// Sends a token hand-out, a proxied call, an API list and a page, over and over.
/// `browser` carries the admin's session cookie (for the page); services call with their
/// key alone, as a backend does (a cookie would make the session layer ask the database).
async fn send_traffic(
    browser: reqwest::Client,
    address: String,
    key: String,
    client_id: String,
    traffic: Arc<Traffic>,
) {
    let requests = [
        (
            Kind::Token,
            format!("/api/v1/clients/{client_id}/token"),
            true,
        ),
        (
            Kind::Proxy,
            format!("/api/v1/proxy/{client_id}/api/accounts"),
            true,
        ),
        (Kind::ApiList, "/api/v1/clients".to_string(), true),
        (Kind::Page, "/admin/clients".to_string(), false),
    ];
    let service = reqwest::Client::new();
    while !traffic.stop.load(Ordering::SeqCst) {
        for (kind, path, keyed) in &requests {
            let phase = traffic.phase();
            let url = format!("{address}{path}");
            let request = if *keyed {
                service.get(url).bearer_auth(&key)
            } else {
                browser.get(url)
            }
            .timeout(Duration::from_secs(60));
            let started = Instant::now();
            let (status, body) = match request.send().await {
                Ok(response) => (
                    response.status().as_u16(),
                    response.text().await.unwrap_or_default(),
                ),
                Err(e) => (0, e.to_string()),
            };
            let answer = Answer {
                phase,
                kind: *kind,
                status,
                took: started.elapsed(),
                body,
            };
            traffic.answers.lock().unwrap().push(answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn outage_length() -> Duration {
    let secs = std::env::var("OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_thirty_seconds_under_traffic() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let mut admin = diesel::PgConnection::establish(&cluster.url("postgres")).unwrap();
    diesel::sql_query("CREATE DATABASE connecthub")
        .execute(&mut admin)
        .unwrap();
    drop(admin);
    let host = spawn_app(Backend::Sqlite).await;
    // Hand-outs after the first are audited a window later: this test counts them sooner.
    let settings = [
        ("SERVICE_CACHE_SECS", "300"),
        ("LOG_LEVEL", "info"),
        ("AUDIT_HANDOUT_WINDOW_SECS", "1"),
    ];
    let mut process = spawn_process_on(&cluster.url("connecthub"), &host, &settings).await;
    let app = &process.app;
    app.login_as(Role::Admin).await;
    assert_eq!(
        location(&app.connect("klaviyo", Some("AcmeK1")).await),
        "/admin/clients"
    );
    let client_id = app.clients().await.remove(0).id;
    let key = app
        .api_key(&[Scope::TokensRead, Scope::Proxy, Scope::ClientsRead])
        .await;

    let traffic = Arc::new(Traffic::default());
    let sender = tokio::spawn(send_traffic(
        app.client.clone(),
        app.address.clone(),
        key.clone(),
        client_id.clone(),
        traffic.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    traffic.phase.store(1, Ordering::SeqCst);
    cluster.stop_immediately();
    tokio::time::sleep(outage_length()).await;
    cluster.start_again();
    let restarted = Instant::now();
    traffic.phase.store(2, Ordering::SeqCst);
    let recovered = wait_for_list(app, &key).await;
    eprintln!(
        "answers again {} ms after the restart",
        recovered.as_millis()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    traffic.stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    eprintln!("{}", traffic.summary());

    assert_observed(&traffic);
    assert!(restarted.elapsed() < Duration::from_secs(60));
    assert_nothing_lost(&process.app, &traffic).await;
    assert!(process.running(), "the process is still up");
    let output = process.output();
    assert!(!output.contains("panicked"), "no panic:\n{output}");
}

/// What a caller saw before, during and after the outage.
fn assert_observed(traffic: &Traffic) {
    let answers = traffic.answers.lock().unwrap();
    for a in answers.iter() {
        assert!(
            a.took < REQUEST_LIMIT,
            "{:?} {:?} took {:?}",
            a.phase,
            a.kind,
            a.took
        );
        assert!(
            [200, 503].contains(&a.status),
            "{:?} {:?}: {} {}",
            a.phase,
            a.kind,
            a.status,
            a.body
        );
        if a.status == 503 && a.kind == Kind::Page {
            assert!(
                a.body
                    .contains("the database is unavailable; try again later"),
                "{}",
                a.body
            );
        } else if a.status == 503 {
            let body: serde_json::Value = serde_json::from_str(&a.body).expect("JSON");
            assert_eq!(body["error"], "service_unavailable", "{body}");
        }
    }
    drop(answers);
    for kind in [Kind::Token, Kind::Proxy, Kind::ApiList, Kind::Page] {
        assert!(
            traffic.count(Phase::Before, kind, 200) > 0,
            "{kind:?} worked before"
        );
        assert!(
            traffic.count(Phase::Back, kind, 200) > 0,
            "{kind:?} works again"
        );
    }
    // Cached hand-outs (and proxied calls with them) never needed the database.
    for kind in [Kind::Token, Kind::Proxy] {
        assert_eq!(
            traffic.count(Phase::Down, kind, 503),
            0,
            "{kind:?} kept working"
        );
        assert!(traffic.count(Phase::Down, kind, 200) > 0);
    }
    for kind in [Kind::ApiList, Kind::Page] {
        assert!(
            traffic.count(Phase::Down, kind, 503) > 0,
            "{kind:?} said 503"
        );
    }
}

/// The audit entries of every hand-out and the usage rows of every proxied call, counted
/// in memory while the database was gone, were written once it was back.
async fn assert_nothing_lost(app: &TestApp, traffic: &Traffic) {
    let served: u64 = [Phase::Before, Phase::Down, Phase::Back]
        .iter()
        .map(|p| traffic.count(*p, Kind::Token, 200) as u64)
        .sum();
    let proxied: u64 = [Phase::Before, Phase::Down, Phase::Back]
        .iter()
        .map(|p| traffic.count(*p, Kind::Proxy, 200) as u64)
        .sum();
    let started = Instant::now();
    let (audited, usage) = loop {
        let (audited, usage) = written(app).await;
        if (audited, usage) == (served, proxied + ACME_CONNECT_CALLS)
            || started.elapsed() > Duration::from_secs(10)
        {
            break (audited, usage);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("hand-outs {served}, audited {audited}; proxied {proxied}, usage rows {usage}");
    assert_eq!(audited, served, "every hand-out audited");
    assert_eq!(
        usage,
        proxied + ACME_CONNECT_CALLS,
        "every proxied call metered"
    );
}

/// Hand-outs the audit log counts, and calls usage counts.
async fn written(app: &TestApp) -> (u64, u64) {
    use connecthub::db::schema::{api_usage_rollup, audit_log};
    // A pool of its own: the test's pool still holds connections from before the outage.
    let url = connecthub::db::DatabaseUrl::parse(&app.database_url).unwrap();
    let pool = connecthub::db::connect(&url, 1).expect("the database is back");
    let counted = connecthub::db::run(&pool, |conn| {
        let details: Vec<String> = audit_log::table
            .filter(audit_log::action.eq("token_handed_out"))
            .select(audit_log::details)
            .load(conn)?;
        let audited = details
            .iter()
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|d| d["count"].as_u64())
            .sum();
        let usage: Option<i64> = api_usage_rollup::table
            .filter(api_usage_rollup::grouping_set.eq("full_hour"))
            .select(diesel::dsl::sum(api_usage_rollup::calls))
            .first(conn)?;
        Ok::<_, diesel::result::Error>((audited, usage.unwrap_or(0) as u64))
    })
    .await;
    counted.expect("count what was written")
}

/// Waits until the API lists clients again; how long that took.
async fn wait_for_list(app: &TestApp, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let response = app
            .client
            .get(app.url("/api/v1/clients"))
            .bearer_auth(key)
            .send()
            .await;
        if response.is_ok_and(|r| r.status() == 200) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the pool did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
