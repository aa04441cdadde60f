//! The authorization-code flow with PKCE, for every provider: `start` sends the browser to
//! the provider, `complete` handles its return, and `connect_api_key` and
//! `connect_client_credentials` cover the two flows without a consent page.

use super::pkce;
use super::profile::{self, AccountProfile};
use super::states::{self, PendingAuthorization, StateProblem};
use super::token_client::{self, TokenSet};
use crate::audit::{self, Actor, Event, Origin};
use crate::auth::users::User;
use crate::clients::{self, credentials, Client, Connection};
use crate::db::DbError;
use crate::local_path::LocalPath;
use crate::provider_http::CallError;
use crate::providers::{AuthType, Provider};
use crate::state::AppState;
use crate::vault::Binding;
use crate::webhooks::{self, EventType};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// Longest value accepted in any callback parameter.
pub const MAX_PARAM_LEN: usize = 2048;

/// The RFC 6749 §4.1.2.1 error codes, with what they mean to a person.
const PROVIDER_ERRORS: [(&str, &str); 7] = [
    ("access_denied", "access was denied on the consent page"),
    ("invalid_request", "the authorization request was invalid"),
    (
        "unauthorized_client",
        "this app is not allowed to ask for authorization",
    ),
    (
        "unsupported_response_type",
        "the provider does not support this kind of request",
    ),
    ("invalid_scope", "the requested permissions were refused"),
    ("server_error", "the provider had an internal error"),
    (
        "temporarily_unavailable",
        "the provider is temporarily unavailable",
    ),
];

/// How a flow ended, for the page the browser returns to.
pub struct Outcome {
    /// The landing page `start` was given; none when the callback matched no pending
    /// authorization (the pages then choose their own).
    pub redirect_path: Option<LocalPath>,
    pub success: bool,
    pub message: String,
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
    fn from_call(provider: &Provider, step: &str, error: CallError) -> Self {
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

/// Creates the pending authorization and returns the provider's authorize URL.
pub async fn start(
    state: &AppState,
    user: &User,
    session_binding: &str,
    provider: &Provider,
    redirect_path: &LocalPath,
    origin: &Origin,
) -> Result<String, ConnectError> {
    let app = provider
        .app
        .as_ref()
        .filter(|_| provider.auth_type == AuthType::Oauth2)
        .ok_or_else(|| ConnectError::NotConfigured(provider.display_name.clone()))?;
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
        user_id: user.id.clone(),
        session_binding: session_binding.to_string(),
        pkce_verifier: sealed_verifier,
        redirect_path: redirect_path.as_str().to_string(),
        params: "{}".into(),
        created_at: now,
        expires_at: now + chrono::TimeDelta::minutes(states::LIFETIME_MINUTES),
        consumed_at: None,
    };
    let event = user
        .event("oauth_initiated")
        .target("provider", provider.name.clone())
        .origin(origin);
    crate::db::run(&state.pool, move |conn| {
        states::insert(conn, &pending)?;
        audit::append(conn, event)
    })
    .await?;
    state.metrics.flow(&provider.name, "started");

    let mut url = url::Url::parse(&provider.authorize_url).map_err(|e| DbError::Other(e.into()))?;
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

/// What the provider sent back to the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

impl CallbackParams {
    fn oversized(&self) -> bool {
        [
            &self.code,
            &self.state,
            &self.error,
            &self.error_description,
            &self.iss,
        ]
        .into_iter()
        .flatten()
        .any(|v| v.len() > MAX_PARAM_LEN)
    }
}

/// Handles the provider's return: every failure becomes a clear message and an audit
/// entry, and nothing is stored unless the whole flow succeeded.
pub async fn complete(
    state: &AppState,
    user: &User,
    session_binding: &str,
    provider: &Provider,
    params: CallbackParams,
    origin: &Origin,
) -> Result<Outcome, DbError> {
    let pending = match check_state(state, user, session_binding, provider, &params).await? {
        Ok(pending) => pending,
        Err(reason) => return fail(state, user, provider, origin, None, reason).await,
    };
    let redirect_path = LocalPath::parse(&pending.redirect_path);
    match finish(state, user, provider, &pending, params).await {
        Ok((client, created)) => {
            let event = user.event("oauth_completed")
                .target("client", client.id.clone())
                .origin(origin)
                .details(json!({"provider": provider.name, "account_id": client.provider_account_id, "created": created}));
            crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
            state.metrics.flow(&provider.name, "completed");
            state.tokens.schedule_changed.notify_one();
            Ok(Outcome {
                redirect_path,
                success: true,
                message: format!(
                    "Connected {} account {}",
                    provider.display_name, client.display_name
                ),
            })
        }
        Err(ConnectError::Storage(e)) => Err(e),
        Err(e) => fail(state, user, provider, origin, redirect_path, e.to_string()).await,
    }
}

async fn fail(
    state: &AppState,
    user: &User,
    provider: &Provider,
    origin: &Origin,
    redirect_path: Option<LocalPath>,
    reason: String,
) -> Result<Outcome, DbError> {
    let event = user
        .event("oauth_failed")
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
    })
}

