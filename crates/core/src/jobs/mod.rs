//! The job queue, in the same database as everything else: webhook deliveries now, syncs
//! next. A job is queued with a kind, a JSON payload and a time to run; workers (one per
//! instance, several instances may share one database) take due jobs under a lease, so a
//! job never runs twice at once and a crashed instance's jobs are taken over once its
//! lease ends. Failed attempts are retried with backoff and jitter until the job is dead.
//!
//! No crate fits: the maintained queues on crates.io are either async-sqlx (apalis,
//! sqlxmq, underway) or PostgreSQL-only (fang, backie); none runs on diesel's SQLite and
//! PostgreSQL `MultiConnection` inside the caller's transaction, which the webhook outbox
//! needs. This one is a table, a few queries and a loop.

pub mod admin;
mod store;
pub mod worker;

use crate::db::schema::jobs;
use crate::db::DbConnection;
use diesel::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

pub use store::{claim, claim_plans, finish, next_due, relaxed_commit, renew, Finish};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for `run_at`.
    Queued,
    /// Taken by a worker until `lease_until`.
    Running,
    /// An attempt failed; the retry waits for `run_at`.
    Failed,
    Done,
    /// No attempt left, or cancelled.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Failed,
        JobState::Done,
        JobState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Failed => "failed",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub queue_key: Option<String>,
    pub state: String,
    pub run_at: chrono::NaiveDateTime,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_until: Option<chrono::NaiveDateTime>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

impl Job {
    pub fn payload_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }

    /// Retried or cancelled from the admin page: only jobs that are not running.
    pub fn can_retry(&self) -> bool {
        matches!(self.state.as_str(), "failed" | "dead")
    }

    pub fn can_cancel(&self) -> bool {
        matches!(self.state.as_str(), "queued" | "failed")
    }
}

/// A job to queue.
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: &'a serde_json::Value,
    /// Jobs with the same key run one at a time, oldest first (one webhook endpoint's
    /// deliveries, in order).
    pub queue_key: Option<&'a str>,
    pub run_at: chrono::NaiveDateTime,
    pub max_attempts: i32,
}

/// Queues a job, inside the caller's transaction when there is one; workers of this
/// process are woken once the work of the surrounding `db::run` is done (committed).
pub fn enqueue(conn: &mut DbConnection, job: &NewJob) -> QueryResult<i64> {
    let now = crate::db::now();
    let id = crate::on_backend!(conn, |c| diesel::insert_into(jobs::table)
        .values((
            jobs::kind.eq(job.kind),
            jobs::payload.eq(job.payload.to_string()),
            jobs::queue_key.eq(job.queue_key),
            jobs::state.eq(JobState::Queued.as_str()),
            jobs::run_at.eq(job.run_at),
            jobs::attempts.eq(0),
            jobs::max_attempts.eq(job.max_attempts),
            jobs::created_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .returning(jobs::id)
        .get_result(c))?;
    crate::db::when_done(wake);
    Ok(id)
}

/// Bumped on every wake, so a worker that was busy when it happened still notices.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static WAKE: Notify = Notify::const_new();

/// Tells this process's workers that a job was queued (or became due) now.
pub fn wake() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    WAKE.notify_waiters();
}

fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}
