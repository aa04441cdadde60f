//! How a connect session ends: the provider's callback (through the one OAuth engine) or an
//! API key, then `on_session_finished`, the one place a completed or failed session is
//! recorded, with its `connect_session.completed` / `.failed` webhook in the same
//! transaction.

use super::end_users::{self, EndUser};
use super::sessions::{self, ConnectSession};
use super::signature::{self, ReturnParams};
use super::{allowed_provider, holder, settings, SessionProblem};
use crate::audit::{self, Actor, Origin};
use crate::clients::Client;
use crate::db::DbError;
use crate::oauth::flow::{self, Callback, CallbackParams, Caller, ConnectError};
use crate::oauth::holder::Holder;
use crate::oauth::key_input::KeyInput;
use crate::providers::Provider;
use crate::state::AppState;
use crate::webhooks::{self, EventType};
use serde_json::json;

/// How a session's attempt ended, for the hosted result page (or the redirect).
pub struct SessionResult {
    pub session: ConnectSession,
    pub end_user: EndUser,
    pub provider: String,
    pub provider_display_name: String,
    pub success: bool,
    /// What the page says ("Kustomer account Acme Support connected").
    pub message: String,
    pub client: Option<Client>,
    /// The signed success or error URL, when the session has one.
    pub return_url: Option<String>,
    pub branding: settings::Branding,
    /// What the popup posts to the opener (the same fields as the return URL, unsigned).
    pub params: ReturnParams,
}

/// Whether a callback returns to an end user's flow (its state was started by a connect
/// session): the hosted page then finishes it in two steps ("Finishing…", then a POST),
/// so the page the browser ends on carries no code or state. Nothing is consumed here.
pub async fn is_end_user_callback(
    state: &AppState,
    params: &CallbackParams,
) -> Result<bool, DbError> {
    let Some(token) = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= flow::MAX_PARAM_LEN)
    else {
        return Ok(false);
    };
    let id = crate::oauth::pkce::state_id(token);
    let found = crate::db::run(&state.pool, move |conn| {
        crate::oauth::states::params_of(conn, &id)
    })
    .await?;
    Ok(found.is_some_and(|params| Holder::end_user_from_params("", &params).is_some()))
}

/// The provider's callback for every flow. A connecthub user's ends as before; an end
/// user's also ends its session (`on_session_finished`) and comes back as a result.
pub async fn callback(
    state: &AppState,
    caller: &Caller,
    provider: &Provider,
    params: CallbackParams,
    origin: &Origin,
) -> Result<(Callback, Option<SessionResult>), DbError> {
    let answer = flow::complete(state, caller, provider, params, origin).await?;
    let Callback::Finished(outcome) = &answer else {
        return Ok((answer, None));
    };
    let Some(Holder::EndUser(end_user)) = &outcome.holder else {
        return Ok((answer, None));
    };
    let found = {
        let (session_id, end_user_id) = (end_user.session_id.clone(), end_user.end_user_id.clone());
        crate::db::run(&state.pool, move |conn| -> Result<_, DbError> {
            Ok((
                sessions::find(conn, &session_id)?,
                end_users::find(conn, &end_user_id)?,
            ))
        })
        .await?
    };
    let (Some(session), Some(end_user)) = found else {
        return Ok((answer, None));
    };
    let reason = (!outcome.success).then(|| outcome.message.clone());
    let result = on_session_finished(
        state,
        session,
        end_user,
        provider,
        outcome.client.clone(),
        reason,
        origin,
    )
    .await?;
    Ok((answer, Some(result)))
}

/// Connects an API-key provider for the session's end user (the key is checked against
/// the provider first, as everywhere).
pub async fn connect_api_key(
    state: &AppState,
    token: &str,
    provider: &str,
    entered: &crate::providers::connection_config::Entered,
    input: KeyInput,
    origin: &Origin,
) -> Result<SessionResult, SessionProblem> {
    let (session, end_user, provider) = allowed_provider(state, token, provider).await?;
    let holder = holder(&session, &end_user);
    let connected = crate::oauth::direct_connect::connect_api_key(
        state, &holder, &provider, entered, input, origin,
    )
    .await;
    let (client, reason) = match connected {
        Ok(client) => (Some(client), None),
        Err(ConnectError::Storage(e)) => return Err(SessionProblem::Storage(e)),
        Err(e) => (
            None,
            Some(format!("Could not connect {}: {e}", provider.display_name)),
        ),
    };
    Ok(on_session_finished(state, session, end_user, &provider, client, reason, origin).await?)
}

