//! `GET /api/v1/usage?days=30&client_id=&provider=&user_id=` (scope `clients:read`): the
//! statistics of provider calls over today and the `days - 1` days before it (UTC).

use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::state::AppState;
use crate::usage;
use actix_web::{web, HttpRequest, HttpResponse};

#[derive(serde::Deserialize)]
struct Query {
    days: Option<String>,
    client_id: Option<String>,
    provider: Option<String>,
    user_id: Option<String>,
}

fn filter_value(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v)
            if v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) =>
        {
            Ok(Some(v))
        }
        Some(_) => Err(ApiError::bad_request(format!(
            "{name} must be at most 64 of A-Z a-z 0-9 - _"
        ))),
    }
}

/// What `/api/v1/usage` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UsageResponse {
    pub days: u32,
    pub stats: usage::Stats,
}

/// Statistics of the provider calls made for clients (proxied, typed operations, and the
/// profile reads of connecting) over today and the `days - 1` days before it (UTC).
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    params(
        ("days" = Option<u32>, Query, minimum = 1, maximum = 366, description = "1 to 366, default 30"),
        ("client_id" = Option<String>, Query, max_length = 64, pattern = "^[A-Za-z0-9_-]*$", description = "Only this client's calls"),
        ("provider" = Option<String>, Query, max_length = 64, pattern = "^[A-Za-z0-9_-]*$", description = "Only this provider's calls"),
        ("user_id" = Option<String>, Query, max_length = 64, pattern = "^[A-Za-z0-9_-]*$", description = "Only calls for this user's clients"),
    ),
    responses(
        (status = 200, description = "The statistics", body = UsageResponse),
        (status = 400, description = "A malformed filter (`invalid_request`)", body = super::error::ErrorBody),
        (status = 403, description = "The key lacks `clients:read` (`insufficient_scope`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn stats(
    req: HttpRequest,
    state: web::Data<AppState>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::ClientsRead)?;
    let query: Query = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    let days = match query.days.as_deref() {
        None | Some("") => 30,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=366).contains(d))
            .ok_or_else(|| ApiError::bad_request("days must be a number from 1 to 366"))?,
    };
    let scope = usage::Scope {
        period: usage::Period::Days(days),
        client_id: filter_value("client_id", query.client_id)?,
        provider: filter_value("provider", query.provider)?,
        user_id: filter_value("user_id", query.user_id)?,
    };
    let stats = crate::db::run(&state.pool, move |conn| usage::stats(conn, &scope)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(UsageResponse { days, stats }))
}
