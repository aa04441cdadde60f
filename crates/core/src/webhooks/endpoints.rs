//! The webhook endpoints repository. Signing secrets are Standard Webhooks secrets
//! (`whsec_` + base64 of 24 random bytes), sealed with the vault and bound to their row
//! and field; the full secret is shown once, when it is made.

use super::EventType;
use crate::db::schema::webhook_endpoints;
use crate::db::DbConnection;
use crate::vault::{Binding, Vault};
use base64::Engine as _;
use diesel::prelude::*;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

pub const SECRET_PREFIX: &str = "whsec_";
const TABLE: &str = "webhook_endpoints";

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = webhook_endpoints)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    #[serde(skip)]
    pub event_types: String,
    pub enabled: bool,
    pub previous_secret_until: Option<chrono::NaiveDateTime>,
    pub failing_since: Option<chrono::NaiveDateTime>,
    pub disabled_reason: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

impl Endpoint {
    /// The subscribed types; empty means every type.
    pub fn type_list(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }

    pub fn wants(&self, event_type: EventType) -> bool {
        let types = self.type_list();
        types.is_empty() || types.iter().any(|t| t == event_type.as_str())
    }
}

/// What an endpoint is made of, once parsed (see `manage`).
pub struct Settings {
    pub url: String,
    pub description: String,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
}

fn types_json(types: &[EventType]) -> String {
    serde_json::to_string(&types.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

/// A new random signing secret.
pub fn new_secret() -> SecretString {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    SecretString::from(format!("{SECRET_PREFIX}{encoded}"))
}

fn binding<'a>(id: &'a str, field: &'a str) -> Binding<'a> {
    Binding {
        table: TABLE,
        row: id,
        field,
    }
}

/// Stores a new endpoint; answers it with its secret (to be shown once).
pub fn create(
    conn: &mut DbConnection,
    vault: &Vault,
    settings: &Settings,
) -> anyhow::Result<(Endpoint, SecretString)> {
    let id = uuid::Uuid::new_v4().to_string();
    let secret = new_secret();
    let sealed = vault.seal(&secret, &binding(&id, "secret"))?;
    let now = crate::db::now();
    diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::id.eq(&id),
            webhook_endpoints::url.eq(&settings.url),
            webhook_endpoints::description.eq(&settings.description),
            webhook_endpoints::event_types.eq(types_json(&settings.event_types)),
            webhook_endpoints::enabled.eq(settings.enabled),
            webhook_endpoints::key_id.eq(vault.current_key_id()),
            webhook_endpoints::secret.eq(sealed),
            webhook_endpoints::created_at.eq(now),
            webhook_endpoints::updated_at.eq(now),
        ))
        .execute(conn)?;
    let endpoint = find(conn, &id)?.ok_or_else(|| anyhow::anyhow!("endpoint vanished"))?;
    Ok((endpoint, secret))
}

