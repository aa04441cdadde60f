//! A client's stored credentials, opened, for handing out or refreshing its token, and
//! giving back a refresh lease that was not used.

use super::token_error::TokenError;
use crate::clients::credentials;
use crate::state::AppState;

/// The client's credentials, opened; `Missing` when it has none.
pub(super) async fn load(
    state: &AppState,
    client_id: &str,
) -> Result<credentials::Opened, TokenError> {
    let vault = state.vault.clone();
    let id = client_id.to_string();
    crate::db::run(&state.pool, move |conn| {
        credentials::open(conn, &vault, &id)
    })
    .await?
    .ok_or(TokenError::Missing)
}

/// Gives back a client's refresh lease that was not needed after all (the tokens were
/// fresh, the provider is held back, or the refresher did not start the claim).
pub(super) async fn release_lease(state: &AppState, client_id: &str) -> Result<(), TokenError> {
    let id = client_id.to_string();
    crate::db::run(&state.pool, move |conn| {
        credentials::release_lease(conn, &id)
    })
    .await?;
    Ok(())
}
