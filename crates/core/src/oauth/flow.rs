//! The authorization-code flow with PKCE, for every provider: `start` sends the browser to
//! the provider, `complete` handles its return, and `connect_api_key` and
//! `connect_client_credentials` cover the two flows without a consent page.

use super::callback;
pub use super::callback::{CallbackParams, MAX_EXTRA_NAME_LEN, MAX_EXTRA_PARAMS, MAX_PARAM_LEN};
use super::holder::Holder;
use super::pkce;
use super::profile::{self, AccountProfile};
use super::states::{self, PendingAuthorization, StateProblem};
use super::token_client::{self, TokenSet};
use crate::audit::{self, Actor, Event, Origin};
use crate::auth::users::User;
use crate::clients::upgrade::Change;
use crate::clients::{self, credentials, Client, Connection};
use crate::db::DbError;
use crate::local_path::LocalPath;
use crate::provider_http::CallError;
use crate::providers::connection_config::{Answers, Entered};
use crate::providers::{AuthType, ConnectionValues, Provider};
use crate::state::AppState;
use crate::vault::Binding;
use crate::webhooks::{self, EventType};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// How a flow ended, for the page the browser returns to.
pub struct Outcome {
    /// The landing page `start` was given; none when the callback matched no pending
    /// authorization (the pages then choose their own).
    pub redirect_path: Option<LocalPath>,
    pub success: bool,
    pub message: String,
    /// Who the flow was for, once the callback matched its pending authorization.
    pub holder: Option<Holder>,
    /// The client made or updated (success only).
    pub client: Option<Client>,
}

/// Who answers the provider's callback: the signed-in user, if any, and the browser
/// session's binding (signed-in or not).
pub struct Caller {
    pub user: Option<User>,
    pub session_binding: String,
}

/// What the callback comes to.
pub enum Callback {
    Finished(Box<Outcome>),
    /// A connecthub user's flow reached a browser that is not signed in.
    NeedsSignIn,
    /// An end user's flow that cannot go on (started in another browser, expired, used):
    /// the reason, for a page in the hosted connect page's words (no sign-in page).
    EndUserRefused(String),
}

/// Why a connection could not be made, in words for the person connecting.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0} OAuth not configured")]
    NotConfigured(String),
    #[error("{provider} refused: {reason}")]
    Provider { provider: String, reason: String },
    #[error("{0} did not answer; try again in a minute")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    /// The database or the vault failed; nothing the person connecting can fix.
    #[error(transparent)]
    Storage(#[from] DbError),
}

crate::from_run_error!(ConnectError, Storage);

impl ConnectError {
    pub(super) fn from_call(provider: &Provider, step: &str, error: CallError) -> Self {
        let name = provider.display_name.clone();
        match error {
            CallError::Transient { .. } => ConnectError::Unavailable(name),
            CallError::Rejected {
                code, description, ..
            } => ConnectError::Provider {
                provider: name,
                reason: match description {
                    Some(d) => format!("{step} failed ({code}: {d})"),
                    None => format!("{step} failed ({code})"),
                },
            },
            CallError::InvalidResponse(why) => ConnectError::Provider {
                provider: name,
                reason: format!("{step} failed ({why})"),
            },
        }
    }
}

/// Creates the pending authorization, with the connection's entered settings, and
/// returns the provider's authorize URL (for those settings).
pub async fn start(
    state: &AppState,
    holder: &Holder,
    session_binding: &str,
    provider: &Provider,
    entered: &Entered,
    redirect_path: &LocalPath,
    origin: &Origin,
) -> Result<String, ConnectError> {
    let app = provider
        .app
        .as_ref()
        .filter(|_| provider.auth_type == AuthType::Oauth2)
        .ok_or_else(|| ConnectError::NotConfigured(provider.display_name.clone()))?;
    let values = &entered_values(provider, entered)?;
    let authorize_url = provider
        .for_authorize(values)
        .map_err(|e| ConnectError::Invalid(e.to_string()))?;
    let state_token = pkce::random_token();
    let verifier = pkce::random_token();
    let id = pkce::state_id(state_token.expose_secret());
    let sealed_verifier = state
        .vault
        .seal(
            &verifier,
            &Binding {
                table: "oauth_states",
                row: &id,
                field: "pkce_verifier",
            },
        )
        .map_err(|e| DbError::Other(e.into()))?;
    let now = crate::db::now();
    let pending = PendingAuthorization {
        id,
        provider: provider.name.clone(),
        user_id: holder.owner_user_id().to_string(),
        session_binding: session_binding.to_string(),
        pkce_verifier: sealed_verifier,
        redirect_path: redirect_path.as_str().to_string(),
        params: holder.params().to_string(),
        created_at: now,
        expires_at: now + chrono::TimeDelta::minutes(states::LIFETIME_MINUTES),
        consumed_at: None,
        connection_config: values.to_json(),
    };
    let event = holder
        .event("oauth_initiated")
        .target("provider", provider.name.clone())
        .origin(origin);
    crate::db::run(&state.pool, move |conn| {
        states::insert(conn, &pending)?;
        audit::append(conn, event)
    })
    .await?;
    state.metrics.flow(&provider.name, "started");

    let mut url = url::Url::parse(&authorize_url).map_err(|e| DbError::Other(e.into()))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", &app.redirect_uri)
            .append_pair("state", state_token.expose_secret());
        if !provider.scopes.is_empty() {
            query.append_pair("scope", &provider.scope_string());
        }
        if provider.pkce {
            query
                .append_pair("code_challenge", &pkce::challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
        }
        for (name, value) in &provider.authorize_params {
            query.append_pair(name, value);
        }
    }
    Ok(url.to_string())
}

