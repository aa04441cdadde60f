//! The `sync_records` repository: one row per connection, model and external id. A page
//! of records is written in one go; a record whose hash did not change is not touched,
//! so a run that finds nothing new writes nothing here.

use crate::db::schema::{sync_records, sync_seen};
use crate::db::DbConnection;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = sync_records)]
pub struct Record {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub client_id: String,
    pub model: String,
    pub external_id: String,
    #[serde(skip)]
    pub payload: String,
    #[serde(skip)]
    pub hash: String,
    pub first_seen: chrono::NaiveDateTime,
    pub last_modified: chrono::NaiveDateTime,
    pub deleted_at: Option<chrono::NaiveDateTime>,
}

impl Record {
    pub fn payload_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// One record as read from the provider.
pub struct Incoming {
    pub external_id: String,
    pub payload: String,
}

impl Incoming {
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.payload.as_bytes()))
    }
}

/// What writing a page did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub added: i64,
    pub updated: i64,
    pub deleted: i64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.added += other.added;
        self.updated += other.updated;
        self.deleted += other.deleted;
    }

    pub fn written(&self) -> i64 {
        self.added + self.updated + self.deleted
    }
}

/// Writes a page in one statement: new ids are inserted, changed ones (or deleted ones
/// seen again) updated, unchanged ones left alone (the conflict's WHERE). Ids repeated
/// within the page count once (the last wins). A record seen again after its deletion
/// counts as added and is first seen anew. No look-up of the stored rows first: on a
/// young PostgreSQL table (no statistics yet) the planner answered `external_id = ANY(…)`
/// by filtering every record of the connection, one scan per page.
pub fn write_page(
    conn: &mut DbConnection,
    client_id: &str,
    model: &str,
    page: &[Incoming],
) -> QueryResult<Counts> {
    use diesel::dsl::case_when;
    use diesel::query_dsl::methods::FilterDsl;
    use diesel::upsert::excluded;
    let now = crate::db::now();
    // Kept in the page's order (the records API lists in write order); of an id given
    // twice, the last one counts.
    let last: std::collections::HashMap<&str, usize> = page
        .iter()
        .enumerate()
        .map(|(i, r)| (r.external_id.as_str(), i))
        .collect();
    let rows: Vec<_> = page
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(r.external_id.as_str()) == Some(i))
        .map(|(_, r)| {
            (
                sync_records::client_id.eq(client_id),
                sync_records::model.eq(model),
                sync_records::external_id.eq(r.external_id.as_str()),
                sync_records::payload.eq(r.payload.as_str()),
                sync_records::hash.eq(r.hash()),
                sync_records::first_seen.eq(now),
                sync_records::last_modified.eq(now),
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(Counts::default());
    }
    // The statement for some rows; the conflict's WHERE leaves unchanged records alone.
    macro_rules! upsert {
        ($values:expr) => {
            diesel::insert_into(sync_records::table)
                .values($values)
                .on_conflict((
                    sync_records::client_id,
                    sync_records::model,
                    sync_records::external_id,
                ))
                .do_update()
                .set((
                    sync_records::payload.eq(excluded(sync_records::payload)),
                    sync_records::hash.eq(excluded(sync_records::hash)),
                    sync_records::last_modified.eq(excluded(sync_records::last_modified)),
                    sync_records::first_seen.eq(case_when(
                        sync_records::deleted_at.is_not_null(),
                        excluded(sync_records::first_seen),
                    )
                    .otherwise(sync_records::first_seen)),
                    sync_records::deleted_at.eq(None::<chrono::NaiveDateTime>),
                ))
                .filter(
                    sync_records::hash
                        .ne(excluded(sync_records::hash))
                        .or(sync_records::deleted_at.is_not_null()),
                )
                .returning(sync_records::first_seen)
        };
    }
    let first_seen: Vec<chrono::NaiveDateTime> = match conn {
        DbConnection::Postgresql(c) => upsert!(&rows).get_results(c)?,
        // diesel writes no multi-row upsert for SQLite; one statement per row costs no
        // round trip there.
        DbConnection::Sqlite(c) => {
            let mut written = Vec::new();
            for row in &rows {
                written.extend(
                    upsert!(row)
                        .get_result::<chrono::NaiveDateTime>(c)
                        .optional()?,
                );
            }
            written
        }
    };
    // Rows written now with an earlier first sight were updates; the rest are new.
    let added = first_seen.iter().filter(|at| **at == now).count() as i64;
    Ok(Counts {
        added,
        updated: first_seen.len() as i64 - added,
        deleted: 0,
    })
}

/// Notes the ids a full run saw (it may resume after a crash with them).
pub fn note_seen(
    conn: &mut DbConnection,
    client_id: &str,
    model: &str,
    page: &[Incoming],
) -> QueryResult<()> {
    let rows: Vec<_> = page
        .iter()
        .map(|r| {
            (
                sync_seen::client_id.eq(client_id),
                sync_seen::model.eq(model),
                sync_seen::external_id.eq(r.external_id.as_str()),
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    crate::on_backend!(conn, |c| diesel::insert_into(sync_seen::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// `$1` now, `$2` the client, `$3` the model; the same text serves both backends. `NOT IN`
/// rather than `NOT EXISTS`: PostgreSQL then hashes the seen ids once (a hashed subplan)
/// whatever its statistics say; with fresh tables its planner otherwise chose a nested
/// loop that took a minute for 20,000 records.
const MARK_UNSEEN: &str = "UPDATE sync_records SET deleted_at = $1, last_modified = $1 \
     WHERE client_id = $2 AND model = $3 AND deleted_at IS NULL \
       AND external_id NOT IN (SELECT s.external_id FROM sync_seen s \
             WHERE s.client_id = $2 AND s.model = $3)";

/// The end of a full run: live records it did not see are marked deleted; the seen list
/// is cleared. Returns how many were marked.
pub fn mark_unseen_deleted(
    conn: &mut DbConnection,
    client_id: &str,
    model: &str,
) -> QueryResult<i64> {
    use diesel::sql_types::{Text, Timestamp};
    let now = crate::db::now();
    let marked = crate::on_backend!(conn, |c| diesel::sql_query(MARK_UNSEEN)
        .bind::<Timestamp, _>(now)
        .bind::<Text, _>(client_id)
        .bind::<Text, _>(model)
        .execute(c))?;
    clear_seen(conn, client_id, model)?;
    Ok(marked as i64)
}

pub fn clear_seen(conn: &mut DbConnection, client_id: &str, model: &str) -> QueryResult<usize> {
    diesel::delete(
        sync_seen::table
            .filter(sync_seen::client_id.eq(client_id))
            .filter(sync_seen::model.eq(model)),
    )
    .execute(conn)
}

/// The records API's cursor: opaque to callers (the position of the last record given).
pub fn encode_cursor(id: i64) -> String {
    id.to_string()
}

pub fn decode_cursor(raw: &str) -> Option<i64> {
    let valid = (1..=18).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| raw.parse().ok()).flatten()
}

/// A page of the records API: after the record `after` (its id), oldest first.
pub struct Listing<'a> {
    pub client_id: &'a str,
    pub model: Option<&'a str>,
    pub modified_after: Option<chrono::NaiveDateTime>,
    pub include_deleted: bool,
    pub after: Option<i64>,
    pub limit: i64,
}

pub fn list(conn: &mut DbConnection, q: &Listing) -> QueryResult<Vec<Record>> {
    let mut query = sync_records::table
        .filter(sync_records::client_id.eq(q.client_id))
        .filter(sync_records::id.gt(q.after.unwrap_or(0)))
        .into_boxed();
    if let Some(model) = q.model {
        query = query.filter(sync_records::model.eq(model));
    }
    if let Some(after) = q.modified_after {
        query = query.filter(sync_records::last_modified.gt(after));
    }
    if !q.include_deleted {
        query = query.filter(sync_records::deleted_at.is_null());
    }
    query
        .order(sync_records::id.asc())
        .limit(q.limit)
        .select(Record::as_select())
        .load(conn)
}

/// The latest changed records of a connection (the client page's small table).
pub fn latest(conn: &mut DbConnection, client_id: &str, limit: i64) -> QueryResult<Vec<Record>> {
    sync_records::table
        .filter(sync_records::client_id.eq(client_id))
        .order((sync_records::last_modified.desc(), sync_records::id.desc()))
        .limit(limit)
        .select(Record::as_select())
        .load(conn)
}

/// Live records per model of a connection.
pub fn count_live(conn: &mut DbConnection, client_id: &str, model: &str) -> QueryResult<i64> {
    sync_records::table
        .filter(sync_records::client_id.eq(client_id))
        .filter(sync_records::model.eq(model))
        .filter(sync_records::deleted_at.is_null())
        .count()
        .get_result(conn)
}

/// A disconnect removes everything synced for the connection.
pub fn delete_for_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    diesel::delete(sync_seen::table.filter(sync_seen::client_id.eq(client_id))).execute(conn)?;
    diesel::delete(sync_records::table.filter(sync_records::client_id.eq(client_id))).execute(conn)
}

/// Retention: records deleted at the provider before `before` are forgotten.
pub fn prune_deleted(conn: &mut DbConnection, before: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sync_records::table.filter(sync_records::deleted_at.lt(before))).execute(conn)
}
