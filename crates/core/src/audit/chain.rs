//! The hash chain: appending entries that link to the one before, and verifying the links.

use super::{Entry, Event, Head};
use crate::db::schema::audit_log;
use crate::db::DbConnection;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

/// The chain starts from this value.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// PostgreSQL advisory lock id that serialises appends across instances.
const APPEND_LOCK_ID: i64 = 0x636f_6e6e_6175_6469;

impl Entry {
    /// The hash over every stored field but `id` and `hash`, chained to the previous entry.
    fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.prev_hash,
            self.at.and_utc().timestamp_micros(),
            self.actor_type,
            self.actor_id,
            self.actor_label,
            self.action,
            self.target_type,
            self.target_id,
            self.outcome,
            self.ip,
            self.user_agent,
            self.details,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Appends one entry to the chain. Appends are serialised so two never claim the same
/// predecessor: an advisory lock on PostgreSQL, the immediate write lock on SQLite.
pub fn append(conn: &mut DbConnection, event: Event) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        lock_chain(conn)?;
        insert_chained(conn, event)
    })
}

fn insert_chained(conn: &mut DbConnection, event: Event) -> QueryResult<()> {
    let prev_hash = last_hash(conn)?;
    let mut entry = entry_of(event, prev_hash);
    entry.hash = entry.compute_hash();
    diesel::insert_into(audit_log::table)
        .values(&entry)
        .execute(conn)?;
    Ok(())
}

fn last_hash(conn: &mut DbConnection) -> QueryResult<String> {
    Ok(audit_log::table
        .select(audit_log::hash)
        .order(audit_log::id.desc())
        .first::<String>(conn)
        .optional()?
        .unwrap_or_else(|| GENESIS.to_string()))
}

/// The entry an event becomes, dated now, not yet hashed.
fn entry_of(event: Event, prev_hash: String) -> Entry {
    let (target_type, target_id) = match event.target {
        Some((kind, id)) => (Some(kind.to_string()), Some(id)),
        None => (None, None),
    };
    Entry {
        id: 0,
        at: crate::db::now(),
        actor_type: event.actor.kind.to_string(),
        actor_id: event.actor.id,
        actor_label: event.actor.label,
        action: event.action.to_string(),
        target_type,
        target_id,
        outcome: if event.success { "success" } else { "failure" }.to_string(),
        ip: event.origin.ip,
        user_agent: event
            .origin
            .user_agent
            .map(|ua| ua.chars().take(512).collect()),
        details: event.details.to_string(),
        prev_hash,
        hash: String::new(),
    }
}

/// Appends several entries in one transaction (one lock, one commit).
pub fn append_many(conn: &mut DbConnection, events: Vec<Event>) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        lock_chain(conn)?;
        events
            .into_iter()
            .try_for_each(|event| insert_chained(conn, event))
    })
}

/// Appends entries dated `at` (oldest first) as one run of the chain in multi-row INSERTs:
/// `connecthub seed --audit-rows` fills the log by the million, still verifiable.
pub fn append_dated(
    conn: &mut DbConnection,
    events: Vec<(Event, chrono::NaiveDateTime)>,
) -> QueryResult<()> {
    /// 14 bound values a row: well under both databases' limits.
    const ROWS_PER_INSERT: usize = 1000;
    crate::db::transaction(conn, |conn| {
        lock_chain(conn)?;
        let mut prev_hash = last_hash(conn)?;
        let entries: Vec<Entry> = events
            .into_iter()
            .map(|(event, at)| {
                let mut entry = entry_of(event, prev_hash.clone());
                entry.at = at;
                entry.hash = entry.compute_hash();
                prev_hash = entry.hash.clone();
                entry
            })
            .collect();
        for rows in entries.chunks(ROWS_PER_INSERT) {
            let insert = diesel::insert_into(audit_log::table).values(rows);
            match conn {
                DbConnection::Postgresql(conn) => insert.execute(conn),
                DbConnection::Sqlite(conn) => insert.execute(conn),
            }?;
        }
        Ok(())
    })
}

/// Serialises appends across instances on PostgreSQL; on SQLite the transaction's
/// immediate write lock already does.
fn lock_chain(conn: &mut DbConnection) -> QueryResult<()> {
    if matches!(conn, DbConnection::Postgresql(_)) {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({APPEND_LOCK_ID})"))
            .execute(conn)?;
    }
    Ok(())
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        entries: u64,
    },
    Broken {
        entry_id: i64,
        reason: &'static str,
    },
    /// The chain links up but ends before a published head: its newest entries were cut off.
    ShorterThanHead {
        entries: u64,
        head: u64,
    },
}

/// Walks the whole chain in id order and reports the first entry that does not fit.
pub fn verify(conn: &mut DbConnection) -> QueryResult<Verdict> {
    verify_against(conn, None)
}

/// Like `verify`, and the chain must also pass through `head`: its `head.count`-th entry
/// must carry `head.hash`. Without a head a chain cut at its end still verifies, because
/// what is left links up from the start; only a head published before the cut shows it.
pub fn verify_against(conn: &mut DbConnection, head: Option<&Head>) -> QueryResult<Verdict> {
    const PAGE: i64 = 1000;
    let mut expected_prev = GENESIS.to_string();
    let mut after = 0_i64;
    let mut count = 0_u64;
    loop {
        let page: Vec<Entry> = audit_log::table
            .filter(audit_log::id.gt(after))
            .order(audit_log::id.asc())
            .limit(PAGE)
            .select(Entry::as_select())
            .load(conn)?;
        for entry in &page {
            if let Some(reason) = misfit(entry, &expected_prev) {
                return Ok(Verdict::Broken {
                    entry_id: entry.id,
                    reason,
                });
            }
            expected_prev = entry.hash.clone();
            count += 1;
            if head.is_some_and(|h| h.count == count && h.hash != entry.hash) {
                return Ok(Verdict::Broken {
                    entry_id: entry.id,
                    reason: "is not the entry of the published head (the chain was rewritten from here on)",
                });
            }
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.id,
            _ => break,
        }
    }
    match head {
        Some(head) if count < head.count => Ok(Verdict::ShorterThanHead {
            entries: count,
            head: head.count,
        }),
        _ => Ok(Verdict::Intact { entries: count }),
    }
}

/// Why the entry does not fit after `expected_prev`, if it does not.
fn misfit(entry: &Entry, expected_prev: &str) -> Option<&'static str> {
    if entry.prev_hash != expected_prev {
        return Some("does not link to the entry before it (an entry was removed)");
    }
    if entry.compute_hash() != entry.hash {
        return Some("its content does not match its hash (the entry was edited)");
    }
    None
}
