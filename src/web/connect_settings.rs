//! `/admin/settings` (admins only): the hosted connect page's product name, logo URL and
//! accent colour, the secret that signs its return URLs (shown, and replaceable), and the
//! script tag for `connect.js`.

use super::layout::{Flash, Layout};
use super::{origin, redirect};
use crate::connect::{admin, settings};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::current_user::AdminUser;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

const PAGE: &str = "/admin/settings";

#[derive(Template)]
#[template(path = "connect_settings.html")]
struct SettingsPage {
    layout: Layout,
    product_name: String,
    logo_url: String,
    accent_color: String,
    signing_secret: String,
    script_url: String,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct BrandingForm {
    product_name: String,
    logo_url: String,
    accent_color: String,
}

fn script_url(state: &AppState) -> String {
    format!(
        "{}/static/connect.js?v={}",
        state.config.public_url.as_str().trim_end_matches('/'),
        super::assets::version()
    )
}

async fn page(
    session: &Session,
    state: &AppState,
    admin: &crate::auth::users::User,
    form: Option<(BrandingForm, String)>,
) -> Result<HttpResponse, AppError> {
    let current = admin::load(state).await?;
    let (status, product_name, logo_url, accent_color, error) = match form {
        Some((form, error)) => (
            StatusCode::BAD_REQUEST,
            form.product_name,
            form.logo_url,
            form.accent_color,
            Some(error),
        ),
        None => (
            StatusCode::OK,
            current.branding.product_name.clone(),
            current.branding.logo_url.clone().unwrap_or_default(),
            current.branding.accent_color.clone(),
            None,
        ),
    };
    let page = SettingsPage {
        layout: Layout::new(session, Some(admin), "settings"),
        product_name,
        logo_url,
        accent_color,
        signing_secret: settings::reveal(&current).to_string(),
        script_url: script_url(state),
        error,
    };
    super::render(page, status)
}

/// `GET /admin/settings`
pub async fn index(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, AppError> {
    page(&session, &state, &admin, None).await
}

/// `POST /admin/settings`: saves the branding, or 400 with what to fix (nothing saved).
pub async fn save(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    form: web::Form<BrandingForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let branding =
        match settings::parse_branding(&form.product_name, &form.logo_url, &form.accent_color) {
            Ok(branding) => branding,
            Err(error) => return page(&session, &state, &admin, Some((form, error))).await,
        };
    admin::save_branding(&state, admin.actor(), branding, &origin(&req)).await?;
    Flash::success("Connect page settings saved").store(&session);
    Ok(redirect(PAGE))
}

/// `POST /admin/settings/rotate-secret`: a new signing secret (the old one stops
/// verifying at once).
pub async fn rotate(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, AppError> {
    admin::rotate_secret(&state, admin.actor(), &origin(&req)).await?;
    Flash::success("New signing secret created; update your backend").store(&session);
    Ok(redirect(PAGE))
}
