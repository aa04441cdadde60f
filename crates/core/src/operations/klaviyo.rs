//! Klaviyo operations: the account, its lists and segments (paged through `links.next`),
//! and reading the account's profile and counts again into the client's record.

use super::{id_of, text, Caller, OpError};
use crate::audit::{self, Actor, Event, Origin};
use crate::clients;
use crate::oauth::profile;
use serde_json::{json, Value};

pub const PROVIDER: &str = "klaviyo";

/// A list or a segment.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Group {
    pub id: String,
    pub name: Option<String>,
    pub created: Option<String>,
    pub updated: Option<String>,
}

/// What a profile refresh stored, and the counts before it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProfileRefreshed {
    pub client_id: String,
    /// The stored profile after the refresh (as the client's page shows it).
    #[schema(value_type = Object)]
    pub profile: Value,
    #[schema(value_type = Object)]
    pub before: Value,
    #[schema(value_type = Object)]
    pub after: Value,
}

/// `GET /api/accounts/`: the account's profile fields (the same ones a connection stores,
/// without the counts).
pub async fn account(caller: &Caller<'_>) -> Result<Value, OpError> {
    let body = caller.get("api/accounts/", "account").await?;
    let account = profile::klaviyo_account(&body)
        .map_err(|e| OpError::Unavailable(format!("Klaviyo's account could not be read: {e}")))?;
    Ok(account.details)
}

/// `GET /api/lists/`, every page.
pub async fn lists(caller: &Caller<'_>) -> Result<Vec<Group>, OpError> {
    groups(caller, "api/lists/", "lists").await
}

/// `GET /api/segments/`, every page.
pub async fn segments(caller: &Caller<'_>) -> Result<Vec<Group>, OpError> {
    groups(caller, "api/segments/", "segments").await
}

async fn groups(
    caller: &Caller<'_>,
    path: &str,
    what: &'static str,
) -> Result<Vec<Group>, OpError> {
    let items = caller.get_all(path, what).await?;
    items
        .iter()
        .map(|item| {
            Ok(Group {
                id: id_of(item, "Klaviyo")?,
                name: text(item, "/attributes/name"),
                created: text(item, "/attributes/created"),
                updated: text(item, "/attributes/updated"),
            })
        })
        .collect()
}

/// The counts a profile refresh may change.
fn counts(profile: &Value) -> Value {
    json!({
        "lists_count": profile.get("lists_count").cloned().unwrap_or(Value::Null),
        "segments_count": profile.get("segments_count").cloned().unwrap_or(Value::Null),
    })
}

/// Reads the account, its lists and its segments again and stores them in the client's
/// profile (fields Klaviyo no longer sends are kept), audited as `actor`'s change.
pub async fn refresh_profile(
    caller: &Caller<'_>,
    actor: Actor,
    origin: Origin,
) -> Result<ProfileRefreshed, OpError> {
    let mut fresh = account(caller).await?;
    fresh["lists_count"] = json!(lists(caller).await?.len());
    fresh["segments_count"] = json!(segments(caller).await?.len());
    let client = caller.client().clone();
    let mut stored = client.profile_value();
    if !stored.is_object() {
        stored = json!({});
    }
    let before = counts(&stored);
    if let (Some(stored), Some(fresh)) = (stored.as_object_mut(), fresh.as_object()) {
        stored.extend(fresh.clone());
    }
    let after = counts(&stored);
    let event = Event::new(actor, "client_profile_refreshed")
        .target("client", client.id.clone())
        .origin(&origin)
        .details(json!({"provider": PROVIDER, "before": before, "after": after}));
    let profile = stored.clone();
    crate::db::run(&caller.state().pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            clients::update_profile(conn, &client, &stored)?;
            audit::append(conn, event)
        })
    })
    .await?;
    // The service API caches the client row with its token.
    caller.state().tokens.forget(&caller.client().id);
    Ok(ProfileRefreshed {
        client_id: caller.client().id.clone(),
        profile,
        before,
        after,
    })
}
