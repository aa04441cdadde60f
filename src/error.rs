//! The error every handler returns, mapped to a status code and a message a person can act
//! on. Details go to the log; the page only ever shows the public message.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("sign in required")]
    Unauthenticated { next: String },
    #[error("you do not have access to this page")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("the form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    #[error("too many attempts; try again in {retry_after_secs} seconds")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("database unavailable")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// The database is gone, seen where no pool or query error is at hand (the session
    /// layer reports only its text).
    #[error("{UNAVAILABLE}")]
    Unavailable,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// What a page or an API caller is told while the database is gone or cannot be written.
pub const UNAVAILABLE: &str = crate::db::outage::UNAVAILABLE_MESSAGE;

impl AppError {
    /// The database is down or cannot store anything (not a bug): 503, "try again later".
    pub fn database_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Unavailable => true,
            Self::Database(e) => crate::db::outage::is_unavailable(e),
            _ => false,
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(anyhow::anyhow!("background task failed: {e}"))
    }
}

impl<E: Into<AppError>> From<crate::db::RunError<E>> for AppError {
    fn from(error: crate::db::RunError<E>) -> Self {
        match error {
            crate::db::RunError::Work(e) => e.into(),
            crate::db::RunError::Pool(e) => Self::Pool(e),
            crate::db::RunError::Task(e) => e.into(),
        }
    }
}

impl From<crate::db::DbError> for AppError {
    fn from(error: crate::db::DbError) -> Self {
        match error {
            crate::db::DbError::Query(e) => Self::Database(e),
            crate::db::DbError::Pool(e) => Self::Pool(e),
            crate::db::DbError::Other(e) => Self::Internal(e),
        }
    }
}

impl From<crate::clients::LookupError> for AppError {
    fn from(error: crate::clients::LookupError) -> Self {
        match error {
            crate::clients::LookupError::NotFound => Self::NotFound,
            crate::clients::LookupError::Query(e) => Self::Database(e),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        Self::Internal(anyhow::anyhow!("template failed: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden | Self::Csrf => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ if self.database_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Pool(_) | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            // JSON endpoints answer 401; browsers are sent to the login page.
            Self::Unauthenticated { next }
                if next.starts_with("/api/") && !next.contains("/oauth/") =>
            {
                return HttpResponse::Unauthorized().json(
                    serde_json::json!({"error": "unauthenticated", "message": "sign in first"}),
                );
            }
            Self::Unauthenticated { next } => {
                let location = format!("/login?next={}", crate::http_util::urlencode(next));
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, location))
                    .finish();
            }
            Self::Database(e) => tracing::error!(error = %e, "database error"),
            Self::Pool(e) => tracing::error!(error = %e, "database pool error"),
            Self::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            _ => {}
        }
        let mut response = HttpResponse::build(status);
        if let Self::TooManyRequests { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        let message = if self.database_unavailable() {
            UNAVAILABLE.to_string()
        } else {
            self.to_string()
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message,
        };
        match page.render() {
            Ok(html) => response.content_type("text/html; charset=utf-8").body(html),
            Err(_) => response.body(self.to_string()),
        }
    }
}
