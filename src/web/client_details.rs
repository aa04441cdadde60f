//! A client's page, `/admin/clients/{id}`: everything about one connection except its
//! secrets; tags edited in place (htmx, or a plain form without JavaScript); "Make
//! default". The owner and admins may see and change it (`clients::find_for`).

use super::answer::Answer;
use super::is_htmx;
use super::layout::{Flash, Layout};
use super::local_path::LocalPath;
use super::moment::{moment, Moment};
use crate::audit::{self, Entry, Event, Origin};
use crate::auth::users::User;
use crate::auth::CurrentUser;
use crate::clients::settings::{self, DefaultChange};
use crate::clients::tags;
use crate::clients::{self, Client, ClientStatus};
use crate::error::AppError;
use crate::input::RecordId;
use crate::operations::{self, klaviyo, OpError};
use crate::providers::AuthType;
use crate::state::AppState;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{json, Value};

/// How many audit entries the page shows.
const HISTORY: i64 = 20;
/// The usage card covers this many days.
const USAGE_DAYS: u32 = 30;

/// One profile value: text, a list (Kustomer teams), or nothing known.
pub enum FieldValue {
    Text(String),
    List(Vec<String>),
    Missing,
}

pub struct ProfileField {
    pub label: String,
    pub value: FieldValue,
}

/// Known fields first, in the order people look for them; others follow alphabetically.
const FIELD_ORDER: [&str; 18] = [
    "account_id",
    "account_name",
    "org_id",
    "org_name",
    "display_name",
    "domain",
    "email_domain",
    "company_id",
    "contact_email",
    "lists_count",
    "segments_count",
    "test_account",
    "timezone",
    "preferred_currency",
    "locale",
    "industry",
    "website_url",
    "teams",
];

/// `account_id` → "Account ID".
fn label(key: &str) -> String {
    let words: Vec<String> = key
        .split('_')
        .enumerate()
        .map(|(i, word)| match word {
            "id" => "ID".to_string(),
            "url" => "URL".to_string(),
            _ if i == 0 => {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default()
            }
            _ => word.to_string(),
        })
        .collect();
    words.join(" ")
}

/// An item of a list: its name when it is an object (a team), else its text.
fn item_text(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        Value::Object(map) => ["name", "display_name", "id"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| item.to_string()),
        other => other.to_string(),
    }
}

fn field_value(value: &Value) -> FieldValue {
    match value {
        Value::Null => FieldValue::Missing,
        Value::String(s) if s.is_empty() => FieldValue::Missing,
        Value::String(s) => FieldValue::Text(s.clone()),
        Value::Bool(b) => FieldValue::Text(if *b { "Yes" } else { "No" }.into()),
        Value::Number(n) => FieldValue::Text(n.to_string()),
        Value::Array(items) => FieldValue::List(items.iter().map(item_text).collect()),
        Value::Object(_) => FieldValue::Text(value.to_string()),
    }
}

