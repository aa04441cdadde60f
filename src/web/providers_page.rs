//! `/admin/providers` (admins only): every provider with its status; enable or disable,
//! client id and secret, scopes, authorize parameters, "Check configuration", adding a
//! provider from a pasted `[[provider]]` table or from the catalogue, and removing one
//! added here. The domain is `provider_admin`.

use super::layout::{Flash, Layout};
use crate::auth::users::User;
use crate::error::AppError;
use crate::provider_admin::{
    self, check, from_catalogue, removal, AdminError, Draft, Overview, SecretSource, Status,
};
use crate::providers::catalogue;
use crate::route_table::Table;
use crate::state::AppState;
use crate::web::current_user::AdminUser;
use actix_session::Session;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

const PAGE: &str = "/admin/providers";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.at(Method::GET, PAGE, index)
        .at(Method::POST, PAGE, add)
        .at(
            Method::POST,
            "/admin/providers/catalogue/{name}",
            add_catalogued,
        )
        .at(Method::GET, "/admin/providers/{name}", show)
        .at(Method::POST, "/admin/providers/{name}", save)
        .at(Method::POST, "/admin/providers/{name}/enabled", set_enabled)
        .at(Method::POST, "/admin/providers/{name}/check", run_check)
        .at(Method::POST, "/admin/providers/{name}/remove", remove);
}

/// A provider with the words and badge the templates show.
struct View {
    info: Overview,
    status: &'static str,
    badge: &'static str,
    secret: &'static str,
}

