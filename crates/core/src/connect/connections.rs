//! The connections of an end user (clients made through their connect sessions).

use super::end_users::{self, EndUser};
use crate::clients::{Client, ClientStatus};
use crate::db::schema::{clients, credentials};
use crate::db::DbConnection;
use diesel::prelude::*;

/// A client with its token expiry, as the service API lists it.
pub type WithExpiry = (Client, Option<chrono::NaiveDateTime>);

/// The end user (by the team's id) and their connections, newest first.
pub fn of_end_user(
    conn: &mut DbConnection,
    external_id: &str,
) -> QueryResult<Option<(EndUser, Vec<WithExpiry>)>> {
    let Some(end_user) = end_users::by_external_id(conn, external_id)? else {
        return Ok(None);
    };
    let rows = clients::table
        .left_join(credentials::table)
        .filter(clients::end_user_id.eq(&end_user.id))
        .order((clients::updated_at.desc(), clients::id.asc()))
        .select((Client::as_select(), credentials::expires_at.nullable()))
        .limit(500)
        .load(conn)?;
    Ok(Some((end_user, rows)))
}

/// The end user's default connection for a provider, unless it is disconnected.
pub fn default_for(
    conn: &mut DbConnection,
    external_id: &str,
    provider: &str,
) -> QueryResult<Option<Client>> {
    let Some(end_user) = end_users::by_external_id(conn, external_id)? else {
        return Ok(None);
    };
    clients::table
        .filter(clients::end_user_id.eq(&end_user.id))
        .filter(clients::provider.eq(provider))
        .filter(clients::is_default.eq(true))
        .filter(clients::status.ne(ClientStatus::Disconnected.as_str()))
        .select(Client::as_select())
        .first(conn)
        .optional()
}
