//! Errors of the service API (`/api/v1`): JSON `{"error": code, "message": ..., ...extra}`
//! that a program can branch on. Internal details go to the log, never into the body.

use crate::api_keys::Scope;
use crate::error::AppError;
use crate::http_util::wants_json;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value};

/// Every error of `/api/v1`: a stable code to branch on and a message for people.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// invalid_api_key, insufficient_scope, not_found, invalid_request, needs_reauth,
    /// disconnected, wrong_provider, conflict, rate_limited, provider_rejected,
    /// provider_unavailable, internal_error
    pub error: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Map<String, Value>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Missing, malformed, unknown or revoked key: the answer does not say which.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "send a valid API key as Authorization: Bearer chk_…",
        )
    }

    pub fn forbidden_scope(scope: Scope) -> Self {
        let mut error = Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this API key lacks the {} scope", scope.as_str()),
        );
        error.extra.insert("scope".into(), scope.as_str().into());
        error
    }

    /// The key is valid but restricted to address ranges the caller is not in.
    pub fn ip_not_allowed(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "ip_not_allowed", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// The path exists but not for this method; `allow` lists the methods it takes.
    pub fn method_not_allowed(allow: &[&str]) -> Self {
        let mut error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this endpoint takes {}", allow.join(", ")),
        );
        error.extra.insert("allow".into(), allow.into());
        error
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn conflict(
        code: &'static str,
        message: impl Into<String>,
        extra: Map<String, Value>,
    ) -> Self {
        Self {
            extra,
            ..Self::new(StatusCode::CONFLICT, code, message)
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_unavailable",
            message,
        )
    }

    /// The provider is down and connecthub holds its refreshes back (its breaker is
    /// open): `provider_unavailable` with Retry-After.
    pub fn provider_down(message: impl Into<String>, retry_after: u64) -> Self {
        let mut error = Self::unavailable(message);
        error.extra.insert("retry_after".into(), retry_after.into());
        error
    }

    /// The provider kept answering 429; `retry_after` is its Retry-After in seconds.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        if let Some(secs) = retry_after {
            error.extra.insert("retry_after".into(), secs.into());
        }
        error
    }

    /// connecthub held a provider call back to stay under the provider's rate budget:
    /// `rate_limited` too, with the budget's name and Retry-After.
    pub fn over_budget(over: &crate::budgets::OverBudget) -> Self {
        let mut error = Self::rate_limited(over.to_string(), Some(over.retry_after));
        error
            .extra
            .insert("budget".into(), over.budget.clone().into());
        error
    }

    /// The provider refused the request (a 4xx other than 404 and 429), with its reason.
    pub fn provider_rejected(provider_status: u16, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider_rejected",
            format!("the provider refused the request (HTTP {provider_status}): {detail}"),
        );
        error
            .extra
            .insert("provider_status".into(), provider_status.into());
        error.extra.insert("detail".into(), detail.into());
        error
    }

    /// Something broke on our side; the caller should log the details before.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; try again later",
        )
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Names the request field at fault (`"field": "success_url"`).
    pub fn with_field(mut self, field: &str) -> Self {
        self.extra.insert("field".into(), field.into());
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = Map::new();
        body.insert("error".into(), self.code.into());
        body.insert("message".into(), self.message.clone().into());
        for (key, value) in &self.extra {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: tell the client which scheme to use.
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(secs) = self.extra.get("retry_after").and_then(Value::as_u64) {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(Value::Array(methods)) = self.extra.get("allow") {
            let methods: Vec<&str> = methods.iter().filter_map(Value::as_str).collect();
            response.insert_header((header::ALLOW, methods.join(", ")));
        }
        response.json(Value::Object(body))
    }
}

/// Maps the app's errors to JSON ones, logging what must not reach the caller.
impl From<crate::db::DbError> for ApiError {
    fn from(error: crate::db::DbError) -> Self {
        AppError::from(error).into()
    }
}

impl<E: Into<AppError>> From<crate::db::RunError<E>> for ApiError {
    fn from(error: crate::db::RunError<E>) -> Self {
        AppError::from(error).into()
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match &error {
            AppError::Pool(e) => tracing::error!(error = %e, "database pool error"),
            AppError::Database(e) => tracing::error!(error = %e, "database error"),
            AppError::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            _ => {}
        }
        Self::describe(&error)
    }
}

impl ApiError {
    /// The JSON form of an app error, without logging (`From` logs; so does `AppError`'s
    /// own response, which `json_errors` replaces).
    fn describe(error: &AppError) -> Self {
        match error {
            AppError::NotFound => Self::not_found("resource"),
            AppError::BadRequest(message) => Self::bad_request(message.clone()),
            AppError::Unauthenticated { .. } => Self::unauthorized(),
            AppError::Forbidden | AppError::Csrf => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
            }
            AppError::TooManyRequests { retry_after_secs } => {
                let mut limited = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    error.to_string(),
                );
                limited
                    .extra
                    .insert("retry_after".into(), (*retry_after_secs).into());
                limited
            }
            AppError::Pool(_) | AppError::Unavailable => Self::database_unavailable(),
            AppError::Database(_) if error.database_unavailable() => Self::database_unavailable(),
            AppError::Database(_) | AppError::Internal(_) => Self::internal(),
        }
    }

    /// The database is gone or cannot store anything: try again later.
    fn database_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            crate::error::UNAVAILABLE,
        )
    }

    /// Any other error (an extractor's, actix's own) by its status alone: its text may
    /// name internals, so only a 4xx keeps its message.
    fn by_status(error: &actix_web::Error) -> Self {
        let status = error.as_response_error().status_code();
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            s if s.is_client_error() => "invalid_request",
            _ => return Self::internal(),
        };
        Self::new(status, code, error.to_string())
    }
}

