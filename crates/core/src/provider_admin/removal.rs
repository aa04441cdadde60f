//! Removing a provider that was added on `/admin/providers` (pasted or from the catalogue),
//! with its stored settings. Only while none of its connections is left, so no token loses
//! its provider; disconnected ones stay for their history. Built-in providers and those of
//! `PROVIDERS_FILE` cannot be removed here: disabling them is what the page offers.

use super::{details, event, invalid, reload, store, AdminError};
use crate::audit::{self, Actor};
use crate::state::AppState;

enum Outcome {
    Removed,
    NotAdded,
    InUse(i64),
}

/// Removes the provider `name` and everything stored for it on the page.
pub async fn remove(state: &AppState, actor: &Actor, name: &str) -> Result<(), AdminError> {
    let current = details(state, name).await?;
    let (name, actor) = (current.name.clone(), actor.clone());
    let outcome = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let added = store::find(conn, &name)?.is_some_and(|row| row.definition.is_some());
            if !added {
                return Ok(Outcome::NotAdded);
            }
            let connected = crate::clients::count_connected(conn, &name)?;
            if connected > 0 {
                return Ok(Outcome::InUse(connected));
            }
            store::delete(conn, &name)?;
            audit::append(conn, event(&actor, "provider_removed", &name))?;
            Ok::<_, diesel::result::Error>(Outcome::Removed)
        })
    })
    .await?;
    let display = &current.display_name;
    match outcome {
        Outcome::Removed => Ok(reload(state).await?),
        Outcome::NotAdded => invalid(format!(
            "{display} was not added on this page ({}): it cannot be removed here; disable it instead.",
            current.origin
        )),
        Outcome::InUse(count) => invalid(format!(
            "{display} still has {count} connection{}: disconnect {} first.",
            if count == 1 { "" } else { "s" },
            if count == 1 { "it" } else { "them" },
        )),
    }
}
