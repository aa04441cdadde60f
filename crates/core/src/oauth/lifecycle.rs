//! Keeping tokens alive: `fresh_token` hands out a token with time left, refreshing first
//! when needed. Exactly one refresh runs per client: callers in one process queue on a
//! per-client lock (single flight) and find the new token when their turn comes; other
//! instances on the same database are kept out by a lease row taken with a conditional
//! update. The cache and the per-client locks themselves are `token_cache`.

use super::refresh_history::{self, NewAttempt, Trigger};
use super::stored::{load, release_lease};
use super::token_cache::{CachedToken, FreshToken};
use super::token_client::{self, TokenSet};
pub use super::token_error::TokenError;
use crate::audit::{self, Actor, Event};
use crate::clients::{self, credentials, Client};
use crate::db::DbError;
use crate::provider_health::{self, Change, Outcome, Permit};
use crate::provider_http::CallError;
use crate::providers::{AuthType, Provider};
use crate::state::AppState;
use crate::webhooks::{self, EventType};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one instance may hold a client's refresh before others may take over.
pub(crate) const LEASE: Duration = Duration::from_secs(30);
/// How often a caller looks again while another instance holds the lease.
const LEASE_POLL: Duration = Duration::from_millis(100);

/// The stored token until it is due for refreshing (see `schedule`); then a refreshed one.
pub async fn fresh_token(state: &AppState, client: &Client) -> Result<FreshToken, TokenError> {
    check_status(client)?;
    let stored = load(state, &client.id).await?;
    if let Some(token) = usable(&stored) {
        return Ok(token);
    }
    refresh(state, client, Trigger::HandOut).await
}

fn check_status(client: &Client) -> Result<(), TokenError> {
    match client.status {
        clients::ClientStatus::Disconnected => Err(TokenError::Disconnected),
        clients::ClientStatus::NeedsReauth => Err(TokenError::NeedsReauth(
            client
                .last_error
                .clone()
                .unwrap_or_else(|| "invalid_grant".into()),
        )),
        _ => Ok(()),
    }
}

/// The stored token when it is an API key or not yet due for refreshing. While refreshes
/// back off after a failure, a token that still works is handed out as it is: callers must
/// not make connecthub ask a provider that is down on every request.
fn usable(stored: &credentials::Opened) -> Option<FreshToken> {
    if let Some(key) = &stored.api_key {
        return Some(FreshToken::ApiKey(key.clone()));
    }
    let token = stored.access_token.as_ref()?;
    let now = crate::db::now();
    let due = stored.refresh_at.is_some_and(|at| at <= now);
    let backing_off = stored.retry_after.is_some_and(|at| at > now)
        && stored.expires_at.is_none_or(|at| at > now);
    (!due || backing_off).then(|| FreshToken::Bearer {
        token: token.clone(),
        expires_at: stored.expires_at,
        refresh_at: stored.refresh_at,
    })
}

/// The stored token when it never expires and cannot be refreshed.
fn permanent(stored: &credentials::Opened) -> Option<FreshToken> {
    let token = stored.access_token.as_ref()?;
    (stored.expires_at.is_none() && stored.refresh_token.is_none()).then(|| FreshToken::Bearer {
        token: token.clone(),
        expires_at: None,
        refresh_at: None,
    })
}

/// For the service API: the client and a token with time left, from memory when this
/// instance handed it out recently. `Ok(None)` when there is no such client.
pub async fn token_for_service(
    state: &AppState,
    client_id: &str,
) -> Result<Option<Arc<CachedToken>>, TokenError> {
    let key = client_id.to_string();
    if let Some(hit) = state.tokens.cached(&key) {
        if still_fresh(&hit.token) {
            return Ok(Some(hit));
        }
    }
    let seen = state.tokens.generation();
    let Some(client) = crate::db::run(&state.pool, move |conn| clients::find(conn, &key)).await?
    else {
        return Ok(None);
    };
    let token = fresh_token(state, &client).await?;
    let entry = Arc::new(CachedToken::new(client, token));
    state.tokens.remember(client_id, entry.clone(), seen);
    Ok(Some(entry))
}

