//! Incoming provider webhooks (`POST /webhooks/{provider}`): the signature is checked the
//! way the provider signs, the connection(s) are found from the account or org id in the
//! payload, and the event is stored together with one `provider.webhook` event per
//! connection (the outbox), so the answer goes back at once and forwarding runs on the
//! job queue. An event about a synced model (the sync definition's `webhook_events`)
//! also queues an incremental run of that model for each connection. A bad signature, an unknown provider, an oversized or unparseable body
//! store nothing.

pub mod signature;
mod store;

use crate::db::DbError;
use crate::state::AppState;
use crate::webhooks::{self, EventType};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use signature::{Scheme, SignatureError};

/// The largest body accepted (the HTTP layer answers 413 past it).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error("connecthub takes no webhooks from this provider")]
    UnknownProvider,
    #[error("webhooks from {0} are not enabled: set {1}")]
    NotEnabled(String, String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the body is not JSON")]
    BadJson,
    #[error(transparent)]
    Storage(#[from] DbError),
}

crate::from_run_error!(IncomingError, Storage);

/// What was stored: the received event's id, the connections it was routed to and the
/// sync runs it queued.
#[derive(Debug, serde::Serialize)]
pub struct Received {
    pub id: String,
    pub connection_ids: Vec<String>,
    pub syncs_queued: Vec<QueuedSync>,
}

#[derive(Debug, serde::Serialize)]
pub struct QueuedSync {
    pub connection_id: String,
    pub model: String,
}

/// The variable holding a provider's webhook secret.
pub fn secret_variable(provider: &str) -> String {
    format!("{}_WEBHOOK_SECRET", provider.to_ascii_uppercase())
}

/// Checks the signature and parses the body; nothing is stored yet.
pub fn verify<'a>(
    state: &AppState,
    provider: &str,
    body: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<Value, IncomingError> {
    let scheme = Scheme::of(provider).ok_or(IncomingError::UnknownProvider)?;
    let secret = state
        .config
        .webhooks
        .provider_secret(provider)
        .ok_or_else(|| {
            IncomingError::NotEnabled(provider.to_string(), secret_variable(provider))
        })?;
    let now = chrono::Utc::now().timestamp();
    scheme.verify(secret.expose_secret().as_bytes(), body, header, now)?;
    let value: Value = serde_json::from_slice(body).map_err(|_| IncomingError::BadJson)?;
    if !value.is_object() {
        return Err(IncomingError::BadJson);
    }
    Ok(value)
}

/// The account (Klaviyo) or org (Kustomer) the payload is about.
pub fn account_id(provider: &str, payload: &Value) -> Option<String> {
    let candidates: &[&str] = match provider {
        "klaviyo" => &["/meta/company_id", "/meta/account_id", "/company_id"],
        "kustomer" => &["/orgId", "/org", "/data/relationships/org/data/id"],
        _ => &[],
    };
    candidates
        .iter()
        .find_map(|path| payload.pointer(path).and_then(Value::as_str))
        .map(str::to_string)
}

/// The event types a payload carries: Klaviyo sends a batch of events, each with its
/// `topic`; Kustomer one event with its `name`.
pub fn event_types(provider: &str, payload: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    match provider {
        "klaviyo" => payload
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|event| event.get("topic").and_then(text))
            .collect(),
        "kustomer" => payload.get("name").and_then(text).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The synced models of `provider` that the payload's events concern.
fn changed_models(state: &AppState, provider: &str, payload: &Value) -> Vec<String> {
    let events = event_types(provider, payload);
    let Some(definition) = state.providers().get(provider) else {
        return Vec::new();
    };
    definition
        .syncs
        .iter()
        .filter(|sync| events.iter().any(|e| sync.wants_event(e)))
        .map(|sync| sync.model.clone())
        .collect()
}

/// Stores a verified event and queues its forwarding, in one transaction.
pub async fn accept(
    state: &AppState,
    provider: &str,
    payload: Value,
) -> Result<Received, IncomingError> {
    let provider = provider.to_string();
    let account = account_id(&provider, &payload);
    let models = changed_models(state, &provider, &payload);
    let received = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let clients = match &account {
                Some(account) => store::connections_of_account(conn, &provider, account)?,
                None => Vec::new(),
            };
            let ids: Vec<String> = clients.iter().map(|c| c.id.clone()).collect();
            let id = store::record(conn, &provider, &ids, &payload)?;
            let mut syncs_queued = Vec::new();
            for client in &clients {
                let extra = json!({"provider_event_id": id, "provider_event": payload});
                webhooks::connection(conn, EventType::ProviderWebhook, client, extra)?;
                for model in crate::syncs::request_for_webhook(conn, client, &models)? {
                    syncs_queued.push(QueuedSync {
                        connection_id: client.id.clone(),
                        model,
                    });
                }
            }
            Ok::<_, diesel::result::Error>(Received {
                id,
                connection_ids: ids,
                syncs_queued,
            })
        })
    })
    .await?;
    Ok(received)
}
