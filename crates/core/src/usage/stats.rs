//! The statistics of the calls in scope, read from the smallest roll-up set that answers
//! them, so their cost does not grow with the number of calls. Latency percentiles come
//! from a histogram.

use super::scope::{Period, Scope};
use super::store::{self, GroupingSet};
use super::tally::Tally;
use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::QueryResult;
use std::collections::BTreeMap;

/// How series points are named: `2026-11-23T14:00` and `2026-11-23`.
const SERIES_HOUR: &str = "%Y-%m-%dT%H:00";
const SERIES_DAY: &str = "%Y-%m-%d";

#[derive(Debug, Default, serde::Serialize, PartialEq, utoipa::ToSchema)]
pub struct EndpointStats {
    pub calls: u64,
    pub errors: u64,
}

/// Calls and errors in one hour or day (`start` is `2026-11-23` or `2026-11-23T14:00`).
#[derive(Debug, Default, serde::Serialize, PartialEq, utoipa::ToSchema)]
pub struct PointStats {
    pub start: String,
    pub calls: u64,
    pub errors: u64,
}

/// Latency percentiles in ms: each is the upper bound of the histogram bucket it falls in
/// (see `LATENCY_BOUNDS_MS`); null when no calls, or slower than the last bound.
#[derive(Debug, Default, serde::Serialize, PartialEq, utoipa::ToSchema)]
pub struct Percentiles {
    pub p50: Option<i32>,
    pub p95: Option<i32>,
    pub p99: Option<i32>,
}

#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub total_calls: u64,
    pub total_errors: u64,
    pub rate_limit_hits: u64,
    pub by_endpoint: BTreeMap<String, EndpointStats>,
    /// Days with calls (periods of days).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_day: Vec<PointStats>,
    /// Hours with calls (the 24-hour period).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_hour: Vec<PointStats>,
    pub average_duration_ms: f64,
    pub latency_ms: Percentiles,
    /// Calls per client id, for the top-clients table.
    pub by_client: BTreeMap<String, EndpointStats>,
}

impl Stats {
    fn with_totals(totals: &Tally) -> Self {
        Self {
            total_calls: totals.calls as u64,
            total_errors: totals.errors as u64,
            rate_limit_hits: totals.rate_limited as u64,
            average_duration_ms: if totals.calls > 0 {
                totals.duration_ms_sum as f64 / totals.calls as f64
            } else {
                0.0
            },
            latency_ms: if totals.calls > 0 {
                Percentiles {
                    p50: totals.percentile(0.5),
                    p95: totals.percentile(0.95),
                    p99: totals.percentile(0.99),
                }
            } else {
                Percentiles::default()
            },
            ..Default::default()
        }
    }
}

/// Calls and errors per key, as the statistics show them.
fn counted(groups: Vec<(String, i64, i64)>) -> BTreeMap<String, EndpointStats> {
    groups
        .into_iter()
        .map(|(key, calls, errors)| {
            (
                key,
                EndpointStats {
                    calls: calls as u64,
                    errors: errors as u64,
                },
            )
        })
        .collect()
}

fn points(groups: Vec<(String, i64, i64)>) -> Vec<PointStats> {
    groups
        .into_iter()
        .map(|(start, calls, errors)| PointStats {
            start,
            calls: calls as u64,
            errors: errors as u64,
        })
        .collect()
}

pub fn stats(conn: &mut DbConnection, scope: &Scope) -> QueryResult<Stats> {
    let since = scope.period.start(crate::db::now());
    let narrowed = scope.client_id.is_some() || scope.user_id.is_some();
    let (by_endpoint, by_client) = match (scope.period, narrowed) {
        (Period::Hours24, true) => (GroupingSet::FullHour, GroupingSet::FullHour),
        (Period::Hours24, false) => (GroupingSet::EndpointHour, GroupingSet::ClientHour),
        (Period::Days(_), true) => (GroupingSet::FullDay, GroupingSet::FullDay),
        (Period::Days(_), false) => (GroupingSet::EndpointDay, GroupingSet::ClientDay),
    };
    from_rollups(conn, scope, since, by_endpoint, by_client)
}

/// Totals, endpoints and the series from the `by_endpoint` set, clients from `by_client`.
fn from_rollups(
    conn: &mut DbConnection,
    scope: &Scope,
    since: NaiveDateTime,
    by_endpoint: GroupingSet,
    by_client: GroupingSet,
) -> QueryResult<Stats> {
    let rollups = store::Rollups::new(by_endpoint, scope, since);
    let mut stats = Stats::with_totals(&rollups.totals(conn)?);
    stats.by_endpoint = counted(rollups.by_endpoint(conn)?);
    stats.by_client = counted(store::Rollups::new(by_client, scope, since).by_client(conn)?);
    let format = if by_endpoint.is_hourly() {
        SERIES_HOUR
    } else {
        SERIES_DAY
    };
    let series = points(
        rollups
            .by_start(conn)?
            .into_iter()
            .map(|(start, calls, errors)| (start.format(format).to_string(), calls, errors))
            .collect(),
    );
    if by_endpoint.is_hourly() {
        stats.per_hour = series;
    } else {
        stats.per_day = series;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::tally::BUCKETS;
    use crate::usage::Call;

    fn call(endpoint: &str, status: i32, duration_ms: i32, hour: u32, client: &str) -> Call {
        Call {
            client_id: client.into(),
            user_id: "u".into(),
            provider: "klaviyo".into(),
            endpoint: endpoint.into(),
            status,
            duration_ms,
            rate_limited: status == 429,
            at: chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
                .unwrap()
                .and_hms_opt(hour, 5, 0)
                .unwrap(),
        }
    }

    #[test]
    fn totals_become_statistics() {
        let mut tally = Tally::default();
        for c in [
            call("lists", 200, 10, 9, "a"),
            call("lists", 429, 30, 9, "a"),
            call("customers", 500, 20, 10, "b"),
        ] {
            tally.add(&c);
        }
        let stats = Stats::with_totals(&tally);
        assert_eq!(
            (stats.total_calls, stats.total_errors, stats.rate_limit_hits),
            (3, 2, 1)
        );
        assert_eq!(stats.average_duration_ms, 20.0);
        // 10 ms is in the ≤10 bucket, 20 ms in ≤25, 30 ms in ≤50.
        assert_eq!(
            stats.latency_ms,
            Percentiles {
                p50: Some(25),
                p95: Some(50),
                p99: Some(50)
            }
        );
    }

    #[test]
    fn percentiles_are_bucket_bounds() {
        let mut tally = Tally::default();
        for duration in 1..=100 {
            tally.add(&call("x", 200, duration, 0, "a"));
        }
        tally.add(&call("x", 200, 60_000, 0, "a"));
        assert_eq!(tally.histogram[0], 10);
        assert_eq!(tally.histogram[BUCKETS - 1], 1);
        // 101 calls: the 51st is 51 ms (≤100), the 96th 96 ms, the 100th 100 ms.
        assert_eq!(tally.percentile(0.5), Some(100));
        assert_eq!(tally.percentile(0.99), Some(100));
        assert_eq!(tally.percentile(1.0), None, "slower than the last bound");
        assert_eq!(Tally::default().percentile(0.5), None);
    }
}
