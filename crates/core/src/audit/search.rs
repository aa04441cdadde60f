//! Reading the log: recent entries, a target's history, and the audit page's filtered,
//! scoped search and export pages.

use super::Entry;
use crate::db::schema::audit_log;
use crate::db::DbConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

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
                .like(crate::db::contains_pattern(&actor.to_lowercase()))
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

/// Where an audit page starts. Entry ids only grow, so an id is a stable place in the
/// newest-first order however many entries are appended meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Skip this many entries (a typed page number; slow when deep).
    Offset(i64),
    /// The entries older than this id (a "Next" link).
    Before(i64),
    /// The entries newer than this id (a "Previous" link).
    After(i64),
}

type Boxed = audit_log::BoxedQuery<'static, Backend>;

/// The entries from `start` on, newest first: by id, or by time (then id) when the view
/// is dated. A date range is a range of the time index read in its order; by id, a day in
/// the middle of ten million entries meant reading five million ids down to it or sorting
/// the day's 330,000 (760 ms on SQLite). Ids grow as entries are written, so both orders
/// agree but for entries gathered over a while and written later (hand-outs).
fn ordered(query: Boxed, filter: &Filter, start: Start) -> Boxed {
    use audit_log::{at, id};
    let by_time = filter.from.is_some() || filter.until.is_some();
    // The time of the cursor's entry; its range half is an index range, the rest a filter.
    let at_of = |entry: i64| {
        sql::<Timestamp>("(SELECT a.at FROM audit_log a WHERE a.id = ")
            .bind::<BigInt, _>(entry)
            .sql(")")
    };
    match (start, by_time) {
        (Start::Offset(offset), false) => query.order(id.desc()).offset(offset),
        (Start::Offset(offset), true) => query.order((at.desc(), id.desc())).offset(offset),
        (Start::Before(entry), false) => query.filter(id.lt(entry)).order(id.desc()),
        (Start::Before(entry), true) => query
            .filter(at.le(at_of(entry)))
            .filter(at.lt(at_of(entry)).or(id.lt(entry)))
            .order((at.desc(), id.desc())),
        (Start::After(entry), false) => query.filter(id.gt(entry)).order(id.asc()),
        (Start::After(entry), true) => query
            .filter(at.ge(at_of(entry)))
            .filter(at.gt(at_of(entry)).or(id.gt(entry)))
            .order((at.asc(), id.asc())),
    }
}

/// One page of the matching entries, newest first, whether more follow it in the
/// direction it was read, and how many match in all (exact up to the clients list's
/// `COUNT_BOUND`, so a count over ten million entries reads at most 1,001 of them).
pub fn search(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &Filter,
    start: Start,
    limit: i64,
) -> QueryResult<(Vec<Entry>, bool, crate::clients::Total)> {
    let bound = crate::clients::COUNT_BOUND;
    let counted: Vec<i64> = matching(scope, filter)
        .select(audit_log::id)
        .limit(bound + 1)
        .load(conn)?;
    let total = crate::clients::Total::of_rows_read(counted.len());
    let query = ordered(matching(scope, filter), filter, start).select(Entry::as_select());
    let mut entries: Vec<Entry> = query.limit(limit + 1).load(conn)?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    if matches!(start, Start::After(_)) {
        entries.reverse();
    }
    Ok((entries, more, total))
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
    let start = before.map_or(Start::Offset(0), Start::Before);
    ordered(matching(scope, filter), filter, start)
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

/// The action names of the entries in scope, for the filter's choices. For admins a
/// loose index scan (one index step per distinct action, not a pass over every entry);
/// a member's scope is read as a filter.
pub fn actions(conn: &mut DbConnection, scope: &Scope) -> QueryResult<Vec<String>> {
    if let Scope::All = scope {
        #[derive(QueryableByName)]
        struct Action {
            #[diesel(sql_type = diesel::sql_types::Text)]
            action: String,
        }
        let found: Vec<Action> = diesel::sql_query(
            "WITH RECURSIVE seen(action) AS ( \
               SELECT min(action) FROM audit_log \
               UNION ALL \
               SELECT (SELECT min(a.action) FROM audit_log a WHERE a.action > seen.action) \
               FROM seen WHERE seen.action IS NOT NULL) \
             SELECT action FROM seen WHERE action IS NOT NULL LIMIT 500",
        )
        .load(conn)?;
        return Ok(found.into_iter().map(|a| a.action).collect());
    }
    matching(scope, &Filter::default())
        .select(audit_log::action)
        .distinct()
        .order(audit_log::action.asc())
        .limit(500)
        .load(conn)
}
