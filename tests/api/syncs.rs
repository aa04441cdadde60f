//! Syncs and records (issue 15): runs against the sandbox's record volume, over real HTTP,
//! on both databases. Exact added/updated/deleted counts, 429s waited out, needs_reauth
//! pausing, the records API's pages while a sync writes, the service API's refusals, and
//! bad sync definitions stopping start-up.

use crate::helpers::TestApp;
use crate::on_both_backends;
use crate::operations::{klaviyo_client, kustomer_client};
use connecthub::api_keys::Scope;
use connecthub::db::schema::{sync_records, webhook_events};
use diesel::prelude::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

on_both_backends!(
    a_full_run_then_incremental_and_full_runs_count_exactly,
    rate_limited_pages_are_waited_out_and_the_run_goes_on,
    the_records_api_pages_ten_thousand_records_without_gap_while_a_sync_writes,
    the_sync_api_refuses_bad_input_and_changes_nothing,
    a_disconnect_deletes_the_connections_records,
    two_instances_never_run_the_same_sync_at_once,
);

pub(crate) const KLAVIYO_ACCOUNT: &str = "AcmeK1";
/// The Acme Support org (the API key of `kustomer_client`).
const KUSTOMER_ORG: &str = "5f3a1c9e8b2d4a0017c6e101";

