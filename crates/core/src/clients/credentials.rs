//! A client's secrets, sealed by the vault. Only this module reads or writes them.

use crate::db::schema::{self, credentials};
use crate::db::DbConnection;
use crate::vault::{Binding, Vault, VaultError};
use diesel::prelude::*;
use secrecy::SecretString;

/// The secrets to store for a client (any may be absent).
pub struct Secrets<'a> {
    pub access_token: Option<&'a SecretString>,
    pub refresh_token: Option<&'a SecretString>,
    pub api_key: Option<&'a SecretString>,
    pub expires_at: Option<chrono::NaiveDateTime>,
    /// When the token is due for refreshing (see `oauth::schedule`).
    pub refresh_at: Option<chrono::NaiveDateTime>,
}

fn binding<'a>(client_id: &'a str, field: &'a str) -> Binding<'a> {
    Binding {
        table: "credentials",
        row: client_id,
        field,
    }
}

fn seal(
    vault: &Vault,
    client_id: &str,
    field: &str,
    secret: Option<&SecretString>,
) -> Result<Option<String>, VaultError> {
    secret
        .map(|s| vault.seal(s, &binding(client_id, field)))
        .transpose()
}

/// Seals and stores the secrets, replacing what the client had.
pub fn store(
    conn: &mut DbConnection,
    vault: &Vault,
    client_id: &str,
    secrets: &Secrets,
) -> anyhow::Result<()> {
    let access = seal(vault, client_id, "access_token", secrets.access_token)?;
    let refresh = seal(vault, client_id, "refresh_token", secrets.refresh_token)?;
    let api_key = seal(vault, client_id, "api_key", secrets.api_key)?;
    let now = crate::db::now();
    let values = (
        credentials::key_id.eq(vault.current_key_id()),
        credentials::access_token.eq(&access),
        credentials::refresh_token.eq(&refresh),
        credentials::api_key.eq(&api_key),
        credentials::token_type.eq("Bearer"),
        credentials::expires_at.eq(secrets.expires_at),
        credentials::refresh_at.eq(secrets.refresh_at),
        credentials::refresh_failures.eq(0),
        credentials::retry_after.eq(None::<chrono::NaiveDateTime>),
        credentials::refresh_started_at.eq(None::<chrono::NaiveDateTime>),
        credentials::updated_at.eq(now),
    );
    // The caller holds the client's row in a transaction, so update-then-insert is safe.
    let updated = diesel::update(credentials::table.find(client_id))
        .set(values)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(credentials::table)
            .values((credentials::client_id.eq(client_id), values))
            .execute(conn)?;
    }
    Ok(())
}

/// The opened secrets of a client.
pub struct Opened {
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub api_key: Option<SecretString>,
    pub expires_at: Option<chrono::NaiveDateTime>,
    pub refresh_at: Option<chrono::NaiveDateTime>,
    /// Until when the refresher backs off after a failed refresh.
    pub retry_after: Option<chrono::NaiveDateTime>,
    /// Failed refreshes in a row.
    pub refresh_failures: i32,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = credentials)]
struct Row {
    client_id: String,
    key_id: String,
    access_token: Option<String>,
    refresh_token: Option<String>,
    api_key: Option<String>,
    expires_at: Option<chrono::NaiveDateTime>,
    refresh_at: Option<chrono::NaiveDateTime>,
    retry_after: Option<chrono::NaiveDateTime>,
    refresh_failures: i32,
}

pub fn open(
    conn: &mut DbConnection,
    vault: &Vault,
    client_id: &str,
) -> anyhow::Result<Option<Opened>> {
    let row: Option<Row> = credentials::table
        .find(client_id)
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let open = |field: &str, sealed: &Option<String>| -> Result<Option<SecretString>, VaultError> {
        sealed
            .as_deref()
            .map(|s| vault.open(s, &binding(&row.client_id, field)))
            .transpose()
    };
    Ok(Some(Opened {
        access_token: open("access_token", &row.access_token)?,
        refresh_token: open("refresh_token", &row.refresh_token)?,
        api_key: open("api_key", &row.api_key)?,
        expires_at: row.expires_at,
        refresh_at: row.refresh_at,
        retry_after: row.retry_after,
        refresh_failures: row.refresh_failures,
    }))
}

