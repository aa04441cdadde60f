//! The Clients list at a million rows: search through indexes (PostgreSQL `pg_trgm`,
//! SQLite FTS5 trigram tables kept by triggers), tags through `client_tags`, keyset pages
//! for every sort, and a count that stops at `COUNT_BOUND` and decides the plan.

mod cursor;
mod matching;

use super::{Client, ListedClient};
use crate::db::schema::{clients, credentials, users};
use crate::db::DbConnection;
pub use cursor::Cursor;
use cursor::Key;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};
use matching::{end_users_matching, owners_matching, Match, CLIENTS_PHRASE};

/// The count is exact up to here; above it the list says "1,000+". Each count reads at
/// most this many rows plus one: at a million clients, counting to 10,001 took 60-90 ms
/// for a common word or tag (the trigram or tag lookup and one check per row), to 1,001
/// a tenth of that.
pub const COUNT_BOUND: i64 = 1_000;

/// Which clients the list shows, already validated by the page.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Matched (case-insensitively) against name, account id and email domain, the
    /// owner's email and the end user's id and email; see `Match`.
    pub search: Option<String>,
    pub provider: Option<String>,
    pub status: Option<String>,
    pub owner: Option<String>,
    pub tag: Option<String>,
    pub sort: Sort,
    pub page: Page,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Recently changed first.
    #[default]
    Updated,
    Name,
    /// Soonest token expiry first (`clients.expiry_order`, kept from the credentials).
    Expires,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Skip this many rows (page numbers typed or bookmarked; slow when deep).
    Offset(i64),
    /// The rows after this one in the list's order (a "Next" link).
    After(Cursor),
    /// The rows before this one (a "Previous" link).
    Before(Cursor),
}

impl Default for Page {
    fn default() -> Self {
        Self::Offset(0)
    }
}

/// How many clients match: exact up to `COUNT_BOUND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    /// More than `count` match (the count stopped at the bound).
    pub more: bool,
}

impl Total {
    /// The total of a count that read `read` rows, reading at most `COUNT_BOUND + 1`.
    pub fn of_rows_read(read: usize) -> Self {
        let read = read as i64;
        Self {
            count: read.min(COUNT_BOUND),
            more: read > COUNT_BOUND,
        }
    }
}

impl std::fmt::Display for Total {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.more {
            write!(f, "{}+", thousands(self.count))
        } else {
            write!(f, "{}", self.count)
        }
    }
}

fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How the search and the tag condition are written, each on its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Few rows have it: look them up through its index (the trigram table, the tag's
    /// range of `client_tags`).
    Lookup,
    /// Many have it: check each row instead, written so that no index serves it
    /// (`search_text || ''`, a correlated EXISTS). Looked up, SQLite first reads every
    /// row that has it into a list (200,000 tagged clients for `tag=vip` at a million:
    /// 850 ms to count to 10,001 with status and provider beside it).
    Check,
}

/// The forms of a query's conditions.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Plan {
    search: Form,
    tag: Form,
}

impl Plan {
    /// More than `COUNT_BOUND` match (0.1 % of a million or more): walk the sort order's
    /// index and check each row, stopping at the page size, instead of sorting every
    /// match; checking both conditions steers both planners to the walk.
    const WALK: Self = Self {
        search: Form::Check,
        tag: Form::Check,
    };

    /// For the count: a condition that more than `COUNT_BOUND` rows have on their own
    /// (a bounded read of its index alone) is checked row by row, others looked up.
    fn for_count(
        conn: &mut DbConnection,
        filter: &Filter,
        matching: Option<&Match>,
    ) -> QueryResult<Self> {
        let form = |common: bool| if common { Form::Check } else { Form::Lookup };
        let search = match matching {
            Some(Match::Phrase { phrase, .. }) => form(matching::phrase_is_common(conn, phrase)?),
            _ => Form::Lookup,
        };
        let tag = match &filter.tag {
            Some(tag) => form(matching::tag_is_common(conn, tag)?),
            None => Form::Lookup,
        };
        Ok(Self { search, tag })
    }
}

