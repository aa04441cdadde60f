//! The sync scheduler's pass acts on what there is to do and nothing else: each new
//! connection's syncs get one run, syncs whose run waits or is not due get none, a
//! connection that needs reauthorisation has its syncs paused, a reconnected one resumes
//! with a run that is not skipped, and a disconnected one is left alone. On a database
//! with no app, whose job worker would take the queued runs meanwhile.

use crate::helpers::{Backend, BareDatabase, TEST_KEY};
use crate::with_each_backend;
use connecthub::config::EncryptionKey;
use connecthub::db::schema::{clients, jobs, sync_states};
use connecthub::syncs::{scheduler, states};
use connecthub::vault::Vault;
use diesel::prelude::*;
use std::collections::HashMap;

with_each_backend!(
    a_pass_queues_each_new_sync_once_then_finds_nothing_to_do,
    due_syncs_are_queued_and_syncs_not_due_are_not,
    reauthorisation_pauses_and_reconnecting_resumes_with_an_unskippable_run,
);

const CONNECTIONS: usize = 30;
const MODELS: [&str; 2] = ["lists", "segments"];

fn models() -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "klaviyo".to_string(),
        MODELS.iter().map(|m| m.to_string()).collect(),
    )])
}

/// Seeds the connected clients; their ids.
fn seeded(db: &BareDatabase) -> Vec<String> {
    let vault = Vault::new(&EncryptionKey::parse(TEST_KEY).unwrap(), None);
    let conn = &mut db.conn();
    connecthub::seed::connected(conn, &vault, CONNECTIONS, chrono::TimeDelta::hours(2)).unwrap();
    clients::table
        .select(clients::id)
        .order(clients::id)
        .load(conn)
        .unwrap()
}

fn pass(db: &BareDatabase) -> usize {
    scheduler::pass(&mut db.conn(), &models()).unwrap()
}

/// The sync jobs in the table: (queue key, state, payload), by id.
fn sync_jobs(db: &BareDatabase) -> Vec<(Option<String>, String, String)> {
    jobs::table
        .filter(jobs::kind.eq(connecthub::syncs::RUN_JOB))
        .order(jobs::id)
        .select((jobs::queue_key, jobs::state, jobs::payload))
        .load(&mut db.conn())
        .unwrap()
}

/// How many syncs of each model the scheduler would act on now.
fn attention(db: &BareDatabase) -> Vec<usize> {
    let now = connecthub::db::now();
    MODELS
        .iter()
        .map(|model| {
            states::needing_attention(&mut db.conn(), "klaviyo", model, now, 1000)
                .unwrap()
                .len()
        })
        .collect()
}

fn set_client_status(db: &BareDatabase, id: &str, status: &'static str) {
    diesel::update(clients::table.find(id))
        .set(clients::status.eq(status))
        .execute(&mut db.conn())
        .unwrap();
}

fn sync_statuses(db: &BareDatabase, id: &str) -> Vec<String> {
    sync_states::table
        .filter(sync_states::client_id.eq(id))
        .order(sync_states::model)
        .select(sync_states::status)
        .load(&mut db.conn())
        .unwrap()
}

async fn a_pass_queues_each_new_sync_once_then_finds_nothing_to_do(backend: Backend) {
    let db = BareDatabase::create(backend);
    let ids = seeded(&db);
    assert_eq!(attention(&db), vec![CONNECTIONS, CONNECTIONS]);
    assert_eq!(pass(&db), CONNECTIONS * MODELS.len());
    let queued = sync_jobs(&db);
    assert_eq!(queued.len(), CONNECTIONS * MODELS.len());
    for id in &ids {
        for model in MODELS {
            let key = connecthub::syncs::queue_key(id, model);
            let of_key = queued.iter().filter(|j| j.0.as_deref() == Some(&key));
            assert_eq!(of_key.count(), 1, "{key}");
        }
    }
    // Every sync has its run waiting: the query finds none, and a pass changes nothing.
    assert_eq!(attention(&db), vec![0, 0]);
    assert_eq!(pass(&db), 0);
    assert_eq!(sync_jobs(&db), queued);
}

async fn due_syncs_are_queued_and_syncs_not_due_are_not(backend: Backend) {
    let db = BareDatabase::create(backend);
    let ids = seeded(&db);
    pass(&db);
    // Every run finished; one sync is due again, another in an hour.
    let (due, later) = (ids[0].clone(), ids[1].clone());
    let conn = &mut db.conn();
    diesel::update(jobs::table)
        .set(jobs::state.eq("done"))
        .execute(conn)
        .unwrap();
    let now = connecthub::db::now();
    diesel::update(sync_states::table)
        .set(sync_states::next_run_at.eq(now + chrono::TimeDelta::hours(1)))
        .execute(conn)
        .unwrap();
    diesel::update(sync_states::table.find((&due, "lists")))
        .set(sync_states::next_run_at.eq(now - chrono::TimeDelta::seconds(1)))
        .execute(conn)
        .unwrap();
    diesel::update(sync_states::table.find((&later, "lists")))
        .set(sync_states::status.eq(states::status::FAILING))
        .execute(conn)
        .unwrap();
    assert_eq!(attention(&db), vec![1, 0]);
    assert_eq!(pass(&db), 1);
    let waiting: Vec<_> = sync_jobs(&db)
        .into_iter()
        .filter(|j| j.1 == "queued")
        .collect();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        waiting[0].0.as_deref(),
        Some(connecthub::syncs::queue_key(&ids[0], "lists").as_str())
    );
    assert_eq!(pass(&db), 0, "its run waits");
}

async fn reauthorisation_pauses_and_reconnecting_resumes_with_an_unskippable_run(backend: Backend) {
    let db = BareDatabase::create(backend);
    let ids = seeded(&db);
    pass(&db);
    let before = sync_jobs(&db);
    let (reauth, gone) = (ids[0].clone(), ids[1].clone());
    set_client_status(&db, &reauth, "needs_reauth");
    set_client_status(&db, &gone, "disconnected");
    assert_eq!(pass(&db), 0);
    assert_eq!(sync_statuses(&db, &reauth), vec!["paused", "paused"]);
    assert_eq!(sync_statuses(&db, &gone), vec!["idle", "idle"]);
    assert_eq!(sync_jobs(&db), before, "no job added or changed");
    // Paused syncs stay put; reconnecting makes their waiting run an unscheduled one.
    assert_eq!(pass(&db), 0);
    set_client_status(&db, &reauth, "active");
    assert_eq!(pass(&db), 0, "the waiting runs take the resume");
    for (key, _, payload) in sync_jobs(&db) {
        let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
        let resumed = payload["client_id"] == reauth.as_str();
        assert_eq!(payload["scheduled"], !resumed, "{key:?}");
    }
}
