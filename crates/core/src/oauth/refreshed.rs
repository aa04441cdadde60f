//! Storing a good refresh: the new tokens and everything that records them (the client's
//! status and scopes, its refresh history, the audit log, a `connection.recovered` event)
//! in one commit.

use super::refresh_history::{self, NewAttempt};
use super::schedule::{self, margin};
use super::token_cache::FreshToken;
use super::token_client::TokenSet;
use super::token_error::TokenError;
use crate::audit::{self, Actor, Event};
use crate::clients::{self, credentials, Client};
use crate::db::DbConnection;
use crate::providers::Provider;
use crate::state::AppState;
use crate::vault::Vault;
use crate::webhooks::{self, EventType};
use secrecy::SecretString;
use serde_json::json;

/// Stores the tokens a refresh of `client` brought and records the refresh; answers the
/// token to hand out.
pub(super) async fn store(
    state: &AppState,
    client: &Client,
    provider: &Provider,
    tokens: TokenSet,
    recovered: bool,
    attempt: NewAttempt,
) -> Result<FreshToken, TokenError> {
    let lifetime = schedule::lifetime(crate::db::now(), tokens.expires_in, margin(state));
    let handed_out = tokens.access_token.clone();
    let rotated = tokens.refresh_token.is_some();
    let event = Event::new(Actor::system(), "token_refreshed")
        .target("client", client.id.clone())
        .details(json!({"provider": provider.name, "rotated": rotated}));
    let recovering = recovered.then(|| client.clone());
    // A provider may grant less on a refresh than before: keep what it says now.
    let granted = tokens
        .scope
        .as_deref()
        .map(|raw| super::token_answer::granted_scopes(raw, &provider.scope_separator));
    // The new tokens and their bookkeeping in one commit: a stop between two commits left
    // a fresh token with no refresh in its history, its status and its audit entry. With
    // rotation the old refresh token is already dead at the provider, so should the
    // bookkeeping fail, the tokens are still stored on their own: the grant is what
    // matters (the audit chain stays valid without the entry).
    let refreshed = Refreshed {
        id: client.id.clone(),
        access: tokens.access_token,
        refresh: tokens.refresh_token,
        lifetime,
    };
    let bookkeeping = Bookkeeping {
        granted,
        attempt,
        event,
        recovering,
    };
    let vault = state.vault.clone();
    let together = refreshed.clone();
    let stored = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            together.store(conn, &vault)?;
            bookkeeping.write(conn, &together.id)
        })
    })
    .await;
    if let Err(error) = stored {
        tracing::error!(client_id = %client.id, %error, "refresh bookkeeping failed; storing the new tokens alone");
        let vault = state.vault.clone();
        crate::db::run(&state.pool, move |conn| refreshed.store(conn, &vault)).await?;
    }
    state
        .metrics
        .refreshes
        .with_label_values(&[provider.name.as_str(), "success"])
        .inc();
    state.tokens.schedule_changed.notify_one();
    state.tokens.forget(&client.id);
    Ok(FreshToken::Bearer {
        token: handed_out,
        expires_at: lifetime.expires_at,
        refresh_at: lifetime.refresh_at,
    })
}

/// The tokens a refresh brought, ready to be sealed and stored.
#[derive(Clone)]
struct Refreshed {
    id: String,
    access: SecretString,
    refresh: Option<SecretString>,
    lifetime: schedule::Lifetime,
}

impl Refreshed {
    fn store(&self, conn: &mut DbConnection, vault: &Vault) -> anyhow::Result<()> {
        credentials::store_refreshed(
            conn,
            vault,
            &self.id,
            &self.access,
            self.refresh.as_ref(),
            self.lifetime.expires_at,
            self.lifetime.refresh_at,
        )
    }
}

/// What a good refresh changes besides the tokens: the client's status and scopes, its
/// refresh history, the audit log and, after an outage, a `connection.recovered` event.
struct Bookkeeping {
    granted: Option<String>,
    attempt: NewAttempt,
    event: Event,
    recovering: Option<Client>,
}

impl Bookkeeping {
    fn write(self, conn: &mut DbConnection, id: &str) -> anyhow::Result<()> {
        clients::mark_refreshed(conn, id)?;
        if let Some(scopes) = &self.granted {
            clients::set_scopes(conn, id, scopes)?;
        }
        refresh_history::record(conn, id, &self.attempt)?;
        audit::append(conn, self.event)?;
        if let Some(client) = &self.recovering {
            webhooks::connection(conn, EventType::ConnectionRecovered, client, json!({}))?;
        }
        Ok(())
    }
}
