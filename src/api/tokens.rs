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

pub async fn client_token(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ServiceKey(key): ServiceKey,
) -> Result<HttpResponse, ApiError> {
    ServiceKey(key.clone()).require(Scope::TokensRead)?;
    let id = path.into_inner();
    if id.len() > 64 {
        return Err(ApiError::not_found("client"));
    }
    let entry = lifecycle::token_for_service(&state, &id)
        .await
        .map_err(|e| token_error(&state, &id, e))?
        .ok_or_else(|| ApiError::not_found("client"))?;
    let (client, token) = (&entry.client, &entry.token);
    let scopes: Vec<&str> = client.scope_list();
    let body = match token {
        FreshToken::Bearer { token, expires_at } => json!({
            "client_id": client.id,
            "provider": client.provider,
            "token_type": "bearer",
            "access_token": token.expose_secret(),
            "expires_at": expires_at.map(|t| t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "scopes": scopes,
        }),
        FreshToken::ApiKey(api_key) => json!({
            "client_id": client.id,
            "provider": client.provider,
            "token_type": "api_key",
            "api_key": api_key.expose_secret(),
            "expires_at": null,
            "scopes": scopes,
        }),
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
