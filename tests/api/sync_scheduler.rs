//! The sync scheduler's pass acts on what there is to do and nothing else: each new
//! connection's syncs get one run, syncs whose run waits or is not due get none, a
//! connection that needs reauthorisation has its syncs paused, a reconnected one resumes
//! with a run that is not skipped, and a disconnected one is left alone. Between sweeps a
//! pass reads the due syncs and the connections changed since the last pass only, and the
//! due read walks its partial index at twenty thousand syncs. On a database with no app,
//! whose job worker would take the queued runs meanwhile.

use crate::helpers::{Backend, BareDatabase, TEST_KEY};
use crate::with_each_backend;
use connecthub::config::EncryptionKey;
use connecthub::db::schema::{clients, jobs, sync_states};
use connecthub::syncs::attention::{self, Scope};
use connecthub::syncs::{scheduler, states};
use connecthub::vault::Vault;
use diesel::prelude::*;
use std::collections::HashMap;

with_each_backend!(
    a_pass_queues_each_new_sync_once_then_finds_nothing_to_do,
    due_syncs_are_queued_and_syncs_not_due_are_not,
    reauthorisation_pauses_and_reconnecting_resumes_with_an_unskippable_run,
    between_sweeps_a_pass_reads_due_syncs_and_changed_connections_only,
    the_due_read_walks_its_partial_index_at_twenty_thousand_syncs,
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

/// A sweep over every connection; how many runs it queued.
fn pass(db: &BareDatabase) -> usize {
    pass_over(db, Scope::Every)
}

fn pass_over(db: &BareDatabase, scope: Scope) -> usize {
    let done = scheduler::pass(&mut db.conn(), &models(), scope).unwrap();
    assert!(done.complete, "the pass reached its limit");
    done.queued
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

/// How many syncs of each model the scheduler would act on now: due, or unsettled.
fn attention(db: &BareDatabase) -> Vec<usize> {
    let now = connecthub::db::now();
    let conn = &mut db.conn();
    MODELS
        .iter()
        .map(|model| {
            let due = attention::due(conn, "klaviyo", model, now, 1000).unwrap();
            let unsettled = attention::unsettled(conn, "klaviyo", model, Scope::Every, 1000);
            due.len() + unsettled.unwrap().len()
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

/// Every run finished and the next in an hour, but for `due`'s "lists" sync.
fn runs_finished_and_one_due(db: &BareDatabase, due: &str) {
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
    diesel::update(sync_states::table.find((due, "lists")))
        .set(sync_states::next_run_at.eq(now - chrono::TimeDelta::seconds(1)))
        .execute(conn)
        .unwrap();
}

async fn due_syncs_are_queued_and_syncs_not_due_are_not(backend: Backend) {
    let db = BareDatabase::create(backend);
    let ids = seeded(&db);
    pass(&db);
    // Every run finished; one sync is due again, another (failing) in an hour.
    let (due, later) = (ids[0].clone(), ids[1].clone());
    runs_finished_and_one_due(&db, &due);
    let conn = &mut db.conn();
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

/// A client's status, stamped `at` (as its own change would have been).
fn change_client(db: &BareDatabase, id: &str, status: &'static str, at: chrono::NaiveDateTime) {
    diesel::update(clients::table.find(id))
        .set((clients::status.eq(status), clients::updated_at.eq(at)))
        .execute(&mut db.conn())
        .unwrap();
}

/// The client's syncs forgotten, as if it were new to them, stamped `at`.
fn make_new(db: &BareDatabase, id: &str, at: chrono::NaiveDateTime) {
    diesel::delete(sync_states::table.filter(sync_states::client_id.eq(id)))
        .execute(&mut db.conn())
        .unwrap();
    diesel::update(clients::table.find(id))
        .set(clients::updated_at.eq(at))
        .execute(&mut db.conn())
        .unwrap();
}

async fn between_sweeps_a_pass_reads_due_syncs_and_changed_connections_only(backend: Backend) {
    let db = BareDatabase::create(backend);
    let ids = seeded(&db);
    pass(&db);
    let [due, changed, stale, new, stale_new] = [0, 1, 2, 3, 4].map(|i| ids[i].clone());
    runs_finished_and_one_due(&db, &due);
    let since = connecthub::db::now();
    let (now, before) = (
        since + chrono::TimeDelta::seconds(1),
        since - chrono::TimeDelta::hours(1),
    );
    change_client(&db, &changed, "needs_reauth", now);
    change_client(&db, &stale, "needs_reauth", before);
    make_new(&db, &new, now);
    make_new(&db, &stale_new, before);

    // The due sync, and the new connection's two syncs; the changed connection paused.
    assert_eq!(pass_over(&db, Scope::ChangedSince(since)), 3);
    assert_eq!(sync_statuses(&db, &changed), vec!["paused", "paused"]);
    assert_eq!(sync_statuses(&db, &new), vec!["idle", "idle"]);
    // Unchanged since: left for the sweep.
    assert_eq!(sync_statuses(&db, &stale), vec!["idle", "idle"]);
    assert!(sync_statuses(&db, &stale_new).is_empty());
    assert_eq!(
        pass_over(&db, Scope::ChangedSince(since)),
        0,
        "their runs wait"
    );

    assert_eq!(
        pass(&db),
        2,
        "the sweep queues what the changed reads could not see"
    );
    assert_eq!(sync_statuses(&db, &stale), vec!["paused", "paused"]);
    assert_eq!(sync_statuses(&db, &stale_new), vec!["idle", "idle"]);
}

async fn the_due_read_walks_its_partial_index_at_twenty_thousand_syncs(backend: Backend) {
    let db = BareDatabase::create(backend);
    let conn = &mut db.conn();
    // Klaviyo and Kustomer clients of every status, each Klaviyo one with a "lists" sync
    // due within the hour (a tenth of them paused).
    connecthub::seed::seed(conn, 20_000).unwrap();
    let later = connecthub::db::now() + chrono::TimeDelta::minutes(30);
    diesel::sql_query(
        "INSERT INTO sync_states (client_id, model, status, added, updated, deleted, \
         next_run_at, consecutive_failures) \
         SELECT id, 'lists', CASE WHEN status = 'needs_reauth' THEN 'paused' ELSE 'idle' END, \
         0, 0, 0, $1, 0 FROM clients WHERE provider = 'klaviyo'",
    )
    .bind::<diesel::sql_types::Timestamp, _>(later)
    .execute(&mut **conn)
    .unwrap();
    connecthub::db::analyze(conn).unwrap();

    let plan = attention::due_plan(conn, "klaviyo", "lists").unwrap();
    eprintln!("{backend:?} plan of the scheduler's due read:\n{plan}");
    assert!(plan.contains("sync_states_due"), "{plan}");
}
