//! The append-only audit log. Each entry stores the hash of the one before it, so an
//! edited or deleted row breaks the chain and `verify` finds it.

use crate::db::schema::audit_log;
use crate::db::DbConnection;
use diesel::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The chain starts from this value.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// PostgreSQL advisory lock id that serialises appends across instances.
const APPEND_LOCK_ID: i64 = 0x636f_6e6e_6175_6469;

/// Who did it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: &'static str,
    pub id: Option<String>,
    pub label: String,
}

impl Actor {
    pub fn user(id: &str, email: &str) -> Self {
        Self {
            kind: "user",
            id: Some(id.to_string()),
            label: email.to_string(),
        }
    }

    pub fn anonymous(label: &str) -> Self {
        Self {
            kind: "anonymous",
            id: None,
            label: label.to_string(),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: "system",
            id: None,
            label: "connecthub".to_string(),
        }
    }
}

/// Where the request came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One thing that happened, before it is chained and stored.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Actor,
    pub action: &'static str,
    pub target: Option<(&'static str, String)>,
    pub success: bool,
    pub origin: Origin,
    pub details: Value,
}

impl Event {
    pub fn new(actor: Actor, action: &'static str) -> Self {
        Self {
            actor,
            action,
            target: None,
            success: true,
            origin: Origin::default(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, kind: &'static str, id: impl Into<String>) -> Self {
        self.target = Some((kind, id.into()));
        self
    }

    pub fn failed(mut self) -> Self {
        self.success = false;
        self
    }

    pub fn origin(mut self, origin: &Origin) -> Self {
        self.origin = origin.clone();
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct Entry {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub at: chrono::NaiveDateTime,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_label: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

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
        if matches!(conn, DbConnection::Postgresql(_)) {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({APPEND_LOCK_ID})"))
                .execute(conn)?;
        }
        insert_chained(conn, event)
    })
}

fn insert_chained(conn: &mut DbConnection, event: Event) -> QueryResult<()> {
    let prev_hash = audit_log::table
        .select(audit_log::hash)
        .order(audit_log::id.desc())
        .first::<String>(conn)
        .optional()?
        .unwrap_or_else(|| GENESIS.to_string());
    let (target_type, target_id) = match event.target {
        Some((kind, id)) => (Some(kind.to_string()), Some(id)),
        None => (None, None),
    };
    let mut entry = Entry {
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
    };
    entry.hash = entry.compute_hash();
    diesel::insert_into(audit_log::table)
        .values(&entry)
        .execute(conn)?;
    Ok(())
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact { entries: u64 },
    Broken { entry_id: i64, reason: &'static str },
}

/// Walks the whole chain in id order and reports the first entry that does not fit.
pub fn verify(conn: &mut DbConnection) -> QueryResult<Verdict> {
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
            if entry.prev_hash != expected_prev {
                return Ok(Verdict::Broken {
                    entry_id: entry.id,
                    reason: "does not link to the entry before it (an entry was removed)",
                });
            }
            if entry.compute_hash() != entry.hash {
                return Ok(Verdict::Broken {
                    entry_id: entry.id,
                    reason: "its content does not match its hash (the entry was edited)",
                });
            }
            expected_prev = entry.hash.clone();
            count += 1;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.id,
            _ => return Ok(Verdict::Intact { entries: count }),
        }
    }
}

/// The most recent entries, newest first; `actor_id` limits them to one user's actions.
pub fn recent(
    conn: &mut DbConnection,
    actor_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Entry>> {
    let mut query = audit_log::table.into_boxed();
    if let Some(actor_id) = actor_id {
        query = query.filter(audit_log::actor_id.eq(actor_id.to_string()));
    }
    query
        .order(audit_log::id.desc())
        .limit(limit)
        .select(Entry::as_select())
        .load(conn)
}

/// How many entries of each of `actions` the reader may see since `since`, in the order
/// the actions are given.
pub fn count_since<const N: usize>(
    conn: &mut DbConnection,
    scope: &Scope,
    actions: [&str; N],
    since: chrono::NaiveDateTime,
) -> QueryResult<[i64; N]> {
    let filter = Filter {
        from: Some(since),
        ..Filter::default()
    };
    let mut counts = [0; N];
    // One count per action: a boxed (scoped) query cannot be grouped in diesel.
    for (count, action) in counts.iter_mut().zip(actions) {
        *count = matching(scope, &filter)
            .filter(audit_log::action.eq(action))
            .count()
            .get_result(conn)?;
    }
    Ok(counts)
}

/// Appends several entries in one transaction (one lock, one commit).
pub fn append_many(conn: &mut DbConnection, events: Vec<Event>) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        if matches!(conn, DbConnection::Postgresql(_)) {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({APPEND_LOCK_ID})"))
                .execute(conn)?;
        }
        events
            .into_iter()
            .try_for_each(|event| insert_chained(conn, event))
    })
}

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

