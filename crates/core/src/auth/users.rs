//! The users repository: accounts, roles and their lookups.

use crate::audit::{Actor, Event};
use crate::db::schema::users;
use crate::db::DbConnection;
use diesel::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::parse(s).ok_or_else(|| format!("role must be admin or member, not {s:?}"))
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: String,
    pub disabled_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

impl User {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Member)
    }

    pub fn is_admin(&self) -> bool {
        self.role() == Role::Admin
    }

    pub fn is_active(&self) -> bool {
        self.disabled_at.is_none()
    }

    /// This user as the actor of an audit entry.
    pub fn actor(&self) -> Actor {
        Actor::user(&self.id, &self.email)
    }

    /// An audit entry about something this user did.
    pub fn event(&self, action: &'static str) -> Event {
        Event::new(self.actor(), action)
    }
}

/// An email address, trimmed and lowercased, with one @ and no spaces or control
/// characters (PostgreSQL text cannot hold NUL, so one must never reach a query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                    && !domain.starts_with('.') && !domain.ends_with('.'));
        if valid {
            Ok(Self(email))
        } else {
            Err(format!("{:?} is not a valid email address", raw.trim()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRow<'a> {
    id: &'a str,
    email: &'a str,
    display_name: &'a str,
    password_hash: &'a str,
    role: &'a str,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

/// Creates an account; fails with `UniqueViolation` when the email is taken.
pub fn create(
    conn: &mut DbConnection,
    email: &Email,
    display_name: &str,
    password_hash: &str,
    role: Role,
) -> QueryResult<User> {
    let now = crate::db::now();
    let id = uuid::Uuid::new_v4().to_string();
    diesel::insert_into(users::table)
        .values(NewUserRow {
            id: &id,
            email: email.as_str(),
            display_name,
            password_hash,
            role: role.as_str(),
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    find(conn, &id)?.ok_or(diesel::result::Error::NotFound)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_email(conn: &mut DbConnection, email: &Email) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email.as_str()))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_any_admin(conn: &mut DbConnection) -> QueryResult<Option<User>> {
    users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled_at.is_null())
        .order(users::created_at.asc())
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Every account, oldest first.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    users::table
        .order(users::created_at.asc())
        .select(User::as_select())
        .load(conn)
}

pub fn set_password(conn: &mut DbConnection, id: &str, password_hash: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

/// Whether `create` failed because the email belongs to another account.
pub fn is_email_taken(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

pub fn set_role(conn: &mut DbConnection, id: &str, role: Role) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::role.eq(role.as_str()),
            users::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

/// Disables the account from `at`, or enables it again with `None`.
pub fn set_disabled(
    conn: &mut DbConnection,
    id: &str,
    at: Option<chrono::NaiveDateTime>,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::disabled_at.eq(at),
            users::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

pub fn count_active_admins(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled_at.is_null())
        .count()
        .get_result(conn)
}

/// PostgreSQL advisory lock id that serialises changes to who is an active admin.
const ADMINS_LOCK_ID: i64 = 0x636f_6e6e_6164_6d6e;

/// Call inside a transaction before counting admins and then demoting or disabling one.
/// Two admins demoting each other at once would otherwise both see two admins and leave
/// none. SQLite's immediate transactions are already serialised; PostgreSQL needs the lock.
pub fn lock_admins(conn: &mut DbConnection) -> QueryResult<()> {
    if matches!(conn, DbConnection::Postgresql(_)) {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({ADMINS_LOCK_ID})"))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "a b@example.com",
            "ann@example",
            "a@b@c.com",
            "q\0@x.io",
            "q\u{7}@x.io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
