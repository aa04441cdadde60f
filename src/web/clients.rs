//! The Clients page: every connected provider account (members see their own), the
//! Connect buttons and the API-key form.

use super::layout::Layout;
use crate::auth::CurrentUser;
use crate::clients::{self, ListedClient};
use crate::error::AppError;
use crate::providers::{AuthType, Provider};
use crate::startup::AppState;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use std::sync::Arc;

/// A Connect button as the toolbar shows it.
struct ConnectButton {
    name: String,
    display_name: String,
    /// Client-credentials providers connect with a POST form, the others with a link.
    machine: bool,
}

struct ClientRow {
    id: String,
    provider: String,
    display_name: String,
    account_id: String,
    owner_email: String,
    status: String,
    status_label: &'static str,
    auth_type: String,
    tags: Vec<String>,
    is_default: bool,
    expires: String,
    connected: String,
    last_error: Option<String>,
}

impl ClientRow {
    fn can_refresh(&self) -> bool {
        self.auth_type != "api_key" && matches!(self.status.as_str(), "active" | "error")
    }

    fn is_connected(&self) -> bool {
        self.status != "disconnected"
    }
}

#[derive(Template)]
#[template(path = "clients.html")]
struct ClientsPage {
    layout: Layout,
    buttons: Vec<ConnectButton>,
    api_key_providers: Vec<ConnectButton>,
    rows: Vec<ClientRow>,
    show_owner: bool,
    alert: Option<String>,
}

fn button(provider: &Arc<Provider>) -> ConnectButton {
    ConnectButton {
        name: provider.name.clone(),
        display_name: provider.display_name.clone(),
        machine: provider.auth_type == AuthType::ClientCredentials,
    }
}

/// "in 52 min", "expired 3 h ago", "never" — the absolute time sits in the title.
pub fn relative(time: Option<chrono::NaiveDateTime>, now: chrono::NaiveDateTime) -> String {
    let Some(time) = time else {
        return "—".into();
    };
    let seconds = (time - now).num_seconds();
    let span = |s: i64| match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86400),
    };
    if seconds >= 0 {
        format!("in {}", span(seconds))
    } else {
        format!("{} ago", span(-seconds))
    }
}

fn row(listed: ListedClient, now: chrono::NaiveDateTime) -> ClientRow {
    let ListedClient {
        client,
        owner_email,
        expires_at,
    } = listed;
    ClientRow {
        status_label: client.status_label(),
        tags: client.tag_list(),
        expires: if client.auth_type == "api_key" {
            "does not expire".into()
        } else {
            relative(expires_at, now)
        },
        connected: client.connected_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        id: client.id,
        provider: client.provider,
        display_name: client.display_name,
        account_id: client.provider_account_id,
        owner_email,
        status: client.status,
        auth_type: client.auth_type,
        is_default: client.is_default,
        last_error: client.last_error,
    }
}

#[derive(serde::Deserialize)]
struct BulkForm {
    action: String,
    ids: Vec<String>,
}

/// Reads `action=…&client_id=…&client_id=…` (repeated fields).
fn bulk_form(body: &[u8]) -> Result<BulkForm, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("the form could not be read".into()))?;
    let action = pairs
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let ids: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "client_id")
        .map(|(_, v)| v)
        .collect();
    if ids.is_empty() {
        return Err(AppError::BadRequest("select at least one client".into()));
    }
    if ids.len() > 500 {
        return Err(AppError::BadRequest(
            "select at most 500 clients at once".into(),
        ));
    }
    Ok(BulkForm { action, ids })
}

/// `POST /admin/clients/bulk`: refresh or disconnect many clients (admins).
pub async fn bulk(
    req: actix_web::HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    body: web::Bytes,
    crate::auth::AdminUser(admin): crate::auth::AdminUser,
) -> Result<HttpResponse, AppError> {
    let form = bulk_form(&body)?;
    if !matches!(form.action.as_str(), "refresh" | "disconnect") {
        return Err(AppError::BadRequest(
            "the bulk action must be refresh or disconnect".into(),
        ));
    }
    let origin = super::origin(&req);
    let (mut done, mut failed) = (0, 0);
    for id in form.ids {
        let admin_copy = admin.clone();
        let client = match crate::db::run(&state.pool, move |conn| {
            clients::find_for(conn, &admin_copy, &id)
        })
        .await
        {
            Ok(client) => client,
            Err(AppError::NotFound) => {
                failed += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let ok = match form.action.as_str() {
            "refresh" => crate::oauth::lifecycle::refresh(&state, &client, true)
                .await
                .is_ok(),
            _ => {
                let revocation =
                    crate::oauth::disconnect::disconnect(&state, &admin, &client, &origin).await?;
                !matches!(revocation, crate::oauth::disconnect::Revocation::Failed(_))
            }
        };
        if ok {
            done += 1
        } else {
            failed += 1
        }
    }
    let verb = if form.action == "refresh" {
        "Refreshed"
    } else {
        "Disconnected"
    };
    let message = format!("{verb} {done} client(s); {failed} failed");
    let flash = if failed == 0 {
        super::layout::Flash::success(message)
    } else {
        super::layout::Flash::error(message)
    };
    flash.store(&session);
    Ok(super::redirect(super::HOME))
}

pub async fn index(
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let owner = (!user.is_admin()).then(|| user.id.clone());
    let listed = crate::db::run(&state.pool, move |conn| {
        clients::list(conn, owner.as_deref())
    })
    .await?;
    let now = crate::db::now();
    let providers = state.providers();
    let page = ClientsPage {
        layout: Layout::new(&session, Some(&user), "clients"),
        buttons: providers
            .enabled()
            .filter(|p| p.auth_type != AuthType::ApiKey)
            .map(button)
            .collect(),
        api_key_providers: providers
            .enabled()
            .filter(|p| p.accepts_api_keys())
            .map(button)
            .collect(),
        rows: listed.into_iter().map(|l| row(l, now)).collect(),
        show_owner: user.is_admin(),
        alert: crate::oauth::lifecycle::refresh_alert(&state).await?,
    };
    super::render(page, StatusCode::OK)
}

/// `GET /admin/clients/{id}/reconnect`: reruns the OAuth flow for this client's provider;
/// the consent for the same account updates the same row.
pub async fn reconnect(
    state: web::Data<AppState>,
    path: web::Path<String>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let client =
        crate::db::run(&state.pool, move |conn| clients::find_for(conn, &user, &id)).await?;
    Ok(super::redirect(&format!(
        "/api/integrations/{}/oauth/start?redirect_path=/admin/clients",
        client.provider
    )))
}
