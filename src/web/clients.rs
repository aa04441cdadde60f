//! The Clients page: every connected provider account (members see their own), the
//! Connect buttons and the API-key form.

use super::clients_view_state::{ListQuery, PAGE_SIZE};
use super::layout::Layout;
use super::moment::{absolute, relative};
use crate::auth::users::User;
use crate::clients::{self, tags, ListedClient};
use crate::error::AppError;
use crate::input::RecordId;
use crate::providers::{AuthType, Provider};
use crate::state::AppState;
use crate::web::current_user::CurrentUser;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use std::sync::Arc;

/// A Connect button as the toolbar shows it.
struct ConnectButton {
    name: String,
    display_name: String,
    /// Client-credentials providers connect with a POST form, the others with a link.
    machine: bool,
    /// The key form's fields: a user (Basic only) and the secret.
    username_label: Option<String>,
    secret_label: String,
    /// Asked before the consent page (then the link is a form).
    settings: Vec<super::setting_fields::SettingField>,
}

struct ClientRow {
    id: String,
    provider: String,
    display_name: String,
    account_id: String,
    owner_email: String,
    /// The end user (team's id, email) of a connection made through a connect session.
    end_user: Option<(String, Option<String>)>,
    status: clients::ClientStatus,
    status_label: &'static str,
    auth_type: AuthType,
    tags: Vec<String>,
    is_default: bool,
    expires: String,
    expires_at: String,
    last_used: String,
    last_used_at: String,
    connected: String,
    last_error: Option<String>,
}

impl ClientRow {
    fn can_refresh(&self) -> bool {
        !self.auth_type.is_api_key() && self.status.has_grant()
    }

    fn is_connected(&self) -> bool {
        !self.status.is_disconnected()
    }
}

/// The list part of the page: re-rendered alone for htmx searches and live updates.
#[derive(Template)]
#[template(path = "_client_list.html")]
struct ClientList {
    rows: Vec<ClientRow>,
    show_owner: bool,
    query: ListQuery,
    /// Exact up to `clients::COUNT_BOUND`, then "1,000+".
    total: clients::Total,
    first: i64,
    last: i64,
    page: i64,
    previous_page: Option<String>,
    next_page: Option<String>,
    /// Query string that polls for changes of this view.
    poll: String,
    /// Query string of this view, for forms that come back to it.
    view: String,
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "clients.html")]
struct ClientsPage {
    layout: Layout,
    buttons: Vec<ConnectButton>,
    api_key_providers: Vec<ConnectButton>,
    owners: Vec<(String, String)>,
    list: ClientList,
    alert: Option<String>,
    no_clients_at_all: bool,
}

fn button(provider: &Arc<Provider>) -> ConnectButton {
    let (username_label, secret_label) = provider.key_labels();
    ConnectButton {
        name: provider.name.clone(),
        display_name: provider.display_name.clone(),
        machine: provider.auth_type == AuthType::ClientCredentials,
        username_label,
        secret_label,
        settings: super::setting_fields::fields(provider),
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
        expires_at: absolute(expires_at),
        last_used: relative(client.last_used_at, now),
        last_used_at: absolute(client.last_used_at),
        expires: if client.auth_type.is_api_key() || expires_at.is_none() {
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
        end_user: None,
        status: client.status,
        auth_type: client.auth_type,
        is_default: client.is_default,
        last_error: client.last_error,
    }
}

/// What the bulk bar asks for.
enum BulkAction {
    Refresh,
    Disconnect,
    Tag(String),
}

struct BulkForm {
    action: BulkAction,
    ids: Vec<RecordId>,
    /// The list's query string, to return to the same view.
    view: String,
}

/// Reads `action=…&tag=…&client_id=…&client_id=…` (repeated fields).
fn bulk_form(body: &[u8]) -> Result<BulkForm, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("the form could not be read".into()))?;
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let action = match field("action").as_deref() {
        Some("refresh") => BulkAction::Refresh,
        Some("disconnect") => BulkAction::Disconnect,
        Some("tag") => BulkAction::Tag(
            tags::normalise_tag(&field("tag").unwrap_or_default()).map_err(AppError::BadRequest)?,
        ),
        _ => {
            return Err(AppError::BadRequest(
                "the bulk action must be refresh, disconnect or tag".into(),
            ))
        }
    };
    // Only a view the list itself could produce is followed back.
    let view = field("view")
        .and_then(|v| ListQuery::parse(&v).ok())
        .map(|q| q.current())
        .unwrap_or_default();
    let ids = pairs
        .iter()
        .filter(|(k, _)| k == "client_id")
        .map(|(_, v)| RecordId::parse(v.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| AppError::BadRequest("a selected client id is malformed".into()))?;
    if ids.is_empty() {
        return Err(AppError::BadRequest("select at least one client".into()));
    }
    if ids.len() > 500 {
        return Err(AppError::BadRequest(
            "select at most 500 clients at once".into(),
        ));
    }
    Ok(BulkForm { action, ids, view })
}

