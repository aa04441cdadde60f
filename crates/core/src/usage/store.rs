//! Usage in the database: roll-ups (`api_usage_rollup`: hourly ones pruned after the
//! retention, daily ones kept). No row per call is stored: the 2026-12-08 migration turned
//! the raw rows into the `full_hour` set, which answers what they did.

use super::scope::{self, Scope};
use super::tally::Tally;
use super::Call;
use crate::db::schema::api_usage_rollup as rollup;
use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::dsl::{sql, sum};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use std::collections::BTreeMap;

/// Roll-up rows per upsert (21 parameters each): well under SQLite's and PostgreSQL's
/// bind-parameter limits.
const INSERT_CHUNK: usize = 1000;

/// Adds calls to the roll-ups, in one transaction.
pub fn write(conn: &mut DbConnection, calls: &[Call]) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| add_to_rollups(conn, calls))
}

/// The grouping sets kept in `api_usage_rollup`: each view of the usage page reads the
/// smallest one that can answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupingSet {
    EndpointHour,
    EndpointDay,
    ClientHour,
    ClientDay,
    /// Endpoint and client per hour: one client's or user's last 24 hours.
    FullHour,
    /// Endpoint and client per day: for views narrowed to a client or user.
    FullDay,
}

impl GroupingSet {
    const ALL: [Self; 6] = [
        Self::EndpointHour,
        Self::EndpointDay,
        Self::ClientHour,
        Self::ClientDay,
        Self::FullHour,
        Self::FullDay,
    ];
    const HOURLY: [Self; 3] = [Self::EndpointHour, Self::ClientHour, Self::FullHour];

    fn name(self) -> &'static str {
        match self {
            Self::EndpointHour => "endpoint_hour",
            Self::EndpointDay => "endpoint_day",
            Self::ClientHour => "client_hour",
            Self::ClientDay => "client_day",
            Self::FullHour => "full_hour",
            Self::FullDay => "full_day",
        }
    }

    pub fn is_hourly(self) -> bool {
        Self::HOURLY.contains(&self)
    }

    /// The start of the hour or day holding `at`.
    pub fn start_of(self, at: NaiveDateTime) -> NaiveDateTime {
        if self.is_hourly() {
            scope::start_of_hour(at)
        } else {
            scope::start_of_day(at)
        }
    }

    /// The roll-up row a call adds to; dimensions outside the set are ''.
    fn key<'a>(self, call: &'a Call) -> RollupKey<'a> {
        let by_endpoint = !matches!(self, Self::ClientHour | Self::ClientDay);
        let by_client = !matches!(self, Self::EndpointHour | Self::EndpointDay);
        let keep = |keep: bool, value: &'a str| if keep { value } else { "" };
        (
            self.name(),
            self.start_of(call.at),
            call.provider.as_str(),
            keep(by_endpoint, &call.endpoint),
            keep(by_client, &call.client_id),
            keep(by_client, &call.user_id),
        )
    }
}

/// grouping set, starts at, provider, endpoint, client id, user id
type RollupKey<'a> = (
    &'static str,
    NaiveDateTime,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

