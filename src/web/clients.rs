//! The Clients page: every connected provider account (members see their own).

use super::layout::Layout;
use crate::auth::CurrentUser;
use crate::error::AppError;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;

#[derive(Template)]
#[template(path = "clients.html")]
struct ClientsPage {
    layout: Layout,
}

pub async fn index(
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let page = ClientsPage {
        layout: Layout::new(&session, Some(&user), "clients"),
    };
    super::render(page, StatusCode::OK)
}
