//! API usage: every proxied provider call, recorded in batches, and the statistics the
//! requirements name (totalCalls, totalErrors, rateLimitHits, byEndpoint) with per-day
//! series and latency percentiles.

use crate::db::schema::api_usage;
use crate::db::DbConnection;
use diesel::prelude::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One call to a provider's API.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_usage)]
pub struct Call {
    pub client_id: String,
    pub user_id: String,
    pub provider: String,
    pub endpoint: String,
    pub method: String,
    pub status: i32,
    pub duration_ms: i32,
    pub rate_limited: bool,
    pub at: chrono::NaiveDateTime,
}

/// Calls waiting to be written (once a second, with the audit counters).
#[derive(Default)]
pub struct Recorder {
    pending: Mutex<Vec<Call>>,
}

impl Recorder {
    pub fn record(&self, call: Call) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
    }

    pub async fn flush(&self, pool: &crate::db::DbPool) {
        let calls = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if calls.is_empty() {
            return;
        }
        let count = calls.len();
        let written = crate::db::run(pool, move |conn| {
            crate::db::transaction(conn, |conn| {
                calls.iter().try_for_each(|call| {
                    diesel::insert_into(api_usage::table)
                        .values(call)
                        .execute(conn)
                        .map(|_| ())
                })
            })
        })
        .await;
        if let Err(e) = written {
            tracing::error!(error = %e, calls = count, "usage could not be written");
        }
    }
}

/// The endpoint family of a provider path: `/api/lists/XYZ/` → `lists`,
/// `/v1/customers/email=a@b` → `customers`. Ids never become endpoints.
pub fn normalise_endpoint(path: &str) -> String {
    let mut segments = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty());
    segments
        .find(|s| !matches!(*s, "api" | "v1" | "v2" | "v3"))
        .map(|s| s.split('=').next().unwrap_or(s).to_lowercase())
        .filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !s.is_empty()
        })
        .unwrap_or_else(|| "root".into())
}

/// Which calls the statistics cover.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub since: chrono::NaiveDateTime,
    pub client_id: Option<String>,
    pub provider: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Default, serde::Serialize, PartialEq)]
pub struct EndpointStats {
    pub calls: u64,
    pub errors: u64,
}

#[derive(Debug, Default, serde::Serialize, PartialEq)]
pub struct DayStats {
    pub day: String,
    pub calls: u64,
    pub errors: u64,
}

#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub total_calls: u64,
    pub total_errors: u64,
    pub rate_limit_hits: u64,
    pub by_endpoint: BTreeMap<String, EndpointStats>,
    pub per_day: Vec<DayStats>,
    pub average_duration_ms: f64,
    pub latency_ms: Percentiles,
    /// Calls per client id, for the top-clients table.
    pub by_client: BTreeMap<String, EndpointStats>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Percentiles {
    pub p50: i32,
    pub p95: i32,
    pub p99: i32,
}

/// Aggregates the calls in scope. An error is a 4xx or 5xx answer.
pub fn stats(conn: &mut DbConnection, scope: &Scope) -> QueryResult<Stats> {
    let mut query = api_usage::table
        .filter(api_usage::at.ge(scope.since))
        .into_boxed();
    if let Some(client) = &scope.client_id {
        query = query.filter(api_usage::client_id.eq(client.clone()));
    }
    if let Some(provider) = &scope.provider {
        query = query.filter(api_usage::provider.eq(provider.clone()));
    }
    if let Some(user) = &scope.user_id {
        query = query.filter(api_usage::user_id.eq(user.clone()));
    }
    let rows: Vec<Row> = query
        .select((
            api_usage::endpoint,
            api_usage::status,
            api_usage::duration_ms,
            api_usage::rate_limited,
            api_usage::at,
            api_usage::client_id,
        ))
        .load(conn)?;
    Ok(aggregate(rows))
}

/// endpoint, status, duration, rate limited, at, client id
type Row = (String, i32, i32, bool, chrono::NaiveDateTime, String);

fn aggregate(rows: Vec<Row>) -> Stats {
    let mut stats = Stats::default();
    let mut days: BTreeMap<String, DayStats> = BTreeMap::new();
    let mut durations: Vec<i32> = Vec::with_capacity(rows.len());
    for (endpoint, status, duration, rate_limited, at, client_id) in rows {
        let error = status >= 400;
        stats.total_calls += 1;
        stats.total_errors += u64::from(error);
        stats.rate_limit_hits += u64::from(rate_limited);
        let entry = stats.by_endpoint.entry(endpoint).or_default();
        entry.calls += 1;
        entry.errors += u64::from(error);
        let by_client = stats.by_client.entry(client_id).or_default();
        by_client.calls += 1;
        by_client.errors += u64::from(error);
        let day = at.format("%Y-%m-%d").to_string();
        let day_entry = days.entry(day.clone()).or_insert_with(|| DayStats {
            day,
            ..Default::default()
        });
        day_entry.calls += 1;
        day_entry.errors += u64::from(error);
        durations.push(duration);
    }
    durations.sort_unstable();
    let pick = |q: f64| {
        durations
            .get(((durations.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    stats.latency_ms = Percentiles {
        p50: pick(0.5),
        p95: pick(0.95),
        p99: pick(0.99),
    };
    if !durations.is_empty() {
        stats.average_duration_ms =
            durations.iter().map(|d| f64::from(*d)).sum::<f64>() / durations.len() as f64;
    }
    stats.per_day = days.into_values().collect();
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_families_not_ids() {
        assert_eq!(normalise_endpoint("/api/lists/XyZ12/"), "lists");
        assert_eq!(normalise_endpoint("api/accounts"), "accounts");
        assert_eq!(
            normalise_endpoint("/v1/customers/email=a%40b.com"),
            "customers"
        );
        assert_eq!(
            normalise_endpoint("/v1/conversations/123/messages?x=1"),
            "conversations"
        );
        assert_eq!(normalise_endpoint("/"), "root");
    }

    #[test]
    fn statistics_add_up() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        let day_after = at + chrono::TimeDelta::days(1);
        let rows: Vec<Row> = vec![
            ("lists".into(), 200, 10, false, at, "a".into()),
            ("lists".into(), 429, 30, true, at, "a".into()),
            ("customers".into(), 500, 20, false, day_after, "b".into()),
        ];
        let stats = aggregate(rows);
        assert_eq!(
            (stats.total_calls, stats.total_errors, stats.rate_limit_hits),
            (3, 2, 1)
        );
        assert_eq!(
            stats.by_endpoint["lists"],
            EndpointStats {
                calls: 2,
                errors: 1
            }
        );
        assert_eq!(stats.per_day.len(), 2);
        assert_eq!(
            stats.by_client["a"],
            EndpointStats {
                calls: 2,
                errors: 1
            }
        );
        assert_eq!(stats.latency_ms.p50, 20);
        assert_eq!(stats.average_duration_ms, 20.0);
    }
}
