//! `/api/v1/webhook-endpoints` (scope `webhooks:write`): list, create (the answer carries
//! the signing secret, once), read with the delivery log, change, delete, rotate the
//! secret, send a test event and replay deliveries.

use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::state::AppState;
use crate::webhooks::attempts::LoggedAttempt;
use crate::webhooks::endpoints::{self, Endpoint};
use crate::webhooks::manage::{self, Draft, Replay, WebhookError};
use actix_web::{web, HttpResponse};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhook-endpoints", web::get().to(list))
        .route("/webhook-endpoints", web::post().to(create))
        .route("/webhook-endpoints/{id}", web::get().to(show))
        .route("/webhook-endpoints/{id}", web::patch().to(update))
        .route("/webhook-endpoints/{id}", web::delete().to(delete))
        .route(
            "/webhook-endpoints/{id}/rotate-secret",
            web::post().to(rotate),
        )
        .route("/webhook-endpoints/{id}/test", web::post().to(send_test))
        .route("/webhook-endpoints/{id}/replay", web::post().to(replay));
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default = "enabled_default")]
    enabled: bool,
}

fn enabled_default() -> bool {
    true
}

impl EndpointBody {
    fn draft(&self) -> Draft<'_> {
        Draft {
            url: &self.url,
            description: &self.description,
            event_types: &self.event_types,
            enabled: self.enabled,
        }
    }
}

/// `{"event_id": "msg_…"}` replays one event; `{"failed_since": "2026-12-01T10:00:00Z"}`
/// every event whose deliveries failed since then.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    event_id: Option<String>,
    failed_since: Option<chrono::DateTime<chrono::Utc>>,
}

fn error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::Invalid(message) => ApiError::bad_request(message),
        WebhookError::NotFound => ApiError::not_found("webhook endpoint"),
        WebhookError::Storage(e) => e.into(),
    }
}

fn view(endpoint: &Endpoint) -> serde_json::Value {
    json!({
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.type_list(),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since.map(rfc3339),
        "previous_secret_valid_until": endpoint.previous_secret_until.map(rfc3339),
        "created_at": rfc3339(endpoint.created_at),
    })
}

fn rfc3339(at: chrono::NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn attempt_view(logged: &LoggedAttempt) -> serde_json::Value {
    let a = &logged.attempt;
    json!({
        "event_id": a.event_id, "event_type": logged.event_type, "at": rfc3339(a.at),
        "status": a.status, "duration_ms": a.duration_ms, "succeeded": a.succeeded,
        "error": a.error, "response": a.response_excerpt,
    })
}

fn allowed(key: &ServiceKey, state: &AppState) -> Result<(), ApiError> {
    key.require(Scope::WebhooksWrite)?;
    key.within_budget(state)
}

async fn list(state: web::Data<AppState>, key: ServiceKey) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let endpoints = manage::list(&state).await.map_err(error)?;
    Ok(HttpResponse::Ok().json(json!({"data": endpoints.iter().map(view).collect::<Vec<_>>()})))
}

async fn create(
    state: web::Data<AppState>,
    key: ServiceKey,
    body: web::Json<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let (endpoint, secret) = manage::create(&state, &key.actor(), &body.draft())
        .await
        .map_err(error)?;
    let mut answer = view(&endpoint);
    answer["secret"] = json!(endpoints::reveal(&secret));
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(answer))
}

async fn show(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let (endpoint, log) = manage::details(&state, &id).await.map_err(error)?;
    let mut answer = view(&endpoint);
    answer["attempts"] = json!(log.iter().map(attempt_view).collect::<Vec<_>>());
    Ok(HttpResponse::Ok().json(answer))
}

async fn update(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
    body: web::Json<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let endpoint = manage::update(&state, &key.actor(), &id, &body.draft())
        .await
        .map_err(error)?;
    Ok(HttpResponse::Ok().json(view(&endpoint)))
}

async fn delete(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    manage::delete(&state, &key.actor(), &id)
        .await
        .map_err(error)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let secret = manage::rotate(&state, &key.actor(), &id)
        .await
        .map_err(error)?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"secret": endpoints::reveal(&secret), "previous_secret_valid_hours": manage::ROTATION_OVERLAP.num_hours()})))
}

async fn send_test(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let event_id = manage::send_test(&state, &key.actor(), &id)
        .await
        .map_err(error)?;
    Ok(HttpResponse::Accepted().json(json!({"event_id": event_id})))
}

async fn replay(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
    body: web::Json<ReplayBody>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let what = match (&body.event_id, body.failed_since) {
        (Some(event_id), None) => Replay::One(event_id.clone()),
        (None, Some(since)) => Replay::FailedSince(since.naive_utc()),
        _ => {
            return Err(ApiError::bad_request(
                "give either event_id or failed_since",
            ))
        }
    };
    let queued = manage::replay(&state, &key.actor(), &id, what)
        .await
        .map_err(error)?;
    Ok(HttpResponse::Accepted().json(json!({"queued": queued})))
}
