//! `POST /webhooks/{provider}`: where Klaviyo and Kustomer send their webhooks. The
//! answer (202) goes back as soon as the event is stored; forwarding to the team runs on
//! the job queue as `provider.webhook`. Unknown provider 404, not enabled 403, bad or
//! missing signature 401, body over 256 KB 413, not JSON 400: nothing stored.

use super::error::ApiError;
use crate::provider_webhooks::{self, IncomingError, MAX_BODY_BYTES};
use crate::route_table::Table;
use crate::state::AppState;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.resource_at(Method::POST, "/webhooks/{provider}", |resource| {
        resource
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route(web::method(Method::POST).to(receive))
            // Another method gets the JSON 405 every service answer has, not an empty one.
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::method_not_allowed(&["POST"]))
            }))
    });
}

fn error(e: IncomingError) -> ApiError {
    match &e {
        IncomingError::UnknownProvider => ApiError::not_found("provider"),
        IncomingError::NotEnabled(..) => {
            ApiError::new(StatusCode::FORBIDDEN, "webhooks_not_enabled", e.to_string())
        }
        IncomingError::Signature(_) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string())
        }
        IncomingError::BadJson => ApiError::bad_request(e.to_string()),
        IncomingError::Storage(_) => match e {
            IncomingError::Storage(db) => db.into(),
            _ => unreachable!("matched above"),
        },
    }
}

async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    provider: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let payload = provider_webhooks::verify(&state, &provider, &body, header).map_err(error)?;
    let received = provider_webhooks::accept(&state, &provider, payload)
        .await
        .map_err(error)?;
    Ok(HttpResponse::Accepted().json(received))
}
