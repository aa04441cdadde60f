//! Server-side sessions in the database. The cookie holds a random key; the table holds
//! only its SHA-256, so a leaked database does not hand out live sessions.

use crate::db::schema::sessions;
use crate::db::{DbConnection, DbPool};
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
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

fn user_id_of(state: &SessionState) -> Option<String> {
    state
        .get(USER_ID_KEY)
        .and_then(|raw| serde_json::from_str::<String>(raw).ok())
}

fn expiry(ttl: &Duration) -> chrono::NaiveDateTime {
    crate::db::now() + chrono::TimeDelta::seconds(ttl.whole_seconds())
}

async fn blocking<T: Send + 'static>(
    pool: &DbPool,
    work: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(crate::db::run(pool, work).await?)
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
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
        let (id, expires_at) = (hashed(key), expiry(ttl));
        blocking(&self.pool, move |conn| {
            diesel::update(sessions::table.find(id))
                .set(sessions::expires_at.eq(expires_at))
                .execute(conn)
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
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