/// Adds the calls to their roll-up rows in one upsert per chunk: a missing row is
/// inserted, an existing one incremented in SQL (`ON CONFLICT … DO UPDATE`), so instances
/// writing at the same time both count. It used to be an insert and an update per row: a
/// batch spread over a day's hours and 200 clients (the seed's) sent 4,000 statements,
/// and PostgreSQL took 66 s for 200,000 calls. Keys are visited in order so two writers
/// never wait on each other's rows crosswise; each key appears once (a map), which
/// PostgreSQL requires of one upsert.
fn add_to_rollups(conn: &mut DbConnection, calls: &[Call]) -> QueryResult<()> {
    use diesel::upsert::excluded;
    let mut groups: BTreeMap<RollupKey, Tally> = BTreeMap::new();
    for call in calls {
        for set in GroupingSet::ALL {
            groups.entry(set.key(call)).or_default().add(call);
        }
    }
    let n = |count: i64| i32::try_from(count).unwrap_or(i32::MAX);
    let rows: Vec<_> = groups
        .iter()
        .map(
            |(&(set, starts_at, provider, endpoint, client_id, user_id), tally)| {
                let h = tally.histogram.map(n);
                (
                    (
                        rollup::grouping_set.eq(set),
                        rollup::starts_at.eq(starts_at),
                        rollup::provider.eq(provider),
                        rollup::endpoint.eq(endpoint),
                        rollup::client_id.eq(client_id),
                        rollup::user_id.eq(user_id),
                    ),
                    (
                        rollup::calls.eq(n(tally.calls)),
                        rollup::errors.eq(n(tally.errors)),
                        rollup::rate_limited.eq(n(tally.rate_limited)),
                        rollup::duration_ms_sum.eq(tally.duration_ms_sum),
                    ),
                    (
                        rollup::le_10.eq(h[0]),
                        rollup::le_25.eq(h[1]),
                        rollup::le_50.eq(h[2]),
                        rollup::le_100.eq(h[3]),
                        rollup::le_250.eq(h[4]),
                        rollup::le_500.eq(h[5]),
                        rollup::le_1000.eq(h[6]),
                        rollup::le_2500.eq(h[7]),
                        rollup::le_5000.eq(h[8]),
                        rollup::le_10000.eq(h[9]),
                        rollup::over_10000.eq(h[10]),
                    ),
                )
            },
        )
        .collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        crate::on_backend!(&mut *conn, |inner| diesel::insert_into(rollup::table)
            .values(chunk)
            .on_conflict((
                rollup::grouping_set,
                rollup::starts_at,
                rollup::provider,
                rollup::endpoint,
                rollup::client_id,
                rollup::user_id,
            ))
            .do_update()
            .set((
                rollup::calls.eq(rollup::calls + excluded(rollup::calls)),
                rollup::errors.eq(rollup::errors + excluded(rollup::errors)),
                rollup::rate_limited.eq(rollup::rate_limited + excluded(rollup::rate_limited)),
                rollup::duration_ms_sum
                    .eq(rollup::duration_ms_sum + excluded(rollup::duration_ms_sum)),
                rollup::le_10.eq(rollup::le_10 + excluded(rollup::le_10)),
                rollup::le_25.eq(rollup::le_25 + excluded(rollup::le_25)),
                rollup::le_50.eq(rollup::le_50 + excluded(rollup::le_50)),
                rollup::le_100.eq(rollup::le_100 + excluded(rollup::le_100)),
                rollup::le_250.eq(rollup::le_250 + excluded(rollup::le_250)),
                rollup::le_500.eq(rollup::le_500 + excluded(rollup::le_500)),
                rollup::le_1000.eq(rollup::le_1000 + excluded(rollup::le_1000)),
                rollup::le_2500.eq(rollup::le_2500 + excluded(rollup::le_2500)),
                rollup::le_5000.eq(rollup::le_5000 + excluded(rollup::le_5000)),
                rollup::le_10000.eq(rollup::le_10000 + excluded(rollup::le_10000)),
                rollup::over_10000.eq(rollup::over_10000 + excluded(rollup::over_10000)),
            ))
            .execute(inner))?;
    }
    Ok(())
}

/// The scope's client, provider and owner filters on a usage table.
macro_rules! scoped {
    ($query:expr, $table:ident, $scope:expr) => {{
        let scope: &Scope = $scope;
        let mut query = $query.into_boxed();
        if let Some(client) = &scope.client_id {
            query = query.filter($table::client_id.eq(client.clone()));
        }
        if let Some(provider) = &scope.provider {
            query = query.filter($table::provider.eq(provider.clone()));
        }
        if let Some(user) = &scope.user_id {
            query = query.filter($table::user_id.eq(user.clone()));
        }
        query
    }};
}

