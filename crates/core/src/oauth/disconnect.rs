//! Disconnecting a client: revoke at the provider (RFC 7009) where it can, then destroy
//! the stored secrets whatever the provider said.

use super::token_client;
use crate::audit::{self, Actor, Event, Origin};
use crate::clients::{self, credentials, Client};
use crate::db::DbError;
use crate::state::AppState;
use crate::webhooks::{self, EventType};
use serde_json::json;

/// What happened at the provider.
pub enum Revocation {
    Done,
    /// The provider has no revocation endpoint (or the client is an API key).
    NotSupported,
    Failed(String),
}

pub async fn disconnect(
    state: &AppState,
    actor: Actor,
    client: &Client,
    origin: &Origin,
) -> Result<Revocation, DbError> {
    let vault = state.vault.clone();
    let id = client.id.clone();
    let stored = crate::db::run(&state.pool, move |conn| {
        credentials::open(conn, &vault, &id)
    })
    .await?;
    let provider = state
        .providers()
        .for_connection(&client.provider, &client.connection_values());
    let revocation = match (provider, stored) {
        (Ok(provider), Some(stored)) if provider.revoke_url.is_some() && provider.app.is_some() => {
            let app = provider.app.as_ref().expect("checked above");
            // The refresh token first: revoking it ends the grant at most providers.
            let mut failure = None;
            for (token, hint) in [
                (stored.refresh_token, "refresh_token"),
                (stored.access_token, "access_token"),
            ] {
                if let Some(token) = token {
                    if let Err(e) = token_client::revoke(
                        state.http(),
                        &state.retry,
                        &provider,
                        app,
                        &token,
                        hint,
                    )
                    .await
                    {
                        failure = Some(e.to_string());
                    }
                }
            }
            failure.map_or(Revocation::Done, Revocation::Failed)
        }
        _ => Revocation::NotSupported,
    };
    let (revoked, reason) = match &revocation {
        Revocation::Done => (Some(true), None),
        Revocation::NotSupported => (None, None),
        Revocation::Failed(reason) => (Some(false), Some(reason.clone())),
    };
    let mut event = Event::new(actor, "client_disconnected")
        .target("client", client.id.clone())
        .origin(origin)
        .details(json!({"provider": client.provider, "revoked_at_provider": revoked, "revoke_error": reason}));
    if matches!(revocation, Revocation::Failed(_)) {
        event = event.failed();
    }
    let id = client.id.clone();
    let gone = client.clone();
    crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            credentials::destroy(conn, &id)?;
            clients::mark_disconnected(conn, &id)?;
            // Synced records go with the connection (the confirm dialog says so).
            crate::syncs::forget_client(conn, &id)?;
            webhooks::connection(
                conn,
                EventType::ConnectionDisconnected,
                &gone,
                json!({"revoked_at_provider": revoked}),
            )?;
            audit::append(conn, event)
        })
    })
    .await?;
    state.tokens.forget(&client.id);
    Ok(revocation)
}
