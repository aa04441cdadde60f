//! `/api/integrations/{provider}/…`: start and finish OAuth, connect with an API key or
//! client credentials, and report the caller's connections. Handlers parse, call the flow,
//! and answer with a redirect plus toast (browsers) or JSON.

use super::answer::Answer;
use super::layout::Flash;
use super::local_path::{LocalPath, RedirectTarget};
use super::{origin, HOME};
use crate::auth::users::User;
use crate::clients;
use crate::connect;
use crate::error::AppError;
use crate::input::RecordId;
use crate::oauth::direct_connect;
use crate::oauth::disconnect::{self, Revocation};
use crate::oauth::flow::{self, Callback, CallbackParams, Caller, ConnectError};
use crate::oauth::holder::Holder;
use crate::oauth::key_input::KeyInput;
use crate::oauth::lifecycle::{self, TokenError};
use crate::oauth::token_cache::FreshToken;
use crate::providers::Provider;
use crate::state::AppState;
use crate::web::csrf;
use crate::web::current_user::CurrentUser;
use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use std::sync::Arc;

fn provider(state: &AppState, name: &str) -> Result<Arc<Provider>, AppError> {
    state.providers().get(name).ok_or(AppError::NotFound)
}

pub async fn start(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<RedirectTarget>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let provider = provider(&state, &path)?;
    let redirect_path = query.path();
    let entered = super::setting_fields::entered(req.query_string().as_bytes())?;
    let binding = csrf::session_binding(&session);
    match flow::start(
        &state,
        &Holder::of(&user),
        &binding,
        &provider,
        &entered,
        &redirect_path,
        &origin(&req),
    )
    .await
    {
        Ok(authorize_url) => Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, authorize_url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()),
        Err(ConnectError::Storage(e)) => Err(e.into()),
        Err(e) => Ok(Flash::error(e.to_string()).redirect(&session, redirect_path.as_str())),
    }
}

/// The provider's return, for every flow: a signed-in user's (back to the page it started
/// from, with a toast) or an end user's through a connect session (its result page).
pub async fn callback(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    let provider = provider(&state, &path)?;
    // Parsed by hand so a malformed query still ends in a clear message, not a bare 400.
    let params: CallbackParams = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    if connect::is_end_user_callback(&state, &params).await? {
        return super::connect_page::finishing_page(&state, &session, &provider, &params).await;
    }
    let caller = Caller {
        user: user.map(|CurrentUser(user)| user),
        session_binding: csrf::session_binding(&session),
    };
    let (answer, ended) =
        connect::callback(&state, &caller, &provider, params, &origin(&req)).await?;
    if let Some(result) = ended {
        return super::connect_page::result_page(result);
    }
    let outcome = match answer {
        Callback::Finished(outcome) => *outcome,
        Callback::NeedsSignIn => {
            return Err(AppError::Unauthenticated {
                next: req.path().to_string(),
            })
        }
        Callback::EndUserRefused(reason) => {
            return super::connect_page::refused_page(&state, reason).await
        }
    };
    // The page the browser ends on carries no code, state or error.
    let landing = outcome
        .redirect_path
        .unwrap_or_else(|| LocalPath::or(None, HOME));
    Ok(Flash::outcome(outcome.success, outcome.message).redirect(&session, landing.as_str()))
}

#[derive(serde::Serialize)]
struct ConnectionStatus {
    id: String,
    account_id: String,
    account_name: String,
    status: clients::ClientStatus,
    auth_type: crate::providers::AuthType,
    is_default: bool,
    expires_at: Option<String>,
    scopes: Vec<String>,
    connected_at: String,
    updated_at: String,
    connection_config: std::collections::BTreeMap<String, String>,
}

fn utc(time: chrono::NaiveDateTime) -> String {
    time.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The caller's own connections for the provider; never a token.
pub async fn status(
    state: web::Data<AppState>,
    path: web::Path<String>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let provider = provider(&state, &path)?;
    let (owner, name) = (user.id.clone(), provider.name.clone());
    let rows = crate::db::run(&state.pool, move |conn| {
        clients::connections_of(conn, &owner, &name)
    })
    .await?;
    let connections: Vec<ConnectionStatus> = rows
        .into_iter()
        .map(|(client, expires_at)| ConnectionStatus {
            scopes: client
                .scope_list()
                .into_iter()
                .map(str::to_string)
                .collect(),
            expires_at: expires_at.map(utc),
            connection_config: client.connection_values().into_map(),
            connected_at: utc(client.connected_at),
            updated_at: utc(client.updated_at),
            id: client.id,
            account_id: client.provider_account_id,
            account_name: client.display_name,
            status: client.status,
            auth_type: client.auth_type,
            is_default: client.is_default,
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "provider": provider.name,
        "configured": provider.is_configured(),
        "connected": connections.iter().any(|c| c.status.is_active()),
        "connections": connections,
    })))
}