/// The summed histogram columns, slowest last.
type Histogram = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Reads of one grouping set's rows in scope, from `from` on.
pub struct Rollups<'a> {
    set: &'static str,
    scope: &'a Scope,
    from: NaiveDateTime,
}

/// Calls and errors per value of one roll-up column.
macro_rules! grouped {
    ($self:expr, $conn:expr, $column:expr, $key:ty) => {
        scoped!(
            rollup::table
                .filter(rollup::grouping_set.eq($self.set))
                .filter(rollup::starts_at.ge($self.from))
                .group_by($column)
                .select(($column, sum(rollup::calls), sum(rollup::errors))),
            rollup,
            $self.scope
        )
        .load::<($key, Option<i64>, Option<i64>)>($conn)
        .map(|rows| {
            rows.into_iter()
                .map(|(key, calls, errors)| (key, calls.unwrap_or(0), errors.unwrap_or(0)))
                .collect::<Vec<_>>()
        })
    };
}

impl<'a> Rollups<'a> {
    pub fn new(set: GroupingSet, scope: &'a Scope, from: NaiveDateTime) -> Self {
        Self {
            set: set.name(),
            scope,
            from,
        }
    }

    pub fn totals(&self, conn: &mut DbConnection) -> QueryResult<Tally> {
        // SUM over BIGINT is NUMERIC on PostgreSQL: cast back to a plain integer.
        let duration_sum = sql::<Nullable<BigInt>>("CAST(SUM(duration_ms_sum) AS BIGINT)");
        let (calls, errors, rate_limited, duration_ms_sum, histogram) = scoped!(
            rollup::table
                .filter(rollup::grouping_set.eq(self.set))
                .filter(rollup::starts_at.ge(self.from)),
            rollup,
            self.scope
        )
        .select((
            sum(rollup::calls),
            sum(rollup::errors),
            sum(rollup::rate_limited),
            duration_sum,
            (
                sum(rollup::le_10),
                sum(rollup::le_25),
                sum(rollup::le_50),
                sum(rollup::le_100),
                sum(rollup::le_250),
                sum(rollup::le_500),
                sum(rollup::le_1000),
                sum(rollup::le_2500),
                sum(rollup::le_5000),
                sum(rollup::le_10000),
                sum(rollup::over_10000),
            ),
        ))
        .first::<(
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Histogram,
        )>(conn)?;
        let (h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10) = histogram;
        Ok(Tally {
            calls: calls.unwrap_or(0),
            errors: errors.unwrap_or(0),
            rate_limited: rate_limited.unwrap_or(0),
            duration_ms_sum: duration_ms_sum.unwrap_or(0),
            histogram: [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10].map(|n| n.unwrap_or(0)),
        })
    }

    pub fn by_endpoint(&self, conn: &mut DbConnection) -> QueryResult<Vec<(String, i64, i64)>> {
        grouped!(self, conn, rollup::endpoint, String)
    }

    pub fn by_client(&self, conn: &mut DbConnection) -> QueryResult<Vec<(String, i64, i64)>> {
        grouped!(self, conn, rollup::client_id, String)
    }

    /// Calls and errors per hour or day, oldest first.
    pub fn by_start(&self, conn: &mut DbConnection) -> QueryResult<Vec<(NaiveDateTime, i64, i64)>> {
        grouped!(self, conn, rollup::starts_at, NaiveDateTime)
    }
}

/// Deletes the hourly roll-ups older than `before` (only the 24-hour view reads them).
pub fn prune_hourly(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    let hourly = GroupingSet::HOURLY.map(GroupingSet::name);
    diesel::delete(
        rollup::table
            .filter(rollup::grouping_set.eq_any(hourly))
            .filter(rollup::starts_at.lt(before)),
    )
    .execute(conn)
}
