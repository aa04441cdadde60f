//! How the search box's text finds clients: which index serves it, and the owners and
//! end users it names.

use crate::db::schema::users;
use crate::db::DbConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};

/// Searches shorter than this (in characters) match the start of the search text (the
/// name): trigram indexes need three characters.
const TRIGRAM: usize = 3;
/// At most this many owners or end users take part in one search.
const MAX_PEOPLE: i64 = 1000;

/// How the search text is matched, decided once per search.
pub(super) enum Match {
    /// 1-2 characters: the search text starts with them (b-tree range `[from, to)`), or
    /// an end user's id is exactly the search; owners are not searched (no index serves
    /// so short a substring).
    Prefix { from: String, to: String },
    /// PostgreSQL: LIKE '%…%' served by the pg_trgm GIN index.
    Like(String),
    /// SQLite: an FTS5 trigram phrase (a substring, case-insensitive), and the same
    /// substring as a LIKE pattern for checking row by row.
    Phrase { phrase: String, pattern: String },
}

impl Match {
    pub(super) fn of(conn: &DbConnection, search: &str) -> Self {
        let search = search.to_lowercase();
        if search.chars().count() < TRIGRAM {
            let mut chars: Vec<char> = search.chars().collect();
            let last = chars.pop().unwrap_or('\0');
            let next = char::from_u32(u32::from(last) + 1).unwrap_or(char::MAX);
            let stem: String = chars.into_iter().collect();
            return Self::Prefix {
                to: format!("{stem}{next}"),
                from: search,
            };
        }
        match conn {
            DbConnection::Postgresql(_) => Self::Like(like_pattern(&search)),
            DbConnection::Sqlite(_) => Self::Phrase {
                phrase: format!("\"{}\"", search.replace('"', "\"\"")),
                pattern: like_pattern(&search),
            },
        }
    }
}

/// Escapes LIKE wildcards in user input; matches case-insensitively against the lowercased
/// search columns.
pub(super) fn like_pattern(text: &str) -> String {
    crate::db::contains_pattern(&text.to_lowercase())
}

/// The SQLite FTS5 lookup of the clients whose search text holds the phrase.
pub(super) const CLIENTS_PHRASE: &str = "clients.id IN (SELECT k.client_id FROM clients_search s \
     JOIN clients_search_keys k ON k.key = s.rowid WHERE clients_search MATCH ";

/// Whether more than `COUNT_BOUND` clients' search text holds the phrase: a bounded read
/// of the (SQLite) trigram table alone, without the joins that find the clients.
pub(super) fn phrase_is_common(conn: &mut DbConnection, phrase: &str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let bound = super::COUNT_BOUND;
    let counted: Count = diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM clients_search WHERE clients_search MATCH ? \
         LIMIT {}) bounded",
        bound + 1
    ))
    .bind::<Text, _>(phrase)
    .get_result(conn)?;
    Ok(super::Total::of_rows_read(counted.n as usize).more)
}

/// Whether more than `COUNT_BOUND` clients carry the tag (its range of `client_tags`).
pub(super) fn tag_is_common(conn: &mut DbConnection, tag: &str) -> QueryResult<bool> {
    use crate::db::schema::client_tags;
    let bound = super::COUNT_BOUND;
    let counted: Vec<i32> = client_tags::table
        .filter(client_tags::tag.eq(tag))
        .select(sql::<Integer>("1"))
        .limit(bound + 1)
        .load(conn)?;
    Ok(super::Total::of_rows_read(counted.len()).more)
}

/// Owners whose email holds the search (the search box also finds clients by owner). The
/// users table holds the people who sign in (thousands at most), so LIKE is fine here.
pub(super) fn owners_matching(conn: &mut DbConnection, search: &str) -> QueryResult<Vec<String>> {
    users::table
        .filter(users::email.like(like_pattern(search)).escape('\\'))
        .select(users::id)
        .limit(MAX_PEOPLE)
        .load(conn)
}

/// End users (team's id or email) holding the search, through the trigram indexes; for a
/// 1-2 character search, the end user with exactly that id (ids are often short numbers).
pub(super) fn end_users_matching(
    conn: &mut DbConnection,
    search: &str,
    matching: Option<&Match>,
) -> QueryResult<Vec<Option<String>>> {
    use crate::db::schema::end_users;
    let query = end_users::table
        .select(end_users::id.nullable())
        .limit(MAX_PEOPLE)
        .into_boxed();
    match matching {
        None => Ok(Vec::new()),
        Some(Match::Prefix { .. }) => query
            .filter(end_users::external_id.eq(search.to_string()))
            .load(conn),
        Some(Match::Like(pattern)) => query
            .filter(
                end_users::external_id
                    .like(pattern.clone())
                    .escape('\\')
                    .or(end_users::email.like(pattern.clone()).escape('\\')),
            )
            .load(conn),
        Some(Match::Phrase { phrase, .. }) => query
            .filter(
                sql::<Bool>(
                    "end_users.id IN (SELECT k.end_user_id FROM end_users_search s \
                     JOIN end_users_search_keys k ON k.key = s.rowid WHERE end_users_search MATCH ",
                )
                .bind::<Text, _>(phrase.clone())
                .sql(")"),
            )
            .load(conn),
    }
}
