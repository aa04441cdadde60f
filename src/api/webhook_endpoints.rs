//! `/api/v1/webhook-endpoints` (scope `webhooks:write`): list, create (the answer carries
//! the signing secret, once), read with the delivery log, change, delete, rotate the
//! secret, send a test event and replay deliveries.

use super::error::{json_body, ApiError, ErrorBody};
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::route_table::Table;
use crate::state::AppState;
use crate::webhooks::attempts::LoggedAttempt;
use crate::webhooks::endpoints::{self, Endpoint};
use crate::webhooks::manage::{self, Draft, Replay, WebhookError};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.at(Method::GET, "/webhook-endpoints", list)
        .at(Method::POST, "/webhook-endpoints", create)
        .at(Method::GET, "/webhook-endpoints/{id}", show)
        .at(Method::PATCH, "/webhook-endpoints/{id}", update)
        .at(Method::DELETE, "/webhook-endpoints/{id}", delete)
        .at(
            Method::POST,
            "/webhook-endpoints/{id}/rotate-secret",
            rotate,
        )
        .at(Method::POST, "/webhook-endpoints/{id}/test", send_test)
        .at(Method::POST, "/webhook-endpoints/{id}/replay", replay);
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
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
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    event_id: Option<String>,
    /// RFC 3339, e.g. `2026-12-01T10:00:00Z`.
    #[schema(value_type = Option<String>, format = DateTime)]
    failed_since: Option<chrono::DateTime<chrono::Utc>>,
}

fn error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::Invalid(message) => ApiError::bad_request(message),
        WebhookError::NotFound => ApiError::not_found("webhook endpoint"),
        WebhookError::Storage(e) => e.into(),
    }
}

/// An endpoint as services see it; `secret` only in the create and rotate answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Subscribed event types; empty means every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why connecthub disabled it (410 Gone, or five days of failures).
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_valid_until: Option<String>,
    pub created_at: String,
    /// `whsec_…`, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The latest delivery attempts, newest first (the endpoint's own answer only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

