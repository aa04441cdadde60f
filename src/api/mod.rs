//! JSON and redirect endpoints under /api: the integrations API the pages and the
//! requirements name, and the service API (`/api/v1`) for the team's own backends.

pub mod error;
pub mod integrations;
pub mod openapi;
mod operations;
mod proxy;
mod service;
pub mod service_auth;
mod tokens;
mod usage;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/integrations/{provider}")
            .route("/oauth/start", web::get().to(integrations::start))
            .route("/oauth/callback", web::get().to(integrations::callback))
            .route("/status", web::get().to(integrations::status))
            .route(
                "/test-connection",
                web::post().to(integrations::test_connection),
            )
            .route("/connect", web::post().to(integrations::connect_machine))
            .route(
                "/oauth/refresh/{client_id}",
                web::post().to(integrations::refresh_now),
            )
            .route(
                "/disconnect/{client_id}",
                web::post().to(integrations::disconnect),
            ),
    );
    cfg.service(
        web::scope("/api/v1")
            // Every id in a service path is a client's: a malformed one is an unknown client.
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_, _| error::ApiError::not_found("client").into()),
            )
            .configure(service_routes)
            .default_service(web::to(service::unknown_endpoint)),
    );
}

/// The service API, authenticated with API keys (`service_auth::ServiceKey`), not sessions.
/// More `/api/v1` routes go here.
fn service_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/clients", web::get().to(service::list_clients))
        .route("/clients/{id}/token", web::get().to(tokens::client_token))
        .route(
            "/providers/{provider}/token",
            web::get().to(tokens::default_token),
        )
        .route("/openapi.json", web::get().to(openapi::document))
        .route(
            "/proxy/{client_id}/{tail:.*}",
            web::route().to(proxy::forward),
        )
        .route("/usage", web::get().to(usage::stats))
        .configure(operations::routes);
}
