//! The `synced_conversations` repository: which Kustomer conversation was created for a
//! caller's external id (a chat session, say), so a repeat does not create a second one.
//!
//! A request first claims the external id by inserting a row without a conversation id;
//! only the request whose insert succeeds calls Kustomer, then fills the row in. Racing
//! requests hit the primary key, find the claim and wait for it to be filled.

use crate::db::schema::synced_conversations;
use crate::db::DbConnection;
use diesel::prelude::*;

/// A claim older than this was left by a request that died before Kustomer answered
/// (provider calls time out well before); the next request may take it over.
const STALE_CLAIM: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = synced_conversations)]
pub struct SyncedConversation {
    pub client_id: String,
    pub external_id: String,
    /// None while the request that claimed the external id is creating the conversation.
    pub conversation_id: Option<String>,
    pub customer_id: String,
    pub created_at: chrono::NaiveDateTime,
}

/// What `claim` found.
#[derive(Debug)]
pub enum Claim {
    /// This request holds the external id and must create the conversation.
    Mine,
    /// The conversation exists already.
    Done(SyncedConversation),
    /// Another request is creating it right now.
    Pending,
}

/// Claims `external_id` for a new conversation of `customer_id`, unless a conversation was
/// (or is being) created for it already.
pub fn claim(
    conn: &mut DbConnection,
    client_id: &str,
    external_id: &str,
    customer_id: &str,
) -> QueryResult<Claim> {
    crate::db::transaction(conn, |conn| {
        let now = crate::db::now();
        diesel::delete(
            synced_conversations::table
                .find((client_id, external_id))
                .filter(synced_conversations::conversation_id.is_null())
                .filter(synced_conversations::created_at.lt(now - STALE_CLAIM)),
        )
        .execute(conn)?;
        // A savepoint, so a failed insert leaves the outer transaction usable (PostgreSQL).
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(synced_conversations::table)
                .values((
                    synced_conversations::client_id.eq(client_id),
                    synced_conversations::external_id.eq(external_id),
                    synced_conversations::customer_id.eq(customer_id),
                    synced_conversations::created_at.eq(now),
                ))
                .execute(conn)
        });
        match inserted {
            Ok(_) => Ok(Claim::Mine),
            Err(e) if crate::clients::is_unique_violation(&e) => {
                Ok(match find(conn, client_id, external_id)? {
                    Some(row) if row.conversation_id.is_some() => Claim::Done(row),
                    _ => Claim::Pending,
                })
            }
            Err(e) => Err(e),
        }
    })
}

/// Records the conversation created under a claim.
pub fn complete(
    conn: &mut DbConnection,
    client_id: &str,
    external_id: &str,
    conversation_id: &str,
) -> QueryResult<usize> {
    diesel::update(synced_conversations::table.find((client_id, external_id)))
        .set(synced_conversations::conversation_id.eq(conversation_id))
        .execute(conn)
}

/// Gives a claim up (Kustomer refused or did not answer), so the id can be tried again.
pub fn release(conn: &mut DbConnection, client_id: &str, external_id: &str) -> QueryResult<usize> {
    diesel::delete(
        synced_conversations::table
            .find((client_id, external_id))
            .filter(synced_conversations::conversation_id.is_null()),
    )
    .execute(conn)
}

pub fn find(
    conn: &mut DbConnection,
    client_id: &str,
    external_id: &str,
) -> QueryResult<Option<SyncedConversation>> {
    synced_conversations::table
        .find((client_id, external_id))
        .select(SyncedConversation::as_select())
        .first(conn)
        .optional()
}
