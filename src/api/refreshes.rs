//! `GET /api/v1/clients/{id}/refreshes`: the client's last refresh attempts, newest first,
//! so a service can tell why a connection broke. Never a token.

use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::input::RecordId;
use crate::oauth::refresh_history::{self, Attempt};
use crate::state::AppState;
use actix_web::{web, HttpResponse};

/// One refresh attempt.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RefreshAttempt {
    /// RFC 3339 UTC, milliseconds.
    pub at: String,
    /// `hand_out` (a token was asked for and was due), `refresher` (the background
    /// refresher) or `manual` (someone pressed Refresh).
    pub trigger: String,
    /// `success`, `invalid_grant` (reconnect needed), `transient` (retried later) or `rejected`.
    pub outcome: String,
    /// How long the provider's token endpoint took, retries included.
    pub duration_ms: i32,
    /// The provider's OAuth error code (`invalid_grant`, `invalid_client`, …); null on success
    /// and when the provider did not answer.
    pub error_code: Option<String>,
    /// The provider's error description, or what went wrong when it did not answer.
    pub error_description: Option<String>,
}

/// The answer: at most 20 attempts, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RefreshHistory {
    pub client_id: String,
    pub attempts: Vec<RefreshAttempt>,
}

impl From<Attempt> for RefreshAttempt {
    fn from(a: Attempt) -> Self {
        Self {
            at: a
                .at
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            trigger: a.trigger_kind,
            outcome: a.outcome,
            duration_ms: a.duration_ms,
            error_code: a.error_code,
            error_description: a.error_description,
        }
    }
}

/// The client's refresh history (the last 20 attempts).
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/refreshes",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "The last refresh attempts, newest first (at most 20)", body = RefreshHistory),
        (status = 403, description = "The key lacks `clients:read` (`insufficient_scope`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::ClientsRead)?;
    let id = path.into_inner().into_string();
    let lookup = id.clone();
    let attempts = crate::db::run(&state.pool, move |conn| {
        refresh_history::for_client(conn, &lookup)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("client"))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(RefreshHistory {
            client_id: id,
            attempts: attempts.into_iter().map(RefreshAttempt::from).collect(),
        }))
}
