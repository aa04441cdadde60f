//! `GET /api/v1/clients/{id}/token`: a fresh access token for the team's services,
//! refreshed first when it is about to expire; API-key clients get their key.
//! `GET /api/v1/providers/{provider}/token?owner=`: the same for an owner's default client.

use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::audit::Event;
use crate::auth::users::Email;
use crate::clients::default_client;
use crate::input::RecordId;
use crate::oauth::lifecycle::{self, TokenError};
use crate::oauth::token_cache::FreshToken;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde_json::json;

/// What `GET /api/v1/clients/{id}/token` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub client_id: String,
    pub provider: String,
    /// `bearer` for OAuth clients, `api_key` for clients connected with an API key,
    /// `basic` for HTTP Basic clients (`api_key` then holds `user:password`).
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
        (status = 403, description = "The key lacks `tokens:read` (`insufficient_scope`)", body = super::error::ErrorBody),
        (status = 404, description = "No such client (`not_found`)", body = super::error::ErrorBody),
        (status = 409, description = "`needs_reauth` (with `reconnect_url`) or `disconnected`", body = super::error::ErrorBody),
        (status = 503, description = "The provider did not answer after retries (`provider_unavailable`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn client_token(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::TokensRead)?;
    service.within_budget(&state)?;
    hand_out(&state, &service, path.as_str()).await
}

/// Hands out one client's token (both token endpoints): the answer, the audit entry, the
/// last-used time and the metrics.
async fn hand_out(
    state: &AppState,
    service: &ServiceKey,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let key = &service.0;
    let entry = lifecycle::token_for_service(state, id)
        .await
        .map_err(|e| token_error(state, id, e))?
        .ok_or_else(|| ApiError::not_found("client"))?;
    let client = &entry.client;
    let (token_type, access_token, api_key, expires_at) = match &entry.token {
        FreshToken::Bearer {
            token, expires_at, ..
        } => (
            "bearer",
            Some(token.expose_secret().to_string()),
            None,
            expires_at.map(|t| {
                t.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
        ),
        FreshToken::ApiKey(key) => (
            client.auth_type.as_str(),
            None,
            Some(key.expose_secret().to_string()),
            None,
        ),
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
    // Who took which client's token, never the token itself. Hand-outs are frequent: they
    // are counted and written once a second, off the request path.
    let event = Event::new(service.actor(), "token_handed_out").target("client", client.id.clone());
    state.audit.record(
        event,
        || json!({"provider": client.provider, "api_key_prefix": key.prefix}),
    );
    state.tokens.touch(&entry);
    state
        .metrics
        .tokens_served
        .with_label_values(&[client.provider.as_str()])
        .inc();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body))
}

#[derive(serde::Deserialize)]
struct OwnerQuery {
    owner: Option<String>,
    end_user_id: Option<String>,
}

/// `?end_user_id=`: the team's id of an end user, when given.
fn end_user_param(query: &str) -> Result<Option<String>, ApiError> {
    let parsed: OwnerQuery = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    match parsed.end_user_id {
        None => Ok(None),
        Some(id)
            if !id.is_empty()
                && id.len() <= crate::connect::request::END_USER_ID_MAX
                && !id.chars().any(char::is_control) =>
        {
            Ok(Some(id))
        }
        Some(_) => Err(ApiError::bad_request(
            "end_user_id must be 1 to 255 characters without control characters",
        )),
    }
}

/// `?owner=`: a user id, or an email address (lowercased).
fn owner_param(query: &str) -> Result<String, ApiError> {
    let parsed: OwnerQuery = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    let owner = parsed
        .owner
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ApiError::bad_request("owner is required: a user id or an email address"))?;
    if owner.contains('@') {
        return Email::parse(&owner)
            .map(|email| email.as_str().to_string())
            .map_err(|_| ApiError::bad_request("owner is not a valid email address"));
    }
    let id_like = owner.len() <= 64 && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !id_like {
        return Err(ApiError::bad_request(
            "owner must be a user id or an email address",
        ));
    }
    Ok(owner)
}

/// The token of an owner's default client for a provider: what services use when they do
/// not name a client.
#[utoipa::path(
    get,
    path = "/api/v1/providers/{provider}/token",
    params(
        ("provider" = String, Path, description = "The provider, e.g. klaviyo"),
        ("owner" = Option<String>, Query, max_length = 254, pattern = "^([A-Za-z0-9-]{1,64}|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+)$", description = "The owner: a user id or an email (or give end_user_id)"),
        ("end_user_id" = Option<String>, Query, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", description = "An end user's default connection instead: the team's id, e.g. 42"),
    ),
    responses(
        (status = 200, description = "A token with time left, of the owner's default client", body = TokenResponse),
        (status = 400, description = "owner is missing or malformed (`invalid_request`)", body = super::error::ErrorBody),
        (status = 403, description = "The key lacks `tokens:read` (`insufficient_scope`)", body = super::error::ErrorBody),
        (status = 404, description = "No such provider, or the owner has no default client for it (`not_found`)", body = super::error::ErrorBody),
        (status = 409, description = "`needs_reauth` (with `reconnect_url`)", body = super::error::ErrorBody),
        (status = 503, description = "The provider did not answer after retries (`provider_unavailable`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn default_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::TokensRead)?;
    service.within_budget(&state)?;
    let end_user = end_user_param(req.query_string())?;
    let owner = match end_user {
        Some(_) => String::new(),
        None => owner_param(req.query_string())?,
    };
    let provider = state
        .providers()
        .get(&path)
        .ok_or_else(|| ApiError::not_found("provider"))?;
    let name = provider.name.clone();
    // Looked up on every call (one indexed query), so a switch of default shows at once.
    let client = crate::db::run(&state.pool, move |conn| match end_user {
        Some(end_user) => crate::connect::connections::default_for(conn, &end_user, &name),
        None => default_client::default_of(conn, &owner, &name),
    })
    .await?
    .ok_or_else(|| ApiError::not_found("default client"))?;
    hand_out(&state, &service, &client.id).await
}

/// Maps a lifecycle failure to the service API's stable error codes.
pub(super) fn token_error(state: &AppState, client_id: &str, error: TokenError) -> ApiError {
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
        TokenError::ProviderDown {
            retry_after_secs, ..
        } => ApiError::provider_down(error.to_string(), retry_after_secs),
        TokenError::Unavailable(reason) | TokenError::Failed(reason) => ApiError::unavailable(
            format!("the provider could not refresh the token: {reason}"),
        ),
        TokenError::Storage(e) => e.into(),
    }
}
