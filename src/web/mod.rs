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
mod providers_page;
mod setting_fields;
mod syncs_page;
mod usage_page;
mod users;
mod webhooks_page;

pub use crate::http_util::{is_htmx, origin, redirect, urlencode, wants_fragment};
use crate::route_table::{self, Table};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;

/// Where a signed-in user lands when no other page was asked for.
pub const HOME: &str = "/admin/clients";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(integration_routes)
        .at(Method::GET, "/", login::home)
        .at(Method::GET, "/healthz", health::healthz)
        .at(Method::GET, "/static/{file}", assets::serve)
        .at(Method::GET, "/favicon.ico", assets::favicon)
        .at(Method::GET, "/login", login::show)
        .at(Method::POST, "/login", login::submit)
        .at(Method::POST, "/logout", login::logout)
        .at(Method::GET, "/admin/clients", clients::index)
        .at(Method::POST, "/admin/clients/bulk", clients::bulk)
        .at(Method::GET, "/admin/clients/rows", clients::rows)
        .at(
            Method::GET,
            "/admin/clients/{id}/reconnect",
            clients::reconnect,
        )
        .at(Method::GET, "/metrics", health::metrics)
        .at(Method::GET, "/admin/users", users::index)
        .at(Method::POST, "/admin/users", users::create)
        .at(Method::POST, "/admin/users/{id}/role", users::set_role)
        .at(Method::POST, "/admin/users/{id}/disable", users::disable)
        .at(Method::POST, "/admin/users/{id}/enable", users::enable)
        .at(
            Method::POST,
            "/admin/users/{id}/reset-password",
            users::reset_password,
        )
        .at(Method::GET, "/account", users::account)
        .at(Method::POST, "/account/password", users::change_password)
        .at(Method::GET, "/admin/end-users/{id}", end_users::show)
        .at(Method::GET, "/admin/settings", connect_settings::index)
        .at(Method::POST, "/admin/settings", connect_settings::save)
        .at(
            Method::POST,
            "/admin/settings/rotate-secret",
            connect_settings::rotate,
        )
        .at(Method::GET, "/admin/api-keys", api_keys::index)
        .at(Method::POST, "/admin/api-keys", api_keys::create)
        .at(
            Method::POST,
            "/admin/api-keys/{id}/revoke",
            api_keys::revoke,
        )
        .at(Method::GET, "/admin/jobs", jobs_page::index)
        .at(Method::GET, "/admin/syncs", syncs_page::index)
        .at(Method::POST, "/admin/jobs/{id}/retry", jobs_page::retry)
        .at(Method::POST, "/admin/jobs/{id}/cancel", jobs_page::cancel)
        .configure(webhooks_page::routes)
        .configure(providers_page::routes)
        // Before `/admin/audit/{id}`, which would otherwise capture them.
        .at(Method::GET, "/admin/audit", audit_page::index)
        .at(Method::GET, "/admin/audit/export.csv", audit_page::export)
        .at(Method::POST, "/admin/audit/verify", audit_page::verify)
        .at(Method::GET, "/admin/audit/{id}", audit_page::show)
        .at(Method::GET, "/admin/usage", usage_page::index)
        // After every fixed /admin/clients/… path, which `{id}` would otherwise capture.
        .configure(client_routes)
        .at(Method::GET, "/connections", connections::index)
        .configure(connect_routes)
        .default_service(web::to(not_found));
}

/// `/api/integrations/{provider}/…`: connecting and acting on clients from the pages
/// (session, CSRF, toasts), with JSON for callers that ask for it.
fn integration_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(route_table::scope("/api/integrations/{provider}", |cfg| {
        cfg.at(Method::GET, "/oauth/start", integrations::start)
            .at(Method::GET, "/oauth/callback", integrations::callback)
            .at(Method::GET, "/status", integrations::status)
            .at(
                Method::POST,
                "/test-connection",
                integrations::test_connection,
            )
            .at(Method::POST, "/connect", integrations::connect_machine)
            .at(
                Method::POST,
                "/oauth/refresh/{client_id}",
                integrations::refresh_now,
            )
            .at(
                Method::POST,
                "/disconnect/{client_id}",
                integrations::disconnect,
            );
    }));
}

/// One client's page and what it changes.
/// The hosted connect page for end users (no sign-in; the token is the credential).
fn connect_routes(cfg: &mut web::ServiceConfig) {
    cfg.at(Method::GET, "/connect/_theme.css", connect_page::theme)
        .at(Method::GET, "/connect/again", connect_page::again)
        .at(
            Method::POST,
            "/connect/finish/{provider}",
            connect_page::finish,
        )
        .at(Method::GET, "/connect/{token}", connect_page::show)
        .at(
            Method::GET,
            "/connect/{token}/start/{provider}",
            connect_page::start,
        )
        .at(
            Method::POST,
            "/connect/{token}/api-key/{provider}",
            connect_page::api_key,
        );
}

fn client_routes(cfg: &mut web::ServiceConfig) {
    cfg.at(Method::GET, "/admin/clients/{id}", client_details::show)
        .at(
            Method::GET,
            "/admin/clients/{id}/tags",
            client_details::show_tags,
        )
        .at(
            Method::POST,
            "/admin/clients/{id}/tags",
            client_details::save_tags,
        )
        .at(
            Method::GET,
            "/admin/clients/{id}/tags/edit",
            client_details::edit_tags,
        )
        .at(
            Method::POST,
            "/admin/clients/{id}/default",
            client_details::make_default,
        )
        .at(
            Method::POST,
            "/admin/clients/{id}/profile/refresh",
            client_details::refresh_counts,
        )
        .at(
            Method::GET,
            "/admin/clients/{id}/syncs",
            client_details::syncs::show,
        )
        .at(
            Method::POST,
            "/admin/clients/{id}/syncs/{model}/run",
            client_details::syncs::sync_now,
        );
}

/// The 404 page (an unknown path or method).
pub async fn not_found() -> Result<HttpResponse, crate::error::AppError> {
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
