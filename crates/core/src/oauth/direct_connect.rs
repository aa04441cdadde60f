//! Connections made without a consent page: an API key or a Basic pair the person types
//! in (checked against the provider before anything is stored), and the client-credentials
//! grant of machine-to-machine providers.

use super::flow::{entered_values, read_account, save, ConnectError, Stored};
use super::holder::Holder;
use super::key_input::KeyInput;
use super::{profile, token_client};
use crate::audit::{self, Origin};
use crate::auth::users::User;
use crate::clients::Client;
use crate::provider_http::CallError;
use crate::providers::connection_config::Entered;
use crate::providers::{AuthType, ConnectionValues, Provider};
use crate::state::AppState;
use serde_json::json;

/// Connects with an API key (or a Basic pair) and the connection's settings: it is checked
/// against the provider, placed as the provider says, before anything is stored.
pub async fn connect_api_key(
    state: &AppState,
    holder: &Holder,
    provider: &Provider,
    entered: &Entered,
    input: KeyInput,
    origin: &Origin,
) -> Result<Client, ConnectError> {
    let Some(check_path) = &provider.api_key_check_path else {
        return Err(ConnectError::Invalid(format!(
            "{} does not accept API keys",
            provider.display_name
        )));
    };
    let api_key = input.check(provider).map_err(ConnectError::Invalid)?;
    let values = &entered_values(provider, entered)?;
    let provider = &provider
        .for_connection(values)
        .map_err(|e| ConnectError::Invalid(e.to_string()))?;
    let reader = profile::Reader::for_key(state.http(), &state.retry, provider, &api_key);
    let checked = reader.get(check_path).await;
    if let Err(error) = checked {
        let reason = match error {
            CallError::Rejected {
                status: 401 | 403, ..
            } => ConnectError::Provider {
                provider: provider.display_name.clone(),
                reason: match provider.key_auth_type() {
                    AuthType::Basic => "the user name or password was rejected".into(),
                    _ => "the API key was rejected".into(),
                },
            },
            other => ConnectError::from_call(provider, "checking the key", other),
        };
        return Err(reason);
    }
    let profile = read_account(reader).await?;
    let (client, created) = save(
        state,
        holder,
        provider,
        provider.key_auth_type(),
        &profile,
        Stored::ApiKey(&api_key),
        values,
    )
    .await?;
    let event = holder
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
    // No form asks for settings here: only the deployment-wide defaults apply.
    let values = ConnectionValues::default();
    let provider = &provider
        .for_connection(&values)
        .map_err(|e| ConnectError::Invalid(e.to_string()))?;
    let tokens = token_client::client_credentials(state.http(), &state.retry, provider, app)
        .await
        .map_err(|e| ConnectError::from_call(provider, "the client-credentials grant", e))?;
    let reader = profile::Reader::new(state.http(), &state.retry, provider, &tokens.access_token);
    let profile = read_account(reader).await?;
    let (client, _) = save(
        state,
        &Holder::of(user),
        provider,
        AuthType::ClientCredentials,
        &profile,
        Stored::Tokens(&tokens),
        &values,
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
