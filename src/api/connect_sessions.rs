//! Connect sessions and end users for the team's backend: `POST /api/v1/connect-sessions`
//! (scope `connect:write`), `GET /api/v1/end-users/{id}/connections` (`clients:read`),
//! `DELETE /api/v1/clients/{id}` (`connect:write`: disconnect with revocation).

use super::clients::ClientView;
use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::connect::request::{SessionBody, SessionRequest};
use crate::connect::{self, connections, CreateError};
use crate::http_util::origin;
use crate::input::RecordId;
use crate::oauth::disconnect::{self, Revocation};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::SecondsFormat;
use secrecy::ExposeSecret;

/// What `POST /api/v1/connect-sessions` answers: the token is shown here only.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "token": "chc_2bQ…",
    "connect_url": "https://hub.example.com/connect/chc_2bQ…",
    "expires_at": "2026-12-02T10:30:00Z",
    "session_id": "0b6f…",
    "end_user_id": "42"
}))]
pub struct SessionCreated {
    pub token: String,
    /// Open it in the end user's browser (or `ConnectHub.open(connect_url, …)`).
    pub connect_url: String,
    pub expires_at: String,
    pub session_id: String,
    /// The team's own id for the end user.
    pub end_user_id: String,
}

fn rfc3339(at: chrono::NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A connect link for one end user (`connect:write`).
#[utoipa::path(
    post,
    path = "/api/v1/connect-sessions",
    tag = "connect",
    request_body(content = SessionBody, example = json!({
        "end_user": {"id": "42", "email": "jane@acme.example", "display_name": "Jane"},
        "allowed_providers": ["kustomer"],
        "tags": {"plan": "pro"},
        "success_url": "https://app.example.com/integrations/done",
        "error_url": "https://app.example.com/integrations/failed",
        "allowed_origins": ["https://app.example.com"]
    })),
    responses(
        (status = 201, description = "The session; the token is valid for CONNECT_SESSION_TTL_SECS (1800) and one completed connection", body = SessionCreated),
        (status = 400, description = "A field is malformed, a provider unknown, or a URL or origin not on CONNECT_ALLOWED_REDIRECTS (`invalid_request`, with `field`)", body = super::error::ErrorBody),
        (status = 403, description = "The key lacks `connect:write` (`insufficient_scope`)", body = super::error::ErrorBody),
        (status = 404, description = "reconnect_client_id is no connection of this end user (`not_found`, with `field`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Bytes,
    key: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    key.require(Scope::ConnectWrite)?;
    let body: SessionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a session request: {e}")))?;
    let request = SessionRequest::parse(body, &state.providers(), &state.config.connect)
        .map_err(|r| ApiError::bad_request(r.message).with_field(r.field))?;
    let external_id = request.end_user.external_id.clone();
    let created = connect::create(&state, &key.0.created_by, &key.0.id, key.actor(), request)
        .await
        .map_err(|e| match e {
            // Like any client id the caller may not see: unknown, not refused.
            CreateError::NotTheEndUsersClient => {
                ApiError::not_found("reconnect_client_id").with_field("reconnect_client_id")
            }
            CreateError::Storage(e) => e.into(),
        })?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(SessionCreated {
            token: created.token.expose_secret().to_string(),
            connect_url: created.connect_url,
            expires_at: rfc3339(created.expires_at),
            session_id: created.session.id,
            end_user_id: external_id,
        }))
}

/// What `GET /api/v1/end-users/{id}/connections` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EndUserConnections {
    pub end_user: EndUserView,
    pub connections: Vec<ClientView>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EndUserView {
    /// The team's own id.
    pub id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub first_seen_at: String,
    pub last_seen_at: String,
}

/// The connections of one end user, newest first; never a token (`clients:read`).
#[utoipa::path(
    get,
    path = "/api/v1/end-users/{id}/connections",
    tag = "connect",
    params(("id" = String, Path, description = "The team's own id for the end user, e.g. 42")),
    responses(
        (status = 200, description = "The end user and their connections", body = EndUserConnections),
        (status = 403, description = "The key lacks `clients:read` (`insufficient_scope`)", body = super::error::ErrorBody),
        (status = 404, description = "No such end user (`not_found`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn end_user_connections(
    state: web::Data<AppState>,
    path: web::Path<String>,
    key: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    key.require(Scope::ClientsRead)?;
    let external_id = path.into_inner();
    let found = crate::db::run(&state.pool, move |conn| {
        connections::of_end_user(conn, &external_id)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("end user"))?;
    let (end_user, rows) = found;
    let connections = rows
        .into_iter()
        .map(|(client, _)| ClientView::of_end_user(client, &end_user.external_id))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(EndUserConnections {
            end_user: EndUserView {
                id: end_user.external_id,
                email: end_user.email,
                display_name: end_user.display_name,
                first_seen_at: rfc3339(end_user.first_seen_at),
                last_seen_at: rfc3339(end_user.last_seen_at),
            },
            connections,
        }))
}

/// What `DELETE /api/v1/clients/{id}` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Disconnected {
    pub client_id: String,
    pub status: &'static str,
    /// true: revoked at the provider; false: the provider refused (secrets deleted
    /// anyway); null: the provider has no revocation endpoint.
    pub revoked_at_provider: Option<bool>,
}

/// Disconnects a client: revokes at the provider where it can, then deletes the secrets
/// (`connect:write`).
#[utoipa::path(
    delete,
    path = "/api/v1/clients/{id}",
    tag = "connect",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "Disconnected (the row stays, status disconnected)", body = Disconnected),
        (status = 403, description = "The key lacks `connect:write` (`insufficient_scope`)", body = super::error::ErrorBody),
        (status = 404, description = "No such client (`not_found`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn disconnect_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    key: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    key.require(Scope::ConnectWrite)?;
    let id = path.into_inner();
    let client = crate::db::run(&state.pool, move |conn| {
        crate::clients::find(conn, id.as_str())
    })
    .await?
    .ok_or_else(|| ApiError::not_found("client"))?;
    let revocation = disconnect::disconnect(&state, key.actor(), &client, &origin(&req)).await?;
    Ok(HttpResponse::Ok().json(Disconnected {
        client_id: client.id,
        status: "disconnected",
        revoked_at_provider: match revocation {
            Revocation::Done => Some(true),
            Revocation::Failed(_) => Some(false),
            Revocation::NotSupported => None,
        },
    }))
}
