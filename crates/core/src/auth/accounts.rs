//! User administration, the one place for its rules, used by the users and account pages,
//! the sign-in form and `connecthub user …` alike: creating an account (with its default
//! name), changing a role without losing the last admin, disabling (which ends every
//! session) and enabling, resetting and changing a password, and checking credentials.
//! Every change and its audit entry are stored in one transaction.

use super::login_limiter::LoginLimiter;
use super::users::{self, Email, Role, User};
use super::{password, session_store};
use crate::audit::{self, Actor, Event, Origin};
use crate::db::{DbConnection, DbError, DbPool};
use crate::input::SingleLine;
use diesel::QueryResult;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

const NAME_MAX_CHARS: usize = 80;
/// As the sign-in form allows; argon2 takes any length, the limit keeps hashing cheap.
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// Who changes an account, and from where, for the audit log.
#[derive(Debug, Clone)]
pub struct Acting {
    actor: Actor,
    /// The signed-in user acting; None for the command line.
    user_id: Option<String>,
    origin: Origin,
    /// Recorded in the entry's details (`"cli"`), when not the web pages.
    via: Option<&'static str>,
}

impl Acting {
    /// A signed-in admin (or user) on the web pages.
    pub fn user(user: &User, origin: Origin) -> Self {
        Self {
            actor: user.actor(),
            user_id: Some(user.id.clone()),
            origin,
            via: None,
        }
    }

    /// Whoever runs `connecthub user …` on the server.
    pub fn command_line() -> Self {
        Self {
            actor: Actor::system(),
            user_id: None,
            origin: Origin::default(),
            via: Some("cli"),
        }
    }

    pub fn is(&self, user: &User) -> bool {
        self.user_id.as_deref() == Some(user.id.as_str())
    }

    /// An entry about `user`; its details name them by email (never a password), add
    /// `more`, and say where the change came from when not the web pages.
    fn event(&self, action: &'static str, user: &User, more: serde_json::Value) -> Event {
        let mut details = serde_json::Map::new();
        details.insert("email".into(), user.email.clone().into());
        if let serde_json::Value::Object(more) = more {
            details.extend(more);
        }
        if let Some(via) = self.via {
            details.insert("via".into(), via.into());
        }
        Event::new(self.actor.clone(), action)
            .target("user", user.id.clone())
            .origin(&self.origin)
            .details(details.into())
    }
}

/// Long enough to resist guessing, short enough to hash cheaply.
pub fn check_new_password(password: &SecretString) -> Result<(), String> {
    let length = password.expose_secret().chars().count();
    if length < password::MIN_LENGTH {
        return Err(format!(
            "The password must have at least {} characters.",
            password::MIN_LENGTH
        ));
    }
    if length > PASSWORD_MAX_CHARS {
        return Err(format!(
            "The password can be at most {PASSWORD_MAX_CHARS} characters."
        ));
    }
    Ok(())
}

/// The name shown in the app; empty means the part of the email before @.
pub fn display_name(raw: &str, email: &Email) -> Result<String, String> {
    let name = SingleLine::<NAME_MAX_CHARS>::parse(raw)
        .map_err(|problem| format!("The name {problem}."))?
        .into_string();
    if name.is_empty() {
        let local = email.as_str().split('@').next().unwrap_or("user");
        return Ok(local.to_string());
    }
    Ok(name)
}

/// The chosen password, or a generated one that is also returned, to be shown once.
pub fn chosen_or_generated(chosen: Option<SecretString>) -> (SecretString, Option<String>) {
    match chosen {
        Some(chosen) => (chosen, None),
        None => {
            let generated = password::generate();
            (SecretString::from(generated.clone()), Some(generated))
        }
    }
}

/// Hashes a password off the async threads (argon2 takes tens of milliseconds).
pub async fn hash_password(secret: SecretString) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&secret)).await?
}

/// An account to create, checked.
pub struct NewAccount {
    pub email: Email,
    pub name: String,
    pub role: Role,
    /// Whether the password was generated (and shown once) rather than chosen.
    pub generated_password: bool,
}

