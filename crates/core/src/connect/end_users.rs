//! The `end_users` repository: the team's own users, by the team's id for them. Seen again
//! (a new session), a row keeps its id and first-seen time; email and name follow the
//! latest session that gave them.

use crate::db::schema::end_users;
use crate::db::DbConnection;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = end_users)]
pub struct EndUser {
    pub id: String,
    pub external_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub first_seen_at: chrono::NaiveDateTime,
    pub last_seen_at: chrono::NaiveDateTime,
}

/// What a session says about its end user (already validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUserInfo {
    pub external_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// Inserts the end user or updates the row with the same external id; returns the row.
pub fn record_seen(conn: &mut DbConnection, info: &EndUserInfo) -> QueryResult<EndUser> {
    let now = crate::db::now();
    let updated =
        diesel::update(end_users::table.filter(end_users::external_id.eq(&info.external_id)))
            .set(end_users::last_seen_at.eq(now))
            .execute(conn)?;
    if updated == 0 {
        let inserted = diesel::insert_into(end_users::table)
            .values((
                end_users::id.eq(uuid::Uuid::new_v4().to_string()),
                end_users::external_id.eq(&info.external_id),
                end_users::email.eq(&info.email),
                end_users::display_name.eq(&info.display_name),
                end_users::first_seen_at.eq(now),
                end_users::last_seen_at.eq(now),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            // A concurrent session inserted it first: fall through to the update below.
            Err(e) if crate::clients::is_unique_violation(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if info.email.is_some() {
        diesel::update(end_users::table.filter(end_users::external_id.eq(&info.external_id)))
            .set(end_users::email.eq(&info.email))
            .execute(conn)?;
    }
    if info.display_name.is_some() {
        diesel::update(end_users::table.filter(end_users::external_id.eq(&info.external_id)))
            .set(end_users::display_name.eq(&info.display_name))
            .execute(conn)?;
    }
    by_external_id(conn, &info.external_id)?.ok_or(diesel::result::Error::NotFound)
}

pub fn by_external_id(conn: &mut DbConnection, external_id: &str) -> QueryResult<Option<EndUser>> {
    // No stored id holds a control character (they are checked on the way in); looking
    // one up would only make PostgreSQL fail on a NUL.
    if external_id.chars().any(char::is_control) {
        return Ok(None);
    }
    end_users::table
        .filter(end_users::external_id.eq(external_id))
        .select(EndUser::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<EndUser>> {
    end_users::table
        .find(id)
        .select(EndUser::as_select())
        .first(conn)
        .optional()
}

/// The end users with these ids (those that exist).
pub fn find_many(conn: &mut DbConnection, ids: Vec<String>) -> QueryResult<Vec<EndUser>> {
    end_users::table
        .filter(end_users::id.eq_any(ids))
        .select(EndUser::as_select())
        .load(conn)
}

/// End users whose external id or email contains `text` (the admin list's search).
pub fn matching(conn: &mut DbConnection, text: &str) -> QueryResult<Vec<String>> {
    let pattern = crate::db::contains_pattern(text);
    end_users::table
        .filter(
            end_users::external_id
                .like(pattern.clone())
                .escape('\\')
                .or(end_users::email.like(pattern).escape('\\')),
        )
        .select(end_users::id)
        .limit(1000)
        .load(conn)
}