/// Re-seals every credential not yet under the current key, in batches; returns how many
/// rows changed. Each row is rewritten in its own transaction, so an interrupted rotation
/// loses nothing and can simply be run again.
pub fn rotate(conn: &mut DbConnection, vault: &Vault) -> anyhow::Result<usize> {
    let mut rotated = 0;
    loop {
        let batch: Vec<Row> = credentials::table
            .filter(credentials::key_id.ne(vault.current_key_id()))
            .select(Row::as_select())
            .limit(200)
            .load(conn)?;
        if batch.is_empty() {
            return Ok(rotated);
        }
        for row in batch {
            let reseal =
                |field: &str, sealed: &Option<String>| -> Result<Option<String>, VaultError> {
                    sealed
                        .as_deref()
                        .map(|s| vault.reseal(s, &binding(&row.client_id, field)))
                        .transpose()
                };
            let access = reseal("access_token", &row.access_token)?;
            let refresh = reseal("refresh_token", &row.refresh_token)?;
            let api_key = reseal("api_key", &row.api_key)?;
            // Only rewrite the row if nobody changed it meanwhile (a refresh seals under
            // the current key anyway).
            conn.transaction(|conn| {
                diesel::update(
                    credentials::table
                        .filter(credentials::client_id.eq(&row.client_id))
                        .filter(credentials::key_id.eq(&row.key_id)),
                )
                .set((
                    credentials::key_id.eq(vault.current_key_id()),
                    credentials::access_token.eq(&access),
                    credentials::refresh_token.eq(&refresh),
                    credentials::api_key.eq(&api_key),
                ))
                .execute(conn)
            })?;
            rotated += 1;
        }
    }
}

/// Claims the right to refresh this client for `lease` — a conditional update, so of
/// several instances on one database exactly one wins until it stores or the lease ends.
pub fn take_lease(
    conn: &mut DbConnection,
    client_id: &str,
    lease: chrono::TimeDelta,
) -> QueryResult<bool> {
    let now = crate::db::now();
    let claimed = diesel::update(
        credentials::table.find(client_id).filter(
            credentials::refresh_lease_until
                .is_null()
                .or(credentials::refresh_lease_until.lt(now)),
        ),
    )
    .set(credentials::refresh_lease_until.eq(now + lease))
    .execute(conn)?;
    Ok(claimed == 1)
}

/// Ends a lease that was not needed after all (the tokens were already fresh). A refresh
/// mark left by an earlier holder stays, for `take_interrupted_refreshes` to report.
pub fn release_lease(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    diesel::update(credentials::table.find(client_id))
        .set(credentials::refresh_lease_until.eq(None::<chrono::NaiveDateTime>))
        .execute(conn)
}

/// Marks a refresh call as started, committed before the provider is asked: if the process
/// stops before the outcome is written, the mark stays and tells that the outcome is
/// unknown (`interrupted_refreshes`).
pub fn mark_refresh_started(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    diesel::update(credentials::table.find(client_id))
        .set(credentials::refresh_started_at.eq(Some(crate::db::now())))
        .execute(conn)
}

/// Under a lease just taken: a mark left by an earlier holder means its refresh was
/// interrupted. Takes the mark and answers when that refresh started.
pub fn take_own_interrupted(
    conn: &mut DbConnection,
    client_id: &str,
) -> QueryResult<Option<chrono::NaiveDateTime>> {
    let started: Option<chrono::NaiveDateTime> = credentials::table
        .find(client_id)
        .select(credentials::refresh_started_at)
        .first::<Option<chrono::NaiveDateTime>>(conn)
        .optional()?
        .flatten();
    if started.is_some() {
        diesel::update(credentials::table.find(client_id))
            .set(credentials::refresh_started_at.eq(None::<chrono::NaiveDateTime>))
            .execute(conn)?;
    }
    Ok(started)
}

/// When the earliest lease of a refresh in flight runs out: if its mark is still there
/// then, the refresh was interrupted (the refresher looks again at that moment).
pub fn in_flight_lease_end(conn: &mut DbConnection) -> QueryResult<Option<chrono::NaiveDateTime>> {
    credentials::table
        .filter(credentials::refresh_started_at.is_not_null())
        .select(diesel::dsl::min(credentials::refresh_lease_until))
        .first(conn)
}