/// Stores the account and its audit entry together; None when the email is taken.
pub fn create(
    conn: &mut DbConnection,
    new: &NewAccount,
    password_hash: &str,
    acting: &Acting,
) -> QueryResult<Option<User>> {
    let created = crate::db::transaction(conn, |conn| {
        let user = users::create(conn, &new.email, &new.name, password_hash, new.role)?;
        let more = serde_json::json!({
            "role": user.role,
            "generated_password": new.generated_password,
        });
        audit::append(conn, acting.event("user_created", &user, more))?;
        Ok(user)
    });
    match created {
        Ok(user) => Ok(Some(user)),
        // The UNIQUE constraint, not an earlier lookup, decides between racing requests.
        Err(e) if users::is_email_taken(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How a role change ended (None from `change_role`: no such user).
pub enum RoleChange {
    Changed(User),
    Already(User),
    /// Refused: they are the last active admin.
    LastAdmin(User),
}

pub fn change_role(
    conn: &mut DbConnection,
    id: &str,
    role: Role,
    acting: &Acting,
) -> QueryResult<Option<RoleChange>> {
    crate::db::transaction(conn, |conn| {
        users::lock_admins(conn)?;
        let Some(user) = users::find(conn, id)? else {
            return Ok(None);
        };
        if user.role() == role {
            return Ok(Some(RoleChange::Already(user)));
        }
        if role == Role::Member && is_last_admin(conn, &user)? {
            return Ok(Some(RoleChange::LastAdmin(user)));
        }
        users::set_role(conn, id, role)?;
        let more = serde_json::json!({ "from": user.role, "to": role.as_str() });
        audit::append(conn, acting.event("user_role_changed", &user, more))?;
        Ok(Some(RoleChange::Changed(user)))
    })
}

/// Whether demoting or disabling `user` would leave no active admin to manage users.
/// Call after `users::lock_admins`.
fn is_last_admin(conn: &mut DbConnection, user: &User) -> QueryResult<bool> {
    Ok(user.is_admin() && user.is_active() && users::count_active_admins(conn)? <= 1)
}

/// How disabling ended (None from `disable`: no such user).
pub enum Disabling {
    Disabled(User),
    Already(User),
    /// Refused: one cannot disable oneself.
    OwnAccount,
    /// Refused: they are the last active admin.
    LastAdmin(User),
}

/// Disables the account and ends every session of it at once.
pub fn disable(
    conn: &mut DbConnection,
    id: &str,
    acting: &Acting,
) -> QueryResult<Option<Disabling>> {
    crate::db::transaction(conn, |conn| {
        users::lock_admins(conn)?;
        let Some(user) = users::find(conn, id)? else {
            return Ok(None);
        };
        if acting.is(&user) {
            return Ok(Some(Disabling::OwnAccount));
        }
        if !user.is_active() {
            return Ok(Some(Disabling::Already(user)));
        }
        // Only reachable when another admin demoted the acting one meanwhile.
        if is_last_admin(conn, &user)? {
            return Ok(Some(Disabling::LastAdmin(user)));
        }
        users::set_disabled(conn, id, Some(crate::db::now()))?;
        let ended = session_store::delete_for_user(conn, id)?;
        let more = serde_json::json!({ "sessions_ended": ended });
        audit::append(conn, acting.event("user_disabled", &user, more))?;
        Ok(Some(Disabling::Disabled(user)))
    })
}

/// Enables the account again; `Err` holds a user who was not disabled. None: no such user.
pub fn enable(
    conn: &mut DbConnection,
    id: &str,
    acting: &Acting,
) -> QueryResult<Option<Result<User, User>>> {
    crate::db::transaction(conn, |conn| {
        let Some(user) = users::find(conn, id)? else {
            return Ok(None);
        };
        if user.is_active() {
            return Ok(Some(Err(user)));
        }
        users::set_disabled(conn, id, None)?;
        let more = serde_json::json!({});
        audit::append(conn, acting.event("user_enabled", &user, more))?;
        Ok(Some(Ok(user)))
    })
}

/// Sets a new password chosen for the user (by an admin or the command line), ends the
/// user's sessions and records it; None for no such user.
pub fn reset_password(
    conn: &mut DbConnection,
    id: &str,
    password_hash: &str,
    acting: &Acting,
) -> QueryResult<Option<User>> {
    crate::db::transaction(conn, |conn| {
        let Some(user) = users::find(conn, id)? else {
            return Ok(None);
        };
        users::set_password(conn, id, password_hash)?;
        let ended = session_store::delete_for_user(conn, id)?;
        let more = serde_json::json!({ "sessions_ended": ended });
        audit::append(conn, acting.event("password_reset", &user, more))?;
        Ok(Some(user))
    })
}

/// How a change of one's own password ended.
pub enum PasswordChange {
    /// Changed; every session of the user has ended (the caller renews its own).
    Changed,
    WrongCurrent,
    /// Too many wrong passwords lately; try again after this long.
    Wait(Duration),
}

/// Changes the user's own password when `current` is right. It spends the sign-in
/// budget: a borrowed session must not be a way to guess the password faster.
pub async fn change_own_password(
    pool: &DbPool,
    limiter: &LoginLimiter,
    user: &User,
    origin: &Origin,
    current: SecretString,
    new: SecretString,
) -> Result<PasswordChange, DbError> {
    let ip = origin.ip.clone().unwrap_or_default();
    if let Err(wait) = limiter.check(&ip, &user.email) {
        return Ok(PasswordChange::Wait(wait));
    }
    let hash = verify_then_hash(user.password_hash.clone(), current, new).await?;
    match &hash {
        Some(_) => limiter.succeeded(&ip, &user.email),
        None => limiter.failed(&ip, &user.email),
    }
    let event = user
        .event("password_changed")
        .target("user", user.id.clone())
        .origin(origin);
    let Some(hash) = hash else {
        let event = event
            .failed()
            .details(serde_json::json!({"reason": "wrong current password"}));
        crate::db::run(pool, move |conn| audit::append(conn, event)).await?;
        return Ok(PasswordChange::WrongCurrent);
    };
    let id = user.id.clone();
    crate::db::run(pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            users::set_password(conn, &id, &hash)?;
            session_store::delete_for_user(conn, &id)?;
            audit::append(conn, event)
        })
    })
    .await?;
    Ok(PasswordChange::Changed)
}