fn still_fresh(token: &FreshToken) -> bool {
    match token {
        FreshToken::ApiKey(_) => true,
        FreshToken::Bearer { refresh_at, .. } => refresh_at.is_none_or(|at| at > crate::db::now()),
    }
}

/// Refreshes the client's token; a manual refresh runs even if the stored one is still
/// fresh. Each call to the provider is kept in the client's refresh history.
pub async fn refresh(
    state: &AppState,
    client: &Client,
    trigger: Trigger,
) -> Result<FreshToken, TokenError> {
    check_status(client)?;
    if client.auth_type.is_api_key() {
        // An API key neither expires nor refreshes: asking the provider for a refresh
        // could only fail and mark a working connection as needing reconnecting.
        return match load(state, &client.id).await?.api_key {
            Some(key) => Ok(FreshToken::ApiKey(key)),
            None => Err(TokenError::Missing),
        };
    }
    if client.auth_type == AuthType::Oauth2 {
        // The same for a token that never expires and came without a refresh token
        // (GitHub OAuth apps): there is nothing to refresh it with.
        if let Some(token) = permanent(&load(state, &client.id).await?) {
            return Ok(token);
        }
    }
    // Before the turn: while the provider is down, callers are answered without queueing.
    let permit = match state.breakers.permit(&client.provider) {
        Ok(permit) => permit,
        Err(held) => {
            return super::held_back::refresh_held_back(state, client, trigger, held).await
        }
    };
    let lock = state.tokens.lock_for(&client.id);
    let _turn = lock.mutex().lock().await;
    refresh_in_turn(state, client, trigger, permit).await
}

/// The background refresher's refresh of a client whose lease it claimed with a batch
/// (`refresh_queue::claim_due`). `interrupted`: the claim found an earlier holder's
/// refresh mark.
pub(crate) async fn refresh_claimed(
    state: &AppState,
    client: &Client,
    interrupted: bool,
) -> Result<FreshToken, TokenError> {
    // While the provider is down the claim is deferred like any refresh, and its lease
    // given back, so a hand-out meanwhile is told when to come back instead of waiting.
    let permit = match state.breakers.permit(&client.provider) {
        Ok(permit) => permit,
        Err(held) => {
            let deferred =
                super::held_back::refresh_held_back(state, client, Trigger::Refresher, held).await;
            release_lease(state, &client.id).await?;
            return deferred;
        }
    };
    // The claim's lease is the turn: no other caller, here or elsewhere, refreshes this
    // client until it is stored or released. This process's single-flight lock is not
    // waited for: a hand-out holding it waits, in turn, for this very lease.
    let stored = load(state, &client.id).await?;
    let id = client.id.clone();
    let interrupted = match interrupted {
        true => {
            crate::db::run(&state.pool, move |conn| {
                super::interrupted::report_own(conn, &id)
            })
            .await?
        }
        false => None,
    };
    let turn = Turn {
        trigger: Trigger::Refresher,
        interrupted,
        permit,
    };
    refresh_with_lease(state, client, stored, turn).await
}

