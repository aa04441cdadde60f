//! "Add from the catalogue": the catalogue entries no provider is named after yet, and
//! adding one as if its text were pasted (`add_from_toml`: checked, stored, audited).

use super::{add_from_toml, AdminError};
use crate::audit::Actor;
use crate::providers::catalogue::{self, Entry};
use crate::state::AppState;

/// Catalogue entries not among the providers, by name.
pub fn available(state: &AppState) -> Vec<&'static Entry> {
    let registry = state.providers();
    catalogue::list()
        .iter()
        .filter(|entry| registry.find(entry.name).is_none())
        .collect()
}

/// Adds the catalogue entry `name`; answers the provider's name.
pub async fn add(state: &AppState, actor: &Actor, name: &str) -> Result<String, AdminError> {
    let text = catalogue::text(name).ok_or(AdminError::NotFound)?;
    add_from_toml(state, actor, text).await
}