/// Refreshes that started and never recorded an outcome, and whose lease has run out (so
/// no live instance is still on them): (client id, when it started). Each is taken (its
/// mark cleared) by whoever reports it, once.
pub fn take_interrupted_refreshes(
    conn: &mut DbConnection,
) -> QueryResult<Vec<(String, chrono::NaiveDateTime)>> {
    let now = crate::db::now();
    let stale = credentials::refresh_started_at.is_not_null().and(
        credentials::refresh_lease_until
            .is_null()
            .or(credentials::refresh_lease_until.lt(now)),
    );
    let found: Vec<(String, Option<chrono::NaiveDateTime>)> = credentials::table
        .filter(stale)
        .select((credentials::client_id, credentials::refresh_started_at))
        .load(conn)?;
    let mut taken = Vec::new();
    for (id, started) in found {
        // Conditional on the mark still being there: two instances report it once.
        let cleared = diesel::update(
            credentials::table
                .find(&id)
                .filter(credentials::refresh_started_at.eq(started)),
        )
        // Due at once: the next refresh tells whether the grant survived.
        .set((
            credentials::refresh_started_at.eq(None::<chrono::NaiveDateTime>),
            credentials::refresh_at.eq(Some(now)),
            credentials::retry_after.eq(None::<chrono::NaiveDateTime>),
        ))
        .execute(conn)?;
        if let (1, Some(started)) = (cleared, started) {
            taken.push((id, started));
        }
    }
    Ok(taken)
}

/// Stores refreshed tokens and ends the lease in one statement. Without a new refresh
/// token the old one is kept (re-sealed under the current key, so rotation stays exact).
pub fn store_refreshed(
    conn: &mut DbConnection,
    vault: &Vault,
    client_id: &str,
    access_token: &SecretString,
    new_refresh_token: Option<&SecretString>,
    expires_at: Option<chrono::NaiveDateTime>,
    refresh_at: Option<chrono::NaiveDateTime>,
) -> anyhow::Result<()> {
    let access = vault.seal(access_token, &binding(client_id, "access_token"))?;
    let refresh = match new_refresh_token {
        Some(token) => Some(vault.seal(token, &binding(client_id, "refresh_token"))?),
        None => {
            let current: Option<String> = credentials::table
                .find(client_id)
                .select(credentials::refresh_token)
                .first(conn)?;
            current
                .map(|sealed| vault.reseal(&sealed, &binding(client_id, "refresh_token")))
                .transpose()?
        }
    };
    diesel::update(credentials::table.find(client_id))
        .set((
            credentials::key_id.eq(vault.current_key_id()),
            credentials::access_token.eq(Some(access)),
            credentials::refresh_token.eq(refresh),
            credentials::expires_at.eq(expires_at),
            credentials::refresh_at.eq(refresh_at),
            credentials::refresh_lease_until.eq(None::<chrono::NaiveDateTime>),
            credentials::refresh_started_at.eq(None::<chrono::NaiveDateTime>),
            credentials::refresh_failures.eq(0),
            credentials::retry_after.eq(None::<chrono::NaiveDateTime>),
            credentials::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Counts a failed refresh, sets when to try again, and ends the lease.
pub fn record_failure(
    conn: &mut DbConnection,
    client_id: &str,
    retry_after: Option<chrono::NaiveDateTime>,
) -> QueryResult<i32> {
    diesel::update(credentials::table.find(client_id))
        .set((
            credentials::refresh_failures.eq(credentials::refresh_failures + 1),
            credentials::retry_after.eq(retry_after),
            credentials::refresh_lease_until.eq(None::<chrono::NaiveDateTime>),
            credentials::refresh_started_at.eq(None::<chrono::NaiveDateTime>),
        ))
        .execute(conn)?;
    credentials::table
        .find(client_id)
        .select(credentials::refresh_failures)
        .first(conn)
}

/// Holds a client's refreshes back until `until` without counting a failure (its
/// provider's breaker is open). A later backoff already set is kept.
pub fn defer(
    conn: &mut DbConnection,
    client_id: &str,
    until: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        credentials::table.find(client_id).filter(
            credentials::retry_after
                .is_null()
                .or(credentials::retry_after.lt(until)),
        ),
    )
    .set(credentials::retry_after.eq(Some(until)))
    .execute(conn)
}

/// Makes the waiting refreshes of `provider`'s connections (deferred while its breaker was
/// open, or backing off after failures) fall due within `spread` of `now` instead, each at
/// a random moment of its own (so they do not return together): one statement, whatever
/// the number of connections. A wait ending sooner is kept. Returns the rows changed.
pub fn release_waits(
    conn: &mut DbConnection,
    provider: &str,
    now: chrono::NaiveDateTime,
    spread: std::time::Duration,
) -> QueryResult<usize> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    let spread_ms = i64::try_from(spread.as_millis()).unwrap_or(i64::MAX).max(1);
    match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "UPDATE credentials \
             SET retry_after = LEAST(retry_after, $1 + random() * $2 * interval '1 millisecond') \
             WHERE retry_after > $1 AND client_id IN \
               (SELECT id FROM clients WHERE provider = $3 AND status IN ('active', 'error'))",
        )
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(spread_ms)
        .bind::<Text, _>(provider)
        .execute(pg),
        // Timestamps are text here ('%F %T%.f'), which strftime reads and writes.
        DbConnection::Sqlite(sqlite) => diesel::sql_query(
            "UPDATE credentials \
             SET retry_after = min(retry_after, strftime('%Y-%m-%d %H:%M:%f', ?1, \
               '+' || ((abs(random()) % ?2) / 1000.0) || ' seconds')) \
             WHERE retry_after > ?1 AND client_id IN \
               (SELECT id FROM clients WHERE provider = ?3 AND status IN ('active', 'error'))",
        )
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(spread_ms)
        .bind::<Text, _>(provider)
        .execute(sqlite),
    }
}

