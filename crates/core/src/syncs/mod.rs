//! Syncs: provider records copied into the database, per connection and model, on the job
//! queue. A run (`runner`) reads the provider page by page with the connection's fresh
//! token through the metered caller, writes each page and its checkpoint in one
//! transaction (`records`, `states`), and ends with deletions (full runs) and an event.
//! The `scheduler` queues runs at each definition's frequency; "Sync now" and the service
//! API queue them too (`request_run`). Runs of one connection and model share a queue key,
//! so they never overlap, across instances too.
//!
//! `operations::synced` (the older "synced conversations" store) stays as it is: it
//! de-duplicates conversations *created* in Kustomer, which is not a copy of records.

pub mod admin;
mod paging;
pub mod records;
pub mod runner;
pub mod scheduler;
pub mod settings;
pub mod states;

use crate::db::schema::jobs;
use crate::db::DbConnection;
use diesel::prelude::*;
use serde_json::json;

pub use settings::SyncSettings;

/// The job kind of a sync run.
pub const RUN_JOB: &str = "sync.run";
/// A run whose instance keeps dying ends dead after this many takes.
const RUN_MAX_ATTEMPTS: i32 = 50;

/// The runs of one connection and model go one at a time.
pub fn queue_key(client_id: &str, model: &str) -> String {
    format!("sync:{client_id}:{model}")
}

/// What a `sync.run` job asks for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunRequest {
    pub client_id: String,
    pub model: String,
    /// A full run even when the model has incremental runs (deletions are found).
    #[serde(default)]
    pub full: bool,
    /// Queued by the scheduler: skipped when someone else's run made it not due.
    #[serde(default)]
    pub scheduled: bool,
}

/// Queues a run unless one is already waiting for this connection and model; returns
/// whether one was queued. Inside the caller's transaction when there is one.
pub fn request_run(conn: &mut DbConnection, request: &RunRequest) -> QueryResult<bool> {
    let key = queue_key(&request.client_id, &request.model);
    let waiting: i64 = jobs::table
        .filter(jobs::queue_key.eq(&key))
        .filter(jobs::state.eq_any(["queued", "failed"]))
        .count()
        .get_result(conn)?;
    if waiting > 0 {
        return Ok(false);
    }
    states::ensure(conn, &request.client_id, &request.model)?;
    crate::jobs::enqueue(
        conn,
        &crate::jobs::NewJob {
            kind: RUN_JOB,
            payload: &json!(request),
            queue_key: Some(&key),
            run_at: crate::db::now(),
            max_attempts: RUN_MAX_ATTEMPTS,
        },
    )?;
    Ok(true)
}

/// A disconnect forgets the connection's records and sync states.
pub fn forget_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    states::delete_for_client(conn, client_id)?;
    records::delete_for_client(conn, client_id)
}
