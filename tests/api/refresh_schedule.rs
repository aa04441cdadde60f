//! When tokens are refreshed: about once per lifetime whatever the lifetime (2 s, 60 s,
//! 10 minutes, never), the same rule for hand-outs and the background refresher, and an
//! idle hub that leaves its database alone.

use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::credentials;
use diesel::prelude::*;
use std::time::{Duration, Instant};

with_each_backend!(
    two_second_tokens_are_refreshed_once_a_second_not_in_a_loop,
    sixty_second_tokens_are_refreshed_once_per_half_life_on_demand,
    an_idle_hub_with_tokens_not_yet_due_writes_nothing,
    a_proxied_call_is_not_retried_with_a_token_that_expires_meanwhile,
);

async fn connected_app(backend: Backend, ttl_secs: &str) -> (TestApp, String) {
    let app = spawn_app_with(backend, &[("SANDBOX_ACCESS_TOKEN_TTL_SECS", ttl_secs)]).await;
    app.login_as(Role::Admin).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    let id = app.clients().await.remove(0).id;
    (app, id)
}

async fn refresh_calls(app: &TestApp) -> i64 {
    app.sandbox_stats("klaviyo").await["token_calls"]["refresh_token"]
        .as_i64()
        .unwrap()
}

async fn refreshed_entries(app: &TestApp) -> usize {
    let actions = app.audit_actions().await;
    actions.iter().filter(|a| *a == "token_refreshed").count()
}

