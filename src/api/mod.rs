//! The service API (`/api/v1`) for the team's own backends: JSON only, authenticated with
//! API keys. The browser-facing `/api/integrations` routes live in `web`.

mod clients;
pub mod common_answers;
mod connect_sessions;
pub mod error;
pub mod openapi;
mod operation_endpoints;
mod provider_webhooks;
mod proxy_endpoint;
pub mod service_auth;
mod syncs;
mod tokens;
mod usage;
mod webhook_endpoints;

use actix_web::{web, HttpRequest, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(provider_webhooks::routes);
    cfg.service(
        web::scope("/api/v1")
            // Every id in a service path is a client's: a malformed one is an unknown client.
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_, _| error::ApiError::not_found("client").into()),
            )
            .configure(service_routes)
            .default_service(web::to(unknown_endpoint)),
    );
}

/// The service API, authenticated with API keys (`service_auth::ServiceKey`), not sessions.
/// More `/api/v1` routes go here.
fn service_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/clients", web::get().to(clients::list_clients))
        .route(
            "/connect-sessions",
            web::post().to(connect_sessions::create),
        )
        .route(
            "/end-users/{id}/connections",
            web::get().to(connect_sessions::end_user_connections),
        )
        .route(
            "/clients/{id}",
            web::delete().to(connect_sessions::disconnect_client),
        )
        .route("/clients/{id}/token", web::get().to(tokens::client_token))
        .route(
            "/providers/{provider}/token",
            web::get().to(tokens::default_token),
        )
        .route("/openapi.json", web::get().to(openapi::document))
        .route(
            "/proxy/{client_id}/{tail:.*}",
            web::route().to(proxy_endpoint::forward),
        )
        .route("/usage", web::get().to(usage::stats))
        .configure(operation_endpoints::routes)
        .configure(syncs::routes)
        .configure(webhook_endpoints::routes);
}

/// Anything else under `/api/v1`: JSON like every answer there, not the HTML 404 page; a
/// documented path asked with another method is a 405 that lists the methods it takes.
async fn unknown_endpoint(req: HttpRequest) -> Result<HttpResponse, error::ApiError> {
    match common_answers::allowed_methods(openapi::service_api(), req.path()) {
        Some(methods) => Err(error::ApiError::method_not_allowed(&methods)),
        None => Err(error::ApiError::not_found("endpoint")),
    }
}
