//! What admins and services do with endpoints, audited: create, change, rotate the
//! secret, delete, send a test event, replay deliveries. The web pages and the service
//! API call these; they only parse and render.

use super::endpoints::{self, Endpoint, Settings};
use super::{attempts, EventType};
use crate::audit::{self, Actor, Event};
use crate::db::DbError;
use crate::state::AppState;
use secrecy::SecretString;
use serde_json::json;

pub const DESCRIPTION_MAX_CHARS: usize = 200;
/// How long the old secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such webhook endpoint")]
    NotFound,
    #[error(transparent)]
    Storage(#[from] DbError),
}

crate::from_run_error!(WebhookError, Storage);

impl From<anyhow::Error> for WebhookError {
    fn from(e: anyhow::Error) -> Self {
        Self::Storage(DbError::Other(e))
    }
}

/// An endpoint's settings as typed in a form or sent as JSON, before checking.
pub struct Draft<'a> {
    pub url: &'a str,
    pub description: &'a str,
    pub event_types: &'a [String],
    pub enabled: bool,
}

/// Checks a draft: a safe URL, a one-line description, known event types.
pub fn parse(state: &AppState, draft: &Draft) -> Result<Settings, WebhookError> {
    let url = super::url_safety::parse(draft.url, state.config.webhooks.allow_private)
        .map_err(WebhookError::Invalid)?;
    let description = draft.description.trim();
    if description.chars().count() > DESCRIPTION_MAX_CHARS
        || description.chars().any(char::is_control)
    {
        return Err(WebhookError::Invalid(format!(
            "the description must be one line of at most {DESCRIPTION_MAX_CHARS} characters"
        )));
    }
    let mut event_types = Vec::new();
    for raw in draft.event_types {
        let parsed = EventType::parse(raw)
            .filter(|t| *t != EventType::WebhookTest)
            .ok_or_else(|| {
                WebhookError::Invalid(format!(
                    "unknown event type: {}",
                    crate::provider_http::sanitize(raw, 60)
                ))
            })?;
        if !event_types.contains(&parsed) {
            event_types.push(parsed);
        }
    }
    Ok(Settings {
        url: url.to_string(),
        description: description.to_string(),
        event_types,
        enabled: draft.enabled,
    })
}

fn event(actor: &Actor, action: &'static str, id: &str) -> Event {
    Event::new(actor.clone(), action).target("webhook_endpoint", id.to_string())
}

/// Stores a new endpoint; the answer carries its secret, shown this once.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    draft: &Draft<'_>,
) -> Result<(Endpoint, SecretString), WebhookError> {
    let settings = parse(state, draft)?;
    let (vault, actor) = (state.vault.clone(), actor.clone());
    let created = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let (endpoint, secret) = endpoints::create(conn, &vault, &settings)?;
            audit::append(
                conn,
                event(&actor, "webhook_endpoint_created", &endpoint.id)
                    .details(json!({"url": endpoint.url})),
            )?;
            Ok::<_, anyhow::Error>((endpoint, secret))
        })
    })
    .await?;
    Ok(created)
}

pub async fn update(
    state: &AppState,
    actor: &Actor,
    id: &str,
    draft: &Draft<'_>,
) -> Result<Endpoint, WebhookError> {
    let settings = parse(state, draft)?;
    let (id, actor) = (id.to_string(), actor.clone());
    let updated = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            if !endpoints::update(conn, &id, &settings)? {
                return Ok(None);
            }
            audit::append(
                conn,
                event(&actor, "webhook_endpoint_updated", &id)
                    .details(json!({"url": settings.url, "enabled": settings.enabled})),
            )?;
            endpoints::find(conn, &id)
        })
    })
    .await?;
    updated.ok_or(WebhookError::NotFound)
}

pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> Result<(), WebhookError> {
    let (id, actor) = (id.to_string(), actor.clone());
    let deleted = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let deleted = endpoints::delete(conn, &id)?;
            if deleted {
                audit::append(conn, event(&actor, "webhook_endpoint_deleted", &id))?;
            }
            Ok::<_, diesel::result::Error>(deleted)
        })
    })
    .await?;
    deleted.then_some(()).ok_or(WebhookError::NotFound)
}

