//! A client's tags: what a tag may be, reading the tag field, and the one transaction that
//! changes a client's tags and records it, where the cap of `MAX_TAGS` is enforced for
//! every way of changing them (the tag field and the list's bulk action alike).

use super::find;
use crate::audit::{self, Event};
use crate::db::schema::clients;
use crate::db::DbConnection;
use diesel::prelude::*;

/// At most this many tags on one client.
pub const MAX_TAGS: usize = 20;

/// A tag as stored: trimmed, lowercased, 1–32 of a-z 0-9 - _.
pub fn normalise_tag(raw: &str) -> Result<String, String> {
    let tag = raw.trim().to_lowercase();
    let valid = (1..=32).contains(&tag.len())
        && tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(tag)
    } else {
        Err("a tag is 1 to 32 of a-z, 0-9, - and _".into())
    }
}

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
        return Err(too_many());
    }
    Ok(tags)
}

fn too_many() -> String {
    format!("a client can have at most {MAX_TAGS} tags")
}

/// Why a client's tags were left as they were.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The change would leave the client with more than `MAX_TAGS` tags.
    TooMany,
    /// The client no longer exists.
    Gone,
}

impl Refused {
    pub fn message(&self) -> String {
        match self {
            Refused::TooMany => too_many(),
            Refused::Gone => "the client no longer exists".into(),
        }
    }
}

/// Replaces the client's tags (read by `parse_tags`) and records `event`, together.
pub fn replace_tags(
    conn: &mut DbConnection,
    id: &str,
    tags: Vec<String>,
    event: Event,
) -> QueryResult<Result<Vec<String>, Refused>> {
    change_tags(conn, id, |_| tags, event)
}

/// Adds a tag (from `normalise_tag`) to the client, once, keeping its others, and records
/// `event`, together.
pub fn add_tag(
    conn: &mut DbConnection,
    id: &str,
    tag: &str,
    event: Event,
) -> QueryResult<Result<Vec<String>, Refused>> {
    change_tags(
        conn,
        id,
        |mut tags| {
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_string());
            }
            tags
        },
        event,
    )
}

/// The one "change tags + audit" transaction: reads the client's tags, applies `edit`,
/// refuses a result over the cap, stores it and appends `event`. The tags are read under
/// the transaction so two concurrent additions cannot together pass the cap.
fn change_tags(
    conn: &mut DbConnection,
    id: &str,
    edit: impl FnOnce(Vec<String>) -> Vec<String>,
    event: Event,
) -> QueryResult<Result<Vec<String>, Refused>> {
    crate::db::transaction(conn, |conn| {
        let Some(client) = find(conn, id)? else {
            return Ok(Err(Refused::Gone));
        };
        let before = client.tag_list();
        let tags = edit(before.clone());
        if tags.len() > MAX_TAGS {
            return Ok(Err(Refused::TooMany));
        }
        if tags != before {
            store(conn, id, &tags)?;
        }
        audit::append(conn, event)?;
        Ok(Ok(tags))
    })
}

fn store(conn: &mut DbConnection, id: &str, tags: &[String]) -> QueryResult<usize> {
    let json = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
    diesel::update(clients::table.find(id))
        .set((
            clients::tags.eq(json),
            clients::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
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
