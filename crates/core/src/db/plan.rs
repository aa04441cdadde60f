//! The database's plan for a statement, so a test can show that a hot query walks its
//! index instead of scanning and sorting a table that grows with the connections.

use super::params::bound;
pub use super::params::Param;
use super::DbConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

#[derive(QueryableByName)]
struct SqliteStep {
    #[diesel(sql_type = Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct PgStep {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "QUERY PLAN")]
    line: String,
}

/// `EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL, one line per step. `sql` is in
/// the connection's own dialect.
pub fn explain(conn: &mut DbConnection, sql: &str, params: &[Param]) -> QueryResult<String> {
    let lines: Vec<String> = match conn {
        DbConnection::Sqlite(inner) => bound(format!("EXPLAIN QUERY PLAN {sql}"), params)
            .load::<SqliteStep>(inner)?
            .into_iter()
            .map(|step| step.detail)
            .collect(),
        DbConnection::Postgresql(inner) => bound(format!("EXPLAIN {sql}"), params)
            .load::<PgStep>(inner)?
            .into_iter()
            .map(|step| step.line)
            .collect(),
    };
    Ok(lines.join("\n"))
}