/// A new secret; the old one keeps signing for `ROTATION_OVERLAP`.
pub async fn rotate(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<SecretString, WebhookError> {
    let (id, actor, vault) = (id.to_string(), actor.clone(), state.vault.clone());
    let rotated = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let secret = endpoints::rotate(conn, &vault, &id, ROTATION_OVERLAP)?;
            if secret.is_some() {
                audit::append(conn, event(&actor, "webhook_secret_rotated", &id))?;
            }
            Ok::<_, anyhow::Error>(secret)
        })
    })
    .await?;
    rotated.ok_or(WebhookError::NotFound)
}

/// Sends a `webhook.test` event to this endpoint (and only to it); answers the event id.
pub async fn send_test(state: &AppState, actor: &Actor, id: &str) -> Result<String, WebhookError> {
    let (id, actor) = (id.to_string(), actor.clone());
    let sent = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let Some(endpoint) = endpoints::find(conn, &id)? else {
                return Ok(None);
            };
            let event_id = store_test_event(conn, &endpoint)?;
            audit::append(
                conn,
                event(&actor, "webhook_test_sent", &id).details(json!({"event_id": event_id})),
            )?;
            Ok::<_, diesel::result::Error>(Some(event_id))
        })
    })
    .await?;
    sent.ok_or(WebhookError::NotFound)
}

fn store_test_event(
    conn: &mut crate::db::DbConnection,
    endpoint: &Endpoint,
) -> diesel::QueryResult<String> {
    let data = json!({"endpoint_id": endpoint.id, "message": "a test event from connecthub"});
    let event_id = super::store_event(conn, EventType::WebhookTest, &data)?;
    super::queue_delivery(conn, &event_id, &endpoint.id)?;
    Ok(event_id)
}

/// Sends one event again (same webhook-id), or every event whose deliveries failed at
/// this endpoint since a time. Answers how many were queued.
pub async fn replay(
    state: &AppState,
    actor: &Actor,
    id: &str,
    what: Replay,
) -> Result<usize, WebhookError> {
    let (id, actor) = (id.to_string(), actor.clone());
    let queued = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            if endpoints::find(conn, &id)?.is_none() {
                return Ok(None);
            }
            let events = match &what {
                Replay::One(event_id) => {
                    if attempts::was_attempted(conn, &id, event_id)? {
                        vec![event_id.clone()]
                    } else {
                        Vec::new()
                    }
                }
                Replay::FailedSince(since) => attempts::failed_since(conn, &id, *since)?,
            };
            for event_id in &events {
                super::queue_delivery(conn, event_id, &id)?;
            }
            audit::append(
                conn,
                event(&actor, "webhook_replayed", &id).details(json!({"events": events.len()})),
            )?;
            Ok::<_, diesel::result::Error>(Some(events.len()))
        })
    })
    .await?;
    queued.ok_or(WebhookError::NotFound)
}

pub enum Replay {
    One(String),
    FailedSince(chrono::NaiveDateTime),
}

/// An endpoint with its latest delivery attempts.
pub async fn details(
    state: &AppState,
    id: &str,
) -> Result<(Endpoint, Vec<attempts::LoggedAttempt>), WebhookError> {
    let id = id.to_string();
    let found = crate::db::run(&state.pool, move |conn| {
        let Some(endpoint) = endpoints::find(conn, &id)? else {
            return Ok(None);
        };
        let log = attempts::latest(conn, &id, 50)?;
        Ok::<_, diesel::result::Error>(Some((endpoint, log)))
    })
    .await?;
    found.ok_or(WebhookError::NotFound)
}

pub async fn list(state: &AppState) -> Result<Vec<Endpoint>, WebhookError> {
    Ok(crate::db::run(&state.pool, endpoints::list).await?)
}