/// The `token_refreshed` entries and the sandbox's refresh count, read at a moment with no
/// refresh in flight: the refresher goes on refreshing a 2-s token while they are read,
/// and the sandbox counts a refresh before its entry is written. A count read on either
/// side of a landing refresh differs by one; a missing entry never settles.
async fn settled_counts(app: &TestApp) -> (i64, i64) {
    let mut last = (0, 0);
    for _ in 0..30 {
        let before = refresh_calls(app).await;
        let entries = refreshed_entries(app).await as i64;
        let after = refresh_calls(app).await;
        if before == after && entries == after {
            return (entries, after);
        }
        last = (entries, after);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// Hands the token out every 50 ms for `period`; each answer must come soon and be a token
/// the provider accepts at that moment.
async fn hand_out_for(app: &TestApp, key: &str, client_id: &str, period: Duration) -> usize {
    let started = Instant::now();
    let mut handed_out = 0;
    while started.elapsed() < period {
        let asked = Instant::now();
        let response = app.service_token(key, client_id).await;
        assert_eq!(response.status(), 200);
        // A hand-out that meets the background refresher's claim waits for its refresh,
        // never for its 30-s lease to run out (they once waited for each other).
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "hand-out {handed_out} took {:?}",
            asked.elapsed()
        );
        let body: serde_json::Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_string();
        assert!(
            app.sandbox_token_active("klaviyo", &token).await,
            "hand-out {handed_out} gave a token the provider refuses"
        );
        handed_out += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handed_out
}

/// With the default 300-s margin a 2-s token is due at half its life: one refresh a second
/// (the refresher and the hand-outs share it), each rotating the refresh token. Before the
/// schedule, a token shorter than the margin was due again the moment it was stored:
/// thousands of refreshes a second.
async fn two_second_tokens_are_refreshed_once_a_second_not_in_a_loop(backend: Backend) {
    let (app, client_id) = connected_app(backend, "2").await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let started = Instant::now();
    let handed_out = hand_out_for(&app, &key, &client_id, Duration::from_secs(6)).await;
    // Under load each hand-out (and its check at the sandbox) takes longer and the window
    // stretches, so the bounds follow the time actually spent; a loop would still show as
    // hundreds of refreshes.
    let seconds = started.elapsed().as_secs_f64();
    assert!(handed_out > 10, "{handed_out} hand-outs in {seconds:.1} s");
    let (entries, calls) = settled_counts(&app).await;
    assert!(
        calls >= 3 && (calls as f64) <= 1.5 * seconds + 3.0,
        "about one refresh per second over {seconds:.1} s, not one per request or pass: {calls}"
    );
    assert_eq!(entries, calls, "one audit entry each");
    let client = app.clients().await.remove(0);
    assert_eq!(client.status.as_str(), "active", "every rotation was kept");
}

/// A 60-s token is handed out as it is until half its life has passed, then refreshed
/// once — not on every request.
async fn sixty_second_tokens_are_refreshed_once_per_half_life_on_demand(backend: Backend) {
    let (app, client_id) = connected_app(backend, "60").await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let id = client_id.clone();
    let (expires_at, refresh_at) = stored_schedule(&app, &client_id).await;
    let lead = expires_at.unwrap() - refresh_at.unwrap();
    assert_eq!(lead.num_seconds(), 30, "due at half its life");
    hand_out_for(&app, &key, &client_id, Duration::from_secs(1)).await;
    assert_eq!(
        refresh_calls(&app).await,
        0,
        "not due yet: handed out as it is"
    );

    // Half its life has passed.
    app.db(move |conn| {
        diesel::update(credentials::table.find(id))
            .set(credentials::refresh_at.eq(connecthub::db::now() - chrono::TimeDelta::seconds(1)))
            .execute(conn)
    })
    .await;
    hand_out_for(&app, &key, &client_id, Duration::from_secs(2)).await;
    assert_eq!(
        refresh_calls(&app).await,
        1,
        "one refresh for all those hand-outs"
    );
    let (expires_at, refresh_at) = stored_schedule(&app, &client_id).await;
    let due_in = refresh_at.unwrap() - connecthub::db::now();
    assert!(
        (25..=30).contains(&due_in.num_seconds()),
        "the new token is due in about 30 s: {due_in}"
    );
    assert!(expires_at.unwrap() > refresh_at.unwrap());
}

async fn stored_schedule(
    app: &TestApp,
    client_id: &str,
) -> (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>) {
    let id = client_id.to_string();
    app.db(move |conn| {
        credentials::table
            .find(id)
            .select((credentials::expires_at, credentials::refresh_at))
            .first(conn)
    })
    .await
}

/// Ten-minute tokens are not due for five minutes: the refresher sleeps, and nothing is
/// written. (Before, it picked every token expiring within 15 minutes, found it needed no
/// refresh, and took and released a lease once a second.)
async fn an_idle_hub_with_tokens_not_yet_due_writes_nothing(backend: Backend) {
    let (app, _client_id) = connected_app(backend, "600").await;
    // Let the writes of connecting (flushed once a second) land.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut watcher = WriteWatcher::new(&app).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !watcher.saw_writes(&app).await,
        "an idle hub wrote to its database"
    );
    assert_eq!(refresh_calls(&app).await, 0);
}

/// Notices writes to an app's database: SQLite's `data_version` (changes when another
/// connection commits), and on PostgreSQL the row versions (`xmin`) of the tables the
/// refresher touches.
enum WriteWatcher {
    Sqlite(diesel::SqliteConnection, i64),
    Postgres(String),
}

#[derive(diesel::QueryableByName)]
struct DataVersion {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    data_version: i64,
}

#[derive(diesel::QueryableByName)]
struct RowVersions {
    #[diesel(sql_type = diesel::sql_types::Text)]
    versions: String,
}

const ROW_VERSIONS: &str = "SELECT concat( \
    (SELECT string_agg(xmin::text, ',') FROM credentials), ';', \
    (SELECT string_agg(xmin::text, ',') FROM clients), ';', \
    (SELECT count(*) FROM audit_log), ';', \
    (SELECT count(*) FROM sessions)) AS versions";

impl WriteWatcher {
    async fn new(app: &TestApp) -> Self {
        match app.backend {
            Backend::Sqlite => {
                let mut conn = diesel::SqliteConnection::establish(&app.database_url).unwrap();
                let version = Self::data_version(&mut conn);
                Self::Sqlite(conn, version)
            }
            Backend::Postgres => Self::Postgres(Self::row_versions(app).await),
        }
    }

    fn data_version(conn: &mut diesel::SqliteConnection) -> i64 {
        diesel::sql_query("PRAGMA data_version")
            .get_result::<DataVersion>(conn)
            .unwrap()
            .data_version
    }

    async fn row_versions(app: &TestApp) -> String {
        app.db(|conn| diesel::sql_query(ROW_VERSIONS).get_result::<RowVersions>(conn))
            .await
            .versions
    }

    async fn saw_writes(&mut self, app: &TestApp) -> bool {
        match self {
            Self::Sqlite(conn, before) => Self::data_version(conn) != *before,
            Self::Postgres(before) => Self::row_versions(app).await != *before,
        }
    }
}

/// The provider asks for 3 s of patience but the token lives 2 s: waiting and retrying
/// with it would earn a 401, which reads as a revoked grant and marked the client
/// "Reconnect needed". The caller gets the 429 and its Retry-After instead.
async fn a_proxied_call_is_not_retried_with_a_token_that_expires_meanwhile(backend: Backend) {
    let (app, client_id) = connected_app(backend, "2").await;
    let key = app.api_key(&[Scope::Proxy]).await;
    app.sandbox_faults(
        serde_json::json!({"provider": "klaviyo", "rate_limit_next": 1, "retry_after_secs": 3}),
    )
    .await;
    let response = app.proxy_get(&key, &client_id, "api/accounts").await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        crate::helpers::header(response.headers(), "retry-after"),
        "3"
    );
    let client = app.clients().await.remove(0);
    assert_eq!(client.status.as_str(), "active", "{:?}", client.last_error);
    let again = app.proxy_get(&key, &client_id, "api/accounts").await;
    assert_eq!(again.status(), 200, "the next call goes through");
}
