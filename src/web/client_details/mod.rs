//! A client's page, `/admin/clients/{id}`: everything about one connection except its
//! secrets; tags edited in place (htmx, or a plain form without JavaScript); "Make
//! default". The owner and admins may see and change it (`clients::find_for`).

mod profile_fields;
pub mod syncs;
mod view;

use self::profile_fields::profile_fields;
use self::view::{
    scope_rows, ClientView, DetailsPage, ProfileFragment, TagsForm, TagsFragment, TagsView,
};
use super::answer::{Answer, CardAnswer};
use super::is_htmx;
use super::layout::{Flash, Layout};
use super::local_path::LocalPath;
use super::moment::moment;
use crate::audit::{self, Event, Origin};
use crate::auth::users::User;
use crate::clients::credentials;
use crate::clients::default_client::{self, DefaultChange};
use crate::clients::tags;
use crate::clients::{self, Client};
use crate::error::AppError;
use crate::input::RecordId;
use crate::operations::{self, klaviyo, OpError};
use crate::state::AppState;
use crate::web::current_user::CurrentUser;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// How many audit entries the page shows.
const HISTORY: i64 = 20;
/// The usage card covers this many days.
const USAGE_DAYS: u32 = 30;

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
    let end_user_id = client.end_user_id.clone();
    let end_user = match end_user_id {
        Some(id) => crate::db::run(&state.pool, move |conn| {
            crate::connect::end_users::find(conn, &id)
        })
        .await?
        .map(|e| (e.external_id, e.email)),
        None => None,
    };
    let (expires_at, owner_email, history, usage, refreshes) =
        crate::db::run(&state.pool, move |conn| {
            let usage_scope = crate::usage::Scope {
                client_id: Some(loaded.id.clone()),
                ..crate::usage::Scope::all(crate::usage::Period::Days(USAGE_DAYS))
            };
            Ok::<_, diesel::result::Error>((
                credentials::expires_at(conn, &loaded.id)?,
                clients::owner_email(conn, &loaded)?,
                audit::for_target(conn, "client", &loaded.id, HISTORY)?,
                crate::usage::stats(conn, &usage_scope)?,
                crate::oauth::refresh_history::recent(conn, &loaded.id)?,
            ))
        })
        .await?;
    let syncs_card = syncs::card(state, session, &client).await?;
    let provider = state.providers().get(&client.provider);
    let requested = provider
        .as_ref()
        .map(|p| p.scopes.clone())
        .unwrap_or_default();
    let now = crate::db::now();
    let switch_to_oauth = clients::upgrade::offer(&client, provider.as_deref(), &user.id);
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
        refreshes,
        usage,
        syncs_card,
        client: ClientView {
            settings: super::setting_fields::shown(provider.as_deref(), &client),
            provider_name: provider
                .map(|p| p.display_name.clone())
                .unwrap_or_else(|| client.provider.clone()),
            status_label: client.status_label(),
            expires: moment(expires_at, now),
            connected: moment(Some(client.connected_at), now),
            last_refreshed: moment(client.last_refreshed_at, now),
            last_used: moment(client.last_used_at, now),
            owner_email,
            end_user,
            id: client.id,
            provider: client.provider,
            display_name: client.display_name,
            account_id: client.provider_account_id,
            auth_type: client.auth_type,
            status: client.status,
            last_error: client.last_error,
            is_default: client.is_default,
            switch_to_oauth,
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
        csrf_token: crate::web::csrf::token(session),
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
    let answer = CardAnswer {
        flash: Flash::success(format!("Saved the tags of {}", client.display_name)),
        status: StatusCode::OK,
        card: Some(TagsFragment::view(client.id.clone(), tags)),
    };
    answer.send(&req, &session, &page_path(&client.id))
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
    let answer = CardAnswer {
        flash: Flash::error(format!("Tags not saved: {message}")),
        status: StatusCode::UNPROCESSABLE_ENTITY,
        card: Some(TagsFragment::form(form)),
    };
    answer.for_htmx()
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
    // htmx swaps only a success; a failure leaves the facts as they were, with a toast.
    let answer = match refreshed {
        Ok(refreshed) => {
            let after = &refreshed.after;
            let message = format!(
                "Refreshed {name}: {} lists, {} segments",
                after["lists_count"], after["segments_count"]
            );
            CardAnswer {
                flash: Flash::success(message),
                status: StatusCode::OK,
                card: Some(ProfileFragment {
                    profile: profile_fields(&refreshed.profile),
                }),
            }
        }
        // Our own failures are the error page's (and the log's); the provider's are a toast.
        Err(OpError::Storage(e)) => return Err(e.into()),
        Err(e) => CardAnswer {
            flash: Flash::error(format!("Counts of {name} not refreshed: {e}")),
            status: StatusCode::BAD_GATEWAY,
            card: None,
        },
    };
    answer.send(&req, &session, &page_path(&client.id))
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
            let change = default_client::make_default(conn, &target)?;
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
