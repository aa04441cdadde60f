//! `GET /api/v1/clients/{id}/token`: a fresh access token for the team's services,
//! refreshed first when it is about to expire; API-key clients get their key.

use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::audit::{Actor, Event};
use crate::oauth::lifecycle::{self, FreshToken, TokenError};
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;
use serde_json::json;

/// What `GET /api/v1/clients/{id}/token` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub client_id: String,
    pub provider: String,
    /// `bearer` for OAuth clients, `api_key` for clients connected with an API key.
    pub token_type: &'static str,
    /// The access token (bearer clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The provider API key (api_key clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// RFC 3339 UTC; null when the credential does not expire.
    pub expires_at: Option<String>,
    pub scopes: Vec<String>,
}

/// A fresh token for a client, refreshed first when it has less than the margin left.
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/token",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "A token with time left", body = TokenResponse),
        (status = 401, description = "Missing, unknown or revoked API key (`invalid_api_key`)", body = super::openapi::ErrorBody),
        (status = 403, description = "The key lacks `tokens:read` (`insufficient_scope`)", body = super::openapi::ErrorBody),
        (status = 404, description = "No such client (`not_found`)", body = super::openapi::ErrorBody),
        (status = 409, description = "`needs_reauth` (with `reconnect_url`) or `disconnected`", body = super::openapi::ErrorBody),
        (status = 503, description = "The provider did not answer after retries (`provider_unavailable`)", body = super::openapi::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn client_token(
    state: web::Data<AppState>,
    path: web::Path<String>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::TokensRead)?;
    let key = &service.0;
    let id = path.into_inner();
    if id.len() > 64 {
        return Err(ApiError::not_found("client"));
    }
    let entry = lifecycle::token_for_service(&state, &id)
        .await
        .map_err(|e| token_error(&state, &id, e))?
        .ok_or_else(|| ApiError::not_found("client"))?;
    let client = &entry.client;
    let (token_type, access_token, api_key, expires_at) = match &entry.token {
        FreshToken::Bearer { token, expires_at } => (
            "bearer",
            Some(token.expose_secret().to_string()),
            None,
            expires_at.map(|t| {
                t.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
        ),
        FreshToken::ApiKey(key) => ("api_key", None, Some(key.expose_secret().to_string()), None),
    };
    let body = TokenResponse {
        client_id: client.id.clone(),
        provider: client.provider.clone(),
        token_type,
        access_token,
        api_key,
        expires_at,
        scopes: client
            .scope_list()
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    // Who took which client's token, never the token itself.
    let event = Event::new(
        Actor {
            kind: "api_key",
            id: Some(key.id.clone()),
            label: key.name.clone(),
        },
        "token_handed_out",
    )
    .target("client", client.id.clone())
    .details(json!({"provider": client.provider, "api_key_prefix": key.prefix}));
    // Hand-outs are frequent: they are counted and written once a second, off the request path.
    state.audit.record(event);
    state.tokens.touch(&client.id);
    state
        .metrics
        .tokens_served
        .with_label_values(&[client.provider.as_str()])
        .inc();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body))
}

/// Maps a lifecycle failure to the service API's stable error codes.
fn token_error(state: &AppState, client_id: &str, error: TokenError) -> ApiError {
    match error {
        TokenError::NeedsReauth(reason) => {
            let reconnect = format!(
                "{}/admin/clients/{client_id}/reconnect",
                state.config.public_url.as_str().trim_end_matches('/'),
            );
            let mut extra = serde_json::Map::new();
            extra.insert("reconnect_url".into(), reconnect.into());
            extra.insert("reason".into(), reason.into());
            ApiError::conflict("needs_reauth", "the account must be reconnected", extra)
        }
        TokenError::Disconnected | TokenError::Missing => ApiError::conflict(
            "disconnected",
            "the client is disconnected",
            serde_json::Map::new(),
        ),
        TokenError::Unavailable(reason) | TokenError::Failed(reason) => ApiError::unavailable(
            format!("the provider could not refresh the token: {reason}"),
        ),
        TokenError::App(e) => e.into(),
    }
}
