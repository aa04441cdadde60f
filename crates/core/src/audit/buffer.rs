//! The write buffer for frequent events.

use super::{append_many, Event};
use serde_json::Value;

/// Entries for frequent events (token hand-outs). Identical events (same actor, action and
/// target) are counted in memory: the first is written within a second; those that follow
/// within the quiet window (a minute) of that write are written together when the window ends, as one
/// entry carrying the count and the first and last time. A service taking 10,000 clients'
/// tokens many times a second thus writes at most two entries per client a minute, instead
/// of one per hand-out; the audit log still says who took which client's token, when and
/// how often. Security events (sign-in, connect, disconnect …) are still appended
/// synchronously with `append`.
/// Distinct entries kept at most while the database cannot take them (each stands for any
/// number of identical events, so this bounds memory, not the events kept).
pub const MAX_PENDING: usize = 100_000;

pub struct Buffer {
    pending: std::sync::Mutex<Pendings>,
    /// After an entry is written, identical events are gathered this long before the next
    /// (`AUDIT_HANDOUT_WINDOW_SECS`, 60 by default).
    quiet_window: std::time::Duration,
}

#[derive(Clone)]
struct Pending {
    event: Event,
    /// Events not yet written (0: only the time of the last write is kept).
    count: u64,
    first: chrono::NaiveDateTime,
    last: chrono::NaiveDateTime,
    /// When an entry for these events was last written.
    written: Option<std::time::Instant>,
}

impl Pending {
    fn due(&self, now: std::time::Instant, window: std::time::Duration, all: bool) -> bool {
        self.count > 0
            && (all
                || self
                    .written
                    .is_none_or(|at| now.duration_since(at) >= window))
    }
}

type Pendings = std::collections::HashMap<Same, Pending>;

/// What makes two events identical: the same actor doing the same to the same target.
/// A plain key (a formatted string before: its Debug formatting took 3 % of a hand-out).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Same {
    actor_kind: &'static str,
    actor_id: Option<String>,
    action: &'static str,
    target: Option<(&'static str, String)>,
}

impl Same {
    fn of(event: &Event) -> Self {
        Self {
            actor_kind: event.actor.kind,
            actor_id: event.actor.id.clone(),
            action: event.action,
            target: event.target.clone(),
        }
    }
}

impl Buffer {
    pub fn new(quiet_window: std::time::Duration) -> Self {
        Self {
            pending: Default::default(),
            quiet_window,
        }
    }

    /// Counts `event`; `details` are asked for only when no identical event is waiting
    /// (on a busy hand-out path nearly never, so their allocations are saved).
    pub fn record(&self, event: Event, details: impl FnOnce() -> Value) {
        let key = Same::of(&event);
        let now = crate::db::now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .entry(key)
            .and_modify(|p| {
                if p.count == 0 {
                    p.first = now;
                }
                p.count += 1;
                p.last = now;
            })
            .or_insert_with(|| Pending {
                event: event.details(details()),
                count: 1,
                first: now,
                last: now,
                written: None,
            });
    }

    /// The entries due for writing (every counted one with `all`), marked as written now;
    /// the marks of pairs quiet for a whole window are dropped.
    fn take_due(&self, all: bool) -> Pendings {
        let now = std::time::Instant::now();
        let window = self.quiet_window;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| {
            p.count > 0 || p.written.is_some_and(|at| now.duration_since(at) < window)
        });
        let mut due = Pendings::new();
        for (key, p) in pending.iter_mut().filter(|(_, p)| p.due(now, window, all)) {
            due.insert(key.clone(), p.clone());
            p.count = 0;
            p.written = Some(now);
        }
        due
    }

    /// Puts entries that could not be written back, merged with those counted meanwhile;
    /// past `MAX_PENDING` distinct entries the rest are dropped. Returns how many were.
    fn put_back(&self, unwritten: Pendings) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut dropped = 0;
        for (key, old) in unwritten {
            if let Some(newer) = pending.get_mut(&key) {
                if newer.count == 0 {
                    newer.last = old.last;
                }
                newer.count += old.count;
                newer.first = old.first;
                newer.written = None;
            } else if pending.len() < MAX_PENDING {
                pending.insert(
                    key,
                    Pending {
                        written: None,
                        ..old
                    },
                );
            } else {
                dropped += 1;
            }
        }
        dropped
    }

    /// Distinct entries waiting to be written.
    pub fn pending(&self) -> usize {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.values().filter(|p| p.count > 0).count()
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
    /// Writes the entries that are due (the server calls it every second, and with `all`
    /// once more when it stops, writing everything counted). When the database cannot take
    /// them (an outage) they are kept for the next try.
    pub async fn flush(&self, pool: &crate::db::DbPool, all: bool) {
        let taken = self.take_due(all);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;

    fn handed_out(client: &str) -> Event {
        let actor = Actor {
            kind: "api_key",
            id: Some("k".into()),
            label: "key".into(),
        };
        Event::new(actor, "token_handed_out").target("client", client.to_string())
    }

    fn counts(taken: &Pendings) -> Vec<u64> {
        let mut counts: Vec<u64> = taken.values().map(|p| p.count).collect();
        counts.sort();
        counts
    }

    #[test]
    fn the_first_event_goes_at_once_and_the_rest_wait_for_the_window() {
        let buffer = Buffer::new(std::time::Duration::from_millis(200));
        buffer.record(handed_out("a"), || Value::Object(Default::default()));
        assert_eq!(counts(&buffer.take_due(false)), [1], "the first at once");
        for _ in 0..5 {
            buffer.record(handed_out("a"), || Value::Object(Default::default()));
        }
        buffer.record(handed_out("b"), || Value::Object(Default::default()));
        assert_eq!(
            counts(&buffer.take_due(false)),
            [1],
            "only b's first is due"
        );
        assert_eq!(buffer.pending(), 1);
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(counts(&buffer.take_due(false)), [5], "a's five, one entry");
        buffer.record(handed_out("b"), || Value::Object(Default::default()));
        assert_eq!(
            counts(&buffer.take_due(true)),
            [1],
            "a stop writes everything"
        );
        assert_eq!(buffer.pending(), 0);
    }
}