/// `POST /admin/clients/bulk`: refresh, disconnect or tag many clients (admins).
pub async fn bulk(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    body: web::Bytes,
    crate::web::current_user::AdminUser(admin): crate::web::current_user::AdminUser,
) -> Result<HttpResponse, AppError> {
    let form = bulk_form(&body)?;
    let origin = super::origin(&req);
    let (mut done, mut failed) = (0, 0);
    // Clients a tag was not added to because they already have the most tags allowed.
    let mut full = Vec::new();
    for id in form.ids {
        let admin_copy = admin.clone();
        let found = crate::db::run(&state.pool, move |conn| {
            clients::find_for(conn, &admin_copy, &id)
        })
        .await
        .map_err(AppError::from);
        let client = match found {
            Ok(client) => client,
            Err(AppError::NotFound) => {
                failed += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        match apply(&state, &admin, &client, &form.action, &origin).await? {
            Applied::Done => done += 1,
            Applied::Failed => failed += 1,
            Applied::TooManyTags => {
                failed += 1;
                full.push(client.display_name);
            }
        }
    }
    let verb = match form.action {
        BulkAction::Refresh => "Refreshed",
        BulkAction::Disconnect => "Disconnected",
        BulkAction::Tag(_) => "Tagged",
    };
    let message = format!(
        "{verb} {done} client(s); {failed} failed{}",
        why_full(&full)
    );
    let back = if form.view.is_empty() {
        super::HOME.to_string()
    } else {
        format!("{}?{}", super::HOME, form.view)
    };
    Ok(super::layout::Flash::outcome(failed == 0, message).redirect(&session, &back))
}

/// How a bulk action went for one client.
enum Applied {
    Done,
    Failed,
    /// Not tagged: the client already has `tags::MAX_TAGS` tags.
    TooManyTags,
}

/// Why these clients were not tagged, naming the first few: "" when there are none.
fn why_full(names: &[String]) -> String {
    const NAMED: usize = 3;
    let (verb, more) = match names.len() {
        0 => return String::new(),
        1 => ("has", String::new()),
        n if n <= NAMED => ("have", String::new()),
        n => ("have", format!(" and {} more", n - NAMED)),
    };
    let named = names
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        ". {named}{more} already {verb} {} tags, the most a client can have",
        tags::MAX_TAGS
    )
}

/// One client of a bulk action.
async fn apply(
    state: &AppState,
    admin: &User,
    client: &clients::Client,
    action: &BulkAction,
    origin: &crate::audit::Origin,
) -> Result<Applied, AppError> {
    let worked = match action {
        BulkAction::Refresh => crate::oauth::lifecycle::refresh(
            state,
            client,
            crate::oauth::refresh_history::Trigger::Manual,
        )
        .await
        .is_ok(),
        BulkAction::Disconnect => {
            let revocation =
                crate::oauth::disconnect::disconnect(state, admin.actor(), client, origin).await?;
            !matches!(revocation, crate::oauth::disconnect::Revocation::Failed(_))
        }
        BulkAction::Tag(tag) => {
            let (id, tag) = (client.id.clone(), tag.clone());
            let event = admin
                .event("client_tags_changed")
                .target("client", client.id.clone())
                .origin(origin)
                .details(serde_json::json!({"added": tag}));
            let added = crate::db::run(&state.pool, move |conn| {
                tags::add_tag(conn, &id, &tag, event)
            })
            .await?;
            match added {
                Ok(_) => true,
                Err(tags::Refused::TooMany) => return Ok(Applied::TooManyTags),
                Err(tags::Refused::Gone) => false,
            }
        }
    };
    Ok(if worked {
        Applied::Done
    } else {
        Applied::Failed
    })
}

/// Names the end user of each row made through a connect session.
async fn with_end_users(
    state: &AppState,
    rows: Vec<(Option<String>, ClientRow)>,
) -> Result<Vec<ClientRow>, AppError> {
    let ids: Vec<String> = rows.iter().filter_map(|(id, _)| id.clone()).collect();
    if ids.is_empty() {
        return Ok(rows.into_iter().map(|(_, row)| row).collect());
    }
    let end_users = crate::db::run(&state.pool, move |conn| {
        crate::connect::end_users::find_many(conn, ids)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, mut row)| {
            row.end_user = id
                .and_then(|id| end_users.iter().find(|e| e.id == id))
                .map(|e| (e.external_id.clone(), e.email.clone()));
            row
        })
        .collect())
}

