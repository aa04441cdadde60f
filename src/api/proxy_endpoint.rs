//! `ANY /api/v1/proxy/{client_id}/{path…}` (scope `proxy`): the team's services call the
//! provider's API through connecthub, which adds the client's fresh token, meters the
//! call and streams the answer back.

use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::input::RecordId;
use crate::oauth::lifecycle;
use crate::proxy::{self, Outgoing};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// Any method: the request goes on to `{api base}/{path}` of the client's provider with the
/// client's fresh token and the provider's fixed headers; the provider's answer comes back
/// as it is (status, headers, streamed body).
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/v1/proxy/{client_id}/{path}",
    tag = "super::proxy",
    params(
        ("client_id" = String, Path, description = "The client to call as"),
        ("path" = String, Path, pattern = "^[A-Za-z0-9_~-]+(\\.[A-Za-z0-9_~-]+)*(/[A-Za-z0-9_~-]+(\\.[A-Za-z0-9_~-]+)*)*$", description = "The provider API path, e.g. api/lists or v1/customers. Paths with '..', '//', '\\', control characters or a scheme are refused (400)"),
    ),
    // The provider's own answers pass through with its status and body, so no status
    // promises connecthub's error body: each may be the provider's.
    responses(
        (status = 200, description = "The provider's answer; any other status it gives is passed through the same way"),
        (status = 400, description = "A path that would leave the provider's API, or a body over 10 MiB (`invalid_request`); or the provider's own 400"),
        (status = 401, description = "Missing, unknown or revoked API key (`invalid_api_key`); or the provider's own 401"),
        (status = 403, description = "The key lacks `proxy` (`insufficient_scope`); or the provider's own 403"),
        (status = 404, description = "No such client (`not_found`); or the provider's own 404"),
        (status = 409, description = "`needs_reauth` (with `reconnect_url`) or `disconnected`; or the provider's own 409"),
        (status = 429, description = "Too many requests for this key (`rate_limited`); or the provider's rate budget has no room within PROVIDER_BUDGET_WAIT (`rate_limited` with `budget` naming it); or the provider's own 429; each with Retry-After"),
        (status = 502, description = "The provider did not answer"),
        (status = "default", description = "Any other status: the provider's own answer"),
    ),
    security(("api_key" = []))
)]
pub async fn forward(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(RecordId, String)>,
    body: web::Bytes,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    service.within_budget(&state)?;
    let (client_id, tail) = path.into_inner();
    let client_id = client_id.into_string();
    if body.len() > MAX_BODY {
        return Err(ApiError::bad_request(
            "the request body is larger than 10 MiB",
        ));
    }
    let entry = lifecycle::token_for_service(&state, &client_id)
        .await
        .map_err(|e| super::tokens::token_error(&state, &client_id, e))?
        .ok_or_else(|| ApiError::not_found("client"))?;
    let provider = state
        .providers()
        .for_connection(&entry.client.provider, &entry.client.connection_values())
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let url = proxy::target_url(&provider, &tail, req.query_string())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::bad_request("unsupported method"))?;
    let outgoing = Outgoing {
        method,
        url,
        headers: req
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    name.as_str().to_lowercase(),
                    value.to_str().ok()?.to_string(),
                ))
            })
            .collect(),
        body,
    };
    let answer = proxy::forward_metered(&state, &entry, &provider, &outgoing, &tail).await;
    let answer = answer.map_err(|e| match e {
        proxy::ForwardError::OverBudget(over) => ApiError::over_budget(&over),
        proxy::ForwardError::Transport(e) => {
            tracing::warn!(provider = %provider.name, error = %e, "proxied call failed");
            ApiError::unavailable(format!("{} did not answer", provider.display_name))
        }
    })?;
    Ok(stream_back(answer.response))
}

/// The provider's status, headers (minus hop-by-hop ones) and body, streamed.
fn stream_back(response: reqwest::Response) -> HttpResponse {
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    for (name, value) in response.headers() {
        if proxy::passes_back(name.as_str()) {
            builder.append_header((name.as_str(), value.as_bytes()));
        }
    }
    builder.streaming(
        response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    )
}
