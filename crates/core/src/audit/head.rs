//! The chain's head: how many entries it has and the hash of the newest. The chain alone
//! cannot show that its newest entries were cut off (what is left still links up), so the
//! head is published periodically — to the log and as the `audit.head` webhook event — and
//! `audit verify --expect-head <count>:<hash>` checks the chain still reaches a published
//! head.

use crate::db::schema::audit_log;
use crate::db::DbConnection;
use crate::webhooks::{self, EventType};
use diesel::prelude::*;

/// A point the chain passed: its `count`-th entry (in id order) has hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub count: u64,
    pub hash: String,
}

impl Head {
    /// `<count>:<hash>` as the log line and the event print it; the hash is 64 hex digits.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let problem = || {
            "must be <count>:<hash>, as published in the audit.head event or log line (e.g. 42:3fa9…, 64 hex digits)".to_string()
        };
        let (count, hash) = raw.trim().split_once(':').ok_or_else(problem)?;
        let count: u64 = count.parse().ok().filter(|c| *c > 0).ok_or_else(problem)?;
        let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(problem());
        }
        Ok(Self {
            count,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.count, self.hash)
    }
}

/// The current head, or None while the log is empty. Counting only up to the newest id
/// read keeps the pair consistent while entries are appended (appends are serialised, so
/// ids commit in order).
pub fn current(conn: &mut DbConnection) -> QueryResult<Option<Head>> {
    let newest = audit_log::table
        .select((audit_log::id, audit_log::hash))
        .order(audit_log::id.desc())
        .first::<(i64, String)>(conn)
        .optional()?;
    let Some((id, hash)) = newest else {
        return Ok(None);
    };
    let count: i64 = audit_log::table
        .filter(audit_log::id.le(id))
        .count()
        .get_result(conn)?;
    Ok(Some(Head {
        count: count as u64,
        hash,
    }))
}

/// Publishes the head as an `audit.head` event unless an instance did within `min_gap`
/// (several instances share one chain). Returns the head either way, for the log line.
pub fn publish(conn: &mut DbConnection, min_gap: chrono::TimeDelta) -> QueryResult<Option<Head>> {
    crate::db::transaction(conn, |conn| {
        let Some(head) = current(conn)? else {
            return Ok(None);
        };
        let since = crate::db::now() - min_gap;
        if !webhooks::emitted_since(conn, EventType::AuditHead, since)? {
            let data = serde_json::json!({
                "count": head.count,
                "hash": head.hash,
                "expect_head": head.to_string(),
            });
            webhooks::emit(conn, EventType::AuditHead, data)?;
        }
        Ok(Some(head))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_strictly_and_print_back() {
        let hash = "ab".repeat(32);
        let head = Head::parse(&format!("42:{}", hash.to_uppercase())).unwrap();
        assert_eq!(head.count, 42);
        assert_eq!(head.to_string(), format!("42:{hash}"));
        for bad in ["", "42", "x:ab", "0:", "42:abc", "-1:00"] {
            assert!(Head::parse(bad).is_err(), "{bad}");
        }
        assert!(Head::parse(&format!("0:{hash}")).is_err());
        assert!(Head::parse(&format!("5:{}g", &hash[1..])).is_err());
    }
}