/// The Previous and Next links: keyset (the first or last row's cursor) for the sorts
/// that have one, page numbers otherwise. `more` says rows follow the page in the
/// direction it was read (backwards for a `before` link).
fn page_links(
    query: &ListQuery,
    listed: &[ListedClient],
    more: bool,
) -> (Option<String>, Option<String>) {
    let sort = query.sort();
    let cursor = |row: Option<&ListedClient>| row.map(|l| clients::Cursor::of(sort, l));
    let backwards = matches!(query.start, clients::Page::Before(_));
    let has_previous = query.page > 1 && (!backwards || more);
    let has_next = if backwards { !listed.is_empty() } else { more };
    let previous = has_previous.then(|| match cursor(listed.first()) {
        Some(first) if query.page > 2 => query.link(query.page - 1, &clients::Page::Before(first)),
        _ => query.with_page(query.page - 1),
    });
    let next = has_next.then(|| match cursor(listed.last()) {
        Some(last) => query.link(query.page + 1, &clients::Page::After(last)),
        None => query.with_page(query.page + 1),
    });
    (previous, next)
}

/// Loads one page of the view and its change stamp.
async fn load_list(
    state: &AppState,
    user: &User,
    query: ListQuery,
    csrf_token: String,
) -> Result<(ClientList, String), AppError> {
    let scope = (!user.is_admin()).then(|| user.id.clone());
    let filter = query.filter();
    let (listed, more, total, version) = crate::db::run(&state.pool, move |conn| {
        let (listed, more, total) = clients::search(conn, scope.as_deref(), &filter)?;
        let version = clients::version(conn, scope.as_deref())?;
        Ok::<_, diesel::result::Error>((listed, more, total, version))
    })
    .await?;
    let now = crate::db::now();
    let first = (query.page - 1) * PAGE_SIZE;
    let shown = listed.len() as i64;
    let (previous_page, next_page) = page_links(&query, &listed, more);
    let rows = with_end_users(
        state,
        listed
            .into_iter()
            .map(|l| (l.client.end_user_id.clone(), row(l, now)))
            .collect(),
    )
    .await?;
    let view = query.current();
    let list = ClientList {
        rows,
        show_owner: user.is_admin(),
        total,
        first: if shown == 0 { 0 } else { first + 1 },
        page: query.page,
        last: first + shown,
        previous_page,
        next_page,
        poll: match view.as_str() {
            "" => format!("version={version}"),
            view => format!("{view}&version={version}"),
        },
        view,
        csrf_token,
        query,
    };
    Ok((list, version))
}

/// `GET /admin/clients`: the whole page, or only the list for htmx searches.
pub async fn index(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let query = ListQuery::parse(req.query_string())?;
    let is_filtered = query.is_filtered();
    let layout = Layout::new(&session, Some(&user), "clients");
    let (list, _) = load_list(&state, &user, query, layout.csrf_token.clone()).await?;
    if super::wants_fragment(&req) {
        return super::render(list, StatusCode::OK);
    }
    let providers = state.providers();
    let owners = super::user_choices(&state, &user).await?;
    let page = ClientsPage {
        no_clients_at_all: list.total.count == 0 && !is_filtered,
        layout,
        buttons: providers
            .enabled()
            .filter(|p| !p.auth_type.is_api_key())
            .map(button)
            .collect(),
        api_key_providers: providers
            .enabled()
            .filter(|p| p.accepts_api_keys())
            .map(button)
            .collect(),
        owners,
        list,
        alert: crate::oauth::lifecycle::refresh_alert(&state).await?,
    };
    super::render(page, StatusCode::OK)
}

#[derive(serde::Deserialize)]
struct PollVersion {
    version: Option<String>,
}

/// `GET /admin/clients/rows?…&version=`: 204 while nothing in view changed, else the
/// list. The page polls it, so clients connected by someone else appear by themselves.
pub async fn rows(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let seen: PollVersion =
        serde_urlencoded::from_str(req.query_string()).unwrap_or(PollVersion { version: None });
    let query = ListQuery::parse(&strip_version(req.query_string()))?;
    let (list, version) =
        load_list(&state, &user, query, crate::web::csrf::token(&session)).await?;
    if seen.version.as_deref() == Some(version.as_str()) {
        return Ok(HttpResponse::NoContent().finish());
    }
    super::render(list, StatusCode::OK)
}

fn strip_version(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.starts_with("version="))
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /admin/clients/{id}/reconnect`: reruns the OAuth flow for this client's provider;
/// the consent for the same account (with the same settings) updates the same row.
pub async fn reconnect(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let client =
        crate::db::run(&state.pool, move |conn| clients::find_for(conn, &user, &id)).await?;
    let settings = state
        .providers()
        .get(&client.provider)
        .map(|p| super::setting_fields::reconnect_query(&p, &client))
        .unwrap_or_default();
    Ok(super::redirect(&format!(
        "/api/integrations/{}/oauth/start?redirect_path=/admin/clients{settings}",
        client.provider
    )))
}
