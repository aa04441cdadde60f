//! The job worker's take: lapsed leases first, then due jobs oldest first, past jobs held
//! back by their queue key; and at twenty thousand waiting jobs each of its statements
//! walks a partial index in order instead of reading every waiting job and sorting. On a
//! database with no app, whose worker would take the jobs meanwhile.

use crate::helpers::{Backend, BareDatabase};
use crate::with_each_backend;
use chrono::TimeDelta;
use connecthub::db::schema::jobs;
use connecthub::db::DbConnection;
use connecthub::jobs::JobState;
use diesel::prelude::*;

with_each_backend!(
    a_take_is_lapsed_leases_first_then_due_jobs_oldest_first,
    the_take_walks_partial_indexes_at_twenty_thousand_waiting_jobs,
);

/// A job row as the worker would have left it: `run_at` and the lease end relative to now.
struct Row<'a> {
    state: JobState,
    run_in: i64,
    key: &'a str,
    lease_in: Option<i64>,
}

/// Inserts the rows in one statement; their ids in order.
fn insert(conn: &mut DbConnection, rows: &[Row]) -> Vec<i64> {
    let now = connecthub::db::now();
    let at = |seconds| now + TimeDelta::seconds(seconds);
    let values: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                jobs::kind.eq("test.job"),
                jobs::payload.eq("{}"),
                jobs::queue_key.eq(Some(row.key)),
                jobs::state.eq(row.state.as_str()),
                jobs::run_at.eq(at(row.run_in)),
                jobs::attempts.eq(0),
                jobs::max_attempts.eq(5),
                jobs::lease_until.eq(row.lease_in.map(at)),
                jobs::created_at.eq(now),
                jobs::updated_at.eq(now),
            )
        })
        .collect();
    connecthub_core::on_backend!(conn, |c| diesel::insert_into(jobs::table)
        .values(&values)
        .returning(jobs::id)
        .get_results(c))
    .unwrap()
}

fn taken(db: &BareDatabase, limit: i64) -> Vec<i64> {
    let jobs = connecthub::jobs::claim(&mut db.conn(), "test-worker", TimeDelta::minutes(1), limit)
        .unwrap();
    jobs.into_iter().map(|job| job.id).collect()
}

fn state_of(db: &BareDatabase, id: i64) -> String {
    jobs::table
        .find(id)
        .select(jobs::state)
        .first(&mut db.conn())
        .unwrap()
}

async fn a_take_is_lapsed_leases_first_then_due_jobs_oldest_first(backend: Backend) {
    let db = BareDatabase::create(backend);
    let row = |state, run_in, key, lease_in| Row {
        state,
        run_in,
        key,
        lease_in,
    };
    let ids = insert(
        &mut db.conn(),
        &[
            row(JobState::Queued, -10, "a", None),
            // Held back: a job of its key runs under a live lease.
            row(JobState::Queued, -20, "held", None),
            row(JobState::Running, -60, "held", Some(30)),
            row(JobState::Queued, 3600, "later", None),
            // Its instance died: the lease ran out a second ago.
            row(JobState::Running, -30, "lapsed", Some(-1)),
            row(JobState::Failed, -5, "retry", None),
        ],
    );
    let [due, held, holding, later, lapsed, retry] = ids[..] else {
        panic!("six jobs: {ids:?}")
    };

    assert_eq!(taken(&db, 1), [lapsed], "a lapsed lease goes first");
    assert_eq!(
        taken(&db, 10),
        [due, retry],
        "then the due jobs, oldest first"
    );
    assert!(taken(&db, 10).is_empty(), "nothing else is due");
    assert_eq!(state_of(&db, held), "queued");
    assert_eq!(state_of(&db, later), "queued");
    let holder: Option<String> = jobs::table
        .find(holding)
        .select(jobs::locked_by)
        .first(&mut db.conn())
        .unwrap();
    assert_eq!(holder, None, "the live lease is left to its holder");
}

async fn the_take_walks_partial_indexes_at_twenty_thousand_waiting_jobs(backend: Backend) {
    let db = BareDatabase::create(backend);
    let conn = &mut db.conn();
    let keys: Vec<String> = (0..20_000).map(|i| format!("sync:c{i}:lists")).collect();
    for chunk in keys.chunks(2_000) {
        let rows: Vec<Row> = chunk
            .iter()
            .enumerate()
            .map(|(i, key)| Row {
                state: if i % 10 == 0 {
                    JobState::Failed
                } else {
                    JobState::Queued
                },
                run_in: -(i as i64),
                key,
                lease_in: None,
            })
            .collect();
        insert(conn, &rows);
    }
    let running: Vec<Row> = keys[..20]
        .iter()
        .map(|key| Row {
            state: JobState::Running,
            run_in: -10,
            key,
            lease_in: Some(60),
        })
        .collect();
    insert(conn, &running);
    // The planner's statistics as autovacuum (or the seed) would have them by now.
    connecthub::db::analyze(conn).unwrap();

    let (lapsed, waiting) = connecthub::jobs::claim_plans(conn).unwrap();
    eprintln!("{backend:?} plan of the lapsed-lease take:\n{lapsed}");
    eprintln!("{backend:?} plan of the due-job take:\n{waiting}");
    assert!(lapsed.contains("jobs_leased"), "{lapsed}");
    assert!(waiting.contains("jobs_waiting"), "{waiting}");
    for sort in ["TEMP B-TREE", "Sort"] {
        assert!(
            !waiting.contains(sort),
            "the due jobs are sorted: {waiting}"
        );
    }
}
