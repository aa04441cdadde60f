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
}

#[derive(Template)]
#[template(path = "clients.html")]
struct ClientsPage {
    layout: Layout,
    buttons: Vec<ConnectButton>,
    api_key_providers: Vec<ConnectButton>,
    rows: Vec<ClientRow>,
    show_owner: bool,
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
    }
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
    };
    super::render(page, StatusCode::OK)
}