/// Changes URL, description, types and enabled; enabling clears the disabled reason and
/// the failure streak.
pub fn update(conn: &mut DbConnection, id: &str, settings: &Settings) -> QueryResult<bool> {
    if names_nothing(id) {
        return Ok(false);
    }
    let changed = diesel::update(webhook_endpoints::table.find(id))
        .set((
            webhook_endpoints::url.eq(&settings.url),
            webhook_endpoints::description.eq(&settings.description),
            webhook_endpoints::event_types.eq(types_json(&settings.event_types)),
            webhook_endpoints::enabled.eq(settings.enabled),
            webhook_endpoints::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    if settings.enabled {
        diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::disabled_reason.eq(None::<String>),
                webhook_endpoints::failing_since.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(conn)?;
    }
    Ok(changed == 1)
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Endpoint>> {
    webhook_endpoints::table
        .order(webhook_endpoints::created_at.asc())
        .select(Endpoint::as_select())
        .load(conn)
}

/// Ids are UUIDs: anything else names nothing (and a NUL would make PostgreSQL fail), so
/// every lookup by id checks first.
fn names_nothing(id: &str) -> bool {
    crate::input::RecordId::parse(id).is_err()
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Endpoint>> {
    if names_nothing(id) {
        return Ok(None);
    }
    webhook_endpoints::table
        .find(id)
        .select(Endpoint::as_select())
        .first(conn)
        .optional()
}

pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    if names_nothing(id) {
        return Ok(false);
    }
    Ok(diesel::delete(webhook_endpoints::table.find(id)).execute(conn)? == 1)
}

/// The enabled endpoints that want this type.
pub fn subscribed(conn: &mut DbConnection, event_type: EventType) -> QueryResult<Vec<String>> {
    let enabled: Vec<Endpoint> = webhook_endpoints::table
        .filter(webhook_endpoints::enabled.eq(true))
        .order(webhook_endpoints::created_at.asc())
        .select(Endpoint::as_select())
        .load(conn)?;
    Ok(enabled
        .into_iter()
        .filter(|e| e.wants(event_type))
        .map(|e| e.id)
        .collect())
}

/// A new secret; the current one keeps signing beside it until `overlap` has passed.
pub fn rotate(
    conn: &mut DbConnection,
    vault: &Vault,
    id: &str,
    overlap: chrono::TimeDelta,
) -> anyhow::Result<Option<SecretString>> {
    if names_nothing(id) {
        return Ok(None);
    }
    let Some((sealed, _, _)) = sealed_secrets(conn, id)? else {
        return Ok(None);
    };
    let current = vault.open(&sealed, &binding(id, "secret"))?;
    let secret = new_secret();
    diesel::update(webhook_endpoints::table.find(id))
        .set((
            webhook_endpoints::secret.eq(vault.seal(&secret, &binding(id, "secret"))?),
            webhook_endpoints::previous_secret
                .eq(vault.seal(&current, &binding(id, "previous_secret"))?),
            webhook_endpoints::previous_secret_until.eq(crate::db::now() + overlap),
            webhook_endpoints::key_id.eq(vault.current_key_id()),
            webhook_endpoints::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(Some(secret))
}

type Sealed = (String, Option<String>, Option<chrono::NaiveDateTime>);

fn sealed_secrets(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Sealed>> {
    if names_nothing(id) {
        return Ok(None);
    }
    webhook_endpoints::table
        .find(id)
        .select((
            webhook_endpoints::secret,
            webhook_endpoints::previous_secret,
            webhook_endpoints::previous_secret_until,
        ))
        .first(conn)
        .optional()
}

/// The secrets that sign a delivery now: the current one, and the previous one during
/// the rotation overlap.
pub fn signing_secrets(
    conn: &mut DbConnection,
    vault: &Vault,
    id: &str,
) -> anyhow::Result<Vec<SecretString>> {
    let Some((current, previous, until)) = sealed_secrets(conn, id)? else {
        return Ok(Vec::new());
    };
    let mut secrets = vec![vault.open(&current, &binding(id, "secret"))?];
    if let (Some(previous), Some(until)) = (previous, until) {
        if until > crate::db::now() {
            secrets.push(vault.open(&previous, &binding(id, "previous_secret"))?);
        }
    }
    Ok(secrets)
}

/// After an attempt: success ends a failure streak; a failure starts one, and a streak
/// longer than `disable_after` disables the endpoint with the reason. Answers whether
/// the endpoint was disabled now.
pub fn record_outcome(
    conn: &mut DbConnection,
    id: &str,
    succeeded: bool,
    disable_after: chrono::TimeDelta,
) -> QueryResult<bool> {
    let now = crate::db::now();
    let target = webhook_endpoints::table.find(id);
    if succeeded {
        diesel::update(target)
            .filter(webhook_endpoints::failing_since.is_not_null())
            .set(webhook_endpoints::failing_since.eq(None::<chrono::NaiveDateTime>))
            .execute(conn)?;
        return Ok(false);
    }
    diesel::update(target)
        .filter(webhook_endpoints::failing_since.is_null())
        .set(webhook_endpoints::failing_since.eq(now))
        .execute(conn)?;
    let since: Option<Option<chrono::NaiveDateTime>> = target
        .select(webhook_endpoints::failing_since)
        .first(conn)
        .optional()?;
    match since.flatten() {
        Some(since) if since <= now - disable_after => {
            let reason = format!(
                "disabled on {}: every delivery has failed since {}",
                now.format("%Y-%m-%d %H:%M UTC"),
                since.format("%Y-%m-%d %H:%M UTC")
            );
            disable(conn, id, &reason)
        }
        _ => Ok(false),
    }
}

/// Disables the endpoint with the reason an admin sees.
pub fn disable(conn: &mut DbConnection, id: &str, reason: &str) -> QueryResult<bool> {
    let changed = diesel::update(webhook_endpoints::table.find(id))
        .filter(webhook_endpoints::enabled.eq(true))
        .set((
            webhook_endpoints::enabled.eq(false),
            webhook_endpoints::disabled_reason.eq(reason),
            webhook_endpoints::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// The secret as text, for the one answer that shows it.
pub fn reveal(secret: &SecretString) -> &str {
    secret.expose_secret()
}

/// Re-seals the secrets of every endpoint not yet under the current key (`key rotate`);
/// answers how many endpoints changed. A row changed meanwhile is left for the next run.
pub fn rotate_key(conn: &mut DbConnection, vault: &Vault) -> anyhow::Result<usize> {
    let stale: Vec<(String, String, String, Option<String>)> = webhook_endpoints::table
        .filter(webhook_endpoints::key_id.ne(vault.current_key_id()))
        .select((
            webhook_endpoints::id,
            webhook_endpoints::key_id,
            webhook_endpoints::secret,
            webhook_endpoints::previous_secret,
        ))
        .load(conn)?;
    let mut rotated = 0;
    for (id, key_id, secret, previous) in stale {
        let secret = vault.reseal(&secret, &binding(&id, "secret"))?;
        let previous = previous
            .map(|p| vault.reseal(&p, &binding(&id, "previous_secret")))
            .transpose()?;
        rotated += diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(&id))
                .filter(webhook_endpoints::key_id.eq(&key_id)),
        )
        .set((
            webhook_endpoints::key_id.eq(vault.current_key_id()),
            webhook_endpoints::secret.eq(secret),
            webhook_endpoints::previous_secret.eq(previous),
        ))
        .execute(conn)?;
    }
    Ok(rotated)
}
