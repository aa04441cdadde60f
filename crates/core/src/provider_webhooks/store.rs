//! The queries of incoming webhooks: the connections of an account, and the received row.

use crate::clients::{Client, ClientStatus};
use crate::db::schema::{clients, provider_webhooks};
use crate::db::DbConnection;
use diesel::prelude::*;

/// Every live connection of this provider account (one per owner that connected it).
pub fn connections_of_account(
    conn: &mut DbConnection,
    provider: &str,
    account_id: &str,
) -> QueryResult<Vec<Client>> {
    clients::table
        .filter(clients::provider.eq(provider))
        .filter(clients::provider_account_id.eq(account_id))
        .filter(clients::status.ne(ClientStatus::Disconnected.as_str()))
        .order(clients::created_at.asc())
        .select(Client::as_select())
        .load(conn)
}

pub fn record(
    conn: &mut DbConnection,
    provider: &str,
    client_ids: &[String],
    payload: &serde_json::Value,
) -> QueryResult<String> {
    let id = format!("pwh_{}", uuid::Uuid::new_v4().simple());
    diesel::insert_into(provider_webhooks::table)
        .values((
            provider_webhooks::id.eq(&id),
            provider_webhooks::provider.eq(provider),
            provider_webhooks::client_ids.eq(serde_json::to_string(client_ids).unwrap_or_default()),
            provider_webhooks::body.eq(payload.to_string()),
            provider_webhooks::received_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(id)
}
