//! A provider webhook about a synced model queues an incremental run of it (issue 15):
//! the sandbox signs the webhooks as Klaviyo and Kustomer do, the run happens and the
//! changed records show in the records API; a run already waiting is not doubled (but is
//! no longer skipped as a scheduled one), and a connection that needs reauthorisation
//! gets none. Both databases.

use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::operations::{klaviyo_client, kustomer_client};
use crate::syncs::{api, counts, model_state, sync_key, volume, KLAVIYO_ACCOUNT};
use connecthub::db::schema::{clients, jobs, sync_runs};
use diesel::prelude::*;
use serde_json::{json, Value};
use std::time::Duration;

crate::with_each_backend!(
    a_klaviyo_profile_webhook_runs_the_profiles_sync_once_per_waiting_run,
    a_kustomer_conversation_webhook_runs_the_conversations_sync,
);

const KLAVIYO_SECRET: &str = "klaviyo-webhook-secret-for-sync-tests";
const KUSTOMER_SECRET: &str = "kustomer-webhook-secret-for-sync-tests";

async fn app_with_secrets(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        &[
            ("KLAVIYO_WEBHOOK_SECRET", KLAVIYO_SECRET),
            ("KUSTOMER_WEBHOOK_SECRET", KUSTOMER_SECRET),
        ],
    )
    .await
}

/// The sandbox sends a signed webhook of this event type; answers connecthub's answer.
async fn webhook(app: &TestApp, provider: &str, account: &str, event: &str) -> Value {
    let secret = match provider {
        "klaviyo" => KLAVIYO_SECRET,
        _ => KUSTOMER_SECRET,
    };
    let body = json!({"provider": provider, "url": app.url(&format!("/webhooks/{provider}")),
        "secret": secret, "account_id": account, "event": event});
    let response = app
        .client
        .post(app.url("/sandbox/_control/webhooks"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sent: Value = response.json().await.unwrap();
    assert_eq!(sent["status"], 202, "{sent}");
    sent["answer"].clone()
}

fn queued(answer: &Value) -> Vec<(String, String)> {
    answer["syncs_queued"]
        .as_array()
        .unwrap_or_else(|| panic!("no syncs_queued in {answer}"))
        .iter()
        .map(|q| {
            let text = |k: &str| q[k].as_str().unwrap().to_string();
            (text("connection_id"), text("model"))
        })
        .collect()
}

/// The states of the `sync.run` jobs of one connection and model, oldest first.
async fn run_jobs(app: &TestApp, client: &str, model: &str) -> Vec<String> {
    let key = format!("sync:{client}:{model}");
    app.db(move |conn| {
        jobs::table
            .filter(jobs::queue_key.eq(key))
            .order(jobs::id.asc())
            .select(jobs::state)
            .load(conn)
    })
    .await
}

async fn wait_for_jobs_done(app: &TestApp, client: &str, model: &str, count: usize) {
    for _ in 0..300 {
        let states = run_jobs(app, client, model).await;
        if states.len() == count && states.iter().all(|s| s == "done") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states = run_jobs(app, client, model).await;
    panic!("{model} runs never all ended: {states:?}");
}

async fn records_changed_after(
    app: &TestApp,
    key: &str,
    client: &str,
    model: &str,
    after: &str,
) -> Vec<Value> {
    let path =
        format!("/api/v1/clients/{client}/records?model={model}&limit=1000&modified_after={after}");
    let (status, page) = api(app, key, reqwest::Method::GET, &path).await;
    assert_eq!(status, 200, "{page}");
    page["records"].as_array().unwrap().clone()
}

async fn a_klaviyo_profile_webhook_runs_the_profiles_sync_once_per_waiting_run(backend: Backend) {
    let app = app_with_secrets(backend).await;
    volume(&app, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "count": 200})).await;
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&sync_key()).await;
    let first = crate::syncs::run_and_wait(&app, &key, &client, "profiles", false).await;
    assert_eq!(counts(&first), (200, 0, 0));
    let jobs_before = run_jobs(&app, &client, "profiles").await.len();

    // An event that concerns no synced model queues nothing.
    let opened = webhook(
        &app,
        "klaviyo",
        KLAVIYO_ACCOUNT,
        "event:klaviyo.opened_email",
    )
    .await;
    assert!(queued(&opened).is_empty());

    tokio::time::sleep(Duration::from_millis(20)).await;
    let after_full = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    volume(&app, json!({"provider": "klaviyo", "account": KLAVIYO_ACCOUNT, "model": "profiles", "change": 5})).await;
    // The run's first page waits out a 429, so it stays running while more webhooks come.
    app.sandbox_faults(json!({"provider": "klaviyo", "rate_limit_next": 1, "retry_after_secs": 3}))
        .await;
    let topic = "event:klaviyo.unsubscribed_from_email_marketing";
    let answer = webhook(&app, "klaviyo", KLAVIYO_ACCOUNT, topic).await;
    assert_eq!(queued(&answer), [(client.clone(), "profiles".to_string())]);
    for _ in 0..100 {
        if model_state(&app, &key, &client, "profiles").await["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        model_state(&app, &key, &client, "profiles").await["status"],
        "running"
    );
    // While it runs, the scheduler queues the next run behind it; a webhook then adds
    // none, but makes the waiting run its own: a scheduled run finding the sync not due
    // (the running one just made it so) would do nothing.
    let request = connecthub::syncs::RunRequest {
        client_id: client.clone(),
        model: "profiles".into(),
        full: false,
        scheduled: true,
    };
    let scheduled = app
        .db(move |conn| connecthub::syncs::request_run(conn, &request))
        .await;
    assert!(scheduled, "queued behind the running run");
    for _ in 0..2 {
        let again = webhook(&app, "klaviyo", KLAVIYO_ACCOUNT, topic).await;
        assert!(queued(&again).is_empty(), "{again}");
    }
    assert_eq!(
        run_jobs(&app, &client, "profiles").await[jobs_before..],
        ["running", "queued"]
    );
    let key_of_run = format!("sync:{client}:profiles");
    let waiting: String = app
        .db(move |conn| {
            jobs::table
                .filter(jobs::queue_key.eq(key_of_run))
                .filter(jobs::state.eq("queued"))
                .select(jobs::payload)
                .first(conn)
        })
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&waiting).unwrap()["scheduled"],
        false
    );

    wait_for_jobs_done(&app, &client, "profiles", jobs_before + 2).await;
    assert_eq!(app.sandbox_stats("klaviyo").await["rate_limited"], 1);
    let state = model_state(&app, &key, &client, "profiles").await;
    assert_eq!(state["last_outcome"], "succeeded", "{state}");
    // The full run, the webhook's and the one behind it all ran.
    let runs: i64 = app
        .db(|conn| {
            sync_runs::table
                .filter(sync_runs::model.eq("profiles"))
                .count()
                .get_result(conn)
        })
        .await;
    assert_eq!(runs, 3);
    let changed = records_changed_after(&app, &key, &client, "profiles", &after_full).await;
    assert_eq!(changed.len(), 5, "the changed profiles: {changed:?}");
    assert!(changed.iter().all(|r| r["payload"]["type"] == "profile"));

    // A connection that needs reauthorisation gets no run.
    let id = client.clone();
    app.db(move |conn| {
        diesel::update(clients::table.find(id))
            .set(clients::status.eq("needs_reauth"))
            .execute(conn)
    })
    .await;
    let paused = webhook(&app, "klaviyo", KLAVIYO_ACCOUNT, topic).await;
    assert_eq!(paused["connection_ids"], json!([client]));
    assert!(queued(&paused).is_empty());
    assert_eq!(
        run_jobs(&app, &client, "profiles").await.len(),
        jobs_before + 2
    );
}