pub(crate) async fn volume(app: &TestApp, body: Value) -> Value {
    let response = app
        .client
        .post(app.url("/sandbox/_control/volume"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub(crate) fn sync_key() -> Vec<Scope> {
    vec![Scope::RecordsRead, Scope::SyncsWrite]
}

pub(crate) async fn api(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    path: &str,
) -> (u16, Value) {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn model_state(app: &TestApp, key: &str, client: &str, model: &str) -> Value {
    let (status, body) = api(
        app,
        key,
        reqwest::Method::GET,
        &format!("/api/v1/clients/{client}/syncs"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["syncs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["model"] == model)
        .cloned()
        .unwrap_or_else(|| panic!("no {model} in {body}"))
}

/// Starts a run and waits for it to end; answers the model's state afterwards.
pub(crate) async fn run_and_wait(
    app: &TestApp,
    key: &str,
    client: &str,
    model: &str,
    full: bool,
) -> Value {
    let before = model_state(app, key, client, model).await["last_finished_at"].clone();
    let query = if full { "?full=true" } else { "" };
    let path = format!("/api/v1/clients/{client}/syncs/{model}/run{query}");
    let (status, body) = api(app, key, reqwest::Method::POST, &path).await;
    assert_eq!(
        (status, body["queued"].clone()),
        (202, json!(true)),
        "{body}"
    );
    for _ in 0..600 {
        let state = model_state(app, key, client, model).await;
        if state["last_finished_at"] != before && state["status"] != "running" {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the {model} run did not end");
}

pub(crate) fn counts(state: &Value) -> (i64, i64, i64) {
    let n = |k: &str| state[k].as_i64().unwrap();
    (n("added"), n("updated"), n("deleted"))
}

/// Every record of a model through the records API, page by page.
async fn all_records(app: &TestApp, key: &str, client: &str, query: &str) -> Vec<Value> {
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let path = format!("/api/v1/clients/{client}/records?{query}{after}");
        let (status, page) = api(app, key, reqwest::Method::GET, &path).await;
        assert_eq!(status, 200, "{page}");
        records.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return records,
        }
    }
}

async fn events_of(app: &TestApp, event_type: &'static str) -> Vec<Value> {
    let bodies: Vec<String> = app
        .db(move |conn| {
            webhook_events::table
                .filter(webhook_events::event_type.eq(event_type))
                .order(webhook_events::created_at.asc())
                .select(webhook_events::body)
                .load(conn)
        })
        .await;
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

async fn last_write(app: &TestApp) -> Option<chrono::NaiveDateTime> {
    app.db(|conn| {
        sync_records::table
            .select(diesel::dsl::max(sync_records::last_modified))
            .first(conn)
    })
    .await
}

async fn a_full_run_then_incremental_and_full_runs_count_exactly(app: TestApp) {
    volume(&app, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "count": 250})).await;
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&sync_key()).await;

    let first = run_and_wait(&app, &key, &client, "profiles", false).await;
    assert_eq!(first["last_outcome"], "succeeded", "{first}");
    assert_eq!(counts(&first), (250, 0, 0));
    let records = all_records(&app, &key, &client, "model=profiles&limit=100").await;
    let ids: HashSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!((records.len(), ids.len()), (250, 250));
    assert_eq!(records[0]["payload"]["type"], "profile");

    // Nothing changed: nothing is written.
    let written = last_write(&app).await;
    let idle = run_and_wait(&app, &key, &client, "profiles", false).await;
    assert_eq!(counts(&idle), (0, 0, 0));
    assert_eq!(last_write(&app).await, written);

    let changed = volume(&app, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "change": 30, "delete": 10})).await;
    assert_eq!(
        (changed["changed"].as_i64(), changed["deleted"].as_i64()),
        (Some(30), Some(10))
    );
    let calls_before = app.sandbox_stats("klaviyo").await["api_calls"]
        .as_i64()
        .unwrap();
    let incremental = run_and_wait(&app, &key, &client, "profiles", false).await;
    assert_eq!(counts(&incremental), (0, 30, 0), "{incremental}");
    // Only what changed was asked for: one page of 100.
    let calls = app.sandbox_stats("klaviyo").await["api_calls"]
        .as_i64()
        .unwrap()
        - calls_before;
    assert_eq!(calls, 1);

    let full = run_and_wait(&app, &key, &client, "profiles", true).await;
    assert_eq!(counts(&full), (0, 0, 10), "{full}");
    let live = all_records(&app, &key, &client, "model=profiles").await;
    let with_deleted =
        all_records(&app, &key, &client, "model=profiles&include_deleted=true").await;
    assert_eq!((live.len(), with_deleted.len()), (240, 250));
    assert_eq!(
        with_deleted
            .iter()
            .filter(|r| r["deleted_at"].is_string())
            .count(),
        10
    );
    let versions = live
        .iter()
        .filter(|r| r["payload"]["attributes"]["properties"]["version"] == 2)
        .count();
    assert_eq!(versions, 30);

    let events = events_of(&app, "sync.succeeded").await;
    assert_eq!(events.len(), 4);
    let last = &events[3]["data"];
    assert_eq!(
        (
            last["model"].clone(),
            last["deleted"].clone(),
            last["connection_id"].clone()
        ),
        (json!("profiles"), json!(10), json!(client))
    );
    assert!(last["duration_ms"].is_i64());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"connecthub_sync_runs_total{model="profiles",outcome="succeeded",provider="klaviyo"} 4"#), "{metrics}");
    assert!(metrics.contains(
        r#"connecthub_sync_records_written_total{model="profiles",provider="klaviyo"} 290"#
    ));
}

async fn rate_limited_pages_are_waited_out_and_the_run_goes_on(app: TestApp) {
    volume(&app, json!({"provider": "kustomer", "account": KUSTOMER_ORG, "model": "customers", "count": 350})).await;
    let client = kustomer_client(&app).await;
    let key = app.api_key(&sync_key()).await;
    // More 429s in a row than the provider client retries on its own (3).
    app.sandbox_faults(
        json!({"provider": "kustomer", "rate_limit_next": 6, "retry_after_secs": 1}),
    )
    .await;
    let state = run_and_wait(&app, &key, &client, "customers", false).await;
    assert_eq!(state["last_outcome"], "succeeded", "{state}");
    assert_eq!(counts(&state), (350, 0, 0));
    assert_eq!(app.sandbox_stats("kustomer").await["rate_limited"], 6);
    assert!(
        state["last_duration_ms"].as_i64().unwrap() >= 5_000,
        "{state}"
    );
    let records = all_records(&app, &key, &client, "model=customers&limit=1000").await;
    assert_eq!(records.len(), 350);
}

async fn the_records_api_pages_ten_thousand_records_without_gap_while_a_sync_writes(app: TestApp) {
    volume(&app, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "count": 10_000})).await;
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&sync_key()).await;
    let first = run_and_wait(&app, &key, &client, "profiles", false).await;
    assert_eq!(counts(&first), (10_000, 0, 0));
    volume(&app, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "change": 4_000})).await;
    let path = format!("/api/v1/clients/{client}/syncs/profiles/run");
    assert_eq!(api(&app, &key, reqwest::Method::POST, &path).await.0, 202);
    let records = all_records(&app, &key, &client, "model=profiles&limit=250").await;
    let ids: HashSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!((records.len(), ids.len()), (10_000, 10_000));
    let mut done = model_state(&app, &key, &client, "profiles").await;
    for _ in 0..1200 {
        if done["status"] == "idle" && done["updated"] == 4_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        done = model_state(&app, &key, &client, "profiles").await;
    }
    assert_eq!(counts(&done), (0, 4_000, 0), "{done}");
}