/// Finds and consumes the pending authorization the callback refers to.
async fn check_state(
    state: &AppState,
    user: &User,
    session_binding: &str,
    provider: &Provider,
    params: &CallbackParams,
) -> Result<Result<PendingAuthorization, String>, DbError> {
    if params.oversized() {
        return Ok(Err("the provider's answer was too large".into()));
    }
    let Some(state_token) = params.state.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(Err("the answer had no state; start again".into()));
    };
    let id = pkce::state_id(state_token);
    let provider_name = provider.name.clone();
    let (user_id, binding) = (user.id.clone(), session_binding.to_string());
    let is_callers = move |pending: &PendingAuthorization| {
        let same_session =
            orion::util::secure_cmp(pending.session_binding.as_bytes(), binding.as_bytes()).is_ok();
        pending.user_id == user_id && same_session
    };
    let consumed = crate::db::run(&state.pool, move |conn| {
        states::consume(conn, &id, &provider_name, is_callers)
    })
    .await?;
    let problem = match consumed {
        Ok(pending) => return Ok(Ok(pending)),
        Err(problem) => problem,
    };
    Ok(Err(match problem {
        StateProblem::Unknown => "the authorization is unknown; start again",
        StateProblem::AlreadyUsed => "this authorization was already used; start again",
        StateProblem::Expired => "the authorization expired after 10 minutes; start again",
        StateProblem::NotTheCallers => {
            "the authorization was started in another session; start again"
        }
    }
    .to_string()))
}

/// The rest of a valid callback: provider error, issuer, code exchange, profile, storage.
async fn finish(
    state: &AppState,
    user: &User,
    provider: &Provider,
    pending: &PendingAuthorization,
    params: CallbackParams,
) -> Result<(Client, bool), ConnectError> {
    if let Some(code) = params.error.as_deref() {
        let meaning = PROVIDER_ERRORS
            .iter()
            .find(|(known, _)| *known == code)
            .map_or("the provider reported an unknown error", |(_, meaning)| {
                meaning
            });
        return Err(ConnectError::Invalid(meaning.to_string()));
    }
    if let (Some(expected), Some(given)) = (&provider.issuer, &params.iss) {
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
        token_client::exchange_code(&state.http, &state.retry, provider, app, &code, verifier)
            .await
            .map_err(|e| ConnectError::from_call(provider, "the code exchange", e))?;
    let reader = profile::Reader::new(&state.http, &state.retry, provider, &tokens.access_token);
    let profile = read_account(reader).await?;
    save(
        state,
        user,
        provider,
        AuthType::Oauth2,
        &profile,
        Stored::Tokens(&tokens),
    )
    .await
}

/// The profile of the account behind a new credential, with the calls it took.
async fn read_account(reader: profile::Reader<'_>) -> Result<AccountProfile, ConnectError> {
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

/// Upserts the client and its sealed secrets in one transaction.
pub async fn save(
    state: &AppState,
    user: &User,
    provider: &Provider,
    auth_type: AuthType,
    profile: &AccountProfile,
    stored: Stored<'_>,
) -> Result<(Client, bool), ConnectError> {
    let grant = Grant::of(state, provider, stored);
    let (owner, provider_name, profile_calls, profile) = (
        user.id.clone(),
        provider.name.clone(),
        profile.calls.clone(),
        profile.clone(),
    );
    let vault = state.vault.clone();
    let event_actor = user.actor();
    let saved = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let connection = Connection {
                owner_user_id: &owner,
                provider: &provider_name,
                provider_account_id: &profile.account_id,
                display_name: &profile.display_name,
                auth_type,
                profile: &profile.details,
                scopes: &grant.scopes,
            };
            store_connection(conn, &vault, &connection, &grant, event_actor)
        })
    })
    .await?;
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
        let margin = super::lifecycle::margin(state);
        let (access, refresh, api_key, lifetime, scopes) = match stored {
            Stored::Tokens(tokens) => (
                Some(tokens.access_token.clone()),
                tokens.refresh_token.clone(),
                None,
                super::schedule::lifetime(now, tokens.expires_in, margin),
                tokens
                    .scope
                    .clone()
                    .unwrap_or_else(|| provider.scopes.join(" ")),
            ),
            Stored::ApiKey(key) => (
                None,
                None,
                Some(key.clone()),
                super::schedule::lifetime(now, None, margin),
                String::new(),
            ),
        };
        let scopes = scopes
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            access,
            refresh,
            api_key,
            lifetime,
            scopes,
        }
    }
}

