//! Pending authorizations (`oauth_states`): stored hashed, bound to a session, single use,
//! ten minutes long.

use crate::db::schema::oauth_states;
use crate::db::DbConnection;
use diesel::prelude::*;

pub const LIFETIME_MINUTES: i64 = 10;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_states)]
pub struct PendingAuthorization {
    pub id: String,
    pub provider: String,
    pub user_id: String,
    pub session_binding: String,
    pub pkce_verifier: String,
    pub redirect_path: String,
    pub params: String,
    pub created_at: chrono::NaiveDateTime,
    pub expires_at: chrono::NaiveDateTime,
    pub consumed_at: Option<chrono::NaiveDateTime>,
    /// The connection settings entered before the consent page (JSON).
    pub connection_config: String,
}

pub fn insert(conn: &mut DbConnection, pending: &PendingAuthorization) -> QueryResult<()> {
    // Old rows are useless after they expire; clear them as new ones arrive.
    diesel::delete(
        oauth_states::table
            .filter(oauth_states::expires_at.lt(crate::db::now() - chrono::TimeDelta::days(1))),
    )
    .execute(conn)?;
    diesel::insert_into(oauth_states::table)
        .values(pending)
        .execute(conn)?;
    Ok(())
}

/// The `params` of a pending authorization, without consuming it (who it is for).
pub fn params_of(conn: &mut DbConnection, id: &str) -> QueryResult<Option<String>> {
    oauth_states::table
        .find(id)
        .select(oauth_states::params)
        .first(conn)
        .optional()
}

/// Why a state cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum StateProblem {
    /// A callback parameter was longer than any real one.
    Oversized,
    /// The callback carried no state.
    Missing,
    Unknown,
    AlreadyUsed,
    Expired,
    /// Started by another user or session: refused, and left for its own session to use.
    NotTheCallers,
}

/// Marks the state used and returns it, if `is_callers` says it belongs to the caller.
/// Only one caller can ever succeed for a state; a refused caller leaves it unused, so
/// whoever opens another session's callback cannot spoil that session's flow.
pub fn consume(
    conn: &mut DbConnection,
    id: &str,
    provider: &str,
    is_callers: impl FnOnce(&PendingAuthorization) -> bool,
) -> QueryResult<Result<PendingAuthorization, StateProblem>> {
    let now = crate::db::now();
    let found: Option<PendingAuthorization> = oauth_states::table
        .find(id)
        .filter(oauth_states::provider.eq(provider))
        .select(PendingAuthorization::as_select())
        .first(conn)
        .optional()?;
    let Some(pending) = found else {
        return Ok(Err(StateProblem::Unknown));
    };
    if !is_callers(&pending) {
        return Ok(Err(StateProblem::NotTheCallers));
    }
    if pending.consumed_at.is_some() {
        return Ok(Err(StateProblem::AlreadyUsed));
    }
    if pending.expires_at <= now {
        return Ok(Err(StateProblem::Expired));
    }
    let claimed = diesel::update(
        oauth_states::table
            .find(id)
            .filter(oauth_states::consumed_at.is_null()),
    )
    .set(oauth_states::consumed_at.eq(now))
    .execute(conn)?;
    Ok(if claimed == 1 {
        Ok(pending)
    } else {
        Err(StateProblem::AlreadyUsed)
    })
}
