//! The `connect_sessions` repository. A session is found only by the SHA-256 of its token;
//! it ends once (completed or expired) by a conditional update, so two racing callbacks
//! cannot both complete it.

use crate::db::schema::connect_sessions;
use crate::db::DbConnection;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = connect_sessions)]
pub struct ConnectSession {
    pub id: String,
    pub token_hash: String,
    pub end_user_id: String,
    pub owner_user_id: String,
    pub api_key_id: String,
    /// JSON array of provider names; empty: every enabled provider.
    pub allowed_providers: String,
    /// JSON array of tags given to the connection.
    pub tags: String,
    pub success_url: Option<String>,
    pub error_url: Option<String>,
    /// JSON array of exact origins the popup may report to.
    pub allowed_origins: String,
    pub reconnect_client_id: Option<String>,
    pub status: String,
    pub completed_client_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub expires_at: chrono::NaiveDateTime,
    pub finished_at: Option<chrono::NaiveDateTime>,
}

fn json_list(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

impl ConnectSession {
    pub fn providers(&self) -> Vec<String> {
        json_list(&self.allowed_providers)
    }
    pub fn origins(&self) -> Vec<String> {
        json_list(&self.allowed_origins)
    }
    pub fn tag_list(&self) -> Vec<String> {
        json_list(&self.tags)
    }
    /// Open sessions (and failed ones: the end user may try again) until they expire.
    pub fn is_usable(&self, now: chrono::NaiveDateTime) -> bool {
        matches!(self.status.as_str(), "open" | "failed") && self.expires_at > now
    }
}

pub fn insert(conn: &mut DbConnection, session: &ConnectSession) -> QueryResult<()> {
    diesel::insert_into(connect_sessions::table)
        .values(session)
        .execute(conn)
        .map(|_| ())
}

pub fn by_token_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<ConnectSession>> {
    connect_sessions::table
        .filter(connect_sessions::token_hash.eq(hash))
        .select(ConnectSession::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ConnectSession>> {
    connect_sessions::table
        .find(id)
        .select(ConnectSession::as_select())
        .first(conn)
        .optional()
}

/// Completes the session with its client; false when it had already ended.
pub fn complete(conn: &mut DbConnection, id: &str, client_id: &str) -> QueryResult<bool> {
    let changed = diesel::update(
        connect_sessions::table
            .filter(connect_sessions::id.eq(id))
            .filter(connect_sessions::status.eq_any(["open", "failed"])),
    )
    .set((
        connect_sessions::status.eq("completed"),
        connect_sessions::completed_client_id.eq(client_id),
        connect_sessions::last_error.eq(None::<String>),
        connect_sessions::finished_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Records a failed attempt; the session stays usable until it expires (Try again).
pub fn record_failure(conn: &mut DbConnection, id: &str, reason: &str) -> QueryResult<bool> {
    let changed = diesel::update(
        connect_sessions::table
            .filter(connect_sessions::id.eq(id))
            .filter(connect_sessions::status.eq_any(["open", "failed"])),
    )
    .set((
        connect_sessions::status.eq("failed"),
        connect_sessions::last_error.eq(reason),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Open or failed sessions past their expiry (at most `limit`), as (id, end user id).
pub fn due_for_expiry(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(String, String)>> {
    connect_sessions::table
        .filter(connect_sessions::status.eq_any(["open", "failed"]))
        .filter(connect_sessions::expires_at.le(crate::db::now()))
        .select((connect_sessions::id, connect_sessions::end_user_id))
        .limit(limit)
        .load(conn)
}

/// Marks an open or failed session past its expiry as expired; true the first time.
pub fn expire(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let now = crate::db::now();
    let changed = diesel::update(
        connect_sessions::table
            .filter(connect_sessions::id.eq(id))
            .filter(connect_sessions::status.eq_any(["open", "failed"]))
            .filter(connect_sessions::expires_at.le(now)),
    )
    .set((
        connect_sessions::status.eq("expired"),
        connect_sessions::finished_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// (status, count) of the sessions created since `since`, for the completion rate.
pub fn count_by_status(
    conn: &mut DbConnection,
    since: chrono::NaiveDateTime,
) -> QueryResult<Vec<(String, i64)>> {
    connect_sessions::table
        .filter(connect_sessions::created_at.ge(since))
        .group_by(connect_sessions::status)
        .select((connect_sessions::status, diesel::dsl::count_star()))
        .load(conn)
}
