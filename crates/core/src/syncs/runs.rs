//! The `sync_runs` repository: one row per finished run, for the usage page's success rate
//! and mean duration over its period.

use crate::db::schema::sync_runs;
use crate::db::DbConnection;
use diesel::prelude::*;

pub fn record(
    conn: &mut DbConnection,
    client_id: &str,
    model: &str,
    succeeded: bool,
    duration_ms: i64,
) -> QueryResult<usize> {
    diesel::insert_into(sync_runs::table)
        .values((
            sync_runs::client_id.eq(client_id),
            sync_runs::model.eq(model),
            sync_runs::finished_at.eq(crate::db::now()),
            sync_runs::succeeded.eq(succeeded),
            sync_runs::duration_ms.eq(duration_ms),
        ))
        .execute(conn)
}

/// Runs that finished since `since`: the share that succeeded (None without runs) and the
/// mean duration of the successful ones in ms (None without any).
pub fn kpis_since(
    conn: &mut DbConnection,
    since: chrono::NaiveDateTime,
) -> QueryResult<(Option<f64>, Option<i64>)> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    // SUM over BIGINT is NUMERIC on PostgreSQL: cast back to a plain integer.
    let rows: Vec<(bool, i64, i64)> = sync_runs::table
        .filter(sync_runs::finished_at.ge(since))
        .group_by(sync_runs::succeeded)
        .select((
            sync_runs::succeeded,
            diesel::dsl::count_star(),
            sql::<BigInt>("CAST(SUM(duration_ms) AS BIGINT)"),
        ))
        .load(conn)?;
    let of = |wanted: bool| {
        rows.iter()
            .find(|r| r.0 == wanted)
            .map_or((0, 0), |r| (r.1, r.2))
    };
    let ((ok, ok_ms), (failed, _)) = (of(true), of(false));
    let share = (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64);
    Ok((share, (ok > 0).then(|| ok_ms / ok)))
}

/// Retention, as for API usage.
pub fn prune(conn: &mut DbConnection, before: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sync_runs::table.filter(sync_runs::finished_at.lt(before))).execute(conn)
}
