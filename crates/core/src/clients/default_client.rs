//! Each owner's default client per provider: the one the service API hands out when no
//! client is named. Making a client the default, and finding it.

use super::{Client, ClientStatus};
use crate::db::schema::{clients, users};
use crate::db::DbConnection;
use diesel::prelude::*;

/// How `make_default` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum DefaultChange {
    /// The client is now the default; these clients were before it.
    Made {
        previous: Vec<String>,
    },
    AlreadyDefault,
    /// A disconnected client has no credentials to hand out, so it cannot be the default.
    Disconnected,
    /// The client no longer exists.
    Gone,
}

/// Makes `client` its owner's default for its provider and clears the flag on the owner's
/// other clients of that provider, so exactly one stays default.
pub fn make_default(conn: &mut DbConnection, client: &Client) -> QueryResult<DefaultChange> {
    crate::db::transaction(conn, |conn| {
        let siblings = || {
            let query = clients::table
                .filter(clients::owner_user_id.eq(&client.owner_user_id))
                .filter(clients::provider.eq(&client.provider))
                .into_boxed();
            match &client.end_user_id {
                Some(end_user) => query.filter(clients::end_user_id.eq(end_user)),
                None => query.filter(clients::end_user_id.is_null()),
            }
        };
        // A no-op write that locks every sibling row (PostgreSQL): two concurrent switches
        // or a concurrent disconnect wait here instead of leaving two defaults. SQLite's
        // BEGIN IMMEDIATE already serialises writers.
        let sibling_ids: Vec<String> = siblings().select(clients::id).load(conn)?;
        diesel::update(clients::table.filter(clients::id.eq_any(&sibling_ids)))
            .set(clients::is_default.eq(clients::is_default))
            .execute(conn)?;
        // Read again under the lock: the status may have changed since the page loaded.
        let Some(current) = super::find(conn, &client.id)? else {
            return Ok(DefaultChange::Gone);
        };
        if current.status.is_disconnected() {
            return Ok(DefaultChange::Disconnected);
        }
        let previous: Vec<String> = siblings()
            .filter(clients::is_default.eq(true))
            .filter(clients::id.ne(&client.id))
            .select(clients::id)
            .load(conn)?;
        if current.is_default && previous.is_empty() {
            return Ok(DefaultChange::AlreadyDefault);
        }
        let now = crate::db::now();
        diesel::update(clients::table.filter(clients::id.eq_any(&previous)))
            .set((clients::is_default.eq(false), clients::updated_at.eq(now)))
            .execute(conn)?;
        diesel::update(clients::table.find(&client.id))
            .set((clients::is_default.eq(true), clients::updated_at.eq(now)))
            .execute(conn)?;
        Ok(DefaultChange::Made { previous })
    })
}

/// The owner's default client for a provider, unless it is disconnected. `owner` is a
/// user id, or an email address (it has an @).
pub fn default_of(
    conn: &mut DbConnection,
    owner: &str,
    provider: &str,
) -> QueryResult<Option<Client>> {
    let query = clients::table
        .inner_join(users::table)
        .filter(clients::provider.eq(provider))
        .filter(clients::end_user_id.is_null())
        .filter(clients::is_default.eq(true))
        .filter(clients::status.ne(ClientStatus::Disconnected.as_str()))
        .select(Client::as_select())
        .into_boxed();
    let query = if owner.contains('@') {
        query.filter(users::email.eq(owner.to_lowercase()))
    } else {
        query.filter(clients::owner_user_id.eq(owner.to_string()))
    };
    query.first(conn).optional()
}
