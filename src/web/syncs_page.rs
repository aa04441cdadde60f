//! `/admin/syncs` (admins only): every sync of every connection, failing ones first,
//! filtered by provider and status.

use super::layout::Layout;
use crate::error::AppError;
use crate::state::AppState;
use crate::syncs::admin::{self, ListedSync};
use crate::web::current_user::AdminUser;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

const STATUSES: [&str; 4] = ["idle", "running", "paused", "failing"];

#[derive(serde::Deserialize)]
pub struct Query {
    provider: Option<String>,
    status: Option<String>,
}

#[derive(Template)]
#[template(path = "syncs.html")]
struct SyncsPage {
    layout: Layout,
    syncs: Vec<ListedSync>,
    providers: Vec<String>,
    statuses: [&'static str; 4],
    provider: String,
    status: String,
}

/// `GET /admin/syncs?provider=&status=`.
pub async fn index(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(user): AdminUser,
    query: web::Query<Query>,
) -> Result<HttpResponse, AppError> {
    let providers: Vec<String> = state
        .providers()
        .enabled()
        .filter(|p| !p.syncs.is_empty())
        .map(|p| p.name.clone())
        .collect();
    let provider = query.provider.clone().filter(|p| !p.is_empty());
    if provider.as_ref().is_some_and(|p| !providers.contains(p)) {
        return Err(AppError::BadRequest("Unknown provider.".into()));
    }
    let status = query.status.clone().filter(|s| !s.is_empty());
    if status.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
        return Err(AppError::BadRequest("Unknown sync status.".into()));
    }
    let (p, s) = (provider.clone(), status.clone());
    let syncs = crate::db::run(&state.pool, move |conn| {
        admin::list(conn, p.as_deref(), s.as_deref())
    })
    .await?;
    let page = SyncsPage {
        layout: Layout::new(&session, Some(&user), "syncs"),
        syncs,
        providers,
        statuses: STATUSES,
        provider: provider.unwrap_or_default(),
        status: status.unwrap_or_default(),
    };
    super::render(page, StatusCode::OK)
}
