//! `/admin/webhooks` (admins only): the endpoints the team receives signed events at.
//! Create (the secret is shown once, in that answer), change, rotate the secret, send a
//! test event, delete; each endpoint's page lists its delivery attempts and replays them.

use super::layout::{Flash, Layout};
use crate::auth::users::User;
use crate::error::AppError;
use crate::route_table::Table;
use crate::state::AppState;
use crate::web::current_user::AdminUser;
use crate::webhooks::attempts::LoggedAttempt;
use crate::webhooks::endpoints::{self, Endpoint};
use crate::webhooks::manage::{self, Draft, Replay, WebhookError};
use crate::webhooks::EventType;
use actix_session::Session;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

const PAGE: &str = "/admin/webhooks";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.at(Method::GET, PAGE, index)
        .at(Method::POST, PAGE, create)
        .at(Method::GET, "/admin/webhooks/{id}", show)
        .at(Method::POST, "/admin/webhooks/{id}", update)
        .at(Method::POST, "/admin/webhooks/{id}/test", send_test)
        .at(Method::POST, "/admin/webhooks/{id}/rotate", rotate)
        .at(Method::POST, "/admin/webhooks/{id}/replay", replay)
        .at(Method::POST, "/admin/webhooks/{id}/delete", delete);
}

/// An event type checkbox.
struct TypeOption {
    value: &'static str,
    description: &'static str,
    checked: bool,
}

fn type_options(checked: &[String]) -> Vec<TypeOption> {
    EventType::subscribable()
        .map(|t| TypeOption {
            value: t.as_str(),
            description: t.description(),
            checked: checked.iter().any(|c| c == t.as_str()),
        })
        .collect()
}

/// The endpoint form's fields; `event_type` repeats, which `web::Form` cannot collect.
#[derive(Default)]
struct EndpointForm {
    url: String,
    description: String,
    event_types: Vec<String>,
    enabled: bool,
}

impl EndpointForm {
    fn parse(body: &[u8]) -> Result<Self, AppError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| AppError::BadRequest("The form could not be read.".into()))?;
        let mut form = Self::default();
        for (field, value) in pairs {
            match field.as_str() {
                "url" => form.url = value,
                "description" => form.description = value,
                "event_type" => form.event_types.push(value),
                "enabled" => form.enabled = value == "on" || value == "true",
                _ => {}
            }
        }
        Ok(form)
    }

    fn draft(&self) -> Draft<'_> {
        Draft {
            url: &self.url,
            description: &self.description,
            event_types: &self.event_types,
            enabled: self.enabled,
        }
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    endpoints: Vec<Endpoint>,
    form: EndpointForm,
    types: Vec<TypeOption>,
    error: Option<String>,
    /// The secret of the endpoint just created, shown this once.
    new_secret: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "webhook_endpoint.html")]
struct EndpointPage {
    layout: Layout,
    endpoint: Endpoint,
    types: Vec<TypeOption>,
    log: Vec<LoggedAttempt>,
    error: Option<String>,
    new_secret: Option<String>,
}

fn error(e: WebhookError) -> AppError {
    match e {
        WebhookError::Invalid(message) => AppError::BadRequest(message),
        WebhookError::NotFound => AppError::NotFound,
        WebhookError::Storage(e) => e.into(),
    }
}