/// One delivery attempt.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// The `webhook-id`, the same on every attempt of one event.
    pub event_id: String,
    pub event_type: String,
    pub at: String,
    /// The receiver's HTTP status; none when it did not answer.
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub succeeded: bool,
    pub error: Option<String>,
    /// The first KB of the receiver's answer.
    pub response: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    pub data: Vec<EndpointView>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SecretAnswer {
    pub secret: String,
    pub previous_secret_valid_hours: i64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Queued {
    /// Events queued for delivery again.
    pub queued: usize,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TestSent {
    pub event_id: String,
}

fn view(endpoint: &Endpoint) -> EndpointView {
    EndpointView {
        id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        event_types: endpoint.type_list(),
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason.clone(),
        failing_since: endpoint.failing_since.map(rfc3339),
        previous_secret_valid_until: endpoint.previous_secret_until.map(rfc3339),
        created_at: rfc3339(endpoint.created_at),
        secret: None,
        attempts: None,
    }
}

fn rfc3339(at: chrono::NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn attempt_view(logged: &LoggedAttempt) -> AttemptView {
    let a = &logged.attempt;
    AttemptView {
        event_id: a.event_id.clone(),
        event_type: logged.event_type.clone(),
        at: rfc3339(a.at),
        status: a.status,
        duration_ms: a.duration_ms,
        succeeded: a.succeeded,
        error: a.error.clone(),
        response: a.response_excerpt.clone(),
    }
}

fn allowed(key: &ServiceKey, state: &AppState) -> Result<(), ApiError> {
    key.require(Scope::WebhooksWrite)?;
    key.within_budget(state)
}

#[utoipa::path(
    get,
    path = "/api/v1/webhook-endpoints",
    tag = "webhooks",
    summary = "List the webhook endpoints",
    responses(
        (status = 200, description = "Every endpoint", body = EndpointList),
        (status = 403, description = "The key lacks `webhooks:write` (`insufficient_scope`)", body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn list(state: web::Data<AppState>, key: ServiceKey) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let endpoints = manage::list(&state).await.map_err(error)?;
    Ok(HttpResponse::Ok().json(EndpointList {
        data: endpoints.iter().map(view).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/webhook-endpoints",
    tag = "webhooks",
    summary = "Add an endpoint; the answer carries its signing secret, once",
    request_body = EndpointBody,
    responses(
        (status = 201, description = "Created, with `secret`", body = EndpointView),
        (status = 400, description = "URL not http(s), private address refused, unknown event type, description not one line (`invalid_request`)", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:write` (`insufficient_scope`)", body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    key: ServiceKey,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let body: EndpointBody = json_body(&body)?;
    let (endpoint, secret) = manage::create(&state, &key.actor(), &body.draft())
        .await
        .map_err(error)?;
    let mut answer = view(&endpoint);
    answer.secret = Some(endpoints::reveal(&secret).to_string());
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(answer))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    summary = "An endpoint and its latest delivery attempts",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint with `attempts`", body = EndpointView),
        (status = 403, description = "The key lacks `webhooks:write` (`insufficient_scope`)", body = ErrorBody),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn show(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let (endpoint, log) = manage::details(&state, &id).await.map_err(error)?;
    let mut answer = view(&endpoint);
    answer.attempts = Some(log.iter().map(attempt_view).collect());
    Ok(HttpResponse::Ok().json(answer))
}

#[utoipa::path(
    patch,
    path = "/api/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    summary = "Change URL, description, event types or enabled (enabling clears the disabled reason)",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body = EndpointBody,
    responses(
        (status = 200, description = "The endpoint as saved", body = EndpointView),
        (status = 400, description = "URL not http(s), private address refused, unknown event type, description not one line (`invalid_request`)", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:write` (`insufficient_scope`)", body = ErrorBody),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn update(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let body: EndpointBody = json_body(&body)?;
    let endpoint = manage::update(&state, &key.actor(), &id, &body.draft())
        .await
        .map_err(error)?;
    Ok(HttpResponse::Ok().json(view(&endpoint)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    summary = "Delete an endpoint",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The key lacks `webhooks:write` (`insufficient_scope`)", body = ErrorBody),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn delete(
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

#[utoipa::path(
    post,
    path = "/api/v1/webhook-endpoints/{id}/rotate-secret",
    tag = "webhooks",
    summary = "A new signing secret; the old one keeps signing for 24 h",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The new secret, shown once", body = SecretAnswer),
        (status = 403, description = "The key lacks `webhooks:write` (`insufficient_scope`)", body = ErrorBody),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn rotate(
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
        .json(SecretAnswer {
            secret: endpoints::reveal(&secret).to_string(),
            previous_secret_valid_hours: manage::ROTATION_OVERLAP.num_hours(),
        }))
}

#[utoipa::path(
    post,
    path = "/api/v1/webhook-endpoints/{id}/test",
    tag = "webhooks",
    summary = "Send a `webhook.test` event to this endpoint",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 202, description = "Queued", body = TestSent),
        (status = 403, description = "The key lacks `webhooks:write` (`insufficient_scope`)", body = ErrorBody),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn send_test(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let event_id = manage::send_test(&state, &key.actor(), &id)
        .await
        .map_err(error)?;
    Ok(HttpResponse::Accepted().json(TestSent { event_id }))
}

#[utoipa::path(
    post,
    path = "/api/v1/webhook-endpoints/{id}/replay",
    tag = "webhooks",
    summary = "Deliver one event again (same webhook-id), or every event that failed since a time",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body = ReplayBody,
    responses(
        (status = 202, description = "How many were queued", body = Queued),
        (status = 400, description = "Neither or both of `event_id` and `failed_since` (`invalid_request`)", body = ErrorBody),
        (status = 403, description = "The key lacks `webhooks:write` (`insufficient_scope`)", body = ErrorBody),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn replay(
    state: web::Data<AppState>,
    key: ServiceKey,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    allowed(&key, &state)?;
    let body: ReplayBody = json_body(&body)?;
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
    Ok(HttpResponse::Accepted().json(Queued { queued }))
}
