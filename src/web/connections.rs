//! "My connections", `/connections`: every signed-in user's own connected accounts, grouped
//! by provider, with Connect, Make default, Reconnect and Disconnect. Admins see only their
//! own here too; everyone's are on the Clients page.

use super::layout::Layout;
use super::moment::{moment, Moment};
use crate::clients::{self, Client};
use crate::error::AppError;
use crate::providers::{AuthType, Provider};
use crate::state::AppState;
use crate::web::current_user::CurrentUser;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use std::sync::Arc;

/// Where this page's forms and the OAuth flow come back to.
const HERE: &str = "/connections";

/// One connected account, as a card.
struct Card {
    id: String,
    provider: String,
    display_name: String,
    account_id: String,
    status: crate::clients::ClientStatus,
    status_label: &'static str,
    last_error: Option<String>,
    is_default: bool,
    is_api_key: bool,
    expires: Moment,
    /// The settings shown on the card and carried by its Reconnect link.
    settings: Vec<(String, String)>,
    reconnect_query: String,
}

/// A provider's section: how to connect it and the accounts connected so far.
struct Section {
    name: String,
    display_name: String,
    /// OAuth providers connect with a link, client-credentials ones with a POST form.
    oauth: bool,
    /// Asked before the consent page (then the link is a form).
    settings: Vec<super::setting_fields::SettingField>,
    machine: bool,
    api_key: bool,
    /// The key form's fields: a user (Basic only) and the secret.
    username_label: Option<String>,
    secret_label: String,
    cards: Vec<Card>,
    /// Connections that were disconnected (kept for their history, not shown as cards).
    disconnected: usize,
}

#[derive(Template)]
#[template(path = "connections.html")]
struct ConnectionsPage {
    layout: Layout,
    sections: Vec<Section>,
    here: &'static str,
}

fn card(
    provider: &Provider,
    client: Client,
    expires_at: Option<chrono::NaiveDateTime>,
    now: chrono::NaiveDateTime,
) -> Card {
    Card {
        settings: super::setting_fields::shown(Some(provider), &client),
        reconnect_query: super::setting_fields::reconnect_query(provider, &client),
        status_label: client.status_label(),
        is_api_key: client.auth_type.is_api_key(),
        expires: moment(expires_at, now),
        id: client.id,
        provider: client.provider,
        display_name: client.display_name,
        account_id: client.provider_account_id,
        status: client.status,
        last_error: client.last_error,
        is_default: client.is_default,
    }
}

fn section(
    provider: &Arc<Provider>,
    rows: Vec<(Client, Option<chrono::NaiveDateTime>)>,
    now: chrono::NaiveDateTime,
) -> Section {
    let (gone, mut live): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|(client, _)| client.status.is_disconnected());
    // Oldest first, so a card stays in place when it becomes the default.
    live.sort_by_key(|(client, _)| client.created_at);
    let (username_label, secret_label) = provider.key_labels();
    Section {
        name: provider.name.clone(),
        display_name: provider.display_name.clone(),
        oauth: provider.auth_type == AuthType::Oauth2,
        settings: super::setting_fields::fields(provider),
        machine: provider.auth_type == AuthType::ClientCredentials,
        api_key: provider.accepts_api_keys(),
        username_label,
        secret_label,
        cards: live
            .into_iter()
            .map(|(client, expires_at)| card(provider, client, expires_at, now))
            .collect(),
        disconnected: gone.len(),
    }
}

/// `GET /connections`.
pub async fn index(
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let providers: Vec<Arc<Provider>> = state.providers().enabled().cloned().collect();
    let names: Vec<String> = providers.iter().map(|p| p.name.clone()).collect();
    let owner = user.id.clone();
    let rows = crate::db::run(&state.pool, move |conn| {
        names
            .iter()
            .map(|name| clients::connections_of(conn, &owner, name))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let now = crate::db::now();
    let page = ConnectionsPage {
        layout: Layout::new(&session, Some(&user), "connections"),
        sections: providers
            .iter()
            .zip(rows)
            .map(|(provider, rows)| section(provider, rows, now))
            .collect(),
        here: HERE,
    };
    super::render(page, StatusCode::OK)
}
