//! A sync interrupted by a crash (SIGKILL of a real `connecthub demo`) resumes from its
//! checkpoint after the restart: every record once, and the pages already written are not
//! asked for again.

use crate::helpers::{spawn_app_with, spawn_process, Backend};
use crate::syncs::{api, counts, model_state, sync_key, volume, KLAVIYO_ACCOUNT};
use connecthub::auth::users::Role;
use connecthub::db::schema::sync_records;
use diesel::prelude::*;
use serde_json::json;
use std::time::Duration;

crate::with_each_backend!(a_sync_killed_mid_run_resumes_from_its_checkpoint);

async fn written(app: &crate::helpers::TestApp) -> i64 {
    app.db(|conn| sync_records::table.count().get_result::<i64>(conn))
        .await
}

const PROFILES: i64 = 20_000;
const PAGES: i64 = PROFILES / 100;

async fn a_sync_killed_mid_run_resumes_from_its_checkpoint(backend: Backend) {
    let host = spawn_app_with(Backend::Sqlite, &[]).await;
    volume(&host, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "count": PROFILES})).await;
    let settings = [("JOB_LEASE", "1s"), ("SYNC_SCHEDULE", "false")];
    let mut process = spawn_process(backend, &host, &settings).await;
    let app = &process.app;
    app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some(KLAVIYO_ACCOUNT)).await;
    let client = app.clients().await.remove(0).id;
    let key = app.api_key(&sync_key()).await;
    let calls_before = host.sandbox_stats("klaviyo").await["api_calls"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/clients/{client}/syncs/profiles/run");
    assert_eq!(api(app, &key, reqwest::Method::POST, &path).await.0, 202);
    let mut before_crash = 0;
    for _ in 0..1000 {
        before_crash = written(app).await;
        if before_crash >= PROFILES / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        (PROFILES / 4..PROFILES).contains(&before_crash),
        "{before_crash}"
    );
    process.crash();
    process.restart().await;
    let app = &process.app;
    let mut state = model_state(app, &key, &client, "profiles").await;
    for _ in 0..1200 {
        if state["status"] == "idle" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = model_state(app, &key, &client, "profiles").await;
    }
    let jobs: Vec<(String, i32, Option<String>)> = app
        .db(|conn| {
            use connecthub::db::schema::jobs;
            jobs::table
                .select((jobs::state, jobs::attempts, jobs::last_error))
                .load(conn)
        })
        .await;
    assert_eq!(state["last_outcome"], "succeeded", "{state} {jobs:?}");
    assert_eq!(counts(&state), (PROFILES, 0, 0), "{state}");
    let ids: Vec<String> = app
        .db(|conn| {
            sync_records::table
                .select(sync_records::external_id)
                .load(conn)
        })
        .await;
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    let ids = distinct.len() as i64;
    assert_eq!((written(app).await, ids), (PROFILES, PROFILES));
    // Resumed, not restarted: at most the page in flight at the crash is read twice.
    let calls = host.sandbox_stats("klaviyo").await["api_calls"]
        .as_i64()
        .unwrap()
        - calls_before;
    assert!(
        (PAGES..=PAGES + 2).contains(&calls),
        "{calls} pages read for {PAGES}"
    );
}