/// The newest entries about one target (a client's page shows its history), newest first.
pub fn for_target(
    conn: &mut DbConnection,
    target_type: &str,
    target_id: &str,
    limit: i64,
) -> QueryResult<Vec<Entry>> {
    audit_log::table
        .filter(audit_log::target_type.eq(target_type))
        .filter(audit_log::target_id.eq(target_id))
        .order(audit_log::id.desc())
        .limit(limit)
        .select(Entry::as_select())
        .load(conn)
}

/// The backend of `DbConnection`, for boxed queries built before a connection is at hand.
type Backend = <DbConnection as Connection>::Backend;

diesel::define_sql_function! {
    /// SQL `lower()`: PostgreSQL's LIKE is case-sensitive, SQLite's is not.
    fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Which entries a list or export shows, already validated by the page.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Matched case-insensitively anywhere in the actor's label (an email for users).
    pub actor: Option<String>,
    pub action: Option<String>,
    /// A client id: entries whose target is that client.
    pub client: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// Entries at or after this time.
    pub from: Option<chrono::NaiveDateTime>,
    /// Entries before this time.
    pub until: Option<chrono::NaiveDateTime>,
}

/// Whose entries a reader may see.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Admins see every entry.
    All,
    /// A member sees what they did, what was done to their account and to their clients.
    Member {
        user_id: String,
        client_ids: Vec<String>,
    },
}

/// The scope of a reader: `member` is the user id of a non-admin, None for admins.
pub fn scope_for(conn: &mut DbConnection, member: Option<&str>) -> QueryResult<Scope> {
    use crate::db::schema::clients;
    let Some(user_id) = member else {
        return Ok(Scope::All);
    };
    let client_ids = clients::table
        .filter(clients::owner_user_id.eq(user_id))
        .select(clients::id)
        .load(conn)?;
    Ok(Scope::Member {
        user_id: user_id.to_string(),
        client_ids,
    })
}

/// LIKE pattern for a substring typed by a person; its wildcards stay plain characters.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The entries in scope that match the filter, as a query the callers count or page.
fn matching(scope: &Scope, filter: &Filter) -> audit_log::BoxedQuery<'static, Backend> {
    let mut query = audit_log::table.into_boxed();
    if let Scope::Member {
        user_id,
        client_ids,
    } = scope
    {
        query = query.filter(
            audit_log::actor_id
                .eq(user_id.clone())
                .or(audit_log::target_type
                    .eq("client")
                    .and(audit_log::target_id.eq_any(client_ids.clone())))
                .or(audit_log::target_type
                    .eq("user")
                    .and(audit_log::target_id.eq(user_id.clone()))),
        );
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(
            lower(audit_log::actor_label)
                .like(contains_pattern(actor))
                .escape('\\'),
        );
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(client) = &filter.client {
        query = query.filter(
            audit_log::target_type
                .eq("client")
                .and(audit_log::target_id.eq(client.clone())),
        );
    }
    if let Some(outcome) = &filter.outcome {
        query = query.filter(audit_log::outcome.eq(outcome.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::at.ge(from));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_log::at.lt(until));
    }
    query
}

/// One page of the matching entries, newest first, and how many match in all.
pub fn search(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &Filter,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Entry>, i64)> {
    let total = matching(scope, filter).count().get_result(conn)?;
    let entries = matching(scope, filter)
        .order(audit_log::id.desc())
        .offset(offset)
        .limit(limit)
        .select(Entry::as_select())
        .load(conn)?;
    Ok((entries, total))
}

/// The next matching entries older than `before` (newest first): keyset pages for exports,
/// which stay consistent while new entries are appended.
pub fn page_before(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &Filter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Entry>> {
    let mut query = matching(scope, filter);
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before));
    }
    query
        .order(audit_log::id.desc())
        .limit(limit)
        .select(Entry::as_select())
        .load(conn)
}

/// One entry, if the reader may see it.
pub fn find_visible(conn: &mut DbConnection, scope: &Scope, id: i64) -> QueryResult<Option<Entry>> {
    matching(scope, &Filter::default())
        .filter(audit_log::id.eq(id))
        .select(Entry::as_select())
        .first(conn)
        .optional()
}

/// The action names of the entries in scope, for the filter's choices.
pub fn actions(conn: &mut DbConnection, scope: &Scope) -> QueryResult<Vec<String>> {
    matching(scope, &Filter::default())
        .select(audit_log::action)
        .distinct()
        .order(audit_log::action.asc())
        .limit(500)
        .load(conn)
}