impl From<Overview> for View {
    fn from(info: Overview) -> Self {
        let badge = match info.status {
            Status::Configured => "badge-success",
            Status::MissingCredentials => "badge-warning",
            Status::Disabled => "badge-danger",
        };
        let secret = match info.secret {
            SecretSource::Environment => "set in the environment",
            SecretSource::Stored => "set",
            SecretSource::Default => "set (sandbox default)",
            SecretSource::NotSet => "not set",
        };
        Self {
            status: info.status.label(),
            badge,
            secret,
            info,
        }
    }
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersPage {
    layout: Layout,
    providers: Vec<View>,
    definition: String,
    error: Option<String>,
    catalogue: Vec<&'static catalogue::Entry>,
    catalogue_error: Option<String>,
}

#[derive(Template)]
#[template(path = "provider.html")]
struct ProviderPage {
    layout: Layout,
    provider: View,
    error: Option<String>,
    report: Option<check::Report>,
}

#[derive(Template)]
#[template(path = "_provider_check.html")]
struct CheckFragment {
    report: check::Report,
}

fn error(e: AdminError) -> AppError {
    match e {
        AdminError::Invalid(message) => AppError::BadRequest(message),
        AdminError::NotFound => AppError::NotFound,
        AdminError::Storage(e) => e.into(),
    }
}

async fn list_page(
    session: &Session,
    state: &AppState,
    admin: &User,
    definition: String,
    problem: Option<String>,
) -> Result<ProvidersPage, AppError> {
    Ok(ProvidersPage {
        layout: Layout::new(session, Some(admin), "providers"),
        providers: provider_admin::list(state)
            .await
            .map_err(error)?
            .into_iter()
            .map(View::from)
            .collect(),
        definition,
        error: problem,
        catalogue: from_catalogue::available(state),
        catalogue_error: None,
    })
}

/// `GET /admin/providers`
pub async fn index(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, AppError> {
    let page = list_page(&session, &state, &admin, String::new(), None).await?;
    super::render(page, StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct AddForm {
    #[serde(default)]
    definition: String,
}

/// `POST /admin/providers`: adds a provider from a pasted TOML table; 400 with the text
/// and what to fix.
pub async fn add(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, AppError> {
    match provider_admin::add_from_toml(&state, &admin.actor(), &form.definition).await {
        Ok(name) => {
            Flash::success(format!("Provider {name} added")).store(&session);
            Ok(super::redirect(&format!("{PAGE}/{name}")))
        }
        Err(AdminError::Invalid(message)) => {
            let definition = form.into_inner().definition;
            let page = list_page(&session, &state, &admin, definition, Some(message)).await?;
            super::render(page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(error(e)),
    }
}

/// `POST /admin/providers/catalogue/{name}`: adds the catalogue entry; 400 with why not
/// (its name is taken, say).
pub async fn add_catalogued(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    name: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    match from_catalogue::add(&state, &admin.actor(), &name).await {
        Ok(name) => {
            Flash::success(format!("Provider {name} added from the catalogue")).store(&session);
            Ok(super::redirect(&format!("{PAGE}/{name}")))
        }
        Err(AdminError::Invalid(message)) => {
            let mut page = list_page(&session, &state, &admin, String::new(), None).await?;
            page.catalogue_error = Some(message);
            super::render(page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(error(e)),
    }
}

async fn provider_page(
    session: &Session,
    state: &AppState,
    admin: &User,
    name: &str,
) -> Result<ProviderPage, AppError> {
    Ok(ProviderPage {
        layout: Layout::new(session, Some(admin), "providers"),
        provider: provider_admin::details(state, name)
            .await
            .map_err(error)?
            .into(),
        error: None,
        report: None,
    })
}

/// `GET /admin/providers/{name}`
pub async fn show(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    name: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let page = provider_page(&session, &state, &admin, &name).await?;
    super::render(page, StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct SettingsForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    scopes: Option<String>,
    authorize_params: Option<String>,
}

/// `POST /admin/providers/{name}`: saves the settings; 400 with what to fix (the form
/// keeps what was typed, never the secret).
pub async fn save(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    name: web::Path<String>,
    form: web::Form<SettingsForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let draft = Draft {
        client_id: form.client_id,
        client_secret: form.client_secret,
        scopes: form.scopes,
        authorize_params: form.authorize_params,
    };
    match provider_admin::save(&state, &admin.actor(), &name, &draft).await {
        Ok(changed) => {
            let message = if changed {
                "Settings saved"
            } else {
                "Nothing changed"
            };
            Flash::success(message).store(&session);
            Ok(super::redirect(&format!("{PAGE}/{name}")))
        }
        Err(AdminError::Invalid(message)) => {
            let mut page = provider_page(&session, &state, &admin, &name).await?;
            page.error = Some(message);
            if let Some(id) = draft.client_id {
                page.provider.info.client_id = id;
            }
            if let Some(scopes) = draft.scopes {
                page.provider.info.scopes = scopes;
            }
            if let Some(params) = draft.authorize_params {
                page.provider.info.authorize_params = params;
            }
            super::render(page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(error(e)),
    }
}

#[derive(serde::Deserialize)]
pub struct EnabledForm {
    enabled: bool,
}

/// `POST /admin/providers/{name}/enabled` with `enabled=true|false`.
pub async fn set_enabled(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    name: web::Path<String>,
    form: web::Form<EnabledForm>,
) -> Result<HttpResponse, AppError> {
    provider_admin::set_enabled(&state, &admin.actor(), &name, form.enabled)
        .await
        .map_err(error)?;
    let done = if form.enabled { "enabled" } else { "disabled" };
    Flash::success(format!("Provider {done}")).store(&session);
    Ok(super::redirect(&format!("{PAGE}/{name}")))
}

/// `POST /admin/providers/{name}/check`: the report alone for htmx, else the page with it.
pub async fn run_check(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    name: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let report = provider_admin::check(&state, &name).await.map_err(error)?;
    if super::is_htmx(&req) {
        return super::render(CheckFragment { report }, StatusCode::OK);
    }
    let mut page = provider_page(&session, &state, &admin, &name).await?;
    page.report = Some(report);
    super::render(page, StatusCode::OK)
}

/// `POST /admin/providers/{name}/remove`: back to the list, or the provider's page with why
/// not (400).
pub async fn remove(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    name: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    match removal::remove(&state, &admin.actor(), &name).await {
        Ok(()) => {
            Flash::success(format!("Provider {name} removed")).store(&session);
            Ok(super::redirect(PAGE))
        }
        Err(AdminError::Invalid(message)) => {
            let mut page = provider_page(&session, &state, &admin, &name).await?;
            page.error = Some(message);
            super::render(page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(error(e)),
    }
}
