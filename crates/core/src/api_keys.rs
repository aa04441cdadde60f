//! Service API keys: how the team's own backends call `/api/v1`. A key is `chk_` plus 40
//! random characters; only its SHA-256 is stored (a leaked database does not leak usable
//! keys), with the first 12 characters kept so people can tell keys apart. The full key
//! is shown once, when it is created.

use crate::db::schema::api_keys;
use crate::db::DbConnection;
use crate::ip_ranges::IpRanges;
use diesel::prelude::*;
use rand::distributions::{Alphanumeric, DistString};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "chk_";
const RANDOM_LEN: usize = 40;
const KEY_LEN: usize = KEY_PREFIX.len() + RANDOM_LEN;
/// How much of the key is stored in clear, to recognise it in lists.
const SHOWN_LEN: usize = 12;
/// `last_used_at` is refreshed at most this often, so a busy key does not write on every
/// request.
const LAST_USED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
pub const NAME_MAX_CHARS: usize = 80;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    TokensRead,
    ClientsRead,
    Proxy,
    ConnectWrite,
    WebhooksWrite,
    RecordsRead,
    SyncsWrite,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::TokensRead,
        Scope::ClientsRead,
        Scope::Proxy,
        Scope::ConnectWrite,
        Scope::WebhooksWrite,
        Scope::RecordsRead,
        Scope::SyncsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TokensRead => "tokens:read",
            Scope::ClientsRead => "clients:read",
            Scope::Proxy => "proxy",
            Scope::ConnectWrite => "connect:write",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::RecordsRead => "records:read",
            Scope::SyncsWrite => "syncs:write",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == raw)
    }

    /// What the scope allows, as the create form explains it.
    pub fn description(self) -> &'static str {
        match self {
            Scope::TokensRead => "read fresh access tokens of connected clients",
            Scope::ClientsRead => "list connected clients (never their tokens)",
            Scope::Proxy => "call provider APIs through connecthub",
            Scope::ConnectWrite => {
                "create connect sessions for end users and disconnect their connections"
            }
            Scope::WebhooksWrite => "manage webhook endpoints (and see their signing secrets once)",
            Scope::RecordsRead => "read synced records and the state of each sync",
            Scope::SyncsWrite => "start sync runs",
        }
    }
}

/// A stored key, without its hash.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created_by: String,
    pub created_at: chrono::NaiveDateTime,
    pub last_used_at: Option<chrono::NaiveDateTime>,
    pub revoked_at: Option<chrono::NaiveDateTime>,
    /// Address ranges the key may be used from (normalised, space-separated); None: any.
    pub allowed_ips: Option<String>,
}

impl ApiKey {
    /// Whether a request from `peer` may use the key. A key with ranges refuses a request
    /// whose address is unknown; stored ranges that no longer parse refuse everything
    /// (they were checked when stored, so that means the row was edited).
    pub fn allows(&self, peer: Option<std::net::IpAddr>) -> bool {
        let Some(stored) = &self.allowed_ips else {
            return true;
        };
        match (IpRanges::parse_list(stored), peer) {
            (Ok(Some(ranges)), Some(peer)) => ranges.contains(peer),
            _ => false,
        }
    }

    /// The scope strings as stored (unknown ones included, so a list shows what is there).
    pub fn scope_list(&self) -> Vec<&str> {
        self.scopes.split_whitespace().collect()
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.split_whitespace().any(|s| s == scope.as_str())
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A key just made: the only time its secret exists outside the caller's hands.
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: SecretString,
}

/// A fresh key: `chk_` + 40 alphanumeric characters (about 238 bits).
fn generate() -> SecretString {
    let random = Alphanumeric.sample_string(&mut rand::thread_rng(), RANDOM_LEN);
    SecretString::from(format!("{KEY_PREFIX}{random}"))
}

/// The stored form of a key: lowercase SHA-256 hex. A plain hash suffices (no salt or
/// slow hash) because the key is random and long, not a password.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn shown_prefix(key: &str) -> String {
    key.chars().take(SHOWN_LEN).collect()
}

fn join_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Stores a new key usable from anywhere; `name` and `scopes` are expected to be validated.
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    scopes: &[Scope],
    created_by_user_id: &str,
) -> QueryResult<CreatedKey> {
    create_restricted(conn, name, scopes, created_by_user_id, None)
}

/// Stores a new key, usable only from `allowed_ips` when given.
pub fn create_restricted(
    conn: &mut DbConnection,
    name: &str,
    scopes: &[Scope],
    created_by_user_id: &str,
    allowed_ips: Option<&IpRanges>,
) -> QueryResult<CreatedKey> {
    let secret = generate();
    let key = ApiKey {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        prefix: shown_prefix(secret.expose_secret()),
        scopes: join_scopes(scopes),
        created_by: created_by_user_id.to_string(),
        created_at: crate::db::now(),
        last_used_at: None,
        revoked_at: None,
        allowed_ips: allowed_ips.map(IpRanges::to_stored),
    };
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(&key.id),
            api_keys::name.eq(&key.name),
            api_keys::prefix.eq(&key.prefix),
            api_keys::key_hash.eq(hash(secret.expose_secret())),
            api_keys::scopes.eq(&key.scopes),
            api_keys::created_by.eq(&key.created_by),
            api_keys::created_at.eq(key.created_at),
            api_keys::allowed_ips.eq(&key.allowed_ips),
        ))
        .execute(conn)?;
    Ok(CreatedKey { key, secret })
}