async fn refresh_in_turn(
    state: &AppState,
    client: &Client,
    trigger: Trigger,
    permit: Permit<'_>,
) -> Result<FreshToken, TokenError> {
    let force = trigger.forces();
    let waited_since = Instant::now();
    loop {
        let id = client.id.clone();
        let lease = chrono::TimeDelta::from_std(LEASE).unwrap_or(chrono::TimeDelta::seconds(30));
        let leased = crate::db::run(&state.pool, move |conn| {
            credentials::take_lease(conn, &id, lease)
        })
        .await?;
        // Read only now: another instance may have stored new tokens up to the moment the
        // lease became ours, and with rotation only its refresh token is still valid.
        let stored = load(state, &client.id).await?;
        // Whoever had the turn before us may have refreshed already.
        if !force {
            if let Some(token) = usable(&stored) {
                if leased {
                    release_lease(state, &client.id).await?;
                }
                return Ok(token);
            }
        }
        if leased {
            let id = client.id.clone();
            let interrupted = crate::db::run(&state.pool, move |conn| {
                super::interrupted::report_own(conn, &id)
            })
            .await?;
            let turn = Turn {
                trigger,
                interrupted,
                permit,
            };
            return refresh_with_lease(state, client, stored, turn).await;
        }
        // Another instance is refreshing; wait for its result rather than refresh twice.
        if waited_since.elapsed() > LEASE * 2 {
            return Err(TokenError::Unavailable(
                "another instance holds the refresh".into(),
            ));
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// A refresh whose turn came: what started it, an interrupted earlier one found under the
/// lease, and the breaker's leave to call.
struct Turn<'a> {
    trigger: Trigger,
    interrupted: Option<chrono::NaiveDateTime>,
    permit: Permit<'a>,
}

/// Calls the provider and records the outcome; the lease is released by either write.
async fn refresh_with_lease(
    state: &AppState,
    client: &Client,
    stored: credentials::Opened,
    turn: Turn<'_>,
) -> Result<FreshToken, TokenError> {
    let Turn {
        trigger,
        interrupted,
        permit,
    } = turn;
    let provider = state
        .providers()
        .for_connection(&client.provider, &client.connection_values())
        .map_err(|e| TokenError::Failed(e.to_string()))?;
    let id = client.id.clone();
    crate::db::run(&state.pool, move |conn| {
        credentials::mark_refresh_started(conn, &id)
    })
    .await?;
    let started = Instant::now();
    let answer = call_provider(state, &provider, client, &stored).await;
    let took = started.elapsed();
    state
        .metrics
        .refresh_seconds
        .with_label_values(&[provider.name.as_str()])
        .observe(took.as_secs_f64());
    match permit.settle(availability(&answer)) {
        Change::Opened => state
            .metrics
            .breaker_opened
            .with_label_values(&[provider.name.as_str()])
            .inc(),
        Change::Closed { recovery_spread } => {
            super::held_back::release(state, &provider.name, recovery_spread).await
        }
        Change::Unchanged => {}
    }
    match answer {
        Ok(tokens) => {
            let recovered =
                stored.refresh_failures > 0 || client.status != clients::ClientStatus::Active;
            let attempt = NewAttempt::succeeded(trigger, took);
            super::refreshed::store(state, client, &provider, tokens, recovered, attempt).await
        }
        Err(error) => {
            let failure = Failure { error, interrupted };
            let attempt = (trigger, took);
            Err(record_failure(state, client, &provider, &stored, failure, attempt).await?)
        }
    }
}

/// What the answer says about the provider being up, for its breaker.
fn availability<T>(answer: &Result<T, CallError>) -> Outcome {
    match answer {
        Ok(_) | Err(CallError::Rejected { .. }) => Outcome::Answered,
        Err(error) if error.is_rate_limited() => Outcome::Unknown,
        Err(CallError::Transient { .. }) => Outcome::Unavailable,
        Err(CallError::InvalidResponse(_)) => Outcome::Unknown,
    }
}

async fn call_provider(
    state: &AppState,
    provider: &Provider,
    client: &Client,
    stored: &credentials::Opened,
) -> Result<TokenSet, CallError> {
    let app = provider.app.as_ref().ok_or_else(|| {
        CallError::InvalidResponse(format!("{} OAuth not configured", provider.display_name))
    })?;
    if client.auth_type == AuthType::ClientCredentials {
        return token_client::client_credentials(state.http(), &state.retry, provider, app).await;
    }
    let refresh_token = stored
        .refresh_token
        .as_ref()
        .ok_or_else(|| CallError::Rejected {
            status: 400,
            code: "invalid_grant".into(),
            description: Some("no refresh token was issued".into()),
        })?;
    token_client::refresh(state.http(), &state.retry, provider, app, refresh_token).await
}

/// A failed refresh call, and when an earlier refresh of the same client was interrupted
/// (found under this lease), which explains an `invalid_grant` after a crash.
struct Failure {
    error: CallError,
    interrupted: Option<chrono::NaiveDateTime>,
}

/// Records a failed refresh: invalid_grant means the grant is gone (reconnect needed);
/// transient failures are retried later with backoff.
async fn record_failure(
    state: &AppState,
    client: &Client,
    provider: &Provider,
    stored: &credentials::Opened,
    failure: Failure,
    (trigger, took): (Trigger, Duration),
) -> Result<TokenError, DbError> {
    let error = failure.error;
    let delay = retry_delay(state, &error, stored.refresh_failures);
    let (outcome, status, reason, token_error) = match &error {
        CallError::Rejected { code, .. } if code == "invalid_grant" => (
            "invalid_grant",
            Some(clients::ClientStatus::NeedsReauth),
            match (failure.interrupted, super::interrupted::was_noted(client)) {
                (Some(started), _) => format!(
                    "{error}; a refresh started at {} UTC was interrupted by a stop and had \
                     probably rotated the refresh token",
                    started.format("%Y-%m-%d %H:%M:%S")
                ),
                (None, true) => format!(
                    "{error}; an earlier refresh was interrupted by a stop and had probably \
                     rotated the refresh token"
                ),
                (None, false) => error.to_string(),
            },
            TokenError::NeedsReauth(code.clone()),
        ),
        CallError::Transient { reason, .. } => {
            let expired = stored.expires_at.is_some_and(|at| at <= crate::db::now());
            (
                "transient",
                expired.then_some(clients::ClientStatus::Error),
                format!("provider unavailable: {reason}"),
                TokenError::ProviderDown {
                    provider: client.provider.clone(),
                    reason: reason.clone(),
                    retry_after_secs: delay.num_seconds().max(1) as u64,
                },
            )
        }
        other => (
            "rejected",
            Some(clients::ClientStatus::Error),
            other.to_string(),
            TokenError::Failed(other.to_string()),
        ),
    };
    let attempt = NewAttempt::failed(trigger, outcome, took, &error);
    let id = client.id.clone();
    let current_status = client.status;
    let retry_after = (outcome != "invalid_grant").then(|| crate::db::now() + delay);
    let event = Event::new(Actor::system(), "token_refresh_failed")
        .target("client", client.id.clone())
        .failed()
        .details(json!({"provider": provider.name, "reason": reason}));
    let (event_type, failed_client) = if outcome == "invalid_grant" {
        (EventType::ConnectionNeedsReauth, client.clone())
    } else {
        (EventType::ConnectionRefreshFailed, client.clone())
    };
    let streak = stored.refresh_failures + 1;
    crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            credentials::record_failure(conn, &id, retry_after)?;
            refresh_history::record(conn, &id, &attempt)?;
            // The status changes only when the token can no longer be used; the reason is
            // always kept for the client's page.
            let new_status = status.unwrap_or(current_status);
            clients::set_status(conn, &id, new_status, Some(&reason))?;
            audit::append(conn, event)?;
            let details =
                json!({"reason": reason, "failures": streak, "status": new_status.as_str()});
            webhooks::connection(conn, event_type, &failed_client, details)?;
            alert_when_rate_crossed(conn)
        })
    })
    .await?;
    state
        .metrics
        .refreshes
        .with_label_values(&[provider.name.as_str(), outcome])
        .inc();
    state.tokens.forget(&client.id);
    tracing::warn!(client_id = %client.id, provider = %provider.name, outcome, "token refresh failed");
    Ok(token_error)
}

