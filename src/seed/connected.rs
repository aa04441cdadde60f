//! Connected clients for the hot-path benchmarks (`connecthub seed --connected 10000`):
//! active Klaviyo OAuth clients with sealed, made-up access and refresh tokens that stay
//! valid for hours, so the token hand-out and the proxy can be measured over many distinct
//! clients without an OAuth dance each. The tokens mean nothing to a provider: a refresh
//! or a provider call with them fails, which the benchmarks never make.

use super::{insert_rows, seed_owners, seed_row, CLIENT_ROWS_PER_INSERT};
use crate::clients::ClientStatus;
use crate::db::schema::credentials;
use crate::db::DbConnection;
use crate::vault::{Binding, Vault};
use diesel::prelude::*;
use secrecy::SecretString;

/// Sealed values of one seeded client's credentials row.
struct SealedRow {
    client_id: String,
    access: String,
    refresh: String,
    expires_at: chrono::NaiveDateTime,
    refresh_at: chrono::NaiveDateTime,
}

/// Adds `count` connected clients whose tokens expire `valid_for` from now (due for
/// refreshing ten minutes before); returns how many were added. Rows go in multi-row
/// INSERTs, one transaction per thousand clients.
pub fn connected(
    conn: &mut DbConnection,
    vault: &Vault,
    count: usize,
    valid_for: chrono::TimeDelta,
) -> anyhow::Result<usize> {
    let owners = seed_owners(conn)?;
    let now = crate::db::now();
    let expires_at = now + valid_for;
    let refresh_at = expires_at - chrono::TimeDelta::minutes(10);
    let mut added = 0;
    while added < count {
        let end = count.min(added + CLIENT_ROWS_PER_INSERT);
        let mut clients = Vec::with_capacity(end - added);
        let mut sealed = Vec::with_capacity(end - added);
        for n in added..end {
            let mut row = seed_row(n, &owners[n % owners.len()], now);
            row.status = ClientStatus::Active.as_str();
            row.provider = "klaviyo";
            row.account_id = format!("seed-connected-{n:07}");
            sealed.push(SealedRow {
                access: seal(vault, &row.id, "access_token")?,
                refresh: seal(vault, &row.id, "refresh_token")?,
                client_id: row.id.clone(),
                expires_at,
                refresh_at,
            });
            clients.push(row);
        }
        crate::db::transaction(conn, |conn| {
            insert_rows(conn, &clients)?;
            insert_credentials(conn, &sealed, vault.current_key_id(), now)
        })?;
        added = end;
    }
    Ok(added)
}

/// A random made-up token sealed for the client's `field`.
fn seal(vault: &Vault, client_id: &str, field: &str) -> anyhow::Result<String> {
    let made_up = SecretString::from(format!("seed-{}", uuid::Uuid::new_v4().simple()));
    let binding = Binding {
        table: "credentials",
        row: client_id,
        field,
    };
    Ok(vault.seal(&made_up, &binding)?)
}

fn insert_credentials(
    conn: &mut DbConnection,
    rows: &[SealedRow],
    key_id: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
    let values: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                credentials::client_id.eq(&row.client_id),
                credentials::key_id.eq(key_id),
                credentials::access_token.eq(Some(&row.access)),
                credentials::refresh_token.eq(Some(&row.refresh)),
                credentials::token_type.eq("Bearer"),
                credentials::expires_at.eq(Some(row.expires_at)),
                credentials::refresh_at.eq(Some(row.refresh_at)),
                credentials::refresh_failures.eq(0),
                credentials::updated_at.eq(now),
            )
        })
        .collect();
    // As in `insert_rows`: the multi-backend connection writes no multi-row INSERT itself.
    let insert = diesel::insert_into(credentials::table).values(values);
    match conn {
        DbConnection::Postgresql(conn) => insert.execute(conn),
        DbConnection::Sqlite(conn) => insert.execute(conn),
    }
    .map(|_| ())
}
