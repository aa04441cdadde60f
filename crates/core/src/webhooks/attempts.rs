//! The delivery log: one row per attempt, for the endpoint's page and for replays.

use crate::db::schema::{webhook_attempts, webhook_events};
use crate::db::DbConnection;
use diesel::prelude::*;

/// How much of the receiver's answer is kept.
pub const EXCERPT_BYTES: usize = 1024;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = webhook_attempts)]
pub struct Attempt {
    pub id: i64,
    pub endpoint_id: String,
    pub event_id: String,
    pub job_id: i64,
    pub at: chrono::NaiveDateTime,
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub succeeded: bool,
    pub error: Option<String>,
    pub response_excerpt: String,
}

/// An attempt with its event's type, as the log lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoggedAttempt {
    #[serde(flatten)]
    pub attempt: Attempt,
    pub event_type: String,
}

pub struct NewAttempt<'a> {
    pub endpoint_id: &'a str,
    pub event_id: &'a str,
    pub job_id: i64,
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub succeeded: bool,
    pub error: Option<&'a str>,
    pub response_excerpt: &'a str,
}

pub fn record(conn: &mut DbConnection, attempt: &NewAttempt) -> QueryResult<usize> {
    diesel::insert_into(webhook_attempts::table)
        .values((
            webhook_attempts::endpoint_id.eq(attempt.endpoint_id),
            webhook_attempts::event_id.eq(attempt.event_id),
            webhook_attempts::job_id.eq(attempt.job_id),
            webhook_attempts::at.eq(crate::db::now()),
            webhook_attempts::status.eq(attempt.status),
            webhook_attempts::duration_ms.eq(attempt.duration_ms),
            webhook_attempts::succeeded.eq(attempt.succeeded),
            webhook_attempts::error.eq(attempt.error),
            webhook_attempts::response_excerpt.eq(attempt.response_excerpt),
        ))
        .execute(conn)
}

/// The endpoint's latest attempts, newest first.
pub fn latest(
    conn: &mut DbConnection,
    endpoint_id: &str,
    limit: i64,
) -> QueryResult<Vec<LoggedAttempt>> {
    let rows: Vec<(Attempt, String)> = webhook_attempts::table
        .inner_join(webhook_events::table.on(webhook_events::id.eq(webhook_attempts::event_id)))
        .filter(webhook_attempts::endpoint_id.eq(endpoint_id))
        .order(webhook_attempts::id.desc())
        .limit(limit)
        .select((Attempt::as_select(), webhook_events::event_type))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(attempt, event_type)| LoggedAttempt {
            attempt,
            event_type,
        })
        .collect())
}

/// Events with a failed attempt at this endpoint since `since` and no successful one:
/// what "replay every failed delivery since" sends again, oldest first.
pub fn failed_since(
    conn: &mut DbConnection,
    endpoint_id: &str,
    since: chrono::NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let rows: Vec<(String, bool, i64)> = webhook_attempts::table
        .filter(webhook_attempts::endpoint_id.eq(endpoint_id))
        .filter(webhook_attempts::at.ge(since))
        .order(webhook_attempts::id.asc())
        .select((
            webhook_attempts::event_id,
            webhook_attempts::succeeded,
            webhook_attempts::id,
        ))
        .load(conn)?;
    let delivered: std::collections::HashSet<&str> = rows
        .iter()
        .filter(|(_, ok, _)| *ok)
        .map(|(id, _, _)| id.as_str())
        .collect();
    let mut failed: Vec<String> = Vec::new();
    for (event_id, ok, _) in &rows {
        if !ok && !delivered.contains(event_id.as_str()) && !failed.contains(event_id) {
            failed.push(event_id.clone());
        }
    }
    Ok(failed)
}

/// Whether this event was ever attempted at this endpoint (a replay needs one).
pub fn was_attempted(
    conn: &mut DbConnection,
    endpoint_id: &str,
    event_id: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        webhook_attempts::table
            .filter(webhook_attempts::endpoint_id.eq(endpoint_id))
            .filter(webhook_attempts::event_id.eq(event_id)),
    ))
    .get_result(conn)
}

/// Deletes attempts older than `before` (housekeeping).
pub fn prune(conn: &mut DbConnection, before: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(webhook_attempts::table.filter(webhook_attempts::at.lt(before))).execute(conn)
}
