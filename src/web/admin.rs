//! Audit log and usage pages.

use super::layout::Layout;
use crate::audit::{self, Entry};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::startup::AppState;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    entries: Vec<Entry>,
}

/// The latest entries; members see only what they did themselves.
pub async fn audit(
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let actor = (!user.is_admin()).then(|| user.id.clone());
    let entries = crate::db::run(&state.pool, move |conn| {
        audit::recent(conn, actor.as_deref(), 100)
    })
    .await?;
    let page = AuditPage {
        layout: Layout::new(&session, Some(&user), "audit"),
        entries,
    };
    super::render(page, StatusCode::OK)
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
}

pub async fn usage(
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let page = UsagePage {
        layout: Layout::new(&session, Some(&user), "usage"),
    };
    super::render(page, StatusCode::OK)
}