/// Filters `query` by `condition` or by the clients of the owners and end users the search
/// named. Each list is left out when empty: `owner_user_id IN ()` (diesel writes `1=0`)
/// beside the trigram lookup kept SQLite from using the lookup at all, so every search
/// read the whole table (244 ms at a million clients for a search matching nothing).
macro_rules! or_people {
    ($query:expr, $condition:expr, $people:expr) => {{
        let (owners, end_users): &(Vec<String>, Vec<Option<String>>) = $people;
        let owned = || clients::owner_user_id.eq_any(owners.clone());
        let used = || clients::end_user_id.eq_any(end_users.clone());
        match (owners.is_empty(), end_users.is_empty()) {
            (true, true) => $query.filter($condition),
            (false, true) => $query.filter($condition.or(owned())),
            (true, false) => $query.filter($condition.or(used())),
            (false, false) => $query.filter($condition.or(owned()).or(used())),
        }
    }};
}

/// Applies the list's conditions (all on `clients` columns) to a boxed query, so the count
/// runs on `clients` alone and only the page itself joins owners and credentials.
macro_rules! apply_filter {
    ($query:expr, $owner_scope:expr, $filter:expr, $matching:expr, $people:expr, $plan:expr) => {{
        let mut query = $query;
        let plan: Plan = $plan;
        let check_search = plan.search == Form::Check;
        if let Some(owner) = $owner_scope {
            query = query.filter(clients::owner_user_id.eq(owner.to_string()));
        }
        match $matching {
            None => {}
            Some(Match::Prefix { from, to }) if check_search => {
                query = or_people!(
                    query,
                    clients::search_text
                        .concat("")
                        .ge(from.clone())
                        .and(clients::search_text.concat("").lt(to.clone())),
                    $people
                )
            }
            Some(Match::Prefix { from, to }) => {
                query = or_people!(
                    query,
                    clients::search_text
                        .ge(from.clone())
                        .and(clients::search_text.lt(to.clone())),
                    $people
                )
            }
            Some(Match::Like(pattern)) | Some(Match::Phrase { pattern, .. }) if check_search => {
                query = or_people!(
                    query,
                    clients::search_text
                        .concat("")
                        .like(pattern.clone())
                        .escape('\\'),
                    $people
                )
            }
            Some(Match::Like(pattern)) => {
                query = or_people!(
                    query,
                    clients::search_text.like(pattern.clone()).escape('\\'),
                    $people
                )
            }
            Some(Match::Phrase { phrase, .. }) => {
                query = or_people!(
                    query,
                    sql::<Bool>(CLIENTS_PHRASE)
                        .bind::<Text, _>(phrase.clone())
                        .sql(")"),
                    $people
                )
            }
        }
        if let Some(provider) = &$filter.provider {
            query = query.filter(clients::provider.eq(provider.clone()));
        }
        if let Some(status) = &$filter.status {
            query = query.filter(clients::status.eq(status.clone()));
        }
        if let Some(owner) = &$filter.owner {
            query = query.filter(clients::owner_user_id.eq(owner.clone()));
        }
        if let Some(tag) = &$filter.tag {
            // client_tags (tag, client_id): the tag's range of clients when looked up, one
            // primary-key probe per row when checked.
            let condition = if plan.tag == Form::Check {
                "EXISTS (SELECT 1 FROM client_tags t WHERE t.client_id = clients.id AND t.tag = "
            } else {
                "clients.id IN (SELECT t.client_id FROM client_tags t WHERE t.tag = "
            };
            query = query.filter(sql::<Bool>(condition).bind::<Text, _>(tag.clone()).sql(")"));
        }
        query
    }};
}

