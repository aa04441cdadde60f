//! Why a token could not be handed out or refreshed.

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the client has no stored credentials")]
    Missing,
    #[error("the client was disconnected")]
    Disconnected,
    #[error("the provider refused the refresh ({0}); reconnect the account")]
    NeedsReauth(String),
    #[error("the provider did not answer ({0})")]
    Unavailable(String),
    /// The provider is unavailable and the client's next refresh waits: its backoff after
    /// this failure, or the provider's breaker is open (`provider_health`, no call made).
    #[error("{provider} is unavailable ({reason}); try again in {retry_after_secs} s")]
    ProviderDown {
        provider: String,
        reason: String,
        retry_after_secs: u64,
    },
    #[error("the provider refused the refresh ({0})")]
    Failed(String),
    #[error(transparent)]
    Storage(#[from] DbError),
}

crate::from_run_error!(TokenError, Storage);
