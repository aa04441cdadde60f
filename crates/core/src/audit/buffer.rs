//! The write buffer for frequent events.

use super::{append_many, Event};
use serde_json::Value;

/// Entries for frequent events (token hand-outs). Identical events (same actor, action and
/// target) are counted in memory and written once a second as one entry carrying the
/// count and the first and last time, so a busy service neither waits for the audit log's
/// lock nor floods it. Security events (sign-in, connect, disconnect …) are still appended
/// synchronously with `append`.
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

    fn take(&self) -> Vec<Event> {
        let drained = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        drained
            .into_values()
            .map(|p| {
                let mut event = p.event;
                if let Value::Object(details) = &mut event.details {
                    details.insert("count".into(), p.count.into());
                    details.insert("first_at".into(), p.first.and_utc().to_rfc3339().into());
                    details.insert("last_at".into(), p.last.and_utc().to_rfc3339().into());
                }
                event
            })
            .collect()
    }
}

impl Buffer {
    /// Writes what was counted since the last call (the server calls it every second and
    /// once more when it stops).
    pub async fn flush(&self, pool: &crate::db::DbPool) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        if let Err(e) = crate::db::run(pool, move |conn| append_many(conn, batch)).await {
            tracing::error!(error = %e, entries = count, "audit entries could not be written");
        }
    }
}