fn no_store(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn list_page(
    session: &Session,
    state: &AppState,
    admin: &User,
    form: EndpointForm,
) -> Result<WebhooksPage, AppError> {
    let endpoints = manage::list(state).await.map_err(error)?;
    Ok(WebhooksPage {
        layout: Layout::new(session, Some(admin), "webhooks"),
        endpoints,
        types: type_options(&form.event_types),
        form,
        error: None,
        new_secret: None,
    })
}

/// `GET /admin/webhooks`
pub async fn index(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, AppError> {
    let form = EndpointForm {
        enabled: true,
        ..EndpointForm::default()
    };
    super::render(
        list_page(&session, &state, &admin, form).await?,
        StatusCode::OK,
    )
}

/// `POST /admin/webhooks`: 200 with the secret shown once, or 400 with what to fix.
pub async fn create(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let form = EndpointForm::parse(&body)?;
    match manage::create(&state, &admin.actor(), &form.draft()).await {
        Ok((endpoint, secret)) => {
            let fresh = EndpointForm {
                enabled: true,
                ..EndpointForm::default()
            };
            let mut page = list_page(&session, &state, &admin, fresh).await?;
            page.new_secret = Some((endpoint.url, endpoints::reveal(&secret).to_string()));
            Ok(no_store(super::render(page, StatusCode::OK)?))
        }
        Err(WebhookError::Invalid(message)) => {
            let mut page = list_page(&session, &state, &admin, form).await?;
            page.error = Some(message);
            super::render(page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(error(e)),
    }
}

async fn endpoint_page(
    session: &Session,
    state: &AppState,
    admin: &User,
    id: &str,
) -> Result<EndpointPage, AppError> {
    let (endpoint, log) = manage::details(state, id).await.map_err(error)?;
    Ok(EndpointPage {
        layout: Layout::new(session, Some(admin), "webhooks"),
        types: type_options(&endpoint.type_list()),
        endpoint,
        log,
        error: None,
        new_secret: None,
    })
}

/// `GET /admin/webhooks/{id}`: settings, actions and the delivery log.
pub async fn show(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    super::render(
        endpoint_page(&session, &state, &admin, &id).await?,
        StatusCode::OK,
    )
}

/// `POST /admin/webhooks/{id}`: saves the settings; 400 with the form and what to fix.
pub async fn update(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let form = EndpointForm::parse(&body)?;
    match manage::update(&state, &admin.actor(), &id, &form.draft()).await {
        Ok(_) => {
            Flash::success("Endpoint saved").store(&session);
            Ok(super::redirect(&format!("{PAGE}/{id}")))
        }
        Err(WebhookError::Invalid(message)) => {
            let mut page = endpoint_page(&session, &state, &admin, &id).await?;
            page.error = Some(message);
            page.types = type_options(&form.event_types);
            super::render(page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(error(e)),
    }
}

/// `POST /admin/webhooks/{id}/test`
pub async fn send_test(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let event_id = manage::send_test(&state, &admin.actor(), &id)
        .await
        .map_err(error)?;
    Flash::success(format!("Test event {event_id} queued")).store(&session);
    Ok(super::redirect(&format!("{PAGE}/{id}")))
}

/// `POST /admin/webhooks/{id}/rotate`: the page with the new secret shown once.
pub async fn rotate(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let secret = manage::rotate(&state, &admin.actor(), &id)
        .await
        .map_err(error)?;
    let mut page = endpoint_page(&session, &state, &admin, &id).await?;
    page.new_secret = Some(endpoints::reveal(&secret).to_string());
    Ok(no_store(super::render(page, StatusCode::OK)?))
}

#[derive(serde::Deserialize)]
pub struct ReplayForm {
    event_id: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (a datetime-local field), UTC.
    since: Option<String>,
}

/// `POST /admin/webhooks/{id}/replay`: one event again, or every failed one since a time.
pub async fn replay(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
    form: web::Form<ReplayForm>,
) -> Result<HttpResponse, AppError> {
    let what = match (
        form.event_id.as_deref().filter(|s| !s.is_empty()),
        form.since.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(event_id), None) => Replay::One(event_id.to_string()),
        (None, Some(since)) => Replay::FailedSince(
            chrono::NaiveDateTime::parse_from_str(since, "%Y-%m-%dT%H:%M").map_err(|_| {
                AppError::BadRequest("The time must look like 2026-12-01T10:00 (UTC).".into())
            })?,
        ),
        _ => {
            return Err(AppError::BadRequest(
                "Give either an event or a time.".into(),
            ))
        }
    };
    let queued = manage::replay(&state, &admin.actor(), &id, what)
        .await
        .map_err(error)?;
    Flash::success(format!("{queued} deliveries queued again")).store(&session);
    Ok(super::redirect(&format!("{PAGE}/{id}")))
}

/// `POST /admin/webhooks/{id}/delete`
pub async fn delete(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    manage::delete(&state, &admin.actor(), &id)
        .await
        .map_err(error)?;
    Flash::success("Endpoint deleted").store(&session);
    Ok(super::redirect(PAGE))
}
