//! API-key clients switched to OAuth. A holder has one row per provider account, so
//! connecting an account with OAuth that the holder connected with an API key updates
//! that row in place: same id, tags, default flag and history; the key is replaced by the
//! tokens (`credentials::store`), and the change is audited as an upgrade.

use super::{same_account, Client, ClientStatus, Connection};
use crate::db::schema::clients;
use crate::db::DbConnection;
use crate::providers::{AuthType, Provider};
use diesel::prelude::*;

/// What the client's page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchToOAuth {
    /// "Switch to OAuth": the viewer's consent for this account upgrades this client.
    Offered,
    /// Only the owner can: anyone else connecting the account gets a client of their own.
    OwnerOnly,
    NotOffered,
}

/// Whether `viewer` can switch `client` to OAuth: an API-key client still connected,
/// held by a user (not an end user), of a provider with a configured OAuth app.
pub fn offer(client: &Client, provider: Option<&Provider>, viewer_id: &str) -> SwitchToOAuth {
    let supported = provider.is_some_and(|p| p.auth_type == AuthType::Oauth2 && p.is_configured());
    let eligible = client.auth_type.is_api_key()
        && !client.status.is_disconnected()
        && client.end_user_id.is_none()
        && supported;
    match (eligible, client.owner_user_id == viewer_id) {
        (false, _) => SwitchToOAuth::NotOffered,
        (true, true) => SwitchToOAuth::Offered,
        (true, false) => SwitchToOAuth::OwnerOnly,
    }
}

/// What storing a new credential does to the holder's row of the same account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// No row yet, or one connected the same way (a reconnection).
    Store,
    /// An API-key row gets OAuth tokens: the upgrade.
    Upgrade,
    /// An API key for an account connected with OAuth and not disconnected: OAuth takes
    /// precedence, so it is refused and nothing changes.
    Refused,
}

pub fn change(conn: &mut DbConnection, new: &Connection) -> QueryResult<Change> {
    let stored: Option<(String, String)> = same_account(new)
        .filter(clients::provider_account_id.eq(new.provider_account_id))
        .select((clients::auth_type, clients::status))
        .first(conn)
        .optional()?;
    let Some((auth_type, status)) = stored else {
        return Ok(Change::Store);
    };
    let was_api_key = AuthType::parse(&auth_type).is_some_and(AuthType::is_api_key);
    let disconnected = ClientStatus::parse(&status).is_some_and(ClientStatus::is_disconnected);
    Ok(match (was_api_key, new.auth_type.is_api_key()) {
        (true, false) => Change::Upgrade,
        (false, true) if !disconnected => Change::Refused,
        _ => Change::Store,
    })
}
