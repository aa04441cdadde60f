//! The background refresher's queue: due tokens are claimed a batch at a time in one
//! statement that takes their leases, so the cost per refresh stays constant however many
//! connections there are, and several instances on one PostgreSQL never claim the same
//! client (`FOR UPDATE … SKIP LOCKED`: each takes rows the other has not locked; SQLite
//! has one writer at a time anyway). The statement walks the partial index
//! `credentials_refresh_due` in refresh_at order and stops after the batch.

use crate::db::params::{bound, Param};
use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamp};

/// The claim, written once for both backends. `CROSS JOIN` makes SQLite walk credentials
/// first (its planner, without statistics, would otherwise scan every active client and
/// sort); PostgreSQL plans it as any inner join.
/// Parameters: `$1` the lease's end, `$2` now, `$3` the
/// batch size, `{lock}` the PostgreSQL row lock (nothing on SQLite). It takes what
/// `credentials::next_due` waits for: clients that hold a grant (active, or in error and
/// retried on their backoff so they recover), not API keys, no backoff running, no lease
/// held elsewhere, most overdue first.
const CLAIM: &str = "UPDATE credentials SET refresh_lease_until = $1 \
     WHERE client_id IN (\
       SELECT c.client_id FROM credentials c CROSS JOIN clients k \
       WHERE k.id = c.client_id AND c.refresh_at <= $2 \
         AND (c.retry_after IS NULL OR c.retry_after <= $2) \
         AND (c.refresh_lease_until IS NULL OR c.refresh_lease_until < $2) \
         AND k.status IN ('{active}', '{error}') AND k.auth_type <> '{api_key}' \
       ORDER BY c.refresh_at LIMIT $3{lock}) \
     AND (refresh_lease_until IS NULL OR refresh_lease_until < $2) \
     RETURNING client_id, refresh_started_at";

const PG_LOCK: &str = " FOR UPDATE OF c SKIP LOCKED";

/// The claim in the dialect of the connection's backend (SQLite numbers its parameters
/// `?1`, PostgreSQL `$1`).
fn claim_sql(conn: &DbConnection) -> String {
    let sql = CLAIM
        .replace("{active}", super::ClientStatus::Active.as_str())
        .replace("{error}", super::ClientStatus::Error.as_str())
        .replace("{api_key}", crate::providers::AuthType::ApiKey.as_str());
    match conn {
        DbConnection::Postgresql(_) => sql.replace("{lock}", PG_LOCK),
        DbConnection::Sqlite(_) => sql.replace("{lock}", "").replace('$', "?"),
    }
}

/// A client whose refresh this instance now holds.
#[derive(Debug, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = Text)]
    pub client_id: String,
    /// A refresh of an earlier holder that never recorded its outcome (`interrupted`).
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub refresh_started_at: Option<chrono::NaiveDateTime>,
}

/// Takes the leases of up to `limit` clients due now, until `now + lease`; returns them.
pub fn claim_due(
    conn: &mut DbConnection,
    limit: i64,
    lease: chrono::TimeDelta,
) -> QueryResult<Vec<Claimed>> {
    let now = crate::db::now();
    let sql = claim_sql(conn);
    let params = claim_params(now + lease, now, limit);
    crate::on_backend!(conn, |inner| bound(sql, &params).load(inner))
}

/// `CLAIM`'s parameters, in its order.
fn claim_params(lease_end: NaiveDateTime, now: NaiveDateTime, limit: i64) -> [Param; 3] {
    [
        Param::Timestamp(lease_end),
        Param::Timestamp(now),
        Param::BigInt(limit),
    ]
}

/// The database's plan for the claim, one line per step: to show that it walks
/// `credentials_refresh_due`.
pub fn claim_plan(conn: &mut DbConnection) -> QueryResult<String> {
    let now = crate::db::now();
    let sql = claim_sql(conn);
    crate::db::plan::explain(conn, &sql, &claim_params(now, now, 100))
}
