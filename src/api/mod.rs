//! JSON and redirect endpoints under /api: the integrations API the pages and the
//! requirements name.

mod integrations;

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
            .route("/connect", web::post().to(integrations::connect_machine)),
    );
}