/// Destroys every secret of a client (disconnect).
pub fn destroy(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    diesel::delete(credentials::table.find(client_id)).execute(conn)
}

/// Credentials of clients that hold a grant (active, or in error after failed refreshes:
/// those are retried on their backoff, so they recover when the provider does) and have
/// tokens to refresh (API keys have none).
#[diesel::dsl::auto_type]
fn refreshable() -> _ {
    let with_grant: [&'static str; 2] = [
        super::ClientStatus::Active.as_str(),
        super::ClientStatus::Error.as_str(),
    ];
    let api_key: &'static str = crate::providers::AuthType::ApiKey.as_str();
    credentials::table
        .inner_join(schema::clients::table)
        .filter(schema::clients::status.eq_any(with_grant))
        .filter(schema::clients::auth_type.ne(api_key))
}

/// Those of `refreshable` that nothing holds back at `now`: no backoff running, no lease
/// held by another instance.
#[diesel::dsl::auto_type(no_type_alias)]
fn free_to_refresh(now: chrono::NaiveDateTime) -> _ {
    refreshable()
        .filter(
            credentials::retry_after
                .is_null()
                .or(credentials::retry_after.le(now)),
        )
        .filter(
            credentials::refresh_lease_until
                .is_null()
                .or(credentials::refresh_lease_until.lt(now)),
        )
}

/// The earliest moment something may become refreshable: a token falling due, a backoff
/// ending, or a lease held by another instance running out.
pub fn next_due(conn: &mut DbConnection) -> QueryResult<Option<chrono::NaiveDateTime>> {
    use diesel::dsl::min;
    let now = crate::db::now();
    let due: Option<chrono::NaiveDateTime> = free_to_refresh(now)
        .select(min(credentials::refresh_at))
        .first(conn)?;
    let retry: Option<chrono::NaiveDateTime> = refreshable()
        .filter(credentials::retry_after.gt(now))
        .select(min(credentials::retry_after))
        .first(conn)?;
    let lease: Option<chrono::NaiveDateTime> = refreshable()
        .filter(credentials::refresh_lease_until.ge(now))
        .select(min(credentials::refresh_lease_until))
        .first(conn)?;
    Ok([due, retry, lease].into_iter().flatten().min())
}

/// When the client's access token expires (None: no token, or it does not expire). Reads
/// no secret.
pub fn expires_at(conn: &mut DbConnection, id: &str) -> QueryResult<Option<chrono::NaiveDateTime>> {
    Ok(credentials::table
        .find(id)
        .select(credentials::expires_at)
        .first::<Option<chrono::NaiveDateTime>>(conn)
        .optional()?
        .flatten())
}
