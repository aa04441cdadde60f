//! Connect sessions: a team's backend asks for a link (`create`), its end user opens the
//! hosted page (`open`), picks a provider (`start`, which hands over to the one OAuth
//! engine in `oauth::flow` with the end user as holder) or enters an API key, and the
//! callback ends the session (`callback`). The token is random, stored only as a SHA-256,
//! valid for `CONNECT_SESSION_TTL_SECS`, and usable until one connection is completed.

pub mod admin;
pub mod connections;
pub mod end_users;
mod finish;
pub mod request;
pub mod sessions;
pub mod settings;
pub mod signature;

pub use finish::{
    callback, connect_api_key, is_end_user_callback, on_session_finished, SessionResult,
};

use crate::audit::{self, Actor, Origin};
use crate::db::DbError;
use crate::oauth::holder::{EndUserHolder, Holder};
use crate::providers::{AuthType, Provider};
use crate::state::AppState;
use end_users::EndUser;
use request::SessionRequest;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sessions::ConnectSession;
use std::sync::Arc;

/// Why a session could not be created (the service API answers 404).
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// `reconnect_client_id` names no connection of this end user.
    #[error("reconnect_client_id is not a connection of this end user")]
    NotTheEndUsersClient,
    #[error(transparent)]
    Storage(#[from] DbError),
}
impl From<crate::db::RunError<CreateError>> for CreateError {
    fn from(error: crate::db::RunError<CreateError>) -> Self {
        match error {
            crate::db::RunError::Work(e) => e,
            crate::db::RunError::Pool(e) => Self::Storage(DbError::Pool(e)),
            crate::db::RunError::Task(e) => Self::Storage(DbError::Other(anyhow::anyhow!("{e}"))),
        }
    }
}

impl From<diesel::result::Error> for CreateError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Storage(error.into())
    }
}

/// Why a link cannot be used (the hosted page answers 404, 410 or 403 with a clear page).
#[derive(Debug, thiserror::Error)]
pub enum SessionProblem {
    #[error("This connect link is not valid. Ask the app that sent you here for a new one.")]
    Unknown,
    #[error("This connect link has expired. Go back to the app and start again.")]
    Expired,
    #[error("This connect link was already used. Go back to the app to connect another account.")]
    Used,
    #[error("This provider is not offered by this link.")]
    ProviderNotAllowed,
    #[error("{0} cannot be connected right now: it is not configured.")]
    NotConfigured(String),
    /// A connection setting was refused (nothing was started).
    #[error("{0}. Go back and correct it.")]
    InvalidSetting(String),
    #[error(transparent)]
    Storage(#[from] DbError),
}
crate::from_run_error!(SessionProblem, Storage);

/// What the team's backend gets back: the token appears here and nowhere else.
pub struct CreatedSession {
    pub token: SecretString,
    pub connect_url: String,
    pub expires_at: chrono::NaiveDateTime,
    pub session: ConnectSession,
}

/// The SHA-256 a token is stored and looked up as.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The longest token worth hashing (real ones are 47 characters).
const TOKEN_MAX_LEN: usize = 100;

/// Creates a session for the key owner's end user. `reconnect_client_id` must name a
/// connection of that same end user; otherwise nothing is written.
pub async fn create(
    state: &AppState,
    owner_user_id: &str,
    api_key_id: &str,
    actor: Actor,
    request: SessionRequest,
) -> Result<CreatedSession, CreateError> {
    let token = SecretString::from(format!(
        "chc_{}",
        crate::oauth::pkce::random_token().expose_secret()
    ));
    let now = crate::db::now();
    let ttl = chrono::TimeDelta::from_std(state.config.connect.session_ttl)
        .unwrap_or(chrono::TimeDelta::minutes(30));
    let mut session = ConnectSession {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: token_hash(token.expose_secret()),
        end_user_id: String::new(),
        owner_user_id: owner_user_id.to_string(),
        api_key_id: api_key_id.to_string(),
        allowed_providers: json!(request.allowed_providers).to_string(),
        tags: json!(request.tags).to_string(),
        success_url: request.success_url.clone(),
        error_url: request.error_url.clone(),
        allowed_origins: json!(request.allowed_origins).to_string(),
        reconnect_client_id: request.reconnect_client_id.clone(),
        status: "open".into(),
        completed_client_id: None,
        last_error: None,
        created_at: now,
        expires_at: now + ttl,
        finished_at: None,
    };
    let info = request.end_user.clone();
    let mut stored = session.clone();
    let saved = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| -> Result<_, CreateError> {
            if let Some(client_id) = &stored.reconnect_client_id {
                let end_user = end_users::by_external_id(conn, &info.external_id)?;
                let client = crate::clients::find(conn, client_id)?;
                let theirs = matches!((&end_user, &client), (Some(e), Some(c)) if c.end_user_id.as_deref() == Some(e.id.as_str()));
                let Some(client) = client.filter(|_| theirs) else {
                    return Err(CreateError::NotTheEndUsersClient);
                };
                // Re-authorising a connection offers its provider only.
                stored.allowed_providers = json!([client.provider]).to_string();
            }
            let end_user = end_users::record_seen(conn, &info)?;
            stored.end_user_id = end_user.id.clone();
            sessions::insert(conn, &stored)?;
            let event = audit::Event::new(actor, "connect_session_created")
                .target("connect_session", stored.id.clone())
                .details(json!({"end_user_id": end_user.external_id, "allowed_providers": stored.providers(), "reconnect_client_id": stored.reconnect_client_id}));
            audit::append(conn, event)?;
            Ok(stored)
        })
    })
    .await?;
    session.end_user_id = saved.end_user_id;
    session.allowed_providers = saved.allowed_providers;
    let connect_url = format!(
        "{}/connect/{}",
        state.config.public_url.as_str().trim_end_matches('/'),
        token.expose_secret()
    );
    Ok(CreatedSession {
        token,
        connect_url,
        expires_at: session.expires_at,
        session,
    })
}

