//! A refresh the provider's breaker held back (`provider_health`): no call is made. The
//! client is deferred until the provider may be asked again, each at a moment of its own
//! within the breaker's cool-down after that (so the deferred ones neither fill every
//! refresher pass nor come back all at once); a hand-out gets the stored token while it
//! still works, anything else a clear "unavailable, try again in N s". When the breaker
//! closes, `release` brings them all back within a short window.

use super::refresh_history::Trigger;
use super::stored::load;
use super::token_cache::FreshToken;
use super::token_error::TokenError;
use crate::clients::{self, credentials, Client, ClientStatus};
use crate::provider_health::{self, HeldBack};
use crate::state::AppState;

pub(super) async fn refresh_held_back(
    state: &AppState,
    client: &Client,
    trigger: Trigger,
    held: HeldBack,
) -> Result<FreshToken, TokenError> {
    let stored = load(state, &client.id).await?;
    let now = crate::db::now();
    let wait = held.retry_in + provider_health::spread(held.spread);
    let until = now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::minutes(5));
    let expired = stored.expires_at.is_some_and(|at| at <= now);
    // Like a failed refresh: the status changes only once the token no longer works.
    let failing = (expired && client.status == ClientStatus::Active).then(|| {
        format!(
            "provider unavailable: refreshes are held back while {} is failing (next try after {} UTC)",
            client.provider,
            until.format("%Y-%m-%d %H:%M:%S")
        )
    });
    let id = client.id.clone();
    crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            credentials::defer(conn, &id, until)?;
            if let Some(reason) = &failing {
                clients::set_status(conn, &id, ClientStatus::Error, Some(reason))?;
            }
            Ok::<_, diesel::result::Error>(())
        })
    })
    .await?;
    state
        .metrics
        .refreshes_held_back
        .with_label_values(&[client.provider.as_str()])
        .inc();
    state.tokens.forget(&client.id);
    match (&stored.access_token, trigger.forces() || expired) {
        (Some(token), false) => Ok(FreshToken::Bearer {
            token: token.clone(),
            expires_at: stored.expires_at,
            refresh_at: stored.refresh_at,
        }),
        _ => Err(TokenError::ProviderDown {
            provider: client.provider.clone(),
            reason: "refreshes are held back while it keeps failing".into(),
            // Whole seconds, at least one: a Retry-After of 0 would invite a loop.
            retry_after_secs: held.retry_in.as_secs().max(1),
        }),
    }
}

/// The provider answers again (its breaker closed): every connection of it that waits —
/// deferred here, or backing off after failed refreshes — falls due within `spread`, in
/// one bulk update, and the refresher is woken to take them at its bounded pace.
pub(super) async fn release(state: &AppState, provider: &str, spread: std::time::Duration) {
    let name = provider.to_string();
    let released = crate::db::run(&state.pool, move |conn| {
        credentials::release_waits(conn, &name, crate::db::now(), spread)
    })
    .await;
    match released {
        Ok(count) => {
            tracing::info!(
                provider,
                count,
                spread_ms = spread.as_millis() as u64,
                "held-back refreshes fall due again"
            );
            state.tokens.schedule_changed.notify_one();
        }
        // They come back on their own schedule (a cool-down and a spread) instead.
        Err(e) => tracing::warn!(provider, error = %e, "could not release held-back refreshes"),
    }
}
