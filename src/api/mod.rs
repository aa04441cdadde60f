//! The service API (`/api/v1`) for the team's own backends: JSON only, authenticated with
//! API keys. The browser-facing `/api/integrations` routes live in `web`.

mod clients;
mod clients_query;
pub mod common_answers;
mod connect_sessions;
pub mod error;
pub mod openapi;
mod operation_endpoints;
mod provider_webhooks;
mod proxy_endpoint;
mod refreshes;
pub mod service_auth;
mod syncs;
mod tokens;
mod usage;
mod webhook_endpoints;

use crate::route_table::{self, Table};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

/// The service API under `/api/v1`. `startup` mounts it apart from the pages: its callers
/// present API keys, never cookies, so it goes without the page middleware.
pub fn service_scope() -> actix_web::Scope {
    route_table::scope("/api/v1", service_routes)
        // Every id in a service path is a client's: a malformed one is an unknown client.
        .app_data(
            web::PathConfig::default()
                .error_handler(|_, _| error::ApiError::not_found("client").into()),
        )
        .default_service(web::to(unknown_endpoint))
}

/// `POST /webhooks/{provider}`: providers' own calls, mounted with the pages (anonymous
/// callers, under the anonymous limit).
pub use provider_webhooks::routes as provider_webhook_routes;

/// The service API, authenticated with API keys (`service_auth::ServiceKey`), not sessions.
/// More `/api/v1` routes go here.
fn service_routes(cfg: &mut web::ServiceConfig) {
    // The two hot paths first: actix tries a scope's routes in order, matching each
    // dynamic path with a regex, and no route below overlaps them.
    cfg.at(Method::GET, "/clients/{id}/token", tokens::client_token)
        .any("/proxy/{client_id}/{tail:.*}", proxy_endpoint::forward)
        .at(Method::GET, "/clients", clients::list_clients)
        .at(Method::POST, "/connect-sessions", connect_sessions::create)
        .at(
            Method::GET,
            "/end-users/{id}/connections",
            connect_sessions::end_user_connections,
        )
        .at(
            Method::DELETE,
            "/clients/{id}",
            connect_sessions::disconnect_client,
        )
        .at(Method::GET, "/clients/{id}/refreshes", refreshes::list)
        .at(
            Method::GET,
            "/providers/{provider}/token",
            tokens::default_token,
        )
        .at(Method::GET, "/openapi.json", openapi::document)
        .at(Method::GET, "/usage", usage::stats)
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