async fn the_sync_api_refuses_bad_input_and_changes_nothing(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&sync_key()).await;
    let base = format!("/api/v1/clients/{client}");
    for query in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "cursor=%21%21",
        "model=Profiles",
        "modified_after=yesterday",
        "include_deleted=maybe",
    ] {
        let (status, body) = api(
            &app,
            &key,
            reqwest::Method::GET,
            &format!("{base}/records?{query}"),
        )
        .await;
        assert_eq!(
            (status, body["error"].clone()),
            (400, json!("invalid_request")),
            "{query}: {body}"
        );
    }
    let (status, _) = api(
        &app,
        &key,
        reqwest::Method::POST,
        &format!("{base}/syncs/flows/run"),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = api(
        &app,
        &key,
        reqwest::Method::POST,
        &format!("{base}/syncs/profiles/run?full=yes"),
    )
    .await;
    assert_eq!(status, 400);
    let unknown = "/api/v1/clients/67e55044-10b1-426f-9247-bb680e5fe0c8/records";
    assert_eq!(api(&app, &key, reqwest::Method::GET, unknown).await.0, 404);
    let reader = app.api_key(&[Scope::RecordsRead]).await;
    let (status, body) = api(
        &app,
        &reader,
        reqwest::Method::POST,
        &format!("{base}/syncs/profiles/run"),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (403, json!("insufficient_scope"))
    );
    let other = app.api_key(&[Scope::ClientsRead]).await;
    assert_eq!(
        api(
            &app,
            &other,
            reqwest::Method::GET,
            &format!("{base}/records")
        )
        .await
        .0,
        403
    );
    let jobs: i64 = app
        .db(|conn| {
            use connecthub::db::schema::jobs;
            jobs::table
                .filter(jobs::kind.eq("sync.run"))
                .count()
                .get_result(conn)
        })
        .await;
    assert_eq!(jobs, 0);
    let state = model_state(&app, &key, &client, "profiles").await;
    assert_eq!(state["status"], "never_run");
}

