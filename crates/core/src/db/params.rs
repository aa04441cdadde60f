//! Raw SQL with its parameters given as a list, so a statement and the `EXPLAIN` of it
//! (`plan`) bind the very same values in the same order.

use diesel::backend::Backend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text, Timestamp};

/// A value bound to one of the statement's parameters, in order.
pub enum Param {
    Timestamp(chrono::NaiveDateTime),
    BigInt(i64),
    Text(String),
}

/// `sql` with `params` bound, for any backend.
pub fn bound<DB>(sql: String, params: &[Param]) -> BoxedSqlQuery<'static, DB, SqlQuery>
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
