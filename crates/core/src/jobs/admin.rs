//! What the admin page reads and does: counts per state, the latest jobs, retry, cancel.

use super::{Job, JobState};
use crate::db::schema::jobs;
use crate::db::DbConnection;
use diesel::prelude::*;

/// How many jobs are in each state, in `JobState::ALL` order.
pub fn counts(conn: &mut DbConnection) -> QueryResult<Vec<(JobState, i64)>> {
    let rows: Vec<(String, i64)> = jobs::table
        .group_by(jobs::state)
        .select((jobs::state, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(JobState::ALL
        .into_iter()
        .map(|state| {
            let n = rows
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            (state, n)
        })
        .collect())
}

/// The most recently changed jobs, of one state when given.
pub fn latest(
    conn: &mut DbConnection,
    state: Option<JobState>,
    limit: i64,
) -> QueryResult<Vec<Job>> {
    let mut query = jobs::table
        .order((jobs::updated_at.desc(), jobs::id.desc()))
        .limit(limit)
        .select(Job::as_select())
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(jobs::state.eq(state.as_str()));
    }
    query.load(conn)
}

pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Job>> {
    jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .optional()
}

/// Queues a failed or dead job again, now, with a fresh set of attempts. `false` when the
/// job is not in such a state (it ran meanwhile, or never existed).
pub fn retry(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    let now = crate::db::now();
    let changed = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::state.eq_any([JobState::Failed.as_str(), JobState::Dead.as_str()])),
    )
    .set((
        jobs::state.eq(JobState::Queued.as_str()),
        jobs::run_at.eq(now),
        jobs::attempts.eq(0),
        jobs::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed == 1 {
        crate::db::when_done(super::wake);
    }
    Ok(changed == 1)
}

/// Cancels a job that waits (queued or failed): it becomes dead with the reason given.
pub fn cancel(conn: &mut DbConnection, id: i64, reason: &str) -> QueryResult<bool> {
    let now = crate::db::now();
    let changed = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::state.eq_any([JobState::Queued.as_str(), JobState::Failed.as_str()])),
    )
    .set((
        jobs::state.eq(JobState::Dead.as_str()),
        jobs::last_error.eq(reason),
        jobs::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Retries a job and records who did it; `false` when it was not failed or dead.
pub fn retry_audited(
    conn: &mut DbConnection,
    id: i64,
    actor: crate::audit::Actor,
) -> QueryResult<bool> {
    crate::db::transaction(conn, |conn| {
        if !retry(conn, id)? {
            return Ok(false);
        }
        let event = crate::audit::Event::new(actor, "job_retried").target("job", id.to_string());
        crate::audit::append(conn, event)?;
        Ok(true)
    })
}

/// Cancels a waiting job and records who did it; `false` when it was not waiting.
pub fn cancel_audited(
    conn: &mut DbConnection,
    id: i64,
    actor: crate::audit::Actor,
) -> QueryResult<bool> {
    crate::db::transaction(conn, |conn| {
        let reason = format!("cancelled by {}", actor.label);
        if !cancel(conn, id, &reason)? {
            return Ok(false);
        }
        let event = crate::audit::Event::new(actor, "job_cancelled").target("job", id.to_string());
        crate::audit::append(conn, event)?;
        Ok(true)
    })
}

/// Deletes finished jobs last changed before `before` (housekeeping); dead ones are kept
/// for the admin page until the same age. Answers how many went.
pub fn prune(conn: &mut DbConnection, before: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        jobs::table
            .filter(jobs::state.eq_any([JobState::Done.as_str(), JobState::Dead.as_str()]))
            .filter(jobs::updated_at.lt(before)),
    )
    .execute(conn)
}