async fn a_disconnect_deletes_the_connections_records(app: TestApp) {
    volume(&app, json!({"provider": "kustomer", "account": KUSTOMER_ORG, "model": "conversations", "count": 120})).await;
    let client = kustomer_client(&app).await;
    let key = app.api_key(&sync_key()).await;
    let state = run_and_wait(&app, &key, &client, "conversations", false).await;
    assert_eq!(counts(&state), (120, 0, 0));
    let page = app.get_html(&format!("/admin/clients/{client}")).await;
    assert!(page.contains("its synced records are deleted"));
    assert!(page.contains(r#"id="sync-now-conversations""#), "{page}");
    assert!(page.contains(r#"id="latest-records""#));
    let first_id = "c5f3a1c00000119";
    assert!(page.contains(first_id), "the latest records are listed");
    let listing = app
        .get_html("/admin/syncs?provider=kustomer&status=idle")
        .await;
    assert!(listing.contains("<code>conversations</code>"), "{listing}");
    assert_eq!(app.get("/admin/syncs?status=sleeping").await.status(), 400);
    // "Sync now" queues a run (and the page says so).
    let queued = app
        .post_form(
            &format!("/admin/clients/{client}/syncs/conversations/run"),
            &[],
        )
        .await;
    assert_eq!(queued.status(), 303);
    let state = {
        let mut state = model_state(&app, &key, &client, "conversations").await;
        for _ in 0..300 {
            if state["last_finished_at"] != json!(null)
                && state["status"] == "idle"
                && state["added"] == 0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            state = model_state(&app, &key, &client, "conversations").await;
        }
        state
    };
    assert_eq!(counts(&state), (0, 0, 0), "{state}");
    let response = app
        .post_form(
            &format!("/api/integrations/kustomer/disconnect/{client}"),
            &[],
        )
        .await;
    assert!(response.status().is_redirection() || response.status().is_success());
    let left: i64 = app
        .db(|conn| sync_records::table.count().get_result(conn))
        .await;
    assert_eq!(left, 0);
}

#[test]
fn a_bad_sync_definition_stops_start_up_naming_provider_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("providers.toml");
    std::fs::write(
        &file,
        "[[provider]]\nname = \"acme\"\ndisplay_name = \"Acme\"\nauthorize_url = \"https://a.example/auth\"\n\
         token_url = \"https://a.example/token\"\napi_base_url = \"https://api.a.example\"\n\
         [[provider.sync]]\nmodel = \"deals\"\nendpoint = \"v1/deals\"\npagination = \"next_url\"\nfrequency = \"20s\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .arg("serve")
        .env("DATABASE_URL", dir.path().join("x.db"))
        .env("PUBLIC_URL", "http://localhost:1")
        .env("ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .env("PROVIDERS_FILE", &file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr.trim_end(),
        "error: PROVIDERS_FILE provider acme: sync \"deals\": frequency must be at least 1m"
    );
}

/// Runs asked for on two instances of one database: the second waits for the first (one
/// queue key per connection and model), and the records are written once.
async fn two_instances_never_run_the_same_sync_at_once(app: TestApp) {
    use connecthub::db::schema::jobs;
    volume(&app, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "count": 3_000})).await;
    let client = klaviyo_client(&app).await;
    let other = crate::helpers::second_instance(&app).await;
    let key = app.api_key(&sync_key()).await;
    let path = format!("/api/v1/clients/{client}/syncs/profiles/run?full=true");
    assert_eq!(api(&app, &key, reqwest::Method::POST, &path).await.0, 202);
    // Once the first run is under way, the second instance is asked for another.
    for _ in 0..200 {
        if model_state(&app, &key, &client, "profiles").await["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = api(&other, &key, reqwest::Method::POST, &path).await;
    assert_eq!(
        (status, body["queued"].clone()),
        (202, json!(true)),
        "{body}"
    );
    let mut most_running = 0;
    let mut finished = 0;
    for _ in 0..1500 {
        let states: Vec<String> = app
            .db(|conn| {
                jobs::table
                    .filter(jobs::kind.eq("sync.run"))
                    .select(jobs::state)
                    .load(conn)
            })
            .await;
        most_running = most_running.max(states.iter().filter(|s| *s == "running").count());
        finished = states.iter().filter(|s| *s == "done").count();
        if finished == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((finished, most_running), (2, 1));
    let state = model_state(&app, &key, &client, "profiles").await;
    assert_eq!(
        counts(&state),
        (0, 0, 0),
        "the second run found everything written: {state}"
    );
    let records = all_records(&app, &key, &client, "model=profiles&limit=1000").await;
    assert_eq!(records.len(), 3_000);
    assert_eq!(events_of(&app, "sync.succeeded").await.len(), 2);
}
