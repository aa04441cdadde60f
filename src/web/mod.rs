//! The HTML side of connecthub: routes, pages and their shared helpers.

mod answer;
mod api_keys;
pub mod assets;
mod audit_page;
pub mod audit_view_state;
mod client_details;
mod clients;
pub mod clients_view_state;
mod connect_page;
mod connect_settings;
mod connections;
pub mod csrf;
pub mod csv_export;
pub mod current_user;
mod end_users;
mod health;
mod integrations;
mod jobs_page;
pub mod layout;
pub mod local_path;
mod login;
pub mod middleware;
mod moment;
mod syncs_page;
mod usage_page;
mod users;
mod webhooks_page;

pub use crate::http_util::{is_htmx, origin, redirect, urlencode, wants_fragment};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

/// Where a signed-in user lands when no other page was asked for.
pub const HOME: &str = "/admin/clients";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(integration_routes)
        .route("/", web::get().to(login::home))
        .route("/healthz", web::get().to(health::healthz))
        .route("/static/{file}", web::get().to(assets::serve))
        .route("/favicon.ico", web::get().to(assets::favicon))
        .route("/login", web::get().to(login::show))
        .route("/login", web::post().to(login::submit))
        .route("/logout", web::post().to(login::logout))
        .route("/admin/clients", web::get().to(clients::index))
        .route("/admin/clients/bulk", web::post().to(clients::bulk))
        .route("/admin/clients/rows", web::get().to(clients::rows))
        .route(
            "/admin/clients/{id}/reconnect",
            web::get().to(clients::reconnect),
        )
        .route("/metrics", web::get().to(health::metrics))
        .route("/admin/users", web::get().to(users::index))
        .route("/admin/users", web::post().to(users::create))
        .route("/admin/users/{id}/role", web::post().to(users::set_role))
        .route("/admin/users/{id}/disable", web::post().to(users::disable))
        .route("/admin/users/{id}/enable", web::post().to(users::enable))
        .route(
            "/admin/users/{id}/reset-password",
            web::post().to(users::reset_password),
        )
        .route("/account", web::get().to(users::account))
        .route("/account/password", web::post().to(users::change_password))
        .route("/admin/end-users/{id}", web::get().to(end_users::show))
        .route("/admin/settings", web::get().to(connect_settings::index))
        .route("/admin/settings", web::post().to(connect_settings::save))
        .route(
            "/admin/settings/rotate-secret",
            web::post().to(connect_settings::rotate),
        )
        .route("/admin/api-keys", web::get().to(api_keys::index))
        .route("/admin/api-keys", web::post().to(api_keys::create))
        .route(
            "/admin/api-keys/{id}/revoke",
            web::post().to(api_keys::revoke),
        )
        .route("/admin/jobs", web::get().to(jobs_page::index))
        .route("/admin/syncs", web::get().to(syncs_page::index))
        .route("/admin/jobs/{id}/retry", web::post().to(jobs_page::retry))
        .route("/admin/jobs/{id}/cancel", web::post().to(jobs_page::cancel))
        .configure(webhooks_page::routes)
        // Before `/admin/audit/{id}`, which would otherwise capture them.
        .route("/admin/audit", web::get().to(audit_page::index))
        .route("/admin/audit/export.csv", web::get().to(audit_page::export))
        .route("/admin/audit/verify", web::post().to(audit_page::verify))
        .route("/admin/audit/{id}", web::get().to(audit_page::show))
        .route("/admin/usage", web::get().to(usage_page::index))
        // After every fixed /admin/clients/… path, which `{id}` would otherwise capture.
        .configure(client_routes)
        .route("/connections", web::get().to(connections::index))
        .configure(connect_routes)
        .default_service(web::to(not_found));
}

/// `/api/integrations/{provider}/…`: connecting and acting on clients from the pages
/// (session, CSRF, toasts), with JSON for callers that ask for it.
fn integration_routes(cfg: &mut web::ServiceConfig) {
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
}

/// One client's page and what it changes.
/// The hosted connect page for end users (no sign-in; the token is the credential).
fn connect_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/connect/_theme.css", web::get().to(connect_page::theme))
        .route("/connect/again", web::get().to(connect_page::again))
        .route(
            "/connect/finish/{provider}",
            web::post().to(connect_page::finish),
        )
        .route("/connect/{token}", web::get().to(connect_page::show))
        .route(
            "/connect/{token}/start/{provider}",
            web::get().to(connect_page::start),
        )
        .route(
            "/connect/{token}/api-key/{provider}",
            web::post().to(connect_page::api_key),
        );
}

fn client_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/clients/{id}", web::get().to(client_details::show))
        .route(
            "/admin/clients/{id}/tags",
            web::get().to(client_details::show_tags),
        )
        .route(
            "/admin/clients/{id}/tags",
            web::post().to(client_details::save_tags),
        )
        .route(
            "/admin/clients/{id}/tags/edit",
            web::get().to(client_details::edit_tags),
        )
        .route(
            "/admin/clients/{id}/default",
            web::post().to(client_details::make_default),
        )
        .route(
            "/admin/clients/{id}/profile/refresh",
            web::post().to(client_details::refresh_counts),
        )
        .route(
            "/admin/clients/{id}/syncs/{model}/run",
            web::post().to(client_details::syncs::sync_now),
        );
}

async fn not_found() -> Result<HttpResponse, crate::error::AppError> {
    Err(crate::error::AppError::NotFound)
}

pub fn render(
    page: impl Template,
    status: StatusCode,
) -> Result<HttpResponse, crate::error::AppError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

/// The users an admin can narrow a page to, as (id, email); members get none (they only
/// ever see their own).
pub async fn user_choices(
    state: &crate::state::AppState,
    viewer: &crate::auth::users::User,
) -> Result<Vec<(String, String)>, crate::error::AppError> {
    if !viewer.is_admin() {
        return Ok(Vec::new());
    }
    let users = crate::db::run(&state.pool, crate::auth::users::list).await?;
    Ok(users.into_iter().map(|u| (u.id, u.email)).collect())
}
