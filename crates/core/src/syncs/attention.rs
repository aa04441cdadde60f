//! What the scheduler's pass must act on, read so that a pass costs what there is to do,
//! not a read of every connection: due syncs through the partial index `sync_states_due`,
//! and the connections changed since the last pass (new ones, ones that need
//! reauthorisation or were reconnected) through `clients_provider`. A sweep over all of a
//! provider's connections remains, for the first pass and once an hour: at 1,000,000
//! connections it took 4 s per model on PostgreSQL, and it was every pass's read. (Before
//! that one statement per model found all four kinds; it had replaced a load of every
//! connection and state with, for each due one, a query whether a run waited: 30,000
//! statements a pass at 10,000 connections.)

use super::states::status;
use crate::clients::ClientStatus;
use crate::db::params::{bound, Param};
use crate::db::schema::{clients, sync_states};
use crate::db::DbConnection;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

/// A sync the scheduler has something to do for: its connection's status and its own
/// (None before its first run was queued).
#[derive(Debug, Queryable, QueryableByName)]
pub struct Attention {
    #[diesel(sql_type = Text)]
    pub client_id: String,
    #[diesel(sql_type = Text)]
    pub client_status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub status: Option<String>,
}

/// Which connections `unsettled` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// All of the provider's connections.
    Every,
    /// Those whose row changed since then (`updated_at`: status changes, new connections).
    ChangedSince(chrono::NaiveDateTime),
}

/// At most `limit` syncs of one provider's model, among the connections in `scope`, whose
/// state does not match their connection: none yet (a new connection), not paused while
/// the connection needs reauthorisation, paused while it no longer does. What is due is
/// `due`'s, whatever the scope: a backlog of due runs then never keeps a pass from being
/// complete (and the watermark from moving).
pub fn unsettled(
    conn: &mut DbConnection,
    provider: &str,
    model: &str,
    scope: Scope,
    limit: i64,
) -> QueryResult<Vec<Attention>> {
    let reauth = ClientStatus::NeedsReauth.as_str();
    let settled = [status::PAUSED, status::RUNNING];
    let to_pause = clients::status
        .eq(reauth)
        .and(sync_states::status.ne_all(settled));
    let is_new = sync_states::client_id.is_null();
    let to_resume = sync_states::status.eq(status::PAUSED);
    let to_run = clients::status.ne(reauth).and(is_new.or(to_resume));
    let mut query = clients::table
        .left_join(
            sync_states::table.on(sync_states::client_id
                .eq(clients::id)
                .and(sync_states::model.eq(model))),
        )
        .filter(clients::provider.eq(provider))
        .filter(clients::status.ne(ClientStatus::Disconnected.as_str()))
        .filter(to_pause.or(to_run))
        .select((clients::id, clients::status, sync_states::status.nullable()))
        .limit(limit)
        .into_boxed();
    if let Scope::ChangedSince(since) = scope {
        query = query.filter(clients::updated_at.ge(since));
    }
    query.load(conn)
}

/// Due syncs with no run waiting, of connections that can run them, walking the partial
/// index `sync_states_due` (its predicate repeated word for word, so both planners match
/// it; `CROSS JOIN` keeps SQLite from starting at the connections instead). `next_run_at`
/// is never NULL here: `states::ensure` and the end of every run write it.
/// Parameters: `$1` the model, `$2` now, `$3` the provider, `$4` and `$5` what stands
/// around the client id in the model's queue keys, `$6` the limit.
const DUE: &str = "SELECT c.id AS client_id, c.status AS client_status, s.status AS status \
     FROM sync_states s CROSS JOIN clients c \
     WHERE s.model = $1 AND s.status IN ('{idle}', '{failing}') AND s.next_run_at <= $2 \
       AND c.id = s.client_id AND c.provider = $3 \
       AND c.status NOT IN ('{reauth}', '{disconnected}') \
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.state IN ('queued', 'failed') \
             AND j.queue_key = $4 || c.id || $5) \
     LIMIT $6";

fn due_sql(conn: &DbConnection) -> String {
    let sql = DUE
        .replace("{idle}", status::IDLE)
        .replace("{failing}", status::FAILING)
        .replace("{reauth}", ClientStatus::NeedsReauth.as_str())
        .replace("{disconnected}", ClientStatus::Disconnected.as_str());
    match conn {
        DbConnection::Postgresql(_) => sql,
        DbConnection::Sqlite(_) => sql.replace('$', "?"),
    }
}

/// At most `limit` due syncs of one provider's model with no run waiting.
pub fn due(
    conn: &mut DbConnection,
    provider: &str,
    model: &str,
    now: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Attention>> {
    let sql = due_sql(conn);
    let params = due_params(provider, model, now, limit);
    crate::on_backend!(conn, |c| bound(sql, &params).load(c))
}

/// `DUE`'s parameters, in its order.
fn due_params(provider: &str, model: &str, now: chrono::NaiveDateTime, limit: i64) -> [Param; 6] {
    let (prefix, suffix) = super::queue_key_around(model);
    [
        Param::Text(model.to_string()),
        Param::Timestamp(now),
        Param::Text(provider.to_string()),
        Param::Text(prefix.to_string()),
        Param::Text(suffix),
        Param::BigInt(limit),
    ]
}

/// The database's plan for `due`, one line per step: to show that it walks
/// `sync_states_due`.
pub fn due_plan(conn: &mut DbConnection, provider: &str, model: &str) -> QueryResult<String> {
    let sql = due_sql(conn);
    let params = due_params(provider, model, crate::db::now(), 100);
    crate::db::plan::explain(conn, &sql, &params)
}
