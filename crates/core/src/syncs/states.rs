//! The `sync_states` repository: per connection and model, the checkpoint of the run in
//! progress, the last run, the schedule and the failure streak.

use super::records::Counts;
use crate::db::schema::sync_states;
use crate::db::DbConnection;
use diesel::prelude::*;

/// Where a sync is.
pub mod status {
    /// Waiting for its next run.
    pub const IDLE: &str = "idle";
    pub const RUNNING: &str = "running";
    /// The connection needs reauthorisation; resumes once it is reconnected.
    pub const PAUSED: &str = "paused";
    /// The last run failed; the next one waits for the backoff.
    pub const FAILING: &str = "failing";
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = sync_states)]
pub struct SyncState {
    #[serde(skip)]
    pub client_id: String,
    pub model: String,
    pub status: String,
    #[serde(skip)]
    pub checkpoint: Option<String>,
    pub last_started_at: Option<chrono::NaiveDateTime>,
    pub last_finished_at: Option<chrono::NaiveDateTime>,
    #[serde(skip)]
    pub last_success_started_at: Option<chrono::NaiveDateTime>,
    pub last_outcome: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub added: i32,
    pub updated: i32,
    pub deleted: i32,
    pub last_error: Option<String>,
    pub next_run_at: Option<chrono::NaiveDateTime>,
    pub consecutive_failures: i32,
}

impl SyncState {
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        serde_json::from_str(self.checkpoint.as_deref()?).ok()
    }
}

/// A run in progress, saved after every page: an interrupted run resumes from here.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Full runs detect deletions; incremental ones ask only for what changed.
    pub full: bool,
    /// The page to read next; None once every page was read (only the end is left).
    pub next: Option<String>,
    pub started_at: chrono::NaiveDateTime,
    pub pages: u32,
    pub counts: Counts,
}

fn key<'a>(
    client_id: &'a str,
    model: &'a str,
) -> diesel::dsl::Find<sync_states::table, (&'a str, &'a str)> {
    sync_states::table.find((client_id, model))
}

pub fn find(
    conn: &mut DbConnection,
    client_id: &str,
    model: &str,
) -> QueryResult<Option<SyncState>> {
    key(client_id, model)
        .select(SyncState::as_select())
        .first(conn)
        .optional()
}

pub fn for_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<Vec<SyncState>> {
    sync_states::table
        .filter(sync_states::client_id.eq(client_id))
        .order(sync_states::model.asc())
        .select(SyncState::as_select())
        .load(conn)
}

/// The row of a sync seen for the first time: idle, due now.
pub fn ensure(conn: &mut DbConnection, client_id: &str, model: &str) -> QueryResult<()> {
    crate::on_backend!(conn, |c| diesel::insert_into(sync_states::table)
        .values((
            sync_states::client_id.eq(client_id),
            sync_states::model.eq(model),
            sync_states::status.eq(status::IDLE),
            sync_states::added.eq(0),
            sync_states::updated.eq(0),
            sync_states::deleted.eq(0),
            sync_states::next_run_at.eq(crate::db::now()),
            sync_states::consecutive_failures.eq(0),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

pub fn set_status(
    conn: &mut DbConnection,
    client_id: &str,
    model: &str,
    to: &str,
) -> QueryResult<usize> {
    diesel::update(key(client_id, model))
        .set(sync_states::status.eq(to))
        .execute(conn)
}

/// A run starts (or resumes): running, with its checkpoint.
pub fn start(
    conn: &mut DbConnection,
    client_id: &str,
    model: &str,
    checkpoint: &Checkpoint,
) -> QueryResult<usize> {
    diesel::update(key(client_id, model))
        .set((
            sync_states::status.eq(status::RUNNING),
            sync_states::checkpoint.eq(serde_json::to_string(checkpoint).ok()),
            sync_states::last_started_at.eq(checkpoint.started_at),
        ))
        .execute(conn)
}

pub fn save_checkpoint(
    conn: &mut DbConnection,
    client_id: &str,
    model: &str,
    checkpoint: &Checkpoint,
) -> QueryResult<usize> {
    diesel::update(key(client_id, model))
        .set(sync_states::checkpoint.eq(serde_json::to_string(checkpoint).ok()))
        .execute(conn)
}

/// A run ended well: counts, duration, next run, streak cleared, checkpoint gone; the run
/// is recorded.
pub fn succeed(
    conn: &mut DbConnection,
    state: &SyncState,
    checkpoint: &Checkpoint,
    duration_ms: i64,
    next_run_at: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    let counts = checkpoint.counts;
    diesel::update(key(&state.client_id, &state.model))
        .set((
            sync_states::status.eq(status::IDLE),
            sync_states::checkpoint.eq(None::<String>),
            sync_states::last_finished_at.eq(crate::db::now()),
            sync_states::last_success_started_at.eq(checkpoint.started_at),
            sync_states::last_outcome.eq("succeeded"),
            sync_states::last_duration_ms.eq(duration_ms),
            sync_states::added.eq(counts.added as i32),
            sync_states::updated.eq(counts.updated as i32),
            sync_states::deleted.eq(counts.deleted as i32),
            sync_states::last_error.eq(None::<String>),
            sync_states::next_run_at.eq(next_run_at),
            sync_states::consecutive_failures.eq(0),
        ))
        .execute(conn)?;
    super::runs::record(conn, &state.client_id, &state.model, true, duration_ms)
}

/// A run failed: the checkpoint stays (the next run resumes), the streak grows; the run is
/// recorded.
pub fn fail(
    conn: &mut DbConnection,
    state: &SyncState,
    error: &str,
    duration_ms: i64,
    next_run_at: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(key(&state.client_id, &state.model))
        .set((
            sync_states::status.eq(status::FAILING),
            sync_states::last_finished_at.eq(crate::db::now()),
            sync_states::last_outcome.eq("failed"),
            sync_states::last_duration_ms.eq(duration_ms),
            sync_states::last_error.eq(error),
            sync_states::next_run_at.eq(next_run_at),
            sync_states::consecutive_failures.eq(state.consecutive_failures + 1),
        ))
        .execute(conn)?;
    super::runs::record(conn, &state.client_id, &state.model, false, duration_ms)
}

pub fn delete_for_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    diesel::delete(sync_states::table.filter(sync_states::client_id.eq(client_id))).execute(conn)
}
