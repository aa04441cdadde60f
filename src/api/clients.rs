//! `GET /api/v1/clients`: the clients a service key may list, filtered by provider and
//! owner. JSON only, errors included (`ApiError`); never a token.

use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::clients::{self, ListedClient};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::SecondsFormat;

const FILTER_MAX_LEN: usize = 100;

/// `?provider=&owner=`; owner is a user id or an email address. Empty means no filter.
#[derive(Debug, Default, serde::Deserialize)]
struct ClientFilter {
    provider: Option<String>,
    owner: Option<String>,
    /// The team's id of an end user: only the connections made through their sessions.
    end_user_id: Option<String>,
}

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

/// A filter value: absent or empty is None; too long or odd characters are refused.
fn filter_value(name: &str, raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = raw.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_@.-".contains(c);
    if value.len() > FILTER_MAX_LEN || !value.chars().all(allowed) {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most {FILTER_MAX_LEN} characters of A-Z a-z 0-9 _ @ . -"
        )));
    }
    Ok(Some(value))
}

fn parse_filter(query: &str) -> Result<ClientFilter, ApiError> {
    // Parsed by hand so a malformed query gets a JSON answer, not actix's plain text.
    let raw: ClientFilter = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    Ok(ClientFilter {
        provider: filter_value("provider", raw.provider)?,
        owner: filter_value("owner", raw.owner)?,
        end_user_id: match raw.end_user_id.filter(|v| !v.is_empty()) {
            Some(id)
                if id.len() <= crate::connect::request::END_USER_ID_MAX
                    && !id.chars().any(char::is_control) =>
            {
                Some(id)
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "end_user_id must be at most 255 characters without control characters",
                ))
            }
            None => None,
        },
    })
}

/// The clients matching the filter, newest first. An owner id is filtered in the query;
/// an owner email (it has an @) is matched on the listed rows.
async fn matching_clients(
    state: &AppState,
    filter: ClientFilter,
) -> Result<Vec<ListedClient>, ApiError> {
    let owner_id = filter.owner.clone().filter(|o| !o.contains('@'));
    let listed = crate::db::run(&state.pool, move |conn| {
        clients::list(conn, owner_id.as_deref())
    })
    .await?;
    let keep = |l: &ListedClient| {
        filter
            .provider
            .as_ref()
            .is_none_or(|p| &l.client.provider == p)
            && filter
                .owner
                .as_ref()
                .filter(|o| o.contains('@'))
                .is_none_or(|email| l.owner_email.eq_ignore_ascii_case(email))
    };
    Ok(listed.into_iter().filter(keep).collect())
}

/// What `GET /api/v1/clients` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
}

/// `GET /api/v1/clients` (scope `clients:read`).
#[utoipa::path(
    get,
    path = "/api/v1/clients",
    tag = "super::service",
    params(
        ("provider" = Option<String>, Query, max_length = 100, pattern = "^[A-Za-z0-9_@.-]*$", description = "Only this provider, e.g. klaviyo"),
        ("owner" = Option<String>, Query, max_length = 100, pattern = "^[A-Za-z0-9_@.-]*$", description = "Only this owner: a user id or an email"),
        ("end_user_id" = Option<String>, Query, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", description = "Only the connections of this end user (the team's id, e.g. 42)"),
    ),
    responses(
        (status = 200, description = "Clients, newest first; never a token", body = ClientList),
        (status = 400, description = "A filter value is malformed (`invalid_request`)", body = super::error::ErrorBody),
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
    let filter = parse_filter(req.query_string())?;
    if let Some(end_user) = filter.end_user_id.clone() {
        return end_user_clients(&state, filter, end_user).await;
    }
    let listed = matching_clients(&state, filter).await?;
    let end_user_ids: Vec<String> = listed
        .iter()
        .filter_map(|l| l.client.end_user_id.clone())
        .collect();
    let end_users = crate::db::run(&state.pool, move |conn| {
        crate::connect::end_users::find_many(conn, end_user_ids)
    })
    .await?;
    let clients: Vec<ClientView> = listed
        .into_iter()
        .map(|l| {
            let end_user = l.client.end_user_id.as_ref().and_then(|id| {
                end_users
                    .iter()
                    .find(|e| &e.id == id)
                    .map(|e| e.external_id.clone())
            });
            let mut view = ClientView::from(l);
            view.end_user_id = end_user;
            view
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ClientList { clients }))
}

/// `?end_user_id=`: that end user's connections (none when the end user is unknown).
async fn end_user_clients(
    state: &AppState,
    filter: ClientFilter,
    external_id: String,
) -> Result<HttpResponse, ApiError> {
    let found = crate::db::run(&state.pool, move |conn| {
        crate::connect::connections::of_end_user(conn, &external_id)
    })
    .await?;
    let clients = found
        .map(|(end_user, rows)| {
            rows.into_iter()
                .filter(|(c, _)| filter.provider.as_ref().is_none_or(|p| &c.provider == p))
                .map(|(c, _)| ClientView::of_end_user(c, &end_user.external_id))
                .collect()
        })
        .unwrap_or_default();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ClientList { clients }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked() {
        let ok = parse_filter("provider=klaviyo&owner=ops%40example.com").unwrap();
        assert_eq!(ok.provider.as_deref(), Some("klaviyo"));
        assert_eq!(ok.owner.as_deref(), Some("ops@example.com"));
        assert!(parse_filter("provider=").unwrap().provider.is_none());
        assert!(parse_filter("provider=a%20b").is_err());
        assert!(parse_filter(&format!("owner={}", "a".repeat(101))).is_err());
    }
}