/// (completed, created) connect sessions created since `since`: the completion rate of
/// the usage page's KPIs (sessions still open count as not completed).
pub async fn completion_since(
    state: &AppState,
    since: chrono::NaiveDateTime,
) -> Result<(i64, i64), DbError> {
    let counts = crate::db::run(&state.pool, move |conn| {
        sessions::count_by_status(conn, since)
    })
    .await?;
    let completed = counts
        .iter()
        .filter(|(s, _)| s == "completed")
        .map(|(_, n)| n)
        .sum();
    let created = counts.iter().map(|(_, n)| n).sum();
    Ok((completed, created))
}

/// A usable session with what the hosted page shows.
pub struct OpenSession {
    pub session: ConnectSession,
    pub end_user: EndUser,
    /// Allowed, enabled providers, in the registry's order.
    pub providers: Vec<Arc<Provider>>,
    pub branding: settings::Branding,
}

/// The session behind a token if it can still be used; an expired one is marked (and
/// audited) the first time it is seen.
async fn usable(
    state: &AppState,
    token: &str,
) -> Result<(ConnectSession, EndUser), SessionProblem> {
    if token.len() > TOKEN_MAX_LEN || !token.starts_with("chc_") {
        return Err(SessionProblem::Unknown);
    }
    let hash = token_hash(token);
    let found = crate::db::run(&state.pool, move |conn| -> Result<_, DbError> {
        let Some(session) = sessions::by_token_hash(conn, &hash)? else {
            return Ok(None);
        };
        let end_user = end_users::find(conn, &session.end_user_id)?;
        Ok(end_user.map(|e| (session, e)))
    })
    .await?;
    let Some((session, end_user)) = found else {
        return Err(SessionProblem::Unknown);
    };
    if session.is_usable(crate::db::now()) {
        return Ok((session, end_user));
    }
    if session.status == "completed" {
        return Err(SessionProblem::Used);
    }
    let (id, external_id) = (session.id.clone(), end_user.external_id.clone());
    crate::db::run(&state.pool, move |conn| -> Result<_, DbError> {
        if sessions::expire(conn, &id)? {
            let event = audit::Event::new(Actor::system(), "connect_session_expired")
                .target("connect_session", id.clone())
                .details(json!({"end_user_id": external_id}));
            audit::append(conn, event)?;
        }
        Ok(())
    })
    .await?;
    Err(SessionProblem::Expired)
}