/// How long a client waits before its next refresh after a failure (`provider_health`):
/// growing with the streak, jittered, at most `REFRESH_BACKOFF_MAX` while the provider is
/// unavailable (it will be back) and a day when it refused (someone must fix something);
/// never sooner than a Retry-After it sent.
fn retry_delay(state: &AppState, error: &CallError, failures: i32) -> chrono::TimeDelta {
    let settings = state.breakers.settings();
    let (cap, asked) = match error {
        CallError::Transient { retry_after, .. } => (settings.backoff_max, *retry_after),
        _ => (Duration::from_secs(86_400), None),
    };
    let wait = provider_health::backoff(failures, settings.backoff_base, cap)
        .max(asked.unwrap_or_default().min(cap));
    chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::minutes(5))
}

/// The provider refused a credential connecthub had just handed it (HTTP 401 from its API):
/// the grant or the key was revoked, so the client needs reconnecting. The list and the
/// client's page show it, the audit log records it, and services get `needs_reauth` at once
/// instead of a cached token.
pub async fn credential_rejected(
    state: &AppState,
    client: &Client,
    endpoint: &str,
) -> Result<(), DbError> {
    let id = client.id.clone();
    let reason = format!("the provider refused the credential (HTTP 401) on {endpoint}");
    let event = Event::new(Actor::system(), "credential_rejected")
        .target("client", client.id.clone())
        .failed()
        .details(json!({"provider": client.provider, "endpoint": endpoint}));
    let rejected = client.clone();
    crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            clients::set_status(conn, &id, clients::ClientStatus::NeedsReauth, Some(&reason))?;
            audit::append(conn, event)?;
            let details = json!({"reason": reason, "status": "needs_reauth"});
            webhooks::connection(conn, EventType::ConnectionNeedsReauth, &rejected, details)
                .map(|_| ())
        })
    })
    .await?;
    state.tokens.forget(&client.id);
    tracing::warn!(client_id = %client.id, provider = %client.provider, endpoint, "credential rejected by the provider");
    Ok(())
}

