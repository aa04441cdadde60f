//! `GET /api/v1/clients`: the clients a service key may list, a page at a time, searched,
//! filtered and sorted as on the Clients page. JSON only, errors included (`ApiError`);
//! never a token.

use super::clients_query::{encode_cursor, ClientQuery};
use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::clients::{self, ListedClient};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::SecondsFormat;

/// A client as services see it: never a token.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub id: String,
    pub provider: String,
    pub account_id: String,
    pub account_name: String,
    pub owner_user_id: String,
    pub owner_email: String,
    pub status: String,
    /// Why the last refresh or call failed, or that a refresh's outcome is unknown after an
    /// interrupted refresh; null when all is well.
    pub last_error: Option<String>,
    pub auth_type: String,
    pub is_default: bool,
    pub scopes: Vec<String>,
    pub tags: Vec<String>,
    pub connected_at: String,
    pub updated_at: String,
    /// The team's id of the end user a connect session made it for; null otherwise.
    pub end_user_id: Option<String>,
    /// The connection's settings by name: entered (a Kustomer `subdomain`) or captured from
    /// the provider (`instance_url`); empty for most providers.
    pub connection_config: std::collections::BTreeMap<String, String>,
}

impl ClientView {
    /// An end user's connection (its owner is the session's key owner).
    pub fn of_end_user(client: crate::clients::Client, external_id: &str) -> Self {
        let mut view = Self::from(ListedClient {
            client,
            owner_email: String::new(),
            expires_at: None,
        });
        view.end_user_id = Some(external_id.to_string());
        view
    }
}

fn rfc3339(at: chrono::NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl From<ListedClient> for ClientView {
    fn from(listed: ListedClient) -> Self {
        let c = listed.client;
        Self {
            scopes: c.scope_list().into_iter().map(str::to_string).collect(),
            connection_config: c.connection_values().into_map(),
            tags: c.tag_list(),
            connected_at: rfc3339(c.connected_at),
            updated_at: rfc3339(c.updated_at),
            id: c.id,
            provider: c.provider,
            account_id: c.provider_account_id,
            account_name: c.display_name,
            owner_user_id: c.owner_user_id,
            owner_email: listed.owner_email,
            status: c.status.to_string(),
            last_error: c.last_error,
            auth_type: c.auth_type.to_string(),
            is_default: c.is_default,
            end_user_id: None,
        }
    }
}

/// What `GET /api/v1/clients` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
    /// Pass as `cursor` (with the same query) for the next page; null on the last one.
    pub next_cursor: Option<String>,
    /// How many clients match, exact up to 1,000 (see `total_exact`).
    pub total: i64,
    /// False when more than `total` match: the count stops at 1,000.
    pub total_exact: bool,
}

/// `GET /api/v1/clients` (scope `clients:read`).
#[utoipa::path(
    get,
    path = "/api/v1/clients",
    tag = "super::service",
    params(
        ("q" = Option<String>, Query, max_length = 100, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", description = "Search: part of the name, account id or email domain, the owner's email, the end user's id or email (case-insensitive)"),
        ("provider" = Option<String>, Query, max_length = 100, pattern = "^[A-Za-z0-9_@.-]*$", description = "Only this provider, e.g. klaviyo"),
        ("owner" = Option<String>, Query, max_length = 100, pattern = "^[A-Za-z0-9_@.-]*$", description = "Only this owner: a user id or an email"),
        ("status" = Option<String>, Query, pattern = "^(|active|needs_reauth|error|disconnected)$", description = "Only clients in this status"),
        ("tag" = Option<String>, Query, max_length = 100, pattern = "^[A-Za-z0-9_@.-]*$", description = "Only clients with this tag"),
        ("sort" = Option<String>, Query, pattern = "^(|updated|name|expires)$", description = "updated (recently changed first, the default), name, or expires (soonest token expiry first)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Clients per page (default 100)"),
        ("cursor" = Option<String>, Query, max_length = 600, pattern = "^[A-Za-z0-9_-]*$", description = "next_cursor of the previous page, with the same sort (opaque)"),
        ("end_user_id" = Option<String>, Query, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", description = "Only the connections of this end user (the team's id, e.g. 42); one page, other filters but provider ignored"),
    ),
    responses(
        (status = 200, description = "One page of clients in the sort's order; never a token", body = ClientList),
        (status = 400, description = "A filter value or the cursor is malformed (`invalid_request`)", body = super::error::ErrorBody),
        (status = 403, description = "The key lacks `clients:read` (`insufficient_scope`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list_clients(
    req: HttpRequest,
    state: web::Data<AppState>,
    key: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    key.require(Scope::ClientsRead)?;
    let query = ClientQuery::parse(req.query_string())?;
    if let Some(end_user) = query.end_user_id.clone() {
        return end_user_clients(&state, query.filter.provider, end_user).await;
    }
    let sort = query.filter.sort;
    let page = crate::db::run(&state.pool, move |conn| {
        clients::service_list::page(conn, query.filter, query.owner.as_deref())
    })
    .await?;
    let clients = page
        .rows
        .into_iter()
        .map(|(listed, end_user)| {
            let mut view = ClientView::from(listed);
            view.end_user_id = end_user;
            view
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ClientList {
            clients,
            next_cursor: page.next.map(|c| encode_cursor(sort, &c)),
            total: page.total.count,
            total_exact: !page.total.more,
        }))
}

/// `?end_user_id=`: that end user's connections (none when the end user is unknown).
async fn end_user_clients(
    state: &AppState,
    provider: Option<String>,
    external_id: String,
) -> Result<HttpResponse, ApiError> {
    let found = crate::db::run(&state.pool, move |conn| {
        crate::connect::connections::of_end_user(conn, &external_id)
    })
    .await?;
    let clients: Vec<ClientView> = found
        .map(|(end_user, rows)| {
            rows.into_iter()
                .filter(|(c, _)| provider.as_ref().is_none_or(|p| &c.provider == p))
                .map(|(c, _)| ClientView::of_end_user(c, &end_user.external_id))
                .collect()
        })
        .unwrap_or_default();
    let total = clients.len() as i64;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ClientList {
            clients,
            next_cursor: None,
            total,
            total_exact: true,
        }))
}