/// The settings entered for a new connection, checked.
pub(super) fn entered_values(
    provider: &Provider,
    entered: &Entered,
) -> Result<ConnectionValues, ConnectError> {
    provider
        .connection_config
        .parse_map(entered)
        .map_err(|e| ConnectError::Invalid(e.to_string()))
}

/// Handles the provider's return: every failure becomes a clear message and an audit
/// entry, and nothing is stored unless the whole flow succeeded.
pub async fn complete(
    state: &AppState,
    caller: &Caller,
    provider: &Provider,
    params: CallbackParams,
    origin: &Origin,
) -> Result<Callback, DbError> {
    let (pending, holder) = match check_state(state, caller, provider, &params).await? {
        Ok(found) => found,
        Err((StateProblem::NotTheCallers, false)) if caller.user.is_none() => {
            return Ok(Callback::NeedsSignIn)
        }
        Err((problem, for_end_user)) => {
            let actor = caller.user.as_ref().map_or_else(
                || Actor::anonymous(origin.ip.as_deref().unwrap_or("unknown")),
                User::actor,
            );
            let reason = callback::problem_text(problem).to_string();
            let outcome = fail(state, actor, None, provider, origin, None, reason).await?;
            if for_end_user {
                return Ok(Callback::EndUserRefused(outcome.message));
            }
            return Ok(Callback::Finished(Box::new(outcome)));
        }
    };
    let redirect_path = LocalPath::parse(&pending.redirect_path);
    let outcome = match finish(state, &holder, provider, &pending, params).await {
        Ok((client, created)) => {
            let event = holder.event("oauth_completed")
                .target("client", client.id.clone())
                .origin(origin)
                .details(json!({"provider": provider.name, "account_id": client.provider_account_id, "created": created}));
            crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
            state.metrics.flow(&provider.name, "completed");
            state.tokens.schedule_changed.notify_one();
            Outcome {
                redirect_path,
                success: true,
                message: format!(
                    "Connected {} account {}",
                    provider.display_name, client.display_name
                ),
                holder: Some(holder),
                client: Some(client),
            }
        }
        Err(ConnectError::Storage(e)) => return Err(e),
        Err(e) => {
            let (actor, reason) = (holder.actor(), e.to_string());
            fail(
                state,
                actor,
                Some(holder),
                provider,
                origin,
                redirect_path,
                reason,
            )
            .await?
        }
    };
    Ok(Callback::Finished(Box::new(outcome)))
}

async fn fail(
    state: &AppState,
    actor: Actor,
    holder: Option<Holder>,
    provider: &Provider,
    origin: &Origin,
    redirect_path: Option<LocalPath>,
    reason: String,
) -> Result<Outcome, DbError> {
    let event = Event::new(actor, "oauth_failed")
        .target("provider", provider.name.clone())
        .failed()
        .origin(origin)
        .details(json!({"reason": reason}));
    crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
    state.metrics.flow(&provider.name, "failed");
    Ok(Outcome {
        redirect_path,
        success: false,
        message: format!("Could not connect {}: {reason}", provider.display_name),
        holder,
        client: None,
    })
}

