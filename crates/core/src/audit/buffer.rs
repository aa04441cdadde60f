//! The write buffer for frequent events.

use super::{append_many, Event};
use serde_json::Value;

/// Entries for frequent events (token hand-outs). Identical events (same actor, action and
/// target) are counted in memory and written once a second as one entry carrying the
/// count and the first and last time, so a busy service neither waits for the audit log's
/// lock nor floods it. Security events (sign-in, connect, disconnect …) are still appended
/// synchronously with `append`.
/// Distinct entries kept at most while the database cannot take them (each stands for any
/// number of identical events, so this bounds memory, not the events kept).
pub const MAX_PENDING: usize = 100_000;

#[derive(Default)]
pub struct Buffer {
    pending: std::sync::Mutex<std::collections::HashMap<String, Pending>>,
}

struct Pending {
    event: Event,
    count: u64,
    first: chrono::NaiveDateTime,
    last: chrono::NaiveDateTime,
}

impl Buffer {
    pub fn record(&self, event: Event) {
        let key = format!(
            "{}|{:?}|{}|{:?}",
            event.actor.kind, event.actor.id, event.action, event.target
        );
        let now = crate::db::now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .entry(key)
            .and_modify(|p| {
                p.count += 1;
                p.last = now;
            })
            .or_insert(Pending {
                event,
                count: 1,
                first: now,
                last: now,
            });
    }

    fn take(&self) -> std::collections::HashMap<String, Pending> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts entries that could not be written back, merged with those counted meanwhile;
    /// past `MAX_PENDING` distinct entries the rest are dropped. Returns how many were.
    fn put_back(&self, unwritten: std::collections::HashMap<String, Pending>) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut dropped = 0;
        for (key, old) in unwritten {
            if let Some(newer) = pending.get_mut(&key) {
                newer.count += old.count;
                newer.first = old.first;
            } else if pending.len() < MAX_PENDING {
                pending.insert(key, old);
            } else {
                dropped += 1;
            }
        }
        dropped
    }

    /// Distinct entries waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The entry for a count of identical events.
fn entry(p: &Pending) -> Event {
    let mut event = p.event.clone();
    if let Value::Object(details) = &mut event.details {
        details.insert("count".into(), p.count.into());
        details.insert("first_at".into(), p.first.and_utc().to_rfc3339().into());
        details.insert("last_at".into(), p.last.and_utc().to_rfc3339().into());
    }
    event
}

impl Buffer {
    /// Writes what was counted since the last call (the server calls it every second and
    /// once more when it stops). When the database cannot take it (an outage) it is kept
    /// for the next try.
    pub async fn flush(&self, pool: &crate::db::DbPool) {
        let taken = self.take();
        if taken.is_empty() {
            return;
        }
        let batch: Vec<Event> = taken.values().map(entry).collect();
        let count = batch.len();
        if let Err(e) = crate::db::run(pool, move |conn| append_many(conn, batch)).await {
            let dropped = self.put_back(taken);
            tracing::error!(error = %e, entries = count, dropped, "audit entries could not be written; kept for the next try");
        }
    }
}