/// Marks every session past its expiry as expired, each audited once
/// (`connect_session_expired`); run every minute by the housekeeping. Returns how many.
pub async fn expire_due(pool: &crate::db::DbPool) -> Result<usize, DbError> {
    crate::db::run(pool, |conn| -> Result<usize, DbError> {
        let mut expired = 0;
        for (id, end_user_id) in sessions::due_for_expiry(conn, 500)? {
            let external_id = end_users::find(conn, &end_user_id)?.map(|e| e.external_id);
            crate::db::transaction(conn, |conn| -> Result<(), DbError> {
                if sessions::expire(conn, &id)? {
                    expired += 1;
                    let event = audit::Event::new(Actor::system(), "connect_session_expired")
                        .target("connect_session", id.clone())
                        .details(json!({"end_user_id": external_id}));
                    audit::append(conn, event)?;
                }
                Ok(())
            })?;
        }
        Ok(expired)
    })
    .await
    .map_err(DbError::from)
}

/// The providers a session offers: its list (or every enabled one), enabled and of a
/// kind the hosted page can connect (OAuth with an app, or API keys).
fn offered(state: &AppState, session: &ConnectSession) -> Vec<Arc<Provider>> {
    let allowed = session.providers();
    state
        .providers()
        .enabled()
        .filter(|p| allowed.is_empty() || allowed.contains(&p.name))
        .filter(|p| p.auth_type == AuthType::Oauth2 || p.api_key_check_path.is_some())
        .cloned()
        .collect()
}

/// Opens the hosted page: the session, its end user, the providers and the branding.
pub async fn open(
    state: &AppState,
    token: &str,
    origin: &Origin,
) -> Result<OpenSession, SessionProblem> {
    let (session, end_user) = usable(state, token).await?;
    let providers = offered(state, &session);
    let vault = state.vault.clone();
    let event = audit::Event::new(end_user_actor(&end_user), "connect_session_opened")
        .target("connect_session", session.id.clone())
        .origin(origin);
    let branding = crate::db::run(&state.pool, move |conn| -> Result<_, DbError> {
        audit::append(conn, event)?;
        Ok(settings::load(conn, &vault)?.branding)
    })
    .await?;
    Ok(OpenSession {
        session,
        end_user,
        providers,
        branding,
    })
}

fn end_user_actor(end_user: &EndUser) -> Actor {
    Actor {
        kind: "end_user",
        id: Some(end_user.id.clone()),
        label: end_user.external_id.clone(),
    }
}

/// The session's provider by name, if the session offers it.
async fn allowed_provider(
    state: &AppState,
    token: &str,
    provider: &str,
) -> Result<(ConnectSession, EndUser, Arc<Provider>), SessionProblem> {
    let (session, end_user) = usable(state, token).await?;
    let provider = offered(state, &session)
        .into_iter()
        .find(|p| p.name == provider)
        .ok_or(SessionProblem::ProviderNotAllowed)?;
    Ok((session, end_user, provider))
}

fn holder(session: &ConnectSession, end_user: &EndUser) -> Holder {
    Holder::EndUser(EndUserHolder {
        owner_user_id: session.owner_user_id.clone(),
        end_user_id: end_user.id.clone(),
        external_id: end_user.external_id.clone(),
        session_id: session.id.clone(),
    })
}

/// Starts the provider's consent for the session's end user in this browser session;
/// returns the provider's authorize URL.
pub async fn start(
    state: &AppState,
    token: &str,
    provider: &str,
    entered: &crate::providers::connection_config::Entered,
    session_binding: &str,
    origin: &Origin,
) -> Result<String, SessionProblem> {
    let (session, end_user, provider) = allowed_provider(state, token, provider).await?;
    let landing = crate::local_path::LocalPath::or(None, "/");
    let holder = holder(&session, &end_user);
    let flow = crate::oauth::flow::start(
        state,
        &holder,
        session_binding,
        &provider,
        entered,
        &landing,
        origin,
    );
    flow.await.map_err(|e| match e {
        crate::oauth::flow::ConnectError::Storage(e) => SessionProblem::Storage(e),
        crate::oauth::flow::ConnectError::Invalid(reason) => SessionProblem::InvalidSetting(reason),
        _ => SessionProblem::NotConfigured(provider.display_name.clone()),
    })
}