/// Finds and consumes the pending authorization the callback refers to, and who it was
/// for: the same browser session always, and for a user's flow the same signed-in user.
/// A refusal says whether the state belonged to an end user's flow.
async fn check_state(
    state: &AppState,
    caller: &Caller,
    provider: &Provider,
    params: &CallbackParams,
) -> Result<Result<(PendingAuthorization, Holder), (StateProblem, bool)>, DbError> {
    if params.oversized() {
        return Ok(Err((StateProblem::Oversized, false)));
    }
    let Some(state_token) = params.state.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(Err((StateProblem::Missing, false)));
    };
    let id = pkce::state_id(state_token);
    let provider_name = provider.name.clone();
    let user_id = caller.user.as_ref().map(|u| u.id.clone());
    let binding = caller.session_binding.clone();
    let saw_end_user = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = saw_end_user.clone();
    let is_callers = move |pending: &PendingAuthorization| {
        let same_session =
            orion::util::secure_cmp(pending.session_binding.as_bytes(), binding.as_bytes()).is_ok();
        let for_end_user = Holder::end_user_from_params(&pending.user_id, &pending.params);
        seen.store(for_end_user.is_some(), std::sync::atomic::Ordering::Relaxed);
        same_session && (for_end_user.is_some() || user_id.as_ref() == Some(&pending.user_id))
    };
    let consumed = crate::db::run(&state.pool, move |conn| {
        states::consume(conn, &id, &provider_name, is_callers)
    })
    .await?;
    let for_end_user = saw_end_user.load(std::sync::atomic::Ordering::Relaxed);
    Ok(consumed
        .map_err(|problem| (problem, for_end_user))
        .map(|pending| {
            let holder = match Holder::end_user_from_params(&pending.user_id, &pending.params) {
                Some(end_user) => Holder::EndUser(end_user),
                // Only the signed-in owner passes `is_callers` for a user's flow.
                None => Holder::User(caller.user.clone().expect("checked by is_callers")),
            };
            (pending, holder)
        }))
}

/// The rest of a valid callback: provider error, issuer, code exchange, profile, storage.
async fn finish(
    state: &AppState,
    holder: &Holder,
    provider: &Provider,
    pending: &PendingAuthorization,
    params: CallbackParams,
) -> Result<(Client, bool), ConnectError> {
    if let Some(code) = params.error.as_deref() {
        return Err(ConnectError::Invalid(
            callback::provider_error_meaning(code).to_string(),
        ));
    }
    let mut values = ConnectionValues::from_json(&pending.connection_config);
    let exchange = provider
        .for_code_exchange(&values)
        .map_err(|e| ConnectError::Invalid(e.to_string()))?;
    if let (Some(expected), Some(given)) = (&exchange.issuer, &params.iss) {
        if expected != given {
            return Err(ConnectError::Invalid(
                "the answer came from an unexpected issuer (iss)".into(),
            ));
        }
    }
    let code = params
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ConnectError::Invalid("the answer had no authorization code".into()))?;
    let app = provider
        .app
        .as_ref()
        .ok_or_else(|| ConnectError::NotConfigured(provider.display_name.clone()))?;
    let verifier = state
        .vault
        .open(
            &pending.pkce_verifier,
            &Binding {
                table: "oauth_states",
                row: &pending.id,
                field: "pkce_verifier",
            },
        )
        .map_err(|e| DbError::Other(e.into()))?;
    let verifier = provider.pkce.then_some(&verifier);
    let tokens =
        token_client::exchange_code(state.http(), &state.retry, &exchange, app, &code, verifier)
            .await
            .map_err(|e| ConnectError::from_call(provider, "the code exchange", e))?;
    let answers = Answers {
        token: Some(&tokens.fields),
        callback: Some(&params.extra),
        profile: None,
    };
    capture(provider, &mut values, &answers)?;
    let reading = provider
        .for_profile(&values)
        .map_err(|e| ConnectError::Invalid(e.to_string()))?;
    let reader = profile::Reader::new(state.http(), &state.retry, &reading, &tokens.access_token);
    let profile = read_account(reader).await?;
    let answers = Answers {
        profile: Some(&profile.details),
        ..Answers::default()
    };
    capture(provider, &mut values, &answers)?;
    let provider = provider
        .for_connection(&values)
        .map_err(|e| ConnectError::Invalid(e.to_string()))?;
    let stored = Stored::Tokens(&tokens);
    let kind = AuthType::Oauth2;
    save(state, holder, &provider, kind, &profile, stored, &values).await
}

/// Completes the settings with what the provider sent back; nothing is called with a
/// value that failed its checks.
fn capture(
    provider: &Provider,
    values: &mut ConnectionValues,
    answers: &Answers,
) -> Result<(), ConnectError> {
    provider
        .connection_config
        .capture(values, answers)
        .map_err(|e| ConnectError::Provider {
            provider: provider.display_name.clone(),
            reason: e.to_string(),
        })
}

/// The profile of the account behind a new credential, with the calls it took.
pub(super) async fn read_account(
    reader: profile::Reader<'_>,
) -> Result<AccountProfile, ConnectError> {
    let provider = reader.provider();
    reader
        .fetch()
        .await
        .map_err(|e| ConnectError::from_call(provider, "reading the account", e))
}