#[derive(serde::Deserialize)]
pub struct ApiKeyForm {
    api_key: SecretString,
    /// Only for providers connected with HTTP Basic.
    username: Option<String>,
    redirect_path: Option<String>,
    /// The connection settings (a Kustomer subdomain), by name.
    #[serde(flatten)]
    settings: crate::providers::connection_config::Entered,
}

/// Reads the API-key form from JSON or a form body.
async fn api_key_form(req: &HttpRequest, body: web::Bytes) -> Result<ApiKeyForm, AppError> {
    let parsed = if req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("application/json")
    {
        serde_json::from_slice(&body).map_err(|_| ())
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|_| ())
    };
    let form: ApiKeyForm = parsed.map_err(|_| {
        AppError::BadRequest("send api_key (and optionally username and redirect_path)".into())
    })?;
    // A key is one line of printable text: a NUL or a line break must not reach the
    // provider's request headers, nor a megabyte its request.
    let key = secrecy::ExposeSecret::expose_secret(&form.api_key);
    let username = form.username.as_deref().unwrap_or("");
    if key.chars().any(char::is_control) || key.len() > MAX_API_KEY_LEN {
        return Err(AppError::BadRequest(format!(
            "the API key must be one line of printable characters, at most {MAX_API_KEY_LEN}"
        )));
    }
    if username.chars().any(char::is_control) || username.len() > MAX_API_KEY_LEN {
        return Err(AppError::BadRequest(format!(
            "the user name must be one line of printable characters, at most {MAX_API_KEY_LEN}"
        )));
    }
    Ok(form)
}

/// Longer than any provider's key.
const MAX_API_KEY_LEN: usize = 1024;

pub async fn test_connection(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let provider = provider(&state, &path)?;
    let form = api_key_form(&req, body).await?;
    let redirect_path = LocalPath::or(form.redirect_path.as_deref(), HOME);
    let result = direct_connect::connect_api_key(
        &state,
        &Holder::of(&user),
        &provider,
        &form.settings,
        KeyInput {
            username: form.username,
            secret: form.api_key,
        },
        &origin(&req),
    )
    .await;
    respond(&req, &session, &provider, redirect_path, result)
}

/// Connects a client-credentials provider (no consent page).
pub async fn connect_machine(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<RedirectTarget>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let provider = provider(&state, &path)?;
    let redirect_path = form.path();
    let result =
        direct_connect::connect_client_credentials(&state, &user, &provider, &origin(&req)).await;
    respond(&req, &session, &provider, redirect_path, result)
}

/// JSON for API callers; a redirect with a toast for the pages.
fn respond(
    req: &HttpRequest,
    session: &Session,
    provider: &Provider,
    redirect_path: LocalPath,
    result: Result<clients::Client, ConnectError>,
) -> Result<HttpResponse, AppError> {
    let answer = match result {
        Err(ConnectError::Storage(e)) => return Err(e.into()),
        Ok(client) => Answer {
            flash: Flash::success(format!(
                "Connected {} account {}",
                provider.display_name, client.display_name
            )),
            status: StatusCode::OK,
            json: serde_json::json!({
                "ok": true,
                "client": {"id": client.id, "account_id": client.provider_account_id, "account_name": client.display_name, "status": client.status},
            }),
        },
        Err(e) => Answer {
            json: serde_json::json!({"ok": false, "error": e.to_string()}),
            flash: Flash::error(format!("Could not connect {}: {e}", provider.display_name)),
            status: StatusCode::UNPROCESSABLE_ENTITY,
        },
    };
    Ok(answer.send(req, session, &redirect_path))
}