/// The JSON answer for an error a JSON caller got. A session route's "sign in first" is a
/// 401 there, not the redirect to the login page a browser gets.
fn json_answer(error: &actix_web::Error) -> HttpResponse {
    match error.as_error::<AppError>() {
        Some(AppError::Unauthenticated { .. }) => {
            let mut answer =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first")
                    .error_response();
            // Not a service key's 401: no Bearer challenge.
            answer.headers_mut().remove(header::WWW_AUTHENTICATE);
            answer
        }
        Some(app) => ApiError::describe(app).error_response(),
        None => ApiError::by_status(error).error_response(),
    }
}

fn is_json(response: &HttpResponse<BoxBody>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Middleware: a request that asked for JSON gets its errors as JSON (`{"error": code,
/// "message": …}`), whatever produced them — a handler's `AppError` (which renders HTML
/// pages), an extractor, or a middleware inside this one (the CSRF guard).
pub async fn json_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !wants_json(req.request()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    match next.call(req).await {
        Ok(answer) => {
            let answer = answer.map_into_boxed_body();
            let replacement = match answer.response().error() {
                Some(error) if !is_json(answer.response()) => json_answer(error),
                _ => return Ok(answer),
            };
            Ok(answer.into_response(replacement))
        }
        // The request went to the inner middleware: the error carries its JSON answer.
        Err(error) => {
            let answer = json_answer(&error);
            Err(InternalError::from_response(error.to_string(), answer).into())
        }
    }
}

/// Middleware outside the session layer: when loading or saving a session failed because
/// the database is gone, that layer gives up with an opaque 500; this answers 503 instead,
/// JSON or page as the caller wants.
pub async fn outage_answers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Decided now: the request must not be cloned (routing needs it unshared).
    let json = wants_json(req.request()) || req.path().starts_with("/api/v1/");
    match next.call(req).await {
        Ok(answer) => Ok(answer.map_into_boxed_body()),
        // The session layer keeps the cause of a failed load as the error's text, and that
        // of a failed save or update only in its Debug form (`Other(…)`).
        Err(error) if format!("{error:?}").contains(crate::error::UNAVAILABLE) => {
            tracing::error!("the session store cannot reach the database");
            let answer = if json {
                ApiError::database_unavailable().error_response()
            } else {
                AppError::Unavailable.error_response()
            };
            Err(InternalError::from_response(crate::error::UNAVAILABLE, answer).into())
        }
        Err(error) => Err(error),
    }
}

/// A JSON body read by hand (not `web::Json`), so a malformed or untyped body gets a JSON
/// error like every other answer here, and a 10,240-character note in any script fits
/// under the default payload limit.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
}
