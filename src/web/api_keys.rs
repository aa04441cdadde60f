//! The API keys page (admins only): list, create and revoke the keys the team's own
//! backends use for `/api/v1`. A new key is shown once, in the response that created it;
//! it never goes into the session, which is stored in the database.

use super::layout::{Flash, FlashKind, Layout};
use crate::api_keys::{self, ApiKey, CreatedKey, KeyRequest, Scope};
use crate::audit::{self, Actor, Event, Origin};
use crate::auth::users::User;
use crate::db::DbConnection;
use crate::error::AppError;
use crate::input::RecordId;
use crate::state::AppState;
use crate::web::current_user::AdminUser;
use actix_session::Session;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::QueryResult;
use secrecy::ExposeSecret;

const PAGE: &str = "/admin/api-keys";

/// A scope checkbox of the create form.
struct ScopeOption {
    value: &'static str,
    description: &'static str,
    checked: bool,
}

/// The key just created, for the one-time panel.
struct NewKey {
    name: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    layout: Layout,
    keys: Vec<ApiKey>,
    /// The create form, refilled after an error.
    name: String,
    scopes: Vec<ScopeOption>,
    allowed_ips: String,
    error: Option<String>,
    new_key: Option<NewKey>,
}

impl ApiKeysPage {
    fn new(layout: Layout, keys: Vec<ApiKey>) -> Self {
        Self {
            layout,
            keys,
            name: String::new(),
            scopes: scope_options(&[]),
            allowed_ips: String::new(),
            error: None,
            new_key: None,
        }
    }
}

fn scope_options(checked: &[String]) -> Vec<ScopeOption> {
    Scope::ALL
        .into_iter()
        .map(|scope| ScopeOption {
            value: scope.as_str(),
            description: scope.description(),
            checked: checked.iter().any(|c| c == scope.as_str()),
        })
        .collect()
}

/// The create form's fields; `scope` repeats, which `web::Form` cannot collect.
#[derive(Debug, Default)]
struct CreateForm {
    name: String,
    scopes: Vec<String>,
    allowed_ips: String,
}

fn parse_form(body: &[u8]) -> Result<CreateForm, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("The form could not be read.".into()))?;
    let mut form = CreateForm::default();
    for (field, value) in pairs {
        match field.as_str() {
            "name" => form.name = value,
            "scope" => form.scopes.push(value),
            "allowed_ips" => form.allowed_ips = value,
            _ => {}
        }
    }
    Ok(form)
}

async fn load_keys(state: &AppState) -> Result<Vec<ApiKey>, AppError> {
    Ok(crate::db::run(&state.pool, api_keys::list).await?)
}

/// `GET /admin/api-keys`
pub async fn index(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, AppError> {
    let keys = load_keys(&state).await?;
    let page = ApiKeysPage::new(Layout::new(&session, Some(&admin), "api-keys"), keys);
    super::render(page, StatusCode::OK)
}

/// `POST /admin/api-keys`: 200 with the new key shown once, or 400 with what to fix.
pub async fn create(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let form = parse_form(&body)?;
    let request = match api_keys::validate_with_ranges(&form.name, &form.scopes, &form.allowed_ips)
    {
        Ok(request) => request,
        Err(message) => return refuse(&session, &state, &admin, form, message).await,
    };
    let origin = super::origin(&req);
    let creator = admin.clone();
    let created = crate::db::run(&state.pool, move |conn| {
        create_audited(conn, &request, &creator, &origin)
    })
    .await?;
    let keys = load_keys(&state).await?;
    let mut page = ApiKeysPage::new(Layout::new(&session, Some(&admin), "api-keys"), keys);
    page.new_key = Some(NewKey {
        name: created.key.name.clone(),
        secret: created.secret.expose_secret().to_string(),
    });
    let mut response = super::render(page, StatusCode::OK)?;
    // The page holds the secret: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Re-renders the form with the admin's input and the message; nothing is stored.
async fn refuse(
    session: &Session,
    state: &AppState,
    admin: &User,
    form: CreateForm,
    message: String,
) -> Result<HttpResponse, AppError> {
    let keys = load_keys(state).await?;
    let mut page = ApiKeysPage::new(Layout::new(session, Some(admin), "api-keys"), keys);
    page.scopes = scope_options(&form.scopes);
    page.name = form.name;
    page.allowed_ips = form.allowed_ips;
    page.error = Some(message);
    super::render(page, StatusCode::BAD_REQUEST)
}

/// Stores the key and its audit entry together: no key without a record of who made it.
fn create_audited(
    conn: &mut DbConnection,
    request: &KeyRequest,
    admin: &User,
    origin: &Origin,
) -> QueryResult<CreatedKey> {
    crate::db::transaction(conn, |conn| {
        let created = api_keys::create_restricted(
            conn,
            &request.name,
            &request.scopes,
            &admin.id,
            request.allowed_ips.as_ref(),
        )?;
        let key = &created.key;
        let mut details = serde_json::json!({
            "name": key.name,
            "scopes": key.scope_list(),
            "prefix": key.prefix,
        });
        // Only restricted keys carry their ranges in the entry.
        if let Some(ranges) = &key.allowed_ips {
            details["allowed_ips"] = ranges.as_str().into();
        }
        let event = admin
            .event("api_key_created")
            .target("api_key", key.id.clone())
            .origin(origin)
            .details(details);
        audit::append(conn, event)?;
        Ok(created)
    })
}

/// What revoking found.
enum Revoked {
    Now(String),
    Already(String),
}

/// `POST /admin/api-keys/{id}/revoke`: flash and back to the list; unknown ids are 404.
pub async fn revoke(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<RecordId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner().into_string();
    let origin = super::origin(&req);
    let actor = admin.actor();
    let outcome = crate::db::run(&state.pool, move |conn| {
        revoke_audited(conn, &id, actor, &origin)
    })
    .await?;
    let flash = match outcome {
        Some(Revoked::Now(name)) => Flash::success(format!("Revoked key {name}")),
        Some(Revoked::Already(name)) => Flash {
            kind: FlashKind::Info,
            message: format!("Key {name} was already revoked"),
        },
        None => return Err(AppError::NotFound),
    };
    // A revoked key must stop working here at once, not when its cache entry expires.
    state.forget_api_keys();
    Ok(flash.redirect(&session, PAGE))
}

/// Revokes the key and records it; None when there is no such key.
fn revoke_audited(
    conn: &mut DbConnection,
    id: &str,
    actor: Actor,
    origin: &Origin,
) -> QueryResult<Option<Revoked>> {
    crate::db::transaction(conn, |conn| {
        let Some(key) = api_keys::find(conn, id)? else {
            return Ok(None);
        };
        if !api_keys::revoke(conn, id)? {
            return Ok(Some(Revoked::Already(key.name)));
        }
        let event = Event::new(actor, "api_key_revoked")
            .target("api_key", key.id.clone())
            .origin(origin)
            .details(serde_json::json!({"name": key.name, "prefix": key.prefix}));
        audit::append(conn, event)?;
        Ok(Some(Revoked::Now(key.name)))
    })
}