/// The client named in the path, if the caller may act on it and it belongs to the provider.
async fn client_for(
    state: &AppState,
    user: &User,
    provider: &str,
    id: RecordId,
) -> Result<clients::Client, AppError> {
    let user = user.clone();
    let client =
        crate::db::run(&state.pool, move |conn| clients::find_for(conn, &user, &id)).await?;
    if client.provider != provider {
        return Err(AppError::NotFound);
    }
    Ok(client)
}

/// What a client action is about: the provider and client of the path (if the caller may
/// act on it) and where a plain form returns to.
async fn action_target(
    state: &AppState,
    user: &User,
    path: web::Path<(String, RecordId)>,
    form: Option<web::Form<RedirectTarget>>,
) -> Result<(Arc<Provider>, clients::Client, LocalPath), AppError> {
    let (provider_name, client_id) = path.into_inner();
    let provider = provider(state, &provider_name)?;
    let client = client_for(state, user, &provider.name, client_id).await?;
    let redirect_path = form.map(web::Form::into_inner).unwrap_or_default().path();
    Ok((provider, client, redirect_path))
}

/// `POST /api/integrations/{provider}/oauth/refresh/{client_id}`: refresh now.
pub async fn refresh_now(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<(String, RecordId)>,
    form: Option<web::Form<RedirectTarget>>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let (_, client, redirect_path) = action_target(&state, &user, path, form).await?;
    let answer = match lifecycle::refresh(
        &state,
        &client,
        crate::oauth::refresh_history::Trigger::Manual,
    )
    .await
    {
        Ok(token) => {
            let expires_at = match token {
                FreshToken::Bearer { expires_at, .. } => expires_at.map(utc),
                FreshToken::ApiKey(_) => None,
            };
            // A token that never expires (an API key, a GitHub OAuth app's) is not renewed.
            let said = match expires_at {
                Some(_) => format!("Refreshed the token of {}", client.display_name),
                None => format!(
                    "The token of {} does not expire: nothing to refresh",
                    client.display_name
                ),
            };
            Answer {
                flash: Flash::success(said),
                status: StatusCode::OK,
                json: serde_json::json!({"ok": true, "client_id": client.id, "expires_at": expires_at}),
            }
        }
        Err(TokenError::Storage(e)) => return Err(e.into()),
        Err(e) => Answer {
            flash: Flash::error(format!("Could not refresh {}: {e}", client.display_name)),
            status: match e {
                TokenError::NeedsReauth(_) => StatusCode::CONFLICT,
                TokenError::Unavailable(_) | TokenError::ProviderDown { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_GATEWAY,
            },
            json: serde_json::json!({"ok": false, "error": e.to_string(), "status": status_after(&state, &client.id).await?}),
        },
    };
    Ok(answer.send(&req, &session, &redirect_path))
}

async fn status_after(state: &AppState, id: &str) -> Result<String, AppError> {
    let id = id.to_string();
    let client = crate::db::run(&state.pool, move |conn| clients::find(conn, &id)).await?;
    Ok(client.map(|c| c.status.to_string()).unwrap_or_default())
}

/// `POST /api/integrations/{provider}/disconnect/{client_id}`.
pub async fn disconnect(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<(String, RecordId)>,
    form: Option<web::Form<RedirectTarget>>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let (provider, client, redirect_path) = action_target(&state, &user, path, form).await?;
    let revocation = disconnect::disconnect(&state, user.actor(), &client, &origin(&req)).await?;
    Ok(disconnect_answer(&provider, &client, revocation).send(&req, &session, &redirect_path))
}

pub fn disconnect_answer(
    provider: &Provider,
    client: &clients::Client,
    revocation: Revocation,
) -> Answer {
    let (flash, revoked, error) = match revocation {
        Revocation::Done => (
            Flash::success(format!("Disconnected {}; {} revoked its tokens", client.display_name, provider.display_name)),
            Some(true),
            None,
        ),
        Revocation::NotSupported => (Flash::success(format!("Disconnected {}; its secrets were deleted", client.display_name)), None, None),
        Revocation::Failed(reason) => (
            Flash::error(format!(
                "Disconnected {} and deleted its secrets, but {} did not confirm the revocation ({reason})",
                client.display_name, provider.display_name
            )),
            Some(false),
            Some(reason),
        ),
    };
    Answer {
        flash,
        status: StatusCode::OK,
        json: serde_json::json!({"ok": true, "client_id": client.id, "revoked": revoked, "revoke_error": error}),
    }
}