/// Every field of the stored profile, known ones first.
pub fn profile_fields(profile: &Value) -> Vec<ProfileField> {
    let Some(map) = profile.as_object() else {
        return Vec::new();
    };
    let rank = |key: &str| {
        FIELD_ORDER
            .iter()
            .position(|k| *k == key)
            .unwrap_or(FIELD_ORDER.len())
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    keys.into_iter()
        .map(|key| ProfileField {
            label: label(key),
            value: field_value(&map[key]),
        })
        .collect()
}

pub struct ScopeRow {
    pub name: String,
    pub requested: bool,
    pub granted: bool,
}

/// The provider's requested scopes, each marked granted or not, then any granted extra.
pub fn scope_rows(requested: &[String], granted: &[&str]) -> Vec<ScopeRow> {
    let mut rows: Vec<ScopeRow> = requested
        .iter()
        .map(|name| ScopeRow {
            granted: granted.contains(&name.as_str()),
            requested: true,
            name: name.clone(),
        })
        .collect();
    rows.extend(
        granted
            .iter()
            .filter(|g| !requested.iter().any(|r| r == *g))
            .map(|g| ScopeRow {
                name: g.to_string(),
                requested: false,
                granted: true,
            }),
    );
    rows
}

/// The read-only tags with their Edit button.
pub struct TagsView {
    pub client_id: String,
    pub tags: Vec<String>,
}

/// The tags form, with what was typed and why it was refused.
pub struct TagsForm {
    pub client_id: String,
    pub value: String,
    pub error: Option<String>,
    pub csrf_token: String,
}

/// The client as the page shows it; never a token.
pub struct ClientView {
    pub id: String,
    pub provider: String,
    pub provider_name: String,
    pub display_name: String,
    pub account_id: String,
    pub auth_type: AuthType,
    pub status: ClientStatus,
    pub status_label: &'static str,
    pub last_error: Option<String>,
    pub is_default: bool,
    pub owner_email: String,
    pub expires: Moment,
    pub connected: Moment,
    pub last_refreshed: Moment,
    pub last_used: Moment,
}

impl ClientView {
    pub fn can_refresh(&self) -> bool {
        !self.auth_type.is_api_key() && self.status.has_grant()
    }

    pub fn is_connected(&self) -> bool {
        !self.status.is_disconnected()
    }

    pub fn is_api_key(&self) -> bool {
        self.auth_type.is_api_key()
    }

    /// Klaviyo has no count fields: "Refresh counts" pages through its lists and segments.
    pub fn can_refresh_counts(&self) -> bool {
        self.provider == klaviyo::PROVIDER && self.status.has_grant()
    }
}

#[derive(Template)]
#[template(path = "client_details.html")]
struct DetailsPage {
    layout: Layout,
    client: ClientView,
    tags: TagsView,
    /// Some while the tags are being edited without JavaScript.
    tags_form: Option<TagsForm>,
    profile: Vec<ProfileField>,
    scopes: Vec<ScopeRow>,
    history: Vec<Entry>,
    /// The client's provider calls over the last 30 days.
    usage: crate::usage::Stats,
    /// Where the page's forms come back to.
    here: String,
}

/// The tags card's content alone, for htmx: read-only, or the form when `tags_form` is set.
#[derive(Template)]
#[template(path = "client_details.html", block = "tags")]
struct TagsFragment {
    tags: TagsView,
    tags_form: Option<TagsForm>,
}

impl TagsFragment {
    fn view(client_id: String, tags: Vec<String>) -> Self {
        Self {
            tags: TagsView { client_id, tags },
            tags_form: None,
        }
    }

    fn form(form: TagsForm) -> Self {
        Self {
            tags: TagsView {
                client_id: form.client_id.clone(),
                tags: Vec::new(),
            },
            tags_form: Some(form),
        }
    }
}

/// The profile facts alone, for htmx after "Refresh counts".
#[derive(Template)]
#[template(path = "client_details.html", block = "profile")]
struct ProfileFragment {
    profile: Vec<ProfileField>,
}

fn page_path(id: &str) -> String {
    format!("/admin/clients/{id}")
}

/// The client if `user` may see it: 404 for unknown ids and for other owners' clients.
async fn client_for(state: &AppState, user: &User, id: RecordId) -> Result<Client, AppError> {
    let user = user.clone();
    Ok(crate::db::run(&state.pool, move |conn| clients::find_for(conn, &user, &id)).await?)
}

/// Loads what the page shows beside the client row.
async fn details_page(
    state: &AppState,
    session: &Session,
    user: &User,
    client: Client,
    tags_form: Option<TagsForm>,
) -> Result<DetailsPage, AppError> {
    let loaded = client.clone();
    let (expires_at, owner_email, history, usage) = crate::db::run(&state.pool, move |conn| {
        let usage_scope = crate::usage::Scope {
            client_id: Some(loaded.id.clone()),
            ..crate::usage::Scope::all(crate::usage::Period::Days(USAGE_DAYS))
        };
        Ok::<_, diesel::result::Error>((
            settings::expires_at(conn, &loaded.id)?,
            settings::owner_email(conn, &loaded)?,
            audit::for_target(conn, "client", &loaded.id, HISTORY)?,
            crate::usage::stats(conn, &usage_scope)?,
        ))
    })
    .await?;
    let provider = state.providers().get(&client.provider);
    let requested = provider
        .as_ref()
        .map(|p| p.scopes.clone())
        .unwrap_or_default();
    let now = crate::db::now();
    Ok(DetailsPage {
        layout: Layout::new(session, Some(user), "clients"),
        here: page_path(&client.id),
        profile: profile_fields(&client.profile_value()),
        scopes: scope_rows(&requested, &client.scope_list()),
        tags: TagsView {
            client_id: client.id.clone(),
            tags: client.tag_list(),
        },
        tags_form,
        history,
        usage,
        client: ClientView {
            provider_name: provider
                .map(|p| p.display_name.clone())
                .unwrap_or_else(|| client.provider.clone()),
            status_label: client.status_label(),
            expires: moment(expires_at, now),
            connected: moment(Some(client.connected_at), now),
            last_refreshed: moment(client.last_refreshed_at, now),
            last_used: moment(client.last_used_at, now),
            owner_email,
            id: client.id,
            provider: client.provider,
            display_name: client.display_name,
            account_id: client.provider_account_id,
            auth_type: client.auth_type,
            status: client.status,
            last_error: client.last_error,
            is_default: client.is_default,
        },
    })
}

/// `GET /admin/clients/{id}`.
pub async fn show(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let client = client_for(&state, &user, path.into_inner()).await?;
    let page = details_page(&state, &session, &user, client, None).await?;
    super::render(page, StatusCode::OK)
}

fn tags_form(client: &Client, session: &Session, value: String, error: Option<String>) -> TagsForm {
    TagsForm {
        client_id: client.id.clone(),
        value,
        error,
        csrf_token: crate::auth::csrf::token(session),
    }
}

/// `GET /admin/clients/{id}/tags/edit`: the form alone for htmx, else the page with it.
pub async fn edit_tags(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let client = client_for(&state, &user, path.into_inner()).await?;
    let form = tags_form(&client, &session, client.tag_list().join(", "), None);
    if is_htmx(&req) {
        return super::render(TagsFragment::form(form), StatusCode::OK);
    }
    let page = details_page(&state, &session, &user, client, Some(form)).await?;
    super::render(page, StatusCode::OK)
}

/// `GET /admin/clients/{id}/tags`: the read-only tags (Cancel in the htmx form).
pub async fn show_tags(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let client = client_for(&state, &user, path.into_inner()).await?;
    if !is_htmx(&req) {
        return Ok(super::redirect(&page_path(&client.id)));
    }
    let fragment = TagsFragment::view(client.id.clone(), client.tag_list());
    super::render(fragment, StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct TagsInput {
    #[serde(default)]
    tags: String,
}

/// An audit entry about this client by this user.
fn event(user: &User, client: &Client, action: &'static str, origin: &Origin) -> Event {
    user.event(action)
        .target("client", client.id.clone())
        .origin(origin)
}

/// `POST /admin/clients/{id}/tags` (field `tags`, comma-separated).
pub async fn save_tags(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    input: web::Form<TagsInput>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let client = client_for(&state, &user, path.into_inner()).await?;
    let tags = match tags::parse_tags(&input.tags) {
        Ok(tags) => tags,
        Err(message) => {
            return refuse_tags(
                &req,
                &session,
                &state,
                &user,
                client,
                input.into_inner(),
                message,
            )
            .await
        }
    };
    let event = event(&user, &client, "client_tags_changed", &super::origin(&req))
        .details(json!({"before": client.tag_list(), "after": tags}));
    let (id, saved) = (client.id.clone(), tags.clone());
    crate::db::run(&state.pool, move |conn| {
        tags::replace_tags(conn, &id, saved, event)
    })
    .await?
    .map_err(|_| AppError::NotFound)?;
    state.tokens.forget(&client.id);
    let flash = Flash::success(format!("Saved the tags of {}", client.display_name));
    if !is_htmx(&req) {
        flash.store(&session);
        return Ok(super::redirect(&page_path(&client.id)));
    }
    let fragment = TagsFragment::view(client.id, tags);
    let mut response = HttpResponse::Ok();
    flash.trigger(&mut response);
    Ok(response
        .content_type("text/html; charset=utf-8")
        .body(fragment.render()?))
}

/// A refused tag field: the form again with the message (422), nothing stored. htmx does
/// not swap error answers, so the message also comes as a toast.
async fn refuse_tags(
    req: &HttpRequest,
    session: &Session,
    state: &AppState,
    user: &User,
    client: Client,
    input: TagsInput,
    message: String,
) -> Result<HttpResponse, AppError> {
    let form = tags_form(&client, session, input.tags, Some(message.clone()));
    if !is_htmx(req) {
        let page = details_page(state, session, user, client, Some(form)).await?;
        return super::render(page, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let mut response = HttpResponse::UnprocessableEntity();
    Flash::error(format!("Tags not saved: {message}")).trigger(&mut response);
    Ok(response
        .content_type("text/html; charset=utf-8")
        .body(TagsFragment::form(form).render()?))
}

/// `POST /admin/clients/{id}/profile/refresh`: reads a Klaviyo account, its lists and its
/// segments again into the stored profile (the operation services call), as this user.
pub async fn refresh_counts(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let client = client_for(&state, &user, path.into_inner()).await?;
    let actor = user.actor();
    let origin = super::origin(&req);
    let refreshed = operations::run(&state, &client.id, klaviyo::PROVIDER, async |caller| {
        klaviyo::refresh_profile(caller, actor, origin).await
    })
    .await;
    let name = &client.display_name;
    let (flash, profile) = match refreshed {
        Ok(refreshed) => {
            let after = &refreshed.after;
            let message = format!(
                "Refreshed {name}: {} lists, {} segments",
                after["lists_count"], after["segments_count"]
            );
            (Flash::success(message), Some(refreshed.profile))
        }
        // Our own failures are the error page's (and the log's); the provider's are a toast.
        Err(OpError::Storage(e)) => return Err(e.into()),
        Err(e) => (
            Flash::error(format!("Counts of {name} not refreshed: {e}")),
            None,
        ),
    };
    if !is_htmx(&req) {
        flash.store(&session);
        return Ok(super::redirect(&page_path(&client.id)));
    }
    // htmx swaps only a success; a failure leaves the facts as they were, with a toast.
    let Some(profile) = profile else {
        let mut response = HttpResponse::BadGateway();
        flash.trigger(&mut response);
        return Ok(response.finish());
    };
    let fragment = ProfileFragment {
        profile: profile_fields(&profile),
    };
    let mut response = HttpResponse::Ok();
    flash.trigger(&mut response);
    Ok(response
        .content_type("text/html; charset=utf-8")
        .body(fragment.render()?))
}

/// `POST /admin/clients/{id}/default`: makes the client its owner's default for its
/// provider. `redirect_path` (a local path) says where a plain form returns to.
pub async fn make_default(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    form: Option<web::Form<super::local_path::RedirectTarget>>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let client = client_for(&state, &user, path.into_inner()).await?;
    let back = LocalPath::or(
        form.as_ref().and_then(|f| f.redirect_path.as_deref()),
        &page_path(&client.id),
    );
    let change = switch_default(&state, &user, &client, &super::origin(&req)).await?;
    let answer = default_answer(&state, &client, change)?;
    Ok(answer.send(&req, &session, &back))
}

/// Switches the default and audits it in one transaction; drops the service API's cached
/// entries of every client whose flag changed.
async fn switch_default(
    state: &AppState,
    user: &User,
    client: &Client,
    origin: &Origin,
) -> Result<DefaultChange, AppError> {
    let event = event(user, client, "client_default_changed", origin);
    let target = client.clone();
    let change = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let change = settings::make_default(conn, &target)?;
            if let DefaultChange::Made { previous } = &change {
                let details = json!({"provider": target.provider, "previous": previous});
                audit::append(conn, event.details(details))?;
            }
            Ok::<_, diesel::result::Error>(change)
        })
    })
    .await?;
    state.tokens.forget(&client.id);
    if let DefaultChange::Made { previous } = &change {
        previous.iter().for_each(|id| state.tokens.forget(id));
    }
    Ok(change)
}

fn default_answer(
    state: &AppState,
    client: &Client,
    change: DefaultChange,
) -> Result<Answer, AppError> {
    let provider = state
        .providers()
        .get(&client.provider)
        .map(|p| p.display_name.clone())
        .unwrap_or_else(|| client.provider.clone());
    let name = &client.display_name;
    let (flash, status) = match change {
        DefaultChange::Gone => return Err(AppError::NotFound),
        DefaultChange::Made { .. } => (
            Flash::success(format!("{name} is now the default {provider} connection")),
            StatusCode::OK,
        ),
        DefaultChange::AlreadyDefault => (
            Flash::success(format!(
                "{name} already is the default {provider} connection"
            )),
            StatusCode::OK,
        ),
        DefaultChange::Disconnected => (
            Flash::error(format!(
                "{name} is disconnected; reconnect it before making it the default"
            )),
            StatusCode::CONFLICT,
        ),
    };
    let ok = status == StatusCode::OK;
    Ok(Answer {
        json: json!({"ok": ok, "client_id": client.id, "is_default": ok, "message": flash.message}),
        flash,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_like_words() {
        assert_eq!(label("account_id"), "Account ID");
        assert_eq!(label("website_url"), "Website URL");
        assert_eq!(label("lists_count"), "Lists count");
        assert_eq!(label("timezone"), "Timezone");
    }

    #[test]
    fn profile_fields_come_in_a_stable_order() {
        let profile = json!({
            "zeta": 1, "account_name": "Acme", "account_id": "AcmeK1", "test_account": false,
            "teams": [{"id": "t1", "name": "Support"}, {"id": "t2"}], "locale": null
        });
        let fields = profile_fields(&profile);
        let labels: Vec<&str> = fields.iter().map(|f| f.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Account ID",
                "Account name",
                "Test account",
                "Locale",
                "Teams",
                "Zeta"
            ]
        );
        assert!(matches!(&fields[2].value, FieldValue::Text(t) if t == "No"));
        assert!(matches!(fields[3].value, FieldValue::Missing));
        assert!(matches!(&fields[4].value, FieldValue::List(l) if l == &["Support", "t2"]));
        assert!(profile_fields(&Value::Null).is_empty());
    }

    #[test]
    fn scopes_not_granted_are_marked() {
        let requested = vec!["a:read".to_string(), "b:read".to_string()];
        let rows = scope_rows(&requested, &["a:read", "c:read"]);
        let summary: Vec<(&str, bool, bool)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.requested, r.granted))
            .collect();
        assert_eq!(
            summary,
            [
                ("a:read", true, true),
                ("b:read", true, false),
                ("c:read", false, true)
            ]
        );
    }
}