/// Inside the caller's transaction: the client row, its sealed secrets and the audit entry.
fn store_connection(
    conn: &mut crate::db::DbConnection,
    vault: &crate::vault::Vault,
    connection: &Connection,
    grant: &Grant,
    event_actor: Actor,
) -> anyhow::Result<(Client, bool)> {
    let (client, created) = clients::upsert(conn, connection)?;
    let event_type = if created {
        EventType::ConnectionCreated
    } else {
        EventType::ConnectionReconnected
    };
    webhooks::connection(conn, event_type, &client, json!({}))?;
    let secrets = credentials::Secrets {
        access_token: grant.access.as_ref(),
        refresh_token: grant.refresh.as_ref(),
        api_key: grant.api_key.as_ref(),
        expires_at: grant.lifetime.expires_at,
        refresh_at: grant.lifetime.refresh_at,
    };
    credentials::store(conn, vault, &client.id, &secrets)?;
    let action = if connection.auth_type.is_api_key() {
        "api_key_stored"
    } else {
        "token_exchanged"
    };
    audit::append(
        conn,
        Event::new(event_actor, action).target("client", client.id.clone()),
    )?;
    Ok((client, created))
}

/// Reading the profile used the account's API (and its rate limit): metered like any call.
fn meter_profile_calls(state: &AppState, calls: Vec<crate::usage::Call>, client: &Client) {
    for mut call in calls {
        call.client_id = client.id.clone();
        call.user_id = client.owner_user_id.clone();
        state.usage.record(call);
    }
}

/// Connects with an API key: the key is checked against the provider before anything is
/// stored.
pub async fn connect_api_key(
    state: &AppState,
    user: &User,
    provider: &Provider,
    api_key: SecretString,
    origin: &Origin,
) -> Result<Client, ConnectError> {
    let Some(check_path) = &provider.api_key_check_path else {
        return Err(ConnectError::Invalid(format!(
            "{} does not accept API keys",
            provider.display_name
        )));
    };
    let key = api_key.expose_secret().trim();
    if key.is_empty() || key.len() > 512 || key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConnectError::Invalid(
            "enter the API key exactly as the provider shows it".into(),
        ));
    }
    let api_key = SecretString::from(key.to_string());
    let reader = profile::Reader::new(&state.http, &state.retry, provider, &api_key);
    let checked = reader.get(check_path).await;
    if let Err(error) = checked {
        let reason = match error {
            CallError::Rejected {
                status: 401 | 403, ..
            } => ConnectError::Provider {
                provider: provider.display_name.clone(),
                reason: "the API key was rejected".into(),
            },
            other => ConnectError::from_call(provider, "checking the key", other),
        };
        return Err(reason);
    }
    let profile = read_account(reader).await?;
    let (client, created) = save(
        state,
        user,
        provider,
        AuthType::ApiKey,
        &profile,
        Stored::ApiKey(&api_key),
    )
    .await?;
    let event = user
        .event("api_key_connected")
        .target("client", client.id.clone())
        .origin(origin)
        .details(json!({"provider": provider.name, "created": created}));
    crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
    Ok(client)
}

/// Connects a machine-to-machine provider with the client-credentials grant.
pub async fn connect_client_credentials(
    state: &AppState,
    user: &User,
    provider: &Provider,
    origin: &Origin,
) -> Result<Client, ConnectError> {
    let app = provider
        .app
        .as_ref()
        .filter(|_| provider.auth_type == AuthType::ClientCredentials)
        .ok_or_else(|| ConnectError::NotConfigured(provider.display_name.clone()))?;
    let tokens = token_client::client_credentials(&state.http, &state.retry, provider, app)
        .await
        .map_err(|e| ConnectError::from_call(provider, "the client-credentials grant", e))?;
    let reader = profile::Reader::new(&state.http, &state.retry, provider, &tokens.access_token);
    let profile = read_account(reader).await?;
    let (client, _) = save(
        state,
        user,
        provider,
        AuthType::ClientCredentials,
        &profile,
        Stored::Tokens(&tokens),
    )
    .await?;
    let event = user
        .event("oauth_completed")
        .target("client", client.id.clone())
        .origin(origin)
        .details(json!({"provider": provider.name, "grant": "client_credentials"}));
    crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
    Ok(client)
}
