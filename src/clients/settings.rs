//! What owners change about a client after connecting it: its tags and whether it is their
//! default for its provider (the one the service API hands out when no client is named).
//! Also the few reads the client's page needs beside the row itself.

use super::{normalise_tag, Client};
use crate::db::schema::{clients, credentials, users};
use crate::db::DbConnection;
use diesel::prelude::*;

/// At most this many tags on one client.
pub const MAX_TAGS: usize = 20;

/// Reads the tag field (`vip, EU ,trial`): trimmed, lowercased, duplicates dropped, order
/// kept. Empty items (a trailing comma) are skipped, so an empty field clears the tags.
pub fn parse_tags(raw: &str) -> Result<Vec<String>, String> {
    let mut tags: Vec<String> = Vec::new();
    for item in raw.split(',').filter(|item| !item.trim().is_empty()) {
        let tag = normalise_tag(item).map_err(|_| {
            format!(
                "{:?} is not a tag: a tag is 1 to 32 of a-z, 0-9, - and _",
                item.trim()
            )
        })?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(format!("a client can have at most {MAX_TAGS} tags"));
    }
    Ok(tags)
}

/// Replaces the client's tags (already parsed by `parse_tags`).
pub fn set_tags(conn: &mut DbConnection, id: &str, tags: &[String]) -> QueryResult<usize> {
    let json = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
    diesel::update(clients::table.find(id))
        .set((
            clients::tags.eq(json),
            clients::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

/// How `make_default` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum DefaultChange {
    /// The client is now the default; these clients were before it.
    Made {
        previous: Vec<String>,
    },
    AlreadyDefault,
    /// A disconnected client has no credentials to hand out, so it cannot be the default.
    Disconnected,
    /// The client no longer exists.
    Gone,
}

/// Makes `client` its owner's default for its provider and clears the flag on the owner's
/// other clients of that provider, so exactly one stays default.
pub fn make_default(conn: &mut DbConnection, client: &Client) -> QueryResult<DefaultChange> {
    crate::db::transaction(conn, |conn| {
        let siblings = || {
            clients::table
                .filter(clients::owner_user_id.eq(&client.owner_user_id))
                .filter(clients::provider.eq(&client.provider))
        };
        // A no-op write that locks every sibling row (PostgreSQL): two concurrent switches
        // or a concurrent disconnect wait here instead of leaving two defaults. SQLite's
        // BEGIN IMMEDIATE already serialises writers.
        diesel::update(siblings())
            .set(clients::is_default.eq(clients::is_default))
            .execute(conn)?;
        // Read again under the lock: the status may have changed since the page loaded.
        let Some(current) = super::find(conn, &client.id)? else {
            return Ok(DefaultChange::Gone);
        };
        if current.status == "disconnected" {
            return Ok(DefaultChange::Disconnected);
        }
        let previous: Vec<String> = siblings()
            .filter(clients::is_default.eq(true))
            .filter(clients::id.ne(&client.id))
            .select(clients::id)
            .load(conn)?;
        if current.is_default && previous.is_empty() {
            return Ok(DefaultChange::AlreadyDefault);
        }
        let now = crate::db::now();
        diesel::update(clients::table.filter(clients::id.eq_any(&previous)))
            .set((clients::is_default.eq(false), clients::updated_at.eq(now)))
            .execute(conn)?;
        diesel::update(clients::table.find(&client.id))
            .set((clients::is_default.eq(true), clients::updated_at.eq(now)))
            .execute(conn)?;
        Ok(DefaultChange::Made { previous })
    })
}

/// The owner's default client for a provider, unless it is disconnected. `owner` is a
/// user id, or an email address (it has an @).
pub fn default_of(
    conn: &mut DbConnection,
    owner: &str,
    provider: &str,
) -> QueryResult<Option<Client>> {
    let query = clients::table
        .inner_join(users::table)
        .filter(clients::provider.eq(provider))
        .filter(clients::is_default.eq(true))
        .filter(clients::status.ne("disconnected"))
        .select(Client::as_select())
        .into_boxed();
    let query = if owner.contains('@') {
        query.filter(users::email.eq(owner.to_lowercase()))
    } else {
        query.filter(clients::owner_user_id.eq(owner.to_string()))
    };
    query.first(conn).optional()
}

/// When the client's access token expires (None: no token, or it does not expire). Reads
/// no secret.
pub fn expires_at(conn: &mut DbConnection, id: &str) -> QueryResult<Option<chrono::NaiveDateTime>> {
    Ok(credentials::table
        .find(id)
        .select(credentials::expires_at)
        .first::<Option<chrono::NaiveDateTime>>(conn)
        .optional()?
        .flatten())
}

/// The email of the client's owner.
pub fn owner_email(conn: &mut DbConnection, client: &Client) -> QueryResult<String> {
    users::table
        .find(&client.owner_user_id)
        .select(users::email)
        .first(conn)
}

#[cfg(test)]
mod tests {
    use super::{parse_tags, MAX_TAGS};

    #[test]
    fn tags_are_normalised_and_deduplicated() {
        assert_eq!(
            parse_tags(" VIP, eu ,vip,trial_1,").unwrap(),
            vec!["vip", "eu", "trial_1"]
        );
        assert_eq!(parse_tags("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_tags(" , ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn bad_tags_are_refused() {
        assert!(parse_tags("ok, not ok").is_err());
        assert!(parse_tags("café").is_err());
        assert!(parse_tags(&"a".repeat(33)).is_err());
        assert!(parse_tags(&"a".repeat(32)).is_ok());
        let many: Vec<String> = (0..=MAX_TAGS).map(|n| format!("t{n}")).collect();
        assert!(parse_tags(&many.join(",")).is_err());
        assert!(parse_tags(&many[..MAX_TAGS].join(",")).is_ok());
        // Duplicates count once.
        assert!(parse_tags(&[many[..MAX_TAGS].join(","), "t0".into()].join(",")).is_ok());
    }
}
