//! The queries of the worker: take due jobs under a lease, renew it, record the outcome,
//! and find when the next job falls due.

use super::{Job, JobState};
use crate::db::params::{bound, Param};
use crate::db::schema::jobs;
use crate::db::DbConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

/// Not held back by a job of its queue key running under a live lease (`$1` is now).
macro_rules! not_held_back {
    () => {
        "(j.queue_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
          WHERE r.queue_key = j.queue_key AND r.state = 'running' \
            AND r.lease_until >= $1 AND r.id <> j.id))"
    };
}

/// One of the take's statements and the partial index it walks. `$1` is now, `$2` the
/// limit; the same text serves both backends (SQLite numbers `$N` parameters in order of
/// first appearance) once `in_dialect` has filled in `{walk}`.
struct Take {
    sql: &'static str,
    index: &'static str,
}

/// Running jobs whose lease ran out (their instance died).
const LAPSED: Take = Take {
    sql: concat!(
        "SELECT j.id FROM jobs j{walk} WHERE j.state = 'running' AND j.lease_until < $1 AND ",
        not_held_back!(),
        " ORDER BY j.lease_until, j.id LIMIT $2"
    ),
    index: "jobs_leased",
};

/// Due jobs, oldest first, walking the index in its order and stopping at the limit: the
/// cost of a take does not grow with the jobs waiting (a scan of both states and a sort
/// took 2 s on PostgreSQL at 1 M queued sync runs).
const WAITING: Take = Take {
    sql: concat!(
        "SELECT j.id FROM jobs j{walk} WHERE j.state IN ('queued', 'failed') \
         AND j.run_at <= $1 AND ",
        not_held_back!(),
        " ORDER BY j.run_at, j.id LIMIT $2"
    ),
    index: "jobs_waiting",
};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Takes up to `limit` jobs for `worker` until `now + lease`, lapsed leases first, in one
/// transaction (`BEGIN IMMEDIATE` on SQLite: one writer at a time). Each take counts as an
/// attempt, so a job whose instance keeps dying ends dead too.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    lease: chrono::TimeDelta,
    limit: i64,
) -> QueryResult<Vec<Job>> {
    crate::db::transaction(conn, |conn| {
        relaxed_commit(conn)?;
        let now = crate::db::now();
        let mut ids = take(conn, &LAPSED, now, limit)?;
        let left = limit - ids.len() as i64;
        if left > 0 {
            ids.extend(take(conn, &WAITING, now, left)?);
        }
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

/// The ids the statement finds, locked on PostgreSQL with `FOR UPDATE SKIP LOCKED`
/// (instances take different jobs without waiting for each other).
fn take(
    conn: &mut DbConnection,
    statement: &Take,
    now: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    let sql = in_dialect(conn, statement);
    let params = take_params(now, limit);
    let rows: Vec<Id> = crate::on_backend!(conn, |c| bound(sql, &params).load(c))?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}

/// A take statement's parameters, in its order.
fn take_params(now: chrono::NaiveDateTime, limit: i64) -> [Param; 2] {
    [Param::Timestamp(now), Param::BigInt(limit)]
}

/// SQLite is told which index to walk (`INDEXED BY`, an error if it could not): with the
/// statistics of a table of mostly finished jobs it takes `(state, run_at)` instead and
/// sorts every waiting job. PostgreSQL's planner walks the partial index on its own.
fn in_dialect(conn: &DbConnection, statement: &Take) -> String {
    let sql = statement.sql;
    match conn {
        DbConnection::Postgresql(_) => {
            format!("{} FOR UPDATE SKIP LOCKED", sql.replace("{walk}", ""))
        }
        DbConnection::Sqlite(_) => {
            sql.replace("{walk}", &format!(" INDEXED BY {}", statement.index))
        }
    }
}

/// The database's plans for the take's two statements (lapsed, waiting), one line per
/// step: to show that each walks its partial index.
pub fn claim_plans(conn: &mut DbConnection) -> QueryResult<(String, String)> {
    use crate::db::plan::explain;
    let params = take_params(crate::db::now(), 50);
    let lapsed = in_dialect(conn, &LAPSED);
    let waiting = in_dialect(conn, &WAITING);
    Ok((
        explain(conn, &lapsed, &params)?,
        explain(conn, &waiting, &params)?,
    ))
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

/// Waiting jobs that could be taken once due: not held back by their queue key. `$1` is
/// now.
const NEXT_WAITING: &str = concat!(
    "SELECT MIN(j.run_at) AS at FROM jobs j WHERE j.state IN ('queued', 'failed') AND ",
    not_held_back!()
);

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
