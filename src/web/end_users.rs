//! `/admin/end-users/{id}` (admins): one of the team's end users (by the team's id) and the
//! connections made through their connect sessions, each with Disconnect.

use super::layout::Layout;
use crate::connect::connections;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::current_user::AdminUser;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

struct ConnectionRow {
    id: String,
    provider: String,
    display_name: String,
    account_id: String,
    status: crate::clients::ClientStatus,
    status_label: &'static str,
    connected: String,
}

#[derive(Template)]
#[template(path = "end_user.html")]
struct EndUserPage {
    layout: Layout,
    external_id: String,
    email: Option<String>,
    display_name: Option<String>,
    first_seen: String,
    last_seen: String,
    /// Where Disconnect comes back to.
    here: String,
    rows: Vec<ConnectionRow>,
}

fn utc(at: chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `GET /admin/end-users/{id}`: 404 for an end user the hub has never seen.
pub async fn show(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, AppError> {
    let external_id = path.into_inner();
    let lookup = external_id.clone();
    let (end_user, rows) = crate::db::run(&state.pool, move |conn| {
        connections::of_end_user(conn, &lookup)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let page = EndUserPage {
        layout: Layout::new(&session, Some(&admin), "clients"),
        here: format!("/admin/end-users/{}", super::urlencode(&external_id)),
        external_id: end_user.external_id,
        email: end_user.email,
        display_name: end_user.display_name,
        first_seen: utc(end_user.first_seen_at),
        last_seen: utc(end_user.last_seen_at),
        rows: rows
            .into_iter()
            .map(|(c, _)| ConnectionRow {
                status_label: c.status_label(),
                connected: utc(c.connected_at),
                id: c.id,
                provider: c.provider,
                display_name: c.display_name,
                account_id: c.provider_account_id,
                status: c.status,
            })
            .collect(),
    };
    super::render(page, StatusCode::OK)
}
