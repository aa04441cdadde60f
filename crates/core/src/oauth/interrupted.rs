//! Refreshes whose outcome is unknown: the process stopped (a crash, a kill) after asking
//! the provider and before writing the answer. With rotating refresh tokens the provider
//! may have issued a new pair that nobody stored, and then the stored refresh token is
//! dead. Nothing can tell from here; the connection says so until its next refresh, which
//! is made due at once and settles it (stored again, or `needs_reauth`).

use crate::audit::{self, Actor, Event};
use crate::clients::{self, credentials};
use crate::db::DbConnection;
use diesel::QueryResult;
use serde_json::json;

/// What the page and the service API show for such a connection.
pub fn message(started: chrono::NaiveDateTime) -> String {
    format!(
        "A token refresh started at {} UTC was interrupted before its outcome was stored \
         (the server stopped); whether the provider issued new tokens is unknown. The next \
         refresh settles it: if it fails, reconnect the account.",
        started.format("%Y-%m-%d %H:%M:%S")
    )
}

/// Whether the client still shows the message of an interrupted refresh (the refresh
/// that settles it explains its own failure with it).
pub fn was_noted(client: &crate::clients::Client) -> bool {
    client
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains(NOTE_MARK))
}

/// The part of `message` that identifies it.
const NOTE_MARK: &str = "was interrupted before its outcome was stored";

/// Writes down one interrupted refresh: the message on the client, an audit entry.
fn note(conn: &mut DbConnection, id: &str, started: chrono::NaiveDateTime) -> QueryResult<()> {
    clients::note_error(conn, id, &message(started))?;
    let event = Event::new(Actor::system(), "token_refresh_interrupted")
        .target("client", id.to_string())
        .failed()
        .details(json!({"started_at": started.and_utc().to_rfc3339()}));
    audit::append(conn, event)
}

/// Under a lease just taken for `id`: reports the refresh an earlier holder left
/// unfinished, if any, and answers when it started (the refresh about to run settles it).
pub fn report_own(conn: &mut DbConnection, id: &str) -> QueryResult<Option<chrono::NaiveDateTime>> {
    crate::db::transaction(conn, |conn| {
        let started = credentials::take_own_interrupted(conn, id)?;
        if let Some(started) = started {
            note(conn, id, started)?;
            tracing::warn!(client_id = %id, "a refresh interrupted by a stop: outcome unknown");
        }
        Ok(started)
    })
}

/// Reports every interrupted refresh once (message on the client, an audit entry) and
/// makes it due; returns how many there were.
pub fn report(conn: &mut DbConnection) -> QueryResult<usize> {
    let found = crate::db::transaction(conn, |conn| {
        let found = credentials::take_interrupted_refreshes(conn)?;
        for (id, started) in &found {
            note(conn, id, *started)?;
        }
        Ok::<_, diesel::result::Error>(found)
    })?;
    if !found.is_empty() {
        tracing::warn!(
            count = found.len(),
            "refreshes interrupted by a stop: outcome unknown"
        );
    }
    Ok(found.len())
}
