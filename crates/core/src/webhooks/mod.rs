//! Outgoing webhooks: the event catalogue and the outbox. `emit` writes an event in the
//! caller's transaction together with one delivery job per endpoint that subscribed to
//! its type, so an event exists exactly when the change it describes was committed.
//! Delivery (`delivery`) runs on the job queue and signs per Standard Webhooks.

pub mod attempts;
pub mod delivery;
pub mod endpoints;
pub mod events;
pub mod manage;
pub mod url_safety;

use crate::clients::Client;
use crate::db::schema::webhook_events;
use crate::db::DbConnection;
use diesel::prelude::*;
use serde_json::{json, Value};

pub use events::EventType;

/// The job kind of one delivery (one event to one endpoint).
pub const DELIVERY_JOB: &str = "webhook.deliver";
/// Delivery jobs are ended by the handler once the retry schedule is spent; this only
/// bounds a job whose instance keeps dying while it runs.
const DELIVERY_MAX_ATTEMPTS: i32 = 100;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub struct StoredEvent {
    pub id: String,
    pub event_type: String,
    pub body: String,
    pub created_at: chrono::NaiveDateTime,
}

/// Writes the event (the outbox row) and queues its deliveries, inside the caller's
/// transaction. The one call every producer makes: `webhooks::emit(conn, type, data)?`.
pub fn emit(conn: &mut DbConnection, event_type: EventType, data: Value) -> QueryResult<String> {
    let id = store_event(conn, event_type, &data)?;
    for endpoint in endpoints::subscribed(conn, event_type)? {
        queue_delivery(conn, &id, &endpoint)?;
    }
    Ok(id)
}

/// Writes the outbox row: the exact body every attempt will send.
fn store_event(
    conn: &mut DbConnection,
    event_type: EventType,
    data: &Value,
) -> QueryResult<String> {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let now = crate::db::now();
    let body = json!({
        "type": event_type.as_str(),
        "timestamp": now.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string();
    diesel::insert_into(webhook_events::table)
        .values((
            webhook_events::id.eq(&id),
            webhook_events::event_type.eq(event_type.as_str()),
            webhook_events::body.eq(&body),
            webhook_events::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Queues one delivery of a stored event to one endpoint (also how replays start).
pub fn queue_delivery(
    conn: &mut DbConnection,
    event_id: &str,
    endpoint_id: &str,
) -> QueryResult<i64> {
    crate::jobs::enqueue(
        conn,
        &crate::jobs::NewJob {
            kind: DELIVERY_JOB,
            payload: &json!({"event_id": event_id, "endpoint_id": endpoint_id}),
            queue_key: Some(endpoint_id),
            run_at: crate::db::now(),
            max_attempts: DELIVERY_MAX_ATTEMPTS,
        },
    )
}

pub fn find_event(conn: &mut DbConnection, id: &str) -> QueryResult<Option<StoredEvent>> {
    webhook_events::table
        .find(id)
        .select(StoredEvent::as_select())
        .first(conn)
        .optional()
}

/// The body of a connection event: who and what, never a token. `end_user` is the team's
/// own id of the end user whose connection it is.
fn connection_data(client: &Client, end_user: Option<String>, extra: Value) -> Value {
    let mut data = json!({
        "connection_id": client.id,
        "provider": client.provider,
        "account_id": client.provider_account_id,
        "account_name": client.display_name,
        "owner_user_id": client.owner_user_id,
        "end_user_id": end_user,
        "tags": client.tag_list(),
        "auth_type": client.auth_type.as_str(),
    });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    data
}

/// Emits a connection event (the usual case): `webhooks::connection(conn, type, &client, json!({}))?`.
pub fn connection(
    conn: &mut DbConnection,
    event_type: EventType,
    client: &Client,
    extra: Value,
) -> QueryResult<String> {
    let end_user = match &client.end_user_id {
        Some(id) => crate::connect::end_users::find(conn, id)?.map(|e| e.external_id),
        None => None,
    };
    emit(conn, event_type, connection_data(client, end_user, extra))
}

/// Whether an event of this type was emitted since `since` (alerts go out once a window).
pub fn emitted_since(
    conn: &mut DbConnection,
    event_type: EventType,
    since: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        webhook_events::table
            .filter(webhook_events::event_type.eq(event_type.as_str()))
            .filter(webhook_events::created_at.ge(since)),
    ))
    .get_result(conn)
}

/// Deletes events older than `before` (housekeeping; their deliveries are long finished:
/// the retry schedule spans about three days).
pub fn prune_events(conn: &mut DbConnection, before: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(webhook_events::table.filter(webhook_events::created_at.lt(before)))
        .execute(conn)
}