/// THE place a session's attempt ends: completes the session with its client (tags
/// added, audited `connect_session_completed`) or records the failure (audited
/// `connect_session_failed`; the session stays usable for Try again). Webhooks for
/// `connect_session.completed` / `.failed` belong here.
pub async fn on_session_finished(
    state: &AppState,
    session: ConnectSession,
    end_user: EndUser,
    provider: &Provider,
    client: Option<Client>,
    failure: Option<String>,
    origin: &Origin,
) -> Result<SessionResult, DbError> {
    let actor = Actor {
        kind: "end_user",
        id: Some(end_user.id.clone()),
        label: end_user.external_id.clone(),
    };
    let vault = state.vault.clone();
    let (id, tags, origin) = (session.id.clone(), session.tag_list(), origin.clone());
    let (client_id, reason) = (client.as_ref().map(|c| c.id.clone()), failure.clone());
    let provider_name = provider.name.clone();
    let loaded = crate::db::run(&state.pool, move |conn| -> Result<_, DbError> {
        crate::db::transaction(conn, |conn| -> Result<_, DbError> {
            let event = match (&client_id, &reason) {
                (Some(client_id), None) => {
                    sessions::complete(conn, &id, client_id)?;
                    for tag in &tags {
                        let tagged = audit::Event::new(actor.clone(), "client_tagged")
                            .target("client", client_id.clone())
                            .details(json!({"tag": tag, "via": "connect_session"}));
                        let _ = crate::clients::tags::add_tag(conn, client_id, tag, tagged)?;
                    }
                    let body = json!({"session_id": id, "end_user_id": actor.label,
                        "provider": provider_name, "connection_id": client_id, "tags": tags});
                    webhooks::emit(conn, EventType::ConnectSessionCompleted, body)?;
                    audit::Event::new(actor.clone(), "connect_session_completed")
                        .details(json!({"provider": provider_name, "client_id": client_id}))
                }
                _ => {
                    let reason = reason.clone().unwrap_or_default();
                    sessions::record_failure(conn, &id, &reason)?;
                    let body = json!({"session_id": id, "end_user_id": actor.label,
                        "provider": provider_name, "reason": reason});
                    webhooks::emit(conn, EventType::ConnectSessionFailed, body)?;
                    audit::Event::new(actor.clone(), "connect_session_failed")
                        .failed()
                        .details(json!({"provider": provider_name, "reason": reason}))
                }
            };
            audit::append(
                conn,
                event.target("connect_session", id.clone()).origin(&origin),
            )?;
            settings::load(conn, &vault)
        })
    })
    .await?;
    Ok(result(session, end_user, provider, client, failure, loaded))
}

fn result(
    session: ConnectSession,
    end_user: EndUser,
    provider: &Provider,
    client: Option<Client>,
    failure: Option<String>,
    settings: settings::ConnectSettings,
) -> SessionResult {
    let success = failure.is_none() && client.is_some();
    let message = match (&client, &failure) {
        (Some(client), None) => format!(
            "{} account {} connected",
            provider.display_name, client.display_name
        ),
        (_, reason) => reason
            .clone()
            .unwrap_or_else(|| "Something went wrong".into()),
    };
    let params = ReturnParams {
        connection_id: client.as_ref().filter(|_| success).map(|c| c.id.clone()),
        end_user_id: end_user.external_id.clone(),
        provider: provider.name.clone(),
        status: if success { "success" } else { "error" },
        error: failure.clone(),
    };
    let base = if success {
        session.success_url.clone()
    } else {
        session.error_url.clone()
    };
    let ts = chrono::Utc::now().timestamp();
    let return_url =
        base.map(|base| signature::signed_url(&base, &params, &settings.signing_secret, ts));
    SessionResult {
        session,
        end_user,
        provider: provider.name.clone(),
        provider_display_name: provider.display_name.clone(),
        success,
        message,
        client,
        return_url,
        branding: settings.branding,
        params,
    }
}