/// The alert from requirement 004: more than 5 % of refreshes failed in the last five
/// minutes. Counted from the audit log, so it covers every instance.
pub async fn refresh_alert(state: &AppState) -> Result<Option<String>, DbError> {
    let Some((failed, total)) = crate::db::run(&state.pool, failure_rate_alert).await? else {
        return Ok(None);
    };
    Ok(Some(format!(
        "{failed} of {total} token refreshes failed in the last 5 minutes ({}%). Check the clients marked Reconnect needed or Error.",
        failed * 100 / total
    )))
}

/// (failed, total) refreshes of the last five minutes when more than 5 % failed.
fn failure_rate_alert(
    conn: &mut crate::db::DbConnection,
) -> diesel::QueryResult<Option<(i64, i64)>> {
    let since = crate::db::now() - ALERT_WINDOW;
    let actions = ["token_refreshed", "token_refresh_failed"];
    let [ok, failed] = audit::count_since(conn, &audit::Scope::All, actions, since)?;
    let total = ok + failed;
    Ok((total > 0 && failed * 100 > total * 5).then_some((failed, total)))
}

const ALERT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Inside a failed refresh's transaction: emits `alert.refresh_failure_rate` when the rate
/// is above 5 % and no such alert went out in the last five minutes.
fn alert_when_rate_crossed(conn: &mut crate::db::DbConnection) -> diesel::QueryResult<()> {
    let Some((failed, total)) = failure_rate_alert(conn)? else {
        return Ok(());
    };
    let since = crate::db::now() - ALERT_WINDOW;
    if webhooks::emitted_since(conn, EventType::AlertRefreshFailureRate, since)? {
        return Ok(());
    }
    let data = json!({"failed": failed, "total": total, "percent": failed * 100 / total, "window_minutes": 5});
    webhooks::emit(conn, EventType::AlertRefreshFailureRate, data).map(|_| ())
}
