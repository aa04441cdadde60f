//! The queries of the worker: take due jobs under a lease, renew it, record the outcome,
//! and find when the next job falls due.

use super::{Job, JobState};
use crate::db::schema::jobs;
use crate::db::DbConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

/// Due jobs, and running ones whose lease ran out (their instance died), except those
/// whose queue key has a job running under a live lease. `$1` is now, `$2` the limit;
/// the same text serves both backends (SQLite numbers `$N` parameters in order of first
/// appearance).
const DUE: &str = "SELECT j.id FROM jobs j \
     WHERE ((j.state IN ('queued', 'failed') AND j.run_at <= $1) \
         OR (j.state = 'running' AND j.lease_until < $1)) \
       AND (j.queue_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
             WHERE r.queue_key = j.queue_key AND r.state = 'running' \
               AND r.lease_until >= $1 AND r.id <> j.id)) \
     ORDER BY j.run_at, j.id LIMIT $2";

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Takes up to `limit` due jobs for `worker` until `now + lease`, in one transaction:
/// `FOR UPDATE SKIP LOCKED` on PostgreSQL (instances take different jobs without waiting
/// for each other), `BEGIN IMMEDIATE` on SQLite (one writer at a time). Each take counts
/// as an attempt, so a job whose instance keeps dying ends dead too.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    lease: chrono::TimeDelta,
    limit: i64,
) -> QueryResult<Vec<Job>> {
    crate::db::transaction(conn, |conn| {
        relaxed_commit(conn)?;
        let now = crate::db::now();
        let ids: Vec<Id> = match conn {
            DbConnection::Postgresql(pg) => {
                diesel::sql_query(format!("{DUE} FOR UPDATE SKIP LOCKED"))
                    .bind::<Timestamp, _>(now)
                    .bind::<BigInt, _>(limit)
                    .load(pg)?
            }
            DbConnection::Sqlite(sqlite) => diesel::sql_query(DUE)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load(sqlite)?,
        };
        let ids: Vec<i64> = ids.into_iter().map(|row| row.id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(jobs::table.filter(jobs::id.eq_any(&ids)))
            .set((
                jobs::state.eq(JobState::Running.as_str()),
                jobs::attempts.eq(jobs::attempts + 1),
                jobs::lease_until.eq(now + lease),
                jobs::locked_by.eq(worker),
                jobs::updated_at.eq(now),
            ))
            .execute(conn)?;
        jobs::table
            .filter(jobs::id.eq_any(&ids))
            .order((jobs::run_at.asc(), jobs::id.asc()))
            .select(Job::as_select())
            .load(conn)
    })
}

/// Inside a transaction on PostgreSQL: its commit does not wait for the disk. For the
/// queue's own bookkeeping (takes, outcomes, attempt logs) only: a crash of PostgreSQL
/// itself may then forget the last fraction of a second of them, which at-least-once
/// delivery absorbs (a job is run again, a webhook re-sent with the same id). Events and
/// the changes they describe are committed durably as always.
pub fn relaxed_commit(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    match conn {
        DbConnection::Postgresql(pg) => pg.batch_execute("SET LOCAL synchronous_commit TO OFF"),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Extends the lease of the jobs `worker` still holds.
pub fn renew(
    conn: &mut DbConnection,
    worker: &str,
    ids: &[i64],
    lease: chrono::TimeDelta,
) -> QueryResult<usize> {
    let now = crate::db::now();
    diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(ids))
            .filter(jobs::state.eq(JobState::Running.as_str()))
            .filter(jobs::locked_by.eq(worker)),
    )
    .set((jobs::lease_until.eq(now + lease), jobs::updated_at.eq(now)))
    .execute(conn)
}

/// How an attempt ended, as stored.
pub enum Finish<'a> {
    Done,
    Retry {
        error: &'a str,
        at: chrono::NaiveDateTime,
    },
    Dead {
        error: &'a str,
    },
}

/// Records the outcome of an attempt, if `worker` still holds the job (a worker whose
/// lease was taken over records nothing: the new holder's outcome counts).
pub fn finish(
    conn: &mut DbConnection,
    worker: &str,
    id: i64,
    outcome: &Finish,
) -> QueryResult<bool> {
    let now = crate::db::now();
    let (state, error, run_at) = match outcome {
        Finish::Done => (JobState::Done, None, None),
        Finish::Retry { error, at } => (JobState::Failed, Some(*error), Some(*at)),
        Finish::Dead { error } => (JobState::Dead, Some(*error), None),
    };
    let target = jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::state.eq(JobState::Running.as_str()))
        .filter(jobs::locked_by.eq(worker));
    crate::db::transaction(conn, |conn| {
        relaxed_commit(conn)?;
        finish_in(conn, target, state, error, run_at, now)
    })
}

/// One job, if it is running and held by the worker named.
type HeldJob<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<jobs::table, diesel::dsl::Eq<jobs::id, i64>>,
        diesel::dsl::Eq<jobs::state, &'static str>,
    >,
    diesel::dsl::Eq<jobs::locked_by, &'a str>,
>;

fn finish_in(
    conn: &mut DbConnection,
    target: HeldJob<'_>,
    state: JobState,
    error: Option<&str>,
    run_at: Option<chrono::NaiveDateTime>,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    let changed = match run_at {
        Some(at) => diesel::update(target)
            .set((
                jobs::state.eq(state.as_str()),
                jobs::last_error.eq(error),
                jobs::run_at.eq(at),
                jobs::lease_until.eq(None::<chrono::NaiveDateTime>),
                jobs::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                jobs::state.eq(state.as_str()),
                jobs::last_error.eq(error),
                jobs::lease_until.eq(None::<chrono::NaiveDateTime>),
                jobs::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Waiting jobs that could be taken once due: not held back by a job of their queue key
/// running under a live lease. `$1` is now.
const NEXT_WAITING: &str = "SELECT MIN(j.run_at) AS at FROM jobs j \
     WHERE j.state IN ('queued', 'failed') \
       AND (j.queue_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
             WHERE r.queue_key = j.queue_key AND r.state = 'running' \
               AND r.lease_until >= $1))";

#[derive(QueryableByName)]
struct At {
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamp>)]
    at: Option<chrono::NaiveDateTime>,
}

/// When the next job falls due: the earliest `run_at` of waiting jobs that are not held
/// back by their queue key (those are run when the job ahead of them finishes), or the
/// lease end of running ones (a crashed instance's jobs are taken over then).
pub fn next_due(conn: &mut DbConnection) -> QueryResult<Option<chrono::NaiveDateTime>> {
    let now = crate::db::now();
    let waiting = crate::on_backend!(conn, |c| diesel::sql_query(NEXT_WAITING)
        .bind::<Timestamp, _>(now)
        .get_result::<At>(c))?
    .at;
    let leased: Option<chrono::NaiveDateTime> = jobs::table
        .filter(jobs::state.eq(JobState::Running.as_str()))
        .select(diesel::dsl::min(jobs::lease_until))
        .first(conn)?;
    Ok(match (waiting, leased) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}
