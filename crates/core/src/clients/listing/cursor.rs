//! A row's place in the Clients list, as "Next" and "Previous" links (and the service
//! API's `next_cursor`) carry it: its sort key and id.

use super::Sort;
use crate::clients::ListedClient;
use chrono::NaiveDateTime;

/// The expiry of a client without one (no credentials, or a token that does not expire):
/// `clients.expiry_order` holds it so those sort last (see the list_keys migration).
pub(super) fn no_expiry() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_opt(23, 59, 59))
        .unwrap_or(NaiveDateTime::MAX)
}

/// A row's place in the list: its sort key and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub(super) key: Key,
    pub(super) id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Updated(NaiveDateTime),
    Name(String),
    /// `clients.expiry_order`.
    Expires(NaiveDateTime),
}

impl Cursor {
    /// The cursor of a listed row in the given sort.
    pub fn of(sort: Sort, listed: &ListedClient) -> Self {
        let client = &listed.client;
        let key = match sort {
            Sort::Updated => Key::Updated(client.updated_at),
            Sort::Name => Key::Name(client.display_name.clone()),
            Sort::Expires => Key::Expires(listed.expires_at.unwrap_or_else(no_expiry)),
        };
        Self {
            key,
            id: client.id.clone(),
        }
    }

    /// `<id>~<key>`: the key is microseconds since 1970 or the display name.
    pub fn encode(&self) -> String {
        match &self.key {
            Key::Updated(at) | Key::Expires(at) => {
                format!("{}~{}", self.id, at.and_utc().timestamp_micros())
            }
            Key::Name(name) => format!("{}~{name}", self.id),
        }
    }

    /// Reads `encode`'s form for this sort; None when it is not one.
    pub fn decode(sort: Sort, raw: &str) -> Option<Self> {
        let (id, key) = raw.split_once('~')?;
        if id.is_empty()
            || id.len() > crate::clients::MAX_ID_LEN
            || raw.chars().any(char::is_control)
        {
            return None;
        }
        let moment = |key: &str| {
            chrono::DateTime::from_timestamp_micros(key.parse().ok()?).map(|at| at.naive_utc())
        };
        let key = match sort {
            Sort::Updated => Key::Updated(moment(key)?),
            Sort::Name => Key::Name(key.to_string()),
            Sort::Expires => Key::Expires(moment(key)?),
        };
        Some(Self {
            key,
            id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_nonsense() {
        let at = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456)
            .unwrap()
            .naive_utc();
        let cursor = Cursor {
            key: Key::Updated(at),
            id: "abc".into(),
        };
        assert_eq!(
            Cursor::decode(Sort::Updated, &cursor.encode()),
            Some(cursor)
        );
        let named = Cursor {
            key: Key::Name("Acme ~ Store".into()),
            id: "abc".into(),
        };
        assert_eq!(Cursor::decode(Sort::Name, &named.encode()), Some(named));
        let expiring = Cursor {
            key: Key::Expires(no_expiry()),
            id: "abc".into(),
        };
        assert_eq!(
            Cursor::decode(Sort::Expires, &expiring.encode()),
            Some(expiring)
        );
        for raw in ["", "abc", "~1", "abc~x", "abc~1\0"] {
            assert_eq!(Cursor::decode(Sort::Updated, raw), None, "{raw:?}");
            assert_eq!(Cursor::decode(Sort::Expires, raw), None, "{raw:?}");
        }
    }
}