/// Every key, newest first.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<ApiKey>> {
    api_keys::table
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .select(ApiKey::as_select())
        .load(conn)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .find(id)
        .select(ApiKey::as_select())
        .first(conn)
        .optional()
}

/// Revokes the key; false when it is unknown or was already revoked (the first revocation
/// time is kept).
pub fn revoke(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let updated = diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(crate::db::now()))
    .execute(conn)?;
    Ok(updated == 1)
}

/// The active key the caller presented, or None. Malformed keys are refused before any
/// query. Records the use at most once per `LAST_USED_RESOLUTION`.
pub fn authenticate(conn: &mut DbConnection, presented: &str) -> QueryResult<Option<ApiKey>> {
    if !presented.starts_with(KEY_PREFIX) || presented.len() != KEY_LEN {
        return Ok(None);
    }
    let found = api_keys::table
        .filter(api_keys::key_hash.eq(hash(presented)))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?;
    let Some(mut key) = found else {
        return Ok(None);
    };
    let now = crate::db::now();
    let cutoff = now - LAST_USED_RESOLUTION;
    if key.last_used_at.is_none_or(|at| at < cutoff) {
        touch(conn, &key.id, now, cutoff)?;
        key.last_used_at = Some(now);
    }
    Ok(Some(key))
}

/// Sets `last_used_at`, unless a concurrent request already did within the resolution.
fn touch(
    conn: &mut DbConnection,
    id: &str,
    now: chrono::NaiveDateTime,
    cutoff: chrono::NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        api_keys::table.filter(api_keys::id.eq(id)).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(cutoff)),
        ),
    )
    .set(api_keys::last_used_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// A create form that passed validation.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyRequest {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// None: the key works from any address.
    pub allowed_ips: Option<IpRanges>,
}

/// Checks the create form: the message says what to fix.
pub fn validate(name: &str, scopes: &[String]) -> Result<KeyRequest, String> {
    Ok(KeyRequest {
        name: validate_name(name)?,
        scopes: parse_scopes(scopes)?,
        allowed_ips: None,
    })
}

/// The create form with its optional address ranges (see `ip_ranges`).
pub fn validate_with_ranges(
    name: &str,
    scopes: &[String],
    allowed_ips: &str,
) -> Result<KeyRequest, String> {
    let mut request = validate(name, scopes)?;
    request.allowed_ips = IpRanges::parse_list(allowed_ips)?;
    Ok(request)
}

/// The name trimmed: 1 to 80 characters, none of them control characters.
pub fn validate_name(raw: &str) -> Result<String, String> {
    let name = crate::input::SingleLine::<NAME_MAX_CHARS>::parse(raw)
        .map_err(|problem| format!("The name {problem}."))?;
    if name.as_str().is_empty() {
        return Err("Enter a name for the key.".into());
    }
    Ok(name.into_string())
}

/// At least one known scope; duplicates are dropped and the order is the canonical one.
pub fn parse_scopes(raw: &[String]) -> Result<Vec<Scope>, String> {
    let mut chosen = Vec::new();
    for value in raw {
        let scope = Scope::parse(value.trim()).ok_or_else(|| unknown_scope(value))?;
        chosen.push(scope);
    }
    let scopes: Vec<Scope> = Scope::ALL
        .into_iter()
        .filter(|s| chosen.contains(s))
        .collect();
    if scopes.is_empty() {
        return Err("Choose at least one scope.".into());
    }
    Ok(scopes)
}

fn unknown_scope(value: &str) -> String {
    let shown: String = value.trim().chars().take(40).collect();
    let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    format!("Unknown scope {shown}: choose from {}.", known.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_format() {
        let key = generate();
        let key = key.expose_secret();
        assert_eq!(key.len(), KEY_LEN);
        assert!(key.starts_with("chk_"));
        assert!(key[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(shown_prefix(key), key[..12]);
        assert_ne!(generate().expose_secret(), key, "keys are random");
    }

    #[test]
    fn keys_are_stored_as_sha256_hex() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn scopes_parse_and_print() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("admin"), None);
        let raw = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_scopes(&raw(&["proxy", "clients:read", "proxy"])),
            Ok(vec![Scope::ClientsRead, Scope::Proxy])
        );
        assert_eq!(
            parse_scopes(&[]),
            Err("Choose at least one scope.".to_string())
        );
        assert!(parse_scopes(&raw(&["admin"]))
            .unwrap_err()
            .contains("admin"));
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("  deploy bot "), Ok("deploy bot".to_string()));
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"é".repeat(80)).is_ok());
        assert!(validate_name(&"a".repeat(81)).is_err());
        assert!(validate_name("a\nb").is_err());
    }
}
