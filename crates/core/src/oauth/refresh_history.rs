//! The refresh history of each connection: its last `KEEP` refresh attempts — when, what
//! started it, how it ended, how long the provider took, and the provider's error code and
//! description — so "why did this connection break" has an answer. Never a token. Each
//! attempt is written in the transaction that records its outcome, and older ones are
//! pruned in the same write, so a connection never holds more than `KEEP`.

use crate::db::schema::refresh_attempts;
use crate::db::DbConnection;
use crate::provider_http::CallError;
use diesel::prelude::*;
use std::time::Duration;

/// Attempts kept per connection.
pub const KEEP: i64 = 20;
/// The provider's description is cut to this many characters.
const DESCRIPTION_MAX_CHARS: usize = 500;

/// What started a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A token was asked for (service API, proxy, operations) and the stored one was due.
    HandOut,
    /// The background refresher found the token due.
    Refresher,
    /// A person pressed Refresh (the client's page, the bulk action).
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::HandOut => "hand_out",
            Trigger::Refresher => "refresher",
            Trigger::Manual => "manual",
        }
    }

    /// Whether the refresh runs even though the stored token is still fresh.
    pub fn forces(self) -> bool {
        self == Trigger::Manual
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_attempts)]
pub struct Attempt {
    pub id: i64,
    pub client_id: String,
    pub at: chrono::NaiveDateTime,
    pub trigger_kind: String,
    /// `success`, `invalid_grant`, `transient` or `rejected`.
    pub outcome: String,
    pub duration_ms: i32,
    pub error_code: Option<String>,
    pub error_description: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.outcome == "success"
    }
}

/// One attempt as the lifecycle saw it.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub trigger: Trigger,
    pub outcome: &'static str,
    pub duration: Duration,
    pub error_code: Option<String>,
    pub error_description: Option<String>,
}

impl NewAttempt {
    pub fn succeeded(trigger: Trigger, duration: Duration) -> Self {
        Self {
            trigger,
            outcome: "success",
            duration,
            error_code: None,
            error_description: None,
        }
    }

    /// A failed attempt: the provider's own code and description where it sent them.
    pub fn failed(
        trigger: Trigger,
        outcome: &'static str,
        duration: Duration,
        error: &CallError,
    ) -> Self {
        let (code, description) = match error {
            CallError::Rejected {
                code, description, ..
            } => (Some(code.clone()), description.clone()),
            CallError::Transient { reason, .. } => (None, Some(reason.clone())),
            CallError::InvalidResponse(why) => (None, Some(why.clone())),
        };
        Self {
            trigger,
            outcome,
            duration,
            error_code: code.map(|c| shorten(&c, 100)),
            error_description: description.map(|d| shorten(&d, DESCRIPTION_MAX_CHARS)),
        }
    }
}

/// At most `max` characters, control characters replaced: the text comes from a provider.
fn shorten(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Stores the attempt and drops the client's attempts beyond the newest `KEEP`.
pub fn record(conn: &mut DbConnection, client_id: &str, attempt: &NewAttempt) -> QueryResult<()> {
    let duration_ms = i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX);
    diesel::insert_into(refresh_attempts::table)
        .values((
            refresh_attempts::client_id.eq(client_id),
            refresh_attempts::at.eq(crate::db::now()),
            refresh_attempts::trigger_kind.eq(attempt.trigger.as_str()),
            refresh_attempts::outcome.eq(attempt.outcome),
            refresh_attempts::duration_ms.eq(duration_ms),
            refresh_attempts::error_code.eq(&attempt.error_code),
            refresh_attempts::error_description.eq(&attempt.error_description),
        ))
        .execute(conn)?;
    let oldest_kept = refresh_attempts::table
        .filter(refresh_attempts::client_id.eq(client_id))
        .order(refresh_attempts::id.desc())
        .offset(KEEP - 1)
        .select(refresh_attempts::id)
        .first::<i64>(conn)
        .optional()?;
    if let Some(oldest_kept) = oldest_kept {
        diesel::delete(
            refresh_attempts::table
                .filter(refresh_attempts::client_id.eq(client_id))
                .filter(refresh_attempts::id.lt(oldest_kept)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// The client's kept attempts, newest first.
pub fn recent(conn: &mut DbConnection, client_id: &str) -> QueryResult<Vec<Attempt>> {
    refresh_attempts::table
        .filter(refresh_attempts::client_id.eq(client_id))
        .order(refresh_attempts::id.desc())
        .limit(KEEP)
        .select(Attempt::as_select())
        .load(conn)
}

/// The client's kept attempts, newest first; None when there is no such client.
pub fn for_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<Option<Vec<Attempt>>> {
    if crate::clients::find(conn, client_id)?.is_none() {
        return Ok(None);
    }
    recent(conn, client_id).map(Some)
}
