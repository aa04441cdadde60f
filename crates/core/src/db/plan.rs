//! The database's plan for a statement, so a test can show that a hot query walks its
//! index instead of scanning and sorting a table that grows with the connections.

use super::DbConnection;
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text, Timestamp};

/// A value bound to one of the statement's parameters, in order.
pub enum Param {
    Timestamp(chrono::NaiveDateTime),
    BigInt(i64),
    Text(String),
}

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

fn bound<DB>(sql: String, params: &[Param]) -> BoxedSqlQuery<'static, DB, SqlQuery>
where
    DB: Backend + HasSqlType<Timestamp> + HasSqlType<BigInt> + HasSqlType<Text>,
    chrono::NaiveDateTime: ToSql<Timestamp, DB>,
    i64: ToSql<BigInt, DB>,
    String: ToSql<Text, DB>,
{
    let mut query = diesel::sql_query(sql).into_boxed();
    for param in params {
        query = match param {
            Param::Timestamp(at) => query.bind::<Timestamp, _>(*at),
            Param::BigInt(n) => query.bind::<BigInt, _>(*n),
            Param::Text(text) => query.bind::<Text, _>(text.clone()),
        };
    }
    query
}
