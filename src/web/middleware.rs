//! Response headers, the request log and the request metrics that wrap every route.

use crate::auth::session_store::USER_ID_KEY;
use crate::error::AppError;
use crate::state::AppState;
use actix_session::SessionExt;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::web;
use std::time::Instant;

/// Scripts and styles come only from our own origin (no inline code), and no site may
/// frame these pages.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'";

/// Headers every response gets unless its handler set its own. `no-store` keeps signed-in
/// pages (and anything else dynamic) out of the browser's cache, so the back button of a
/// shared browser cannot show them after sign-out; static assets set their own long cache.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Cache-Control", "no-store"))
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

/// One line per request: method, path (never the query string, which may carry codes or
/// state), status and duration.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = loggable_path(req.path());
    let result = next.call(req).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    tracing::info!(
        method = %method,
        path = %path,
        status = status.as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    result
}

/// The path as the log shows it: a connect link's token is a credential, so it is cut.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/connect/") {
        Some(rest) if rest.starts_with("chc_") => {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/connect/{{token}}{tail}")
        }
        _ => path.to_string(),
    }
}

/// Counts and times every request by method, route pattern and status for `/metrics`.
/// The label is the pattern the request matched (`/admin/clients/{id}`), never the path,
/// so ids and query strings stay out of the metrics and the series stay few.
pub async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let method = req.method().clone();
    let result = next.call(req).await;
    // A refused request (Err) never reached the router, so it has no pattern.
    let (route, status) = match &result {
        Ok(response) => (response.request().match_pattern(), response.status()),
        Err(error) => (None, error.as_response_error().status_code()),
    };
    state.metrics.http_request(
        method.as_str(),
        route.as_deref(),
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    result
}

/// Pages a connect popup passes through keep their opener: the hosted page sets this
/// itself, and the sandbox (standing in for a provider's consent page) and the OAuth
/// callback get it here. Everything else stays isolated (`same-origin`, the default).
pub async fn popup_opener_policy(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    let in_popup = path.starts_with("/sandbox/") || super::current_user::is_oauth_callback(path);
    let mut response = next.call(req).await?;
    if in_popup {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("cross-origin-opener-policy"),
            actix_web::http::header::HeaderValue::from_static("unsafe-none"),
        );
    }
    Ok(response)
}

/// Paths meant to be reached without a session, limited elsewhere or not at all: assets,
/// the health check, the sandbox provider, and the service API (its keys have their own
/// limits).
const NOT_ANONYMOUS_LIMITED: [&str; 5] = [
    "/static/",
    "/favicon.ico",
    "/healthz",
    "/sandbox/",
    "/api/v1/",
];

/// Middleware: visitors who are not signed in get a budget of requests per address
/// (`ANONYMOUS_REQUESTS_PER_MINUTE`); past it the answer is 429 with Retry-After.
pub async fn anonymous_rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let exempt = NOT_ANONYMOUS_LIMITED
        .iter()
        .any(|prefix| req.path().starts_with(prefix));
    let signed_in = || {
        req.get_session()
            .get::<serde_json::Value>(USER_ID_KEY)
            .ok()
            .flatten()
            .is_some()
    };
    if !exempt && !signed_in() {
        let state = req.app_data::<web::Data<AppState>>();
        let caller = crate::http_util::client_ip(req.request());
        if let (Some(state), Some(caller)) = (state, caller) {
            if let Err(wait) = state.anonymous_limiter.check(&caller) {
                let retry_after_secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                return Err(AppError::TooManyRequests { retry_after_secs }.into());
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn connect_tokens_never_reach_the_request_log() {
        assert_eq!(loggable_path("/connect/chc_secret"), "/connect/{token}");
        assert_eq!(
            loggable_path("/connect/chc_secret/start/klaviyo"),
            "/connect/{token}/start/klaviyo"
        );
        assert_eq!(loggable_path("/connect/again"), "/connect/again");
        assert_eq!(loggable_path("/admin/clients"), "/admin/clients");
    }
}
