//! Server-side sessions in the database. The cookie holds a random key; the table holds
//! only its SHA-256, so a leaked database does not hand out live sessions.
//!
//! Only signed-in sessions get a row. Before sign-in the session holds no more than the
//! CSRF token of the login form (and a one-time notice), so that state travels in the
//! cookie itself, which the session middleware signs: anonymous visitors cost no database
//! write, and the login form is still protected (the token in the form must match the one
//! in a cookie no other site can set or read).

use crate::db::schema::sessions;
use crate::db::{DbConnection, DbPool};
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::prelude::*;
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

type SessionState = HashMap<String, String>;

/// The session entry that names the signed-in user (a JSON string, as actix-session stores).
pub const USER_ID_KEY: &str = "user_id";
/// Session entries that make a session signed in; dropped when a session is re-created.
const SIGN_IN_KEYS: [&str; 2] = [USER_ID_KEY, LOGIN_AT_KEY];
/// Session entry holding the sign-in time (unix seconds), for the absolute expiry.
pub const LOGIN_AT_KEY: &str = "login_at";

#[derive(Clone)]
pub struct DbSessionStore {
    pool: DbPool,
}

impl DbSessionStore {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

fn hashed(key: &SessionKey) -> String {
    hex::encode(Sha256::digest(key.as_ref().as_bytes()))
}

/// Cookie keys that carry an anonymous session's state rather than naming a row. Database
/// keys are alphanumeric, so they never start with this.
const IN_COOKIE_PREFIX: &str = "a.";
/// Room left in the 4 KB cookie for anonymous state.
const IN_COOKIE_MAX: usize = 3000;

/// An anonymous session as it travels in the cookie: its entries and when it expires.
#[derive(serde::Serialize, serde::Deserialize)]
struct InCookie {
    exp: i64,
    state: SessionState,
}

fn is_signed_in(state: &SessionState) -> bool {
    state.contains_key(USER_ID_KEY)
}

fn to_cookie_key(state: SessionState, ttl: &Duration) -> anyhow::Result<SessionKey> {
    let exp = chrono::Utc::now().timestamp() + ttl.whole_seconds();
    let json = serde_json::to_vec(&InCookie { exp, state })?;
    let key = format!("{IN_COOKIE_PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
    if key.len() > IN_COOKIE_MAX {
        anyhow::bail!("anonymous session state too large for the cookie");
    }
    key.try_into().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The state of an anonymous session's cookie key; `None` once it has expired. The
/// middleware checked the cookie's signature, so the content is ours.
fn from_cookie_key(encoded: &str) -> Result<Option<SessionState>, LoadError> {
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|e| LoadError::Deserialization(e.into()))?;
    let in_cookie: InCookie =
        serde_json::from_slice(&json).map_err(|e| LoadError::Deserialization(e.into()))?;
    Ok((in_cookie.exp > chrono::Utc::now().timestamp()).then_some(in_cookie.state))
}

fn user_id_of(state: &SessionState) -> Option<String> {
    state
        .get(USER_ID_KEY)
        .and_then(|raw| serde_json::from_str::<String>(raw).ok())
}

/// Every signed-in request extends its session, but the row is written only when that
/// moves the expiry by more than this: a page view a second after the last costs a read,
/// not a write (on PostgreSQL a new row version and its WAL each time). The idle timeout
/// is honoured to within this step.
const TTL_EXTENSION_STEP: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

fn expiry(ttl: &Duration) -> chrono::NaiveDateTime {
    crate::db::now() + chrono::TimeDelta::seconds(ttl.whole_seconds())
}

async fn blocking<T: Send + 'static>(
    pool: &DbPool,
    work: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    crate::db::run(pool, work)
        .await
        .map_err(crate::db::outage::classify)
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        if let Some(encoded) = key.as_ref().strip_prefix(IN_COOKIE_PREFIX) {
            return from_cookie_key(encoded);
        }
        let id = hashed(key);
        let row: Option<(String, chrono::NaiveDateTime)> = blocking(&self.pool, move |conn| {
            sessions::table
                .find(id)
                .select((sessions::data, sessions::expires_at))
                .first(conn)
                .optional()
        })
        .await
        .map_err(LoadError::Other)?;
        match row {
            Some((data, expires_at)) if expires_at > crate::db::now() => {
                serde_json::from_str(&data)
                    .map(Some)
                    .map_err(|e| LoadError::Deserialization(e.into()))
            }
            _ => Ok(None),
        }
    }