async fn a_kustomer_conversation_webhook_runs_the_conversations_sync(backend: Backend) {
    let app = app_with_secrets(backend).await;
    let client = kustomer_client(&app).await;
    let org = app
        .clients()
        .await
        .into_iter()
        .find(|c| c.id == client)
        .unwrap()
        .provider_account_id;
    volume(
        &app,
        json!({"provider": "kustomer", "account": org, "model": "conversations", "count": 40}),
    )
    .await;
    let key = app.api_key(&sync_key()).await;
    let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    let answer = webhook(&app, "kustomer", &org, "kustomer.conversation.update").await;
    assert_eq!(
        queued(&answer),
        [(client.clone(), "conversations".to_string())]
    );
    wait_for_jobs_done(&app, &client, "conversations", 1).await;
    let state = model_state(&app, &key, &client, "conversations").await;
    assert_eq!(
        (state["last_outcome"].clone(), counts(&state)),
        (json!("succeeded"), (40, 0, 0)),
        "{state}"
    );
    let records = records_changed_after(&app, &key, &client, "conversations", &before).await;
    assert_eq!(records.len(), 40);
    assert_eq!(run_jobs(&app, &client, "customers").await.len(), 0);

    let customer = webhook(&app, "kustomer", &org, "kustomer.customer.create").await;
    assert_eq!(
        queued(&customer),
        [(client.clone(), "customers".to_string())]
    );
}