/// What is sealed for the new client.
pub enum Stored<'a> {
    Tokens(&'a TokenSet),
    ApiKey(&'a SecretString),
}

/// Upserts the client, its settings and its sealed secrets in one transaction.
pub async fn save(
    state: &AppState,
    holder: &Holder,
    provider: &Provider,
    auth_type: AuthType,
    profile: &AccountProfile,
    stored: Stored<'_>,
    values: &ConnectionValues,
) -> Result<(Client, bool), ConnectError> {
    let grant = Grant::of(state, provider, stored);
    let connection_config = values.to_json();
    let end_user = holder.end_user_id().map(str::to_string);
    let (owner, provider_name, profile_calls, profile) = (
        holder.owner_user_id().to_string(),
        provider.name.clone(),
        profile.calls.clone(),
        profile.clone(),
    );
    let vault = state.vault.clone();
    let event_actor = holder.actor();
    let saved = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let connection = Connection {
                owner_user_id: &owner,
                end_user_id: end_user.as_deref(),
                provider: &provider_name,
                provider_account_id: &profile.account_id,
                display_name: &profile.display_name,
                auth_type,
                profile: &profile.details,
                scopes: &grant.scopes,
                connection_config: &connection_config,
            };
            store_connection(conn, &vault, &connection, &grant, event_actor)
        })
    })
    .await?
    .ok_or_else(|| {
        ConnectError::Invalid(format!(
            "this {} account is connected with OAuth, which takes precedence over an API \
             key: nothing changed (disconnect it first to use a key)",
            provider.display_name
        ))
    })?;
    state.tokens.forget(&saved.0.id);
    meter_profile_calls(state, profile_calls, &saved.0);
    Ok(saved)
}

/// What a connection stores besides its profile: its secrets, when they expire and are
/// due for refreshing, and the granted scopes (space-separated).
struct Grant {
    access: Option<SecretString>,
    refresh: Option<SecretString>,
    api_key: Option<SecretString>,
    lifetime: super::schedule::Lifetime,
    scopes: String,
}

impl Grant {
    /// Tokens keep the scopes the provider granted (else the requested ones); an API key
    /// has none and does not expire.
    fn of(state: &AppState, provider: &Provider, stored: Stored<'_>) -> Self {
        let now = crate::db::now();
        let margin = super::schedule::margin(state);
        let (access, refresh, api_key, lifetime, scopes) = match stored {
            Stored::Tokens(tokens) => (
                Some(tokens.access_token.clone()),
                tokens.refresh_token.clone(),
                None,
                super::schedule::lifetime(now, tokens.expires_in, margin),
                match &tokens.scope {
                    Some(granted) => {
                        super::token_answer::granted_scopes(granted, &provider.scope_separator)
                    }
                    None => provider.scopes.join(" "),
                },
            ),
            Stored::ApiKey(key) => (
                None,
                None,
                Some(key.clone()),
                super::schedule::lifetime(now, None, margin),
                String::new(),
            ),
        };
        Self {
            access,
            refresh,
            api_key,
            lifetime,
            scopes,
        }
    }
}

/// Inside the caller's transaction: the client row, its sealed secrets and the audit
/// entry; None when an API key would replace OAuth tokens (nothing is written).
fn store_connection(
    conn: &mut crate::db::DbConnection,
    vault: &crate::vault::Vault,
    connection: &Connection,
    grant: &Grant,
    event_actor: Actor,
) -> anyhow::Result<Option<(Client, bool)>> {
    let upgraded = match clients::upgrade::change(conn, connection)? {
        Change::Refused => return Ok(None),
        change => change == Change::Upgrade,
    };
    let (client, created) = clients::upsert(conn, connection)?;
    let event_type = if created {
        EventType::ConnectionCreated
    } else {
        EventType::ConnectionReconnected
    };
    let data = if upgraded {
        json!({"upgraded_from": "api_key"})
    } else {
        json!({})
    };
    webhooks::connection(conn, event_type, &client, data)?;
    let secrets = credentials::Secrets {
        access_token: grant.access.as_ref(),
        refresh_token: grant.refresh.as_ref(),
        api_key: grant.api_key.as_ref(),
        expires_at: grant.lifetime.expires_at,
        refresh_at: grant.lifetime.refresh_at,
    };
    credentials::store(conn, vault, &client.id, &secrets)?;
    let action = if upgraded {
        // The key is gone now: `credentials::store` replaced it with the tokens.
        "client_upgraded_to_oauth"
    } else if connection.auth_type.is_api_key() {
        "api_key_stored"
    } else {
        "token_exchanged"
    };
    audit::append(
        conn,
        Event::new(event_actor, action).target("client", client.id.clone()),
    )?;
    Ok(Some((client, created)))
}

/// Reading the profile used the account's API (and its rate limit): metered like any call.
fn meter_profile_calls(state: &AppState, calls: Vec<crate::usage::Call>, client: &Client) {
    for mut call in calls {
        call.client_id = client.id.clone();
        call.user_id = client.owner_user_id.clone();
        state.usage.record(call);
    }
}