/// The new password's hash when the current one is right; None when it is wrong.
async fn verify_then_hash(
    stored: String,
    current: SecretString,
    new: SecretString,
) -> Result<Option<String>, DbError> {
    let hashed = tokio::task::spawn_blocking(move || {
        if !password::verify(&current, &stored) {
            return Ok(None);
        }
        password::hash(&new).map(Some)
    })
    .await??;
    Ok(hashed)
}

/// How a sign-in attempt ended.
pub enum SignIn {
    Welcome(User),
    Refused,
    /// Too many attempts lately; try again after this long.
    Wait(Duration),
}

/// Checks a sign-in within the rate limit and records it in the audit log. Attempts are
/// counted and recorded under the email as typed (`typed_email`).
pub async fn sign_in(
    pool: &DbPool,
    limiter: &LoginLimiter,
    email: &str,
    password: SecretString,
    origin: &Origin,
) -> Result<SignIn, DbError> {
    let typed = typed_email(email);
    let ip = origin.ip.clone().unwrap_or_default();
    if let Err(wait) = limiter.check(&ip, &typed) {
        return Ok(SignIn::Wait(wait));
    }
    let user = check_credentials(pool, email, password).await?;
    match &user {
        Some(_) => limiter.succeeded(&ip, &typed),
        None => limiter.failed(&ip, &typed),
    }
    let event = match &user {
        Some(user) => user.event("login"),
        None => Event::new(Actor::anonymous(&typed), "login_failed").failed(),
    }
    .origin(origin);
    crate::db::run(pool, move |conn| audit::append(conn, event)).await?;
    Ok(user.map_or(SignIn::Refused, SignIn::Welcome))
}

/// The email as typed, for the rate limit, the audit entry and the form shown again:
/// trimmed, lowercased, at most 254 characters, control characters escaped (`\u{0}`), so a
/// malformed address is recorded like an unknown one on both databases.
pub fn typed_email(raw: &str) -> String {
    raw.trim()
        .to_lowercase()
        .chars()
        .take(254)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The active user with this email and password; unknown emails cost the same time as
/// wrong passwords so the answer does not reveal which accounts exist.
async fn check_credentials(
    pool: &DbPool,
    email: &str,
    password: SecretString,
) -> Result<Option<User>, DbError> {
    let user = match Email::parse(email) {
        Ok(email) => crate::db::run(pool, move |conn| users::find_by_email(conn, &email)).await?,
        Err(_) => None,
    };
    let checked = tokio::task::spawn_blocking(move || match user {
        Some(user) if password::verify(&password, &user.password_hash) => Some(user),
        Some(_) => None,
        None => {
            password::verify_against_dummy(&password);
            None
        }
    })
    .await?;
    Ok(checked.filter(User::is_active))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_name_is_the_part_of_the_email_before_the_at() {
        let email = Email::parse("Ann.Lee@Example.com").unwrap();
        assert_eq!(display_name("  ", &email).unwrap(), "ann.lee");
        assert_eq!(display_name(" Ann Lee ", &email).unwrap(), "Ann Lee");
        assert!(display_name("two\nlines", &email).is_err());
        assert!(display_name(&"n".repeat(NAME_MAX_CHARS + 1), &email).is_err());
    }

    #[test]
    fn new_passwords_are_long_enough_and_not_too_long() {
        let of = |n: usize| SecretString::from("p".repeat(n));
        assert!(check_new_password(&of(password::MIN_LENGTH - 1)).is_err());
        assert!(check_new_password(&of(password::MIN_LENGTH)).is_ok());
        assert!(check_new_password(&of(PASSWORD_MAX_CHARS)).is_ok());
        assert!(check_new_password(&of(PASSWORD_MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn typed_emails_are_trimmed_lowercased_and_escaped() {
        assert_eq!(typed_email("  Ann@X.io "), "ann@x.io");
        assert_eq!(typed_email("q\0@x.io"), "q\\u{0}@x.io");
        assert_eq!(typed_email(&"a".repeat(300)).len(), 254);
    }
}