    async fn save(&self, state: SessionState, ttl: &Duration) -> Result<SessionKey, SaveError> {
        if !is_signed_in(&state) {
            return to_cookie_key(state, ttl).map_err(SaveError::Other);
        }
        let key: SessionKey = Alphanumeric
            .sample_string(&mut rand::thread_rng(), 64)
            .try_into()
            .map_err(|e| SaveError::Other(anyhow::anyhow!("{e}")))?;
        let data = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let (id, user_id, expires_at) = (hashed(&key), user_id_of(&state), expiry(ttl));
        blocking(&self.pool, move |conn| {
            diesel::insert_into(sessions::table)
                .values((
                    sessions::id.eq(id),
                    sessions::user_id.eq(user_id),
                    sessions::data.eq(data),
                    sessions::created_at.eq(crate::db::now()),
                    sessions::expires_at.eq(expires_at),
                ))
                .execute(conn)
        })
        .await
        .map_err(SaveError::Other)?;
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        if key.as_ref().starts_with(IN_COOKIE_PREFIX) {
            // An anonymous session changed: a new cookie, or a row once it is signed in.
            return self.save(state, ttl).await.map_err(|e| match e {
                SaveError::Serialization(e) => UpdateError::Serialization(e),
                SaveError::Other(e) => UpdateError::Other(e),
            });
        }
        let data =
            serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let (id, user_id, expires_at) = (hashed(&key), user_id_of(&state), expiry(ttl));
        let updated = blocking(&self.pool, move |conn| {
            diesel::update(sessions::table.find(id))
                .set((
                    sessions::user_id.eq(user_id),
                    sessions::data.eq(data),
                    sessions::expires_at.eq(expires_at),
                ))
                .execute(conn)
        })
        .await
        .map_err(UpdateError::Other)?;
        if updated == 1 {
            Ok(key)
        } else {
            // The row is gone (logged out elsewhere, user disabled, password reset): start
            // a fresh anonymous session; carrying the sign-in over would resurrect it.
            let mut state = state;
            for key in SIGN_IN_KEYS {
                state.remove(key);
            }
            self.save(state, ttl).await.map_err(|e| match e {
                SaveError::Serialization(e) => UpdateError::Serialization(e),
                SaveError::Other(e) => UpdateError::Other(e),
            })
        }
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        if key.as_ref().starts_with(IN_COOKIE_PREFIX) {
            return Ok(());
        }
        let (id, expires_at) = (hashed(key), expiry(ttl));
        blocking(&self.pool, move |conn| {
            diesel::update(sessions::table.find(id))
                .filter(sessions::expires_at.lt(expires_at - TTL_EXTENSION_STEP))
                .set(sessions::expires_at.eq(expires_at))
                .execute(conn)
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        if key.as_ref().starts_with(IN_COOKIE_PREFIX) {
            return Ok(());
        }
        let id = hashed(key);
        blocking(&self.pool, move |conn| {
            diesel::delete(sessions::table.find(id)).execute(conn)
        })
        .await?;
        Ok(())
    }
}

/// Ends every session of a user at once (disabled account, password reset).
pub fn delete_for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// Removes expired rows; run periodically.
pub fn purge_expired(conn: &mut DbConnection) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.lt(crate::db::now()))).execute(conn)
}
