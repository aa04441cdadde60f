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
pub mod attention;
mod paging;
pub mod records;
pub mod runner;
pub mod runs;
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
    let (prefix, suffix) = queue_key_around(model);
    format!("{prefix}{client_id}{suffix}")
}

/// What stands before and after the client id in a model's queue keys (the scheduler
/// writes the key in SQL around `clients.id`).
pub(crate) fn queue_key_around(model: &str) -> (&'static str, String) {
    ("sync:", format!(":{model}"))
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
/// whether one was queued. A waiting run takes on what this request asks for more: a
/// full run, or not being a scheduled one (which is skipped once another run made the
/// sync not due, and would drop a webhook's or a person's request). Inside the caller's
/// transaction when there is one.
pub fn request_run(conn: &mut DbConnection, request: &RunRequest) -> QueryResult<bool> {
    let key = queue_key(&request.client_id, &request.model);
    let waiting: Option<(i64, String)> = jobs::table
        .filter(jobs::queue_key.eq(&key))
        .filter(jobs::state.eq_any(["queued", "failed"]))
        .order(jobs::id.asc())
        .select((jobs::id, jobs::payload))
        .first(conn)
        .optional()?;
    if let Some((id, payload)) = waiting {
        if let Ok(queued) = serde_json::from_str::<RunRequest>(&payload) {
            let merged = RunRequest {
                full: queued.full || request.full,
                scheduled: queued.scheduled && request.scheduled,
                ..queued
            };
            if (merged.full, merged.scheduled) != (queued.full, queued.scheduled) {
                diesel::update(jobs::table.find(id))
                    .set(jobs::payload.eq(json!(merged).to_string()))
                    .execute(conn)?;
            }
        }
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

/// A provider webhook said `models` changed for this connection: each gets an incremental
/// run unless one is already waiting (a running one gets one follow-up, which waits
/// behind it: the running run may have read past the change). A connection that needs
/// reauthorisation gets none; reconnecting resumes its syncs. Returns the models queued.
pub fn request_for_webhook(
    conn: &mut DbConnection,
    client: &crate::clients::Client,
    models: &[String],
) -> QueryResult<Vec<String>> {
    if client.status == crate::clients::ClientStatus::NeedsReauth {
        return Ok(Vec::new());
    }
    let mut queued = Vec::new();
    for model in models {
        let request = RunRequest {
            client_id: client.id.clone(),
            model: model.clone(),
            full: false,
            scheduled: false,
        };
        if request_run(conn, &request)? {
            queued.push(model.clone());
        }
    }
    Ok(queued)
}

/// A disconnect forgets the connection's records and sync states.
pub fn forget_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    states::delete_for_client(conn, client_id)?;
    records::delete_for_client(conn, client_id)
}