/// One page of the filtered clients, whether more follow it in the list's order, and how
/// many match in all (up to the bound).
pub fn search(
    conn: &mut DbConnection,
    owner_scope: Option<&str>,
    filter: &Filter,
) -> QueryResult<(Vec<ListedClient>, bool, Total)> {
    let matching = filter.search.as_deref().map(|s| Match::of(conn, s));
    let people = match (&filter.search, &matching) {
        (Some(search), Some(Match::Prefix { .. })) => (
            Vec::new(),
            end_users_matching(conn, search, matching.as_ref())?,
        ),
        (Some(search), Some(_)) => (
            owners_matching(conn, search)?,
            end_users_matching(conn, search, matching.as_ref())?,
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let counting = Plan::for_count(conn, filter, matching.as_ref())?;
    let (total, found) = count(conn, owner_scope, filter, &matching, &people, counting)?;
    let plan = if total.more { Plan::WALK } else { counting };
    // The page's ids from `clients` alone, then their owners and expiries: joined in one
    // query, SQLite's planner, with sampled statistics, put the few users outside and
    // sorted every client of theirs (230 ms at 100,000 clients, 2 ms this way). A search
    // whose count found every match pages through those ids instead of searching again.
    let query = match found {
        Some(ids) => clients::table.into_boxed().filter(clients::id.eq_any(ids)),
        None => apply_filter!(
            clients::table.into_boxed(),
            owner_scope,
            filter,
            &matching,
            &people,
            plan
        ),
    }
    .select(clients::id);
    let query = match &filter.page {
        Page::Offset(offset) => match filter.sort {
            Sort::Expires => query.order((clients::expiry_order.asc(), clients::id.asc())),
            Sort::Updated => query.order((clients::updated_at.desc(), clients::id.asc())),
            Sort::Name => query.order((clients::display_name.asc(), clients::id.asc())),
        }
        .offset(*offset),
        // Each range is written so its first half is an index range, the second a filter.
        Page::After(cursor) => match &cursor.key {
            Key::Updated(at) => query
                .filter(clients::updated_at.le(*at))
                .filter(
                    clients::updated_at
                        .lt(*at)
                        .or(clients::id.gt(cursor.id.clone())),
                )
                .order((clients::updated_at.desc(), clients::id.asc())),
            Key::Name(name) => query
                .filter(clients::display_name.ge(name.clone()))
                .filter(
                    clients::display_name
                        .gt(name.clone())
                        .or(clients::id.gt(cursor.id.clone())),
                )
                .order((clients::display_name.asc(), clients::id.asc())),
            Key::Expires(at) => query
                .filter(clients::expiry_order.ge(*at))
                .filter(
                    clients::expiry_order
                        .gt(*at)
                        .or(clients::id.gt(cursor.id.clone())),
                )
                .order((clients::expiry_order.asc(), clients::id.asc())),
        },
        Page::Before(cursor) => match &cursor.key {
            Key::Updated(at) => query
                .filter(clients::updated_at.ge(*at))
                .filter(
                    clients::updated_at
                        .gt(*at)
                        .or(clients::id.lt(cursor.id.clone())),
                )
                .order((clients::updated_at.asc(), clients::id.desc())),
            Key::Name(name) => query
                .filter(clients::display_name.le(name.clone()))
                .filter(
                    clients::display_name
                        .lt(name.clone())
                        .or(clients::id.lt(cursor.id.clone())),
                )
                .order((clients::display_name.desc(), clients::id.desc())),
            Key::Expires(at) => query
                .filter(clients::expiry_order.le(*at))
                .filter(
                    clients::expiry_order
                        .lt(*at)
                        .or(clients::id.lt(cursor.id.clone())),
                )
                .order((clients::expiry_order.desc(), clients::id.desc())),
        },
    };
    let mut ids: Vec<String> = query.limit(filter.limit + 1).load(conn)?;
    let more = ids.len() as i64 > filter.limit;
    ids.truncate(filter.limit as usize);
    if matches!(filter.page, Page::Before(_)) {
        ids.reverse();
    }
    let rows = page_rows(conn, &ids)?;
    let listed = rows
        .into_iter()
        .map(|(client, owner_email, expires_at)| ListedClient {
            client,
            owner_email,
            expires_at,
        })
        .collect();
    Ok((listed, more, total))
}

/// How many clients match, up to the bound; after a trigram lookup, also the ids when that
/// was all of them, so the page need not look them up again (on PostgreSQL each lookup of
/// an account id took 21 ms at a million clients, and the page made it twice).
fn count(
    conn: &mut DbConnection,
    owner_scope: Option<&str>,
    filter: &Filter,
    matching: &Option<Match>,
    people: &(Vec<String>, Vec<Option<String>>),
    counting: Plan,
) -> QueryResult<(Total, Option<Vec<String>>)> {
    // A common search or tag alone: its own bounded read already says "more" (the
    // owners and end users the search names only add rows).
    let alone = owner_scope.is_none()
        && filter.provider.is_none()
        && filter.status.is_none()
        && filter.owner.is_none()
        && (filter.search.is_none() || filter.tag.is_none());
    let common = counting.search == Form::Check || counting.tag == Form::Check;
    if alone && common {
        let total = Total {
            count: COUNT_BOUND,
            more: true,
        };
        return Ok((total, None));
    }
    let query = apply_filter!(
        clients::table.into_boxed(),
        owner_scope,
        filter,
        matching,
        people,
        counting
    )
    .limit(COUNT_BOUND + 1);
    // Only a trigram lookup reads each matching row anyway; other counts are often
    // index-only reads (a prefix's range, an owner's clients), which the id would turn
    // into a read of each row (the API's common-word search at a million: 10 -> 22 ms).
    let looked_up = counting.search == Form::Lookup
        && matches!(matching, Some(Match::Like(_) | Match::Phrase { .. }))
        && people.0.is_empty()
        && people.1.is_empty();
    if !looked_up {
        let counted: Vec<i32> = query.select(sql::<Integer>("1")).load(conn)?;
        return Ok((Total::of_rows_read(counted.len()), None));
    }
    let ids: Vec<String> = query.select(clients::id).load(conn)?;
    let total = Total::of_rows_read(ids.len());
    Ok((total, (!total.more).then_some(ids)))
}

/// The clients of `ids` with their owner's email and token expiry, in the order of `ids`.
fn page_rows(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<Vec<(Client, String, Option<chrono::NaiveDateTime>)>> {
    let mut rows: Vec<(Client, String, Option<chrono::NaiveDateTime>)> = clients::table
        .inner_join(users::table)
        .left_join(credentials::table)
        .filter(clients::id.eq_any(ids))
        .select((
            Client::as_select(),
            users::email,
            credentials::expires_at.nullable(),
        ))
        .load(conn)?;
    let position: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(at, id)| (id.as_str(), at))
        .collect();
    rows.sort_by_key(|(client, _, _)| position.get(client.id.as_str()).copied());
    Ok(rows)
}

/// Changes whenever a client in scope is added or changed: the list polls it to know
/// whether to re-render. Clients are never deleted (a disconnected one stays listed), and
/// every change moves `updated_at`, so its latest value (an index lookup) is enough.
pub fn version(conn: &mut DbConnection, owner_scope: Option<&str>) -> QueryResult<String> {
    let mut query = clients::table.into_boxed();
    if let Some(owner) = owner_scope {
        query = query.filter(clients::owner_user_id.eq(owner.to_string()));
    }
    let latest: Option<chrono::NaiveDateTime> = query
        .select(diesel::dsl::max(clients::updated_at))
        .first(conn)?;
    Ok(latest
        .map_or(0, |t| t.and_utc().timestamp_micros())
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_above_the_bound_say_so() {
        let exact = Total {
            count: 120,
            more: false,
        };
        assert_eq!(exact.to_string(), "120");
        let bounded = Total {
            count: COUNT_BOUND,
            more: true,
        };
        assert_eq!(bounded.to_string(), "1,000+");
    }
}
