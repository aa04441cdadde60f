//! `/admin/usage`: calls, errors and rate-limit hits of provider calls over a period, with
//! filters by provider, client and user, per-hour or per-day charts drawn as server-side
//! SVG, top endpoints and clients, and the integration health KPIs with their targets.
//! Members see their own usage.

use super::layout::Layout;
use crate::auth::users::User;
use crate::error::AppError;
use crate::input::RecordId;
use crate::state::AppState;
use crate::usage::{self, Period, PointStats, Stats};
use crate::web::current_user::CurrentUser;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{NaiveDateTime, TimeDelta};

const CHART_WIDTH: f64 = 720.0;
const CHART_HEIGHT: f64 = 140.0;

/// One hour's or day's bar: calls, with the errors drawn over it.
struct Bar {
    x: String,
    width: String,
    y: String,
    height: String,
    error_y: String,
    error_height: String,
    title: String,
}

/// A KPI with its target from the requirements.
struct Kpi {
    name: &'static str,
    value: String,
    target: &'static str,
    /// None when there was nothing to measure in the period.
    good: Option<bool>,
}

struct Row {
    name: String,
    calls: u64,
    errors: u64,
    /// For clients: the page narrowed to that client.
    href: Option<String>,
}

/// The filters of the page, as read from its address and checked.
#[derive(Clone)]
struct Filters {
    /// As the address names it (`24h`, `7d`, `30d`) …
    period: &'static str,
    /// … and what it covers.
    span: Period,
    provider: String,
    client: Option<(String, String)>,
    /// The chosen user (admins); members always see their own.
    user: String,
}

impl Filters {
    /// The page's address with these filters and one changed by `change`.
    fn href(&self, change: impl FnOnce(&mut Filters)) -> String {
        let mut next = self.clone();
        change(&mut next);
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("period", next.period);
        for (name, value) in [
            ("provider", next.provider.as_str()),
            ("client", next.client.as_ref().map_or("", |c| c.0.as_str())),
            ("user", next.user.as_str()),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        format!("/admin/usage?{}", query.finish())
    }
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
    filters: Filters,
    clear_client: String,
    providers: Vec<(String, String)>,
    /// Users an admin can narrow to (empty for members).
    users: Vec<(String, String)>,
    stats: Stats,
    latency: String,
    chart_title: &'static str,
    bars: Vec<Bar>,
    /// First slot, last slot, calls in the busiest slot.
    axis: (String, String, u64),
    endpoints: Vec<Row>,
    clients: Vec<Row>,
    kpis: Vec<Kpi>,
}

#[derive(serde::Deserialize, Default)]
struct Query {
    period: Option<String>,
    provider: Option<String>,
    client: Option<String>,
    user: Option<String>,
}

fn period(raw: Option<&str>) -> Result<(&'static str, Period), AppError> {
    match raw.unwrap_or("30d") {
        "24h" => Ok(("24h", Period::Hours24)),
        "7d" => Ok(("7d", Period::Days(7))),
        "30d" | "" => Ok(("30d", Period::Days(30))),
        _ => Err(AppError::BadRequest("period must be 24h, 7d or 30d".into())),
    }
}

/// Reads and checks the filters; a client or user the viewer may not see is "unknown",
/// like one that does not exist.
async fn filters(state: &AppState, viewer: &User, query: Query) -> Result<Filters, AppError> {
    let (period, span) = period(query.period.as_deref())?;
    let provider = query.provider.unwrap_or_default();
    if !provider.is_empty() && state.providers().get(&provider).is_none() {
        return Err(AppError::BadRequest("unknown provider".into()));
    }
    let user = match query.user.filter(|u| !u.is_empty()) {
        None if viewer.is_admin() => String::new(),
        None => viewer.id.clone(),
        Some(id) if id == viewer.id => id,
        Some(_) if !viewer.is_admin() => {
            return Err(AppError::BadRequest(
                "members see their own usage only".into(),
            ))
        }
        Some(raw) => {
            let unknown = || AppError::BadRequest("unknown user".into());
            let id = RecordId::parse(&raw).map_err(|_| unknown())?.into_string();
            let check = id.clone();
            crate::db::run(&state.pool, move |conn| {
                crate::auth::users::find(conn, &check)
            })
            .await?
            .ok_or_else(unknown)?;
            id
        }
    };
    let client = match query.client.filter(|c| !c.is_empty()) {
        None => None,
        Some(id) => Some(client_label(state, viewer, id).await?),
    };
    Ok(Filters {
        period,
        span,
        provider,
        client,
        user,
    })
}

async fn client_label(
    state: &AppState,
    viewer: &User,
    raw: String,
) -> Result<(String, String), AppError> {
    let unknown = || AppError::BadRequest("unknown client".into());
    let id = RecordId::parse(&raw).map_err(|_| unknown())?;
    let viewer = viewer.clone();
    let client = crate::db::run(&state.pool, move |conn| {
        crate::clients::find_for(conn, &viewer, &id)
    })
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::NotFound => unknown(),
        other => other,
    })?;
    Ok((client.id.clone(), client_name(&client)))
}

pub async fn index(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let query: Query = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| AppError::BadRequest("the address has a malformed query".into()))?;
    let filters = filters(&state, &user, query).await?;
    let period = filters.span;
    let scope = usage::Scope {
        period,
        client_id: filters.client.as_ref().map(|c| c.0.clone()),
        provider: (!filters.provider.is_empty()).then(|| filters.provider.clone()),
        user_id: (!filters.user.is_empty()).then(|| filters.user.clone()),
    };
    let stats = crate::db::run(&state.pool, move |conn| usage::stats(conn, &scope)).await?;
    let slots = slots(&stats, period, crate::db::now());
    let users = super::user_choices(&state, &user).await?;
    let page = UsagePage {
        layout: Layout::new(&session, Some(&user), "usage"),
        clear_client: filters.href(|f| f.client = None),
        providers: state
            .providers()
            .enabled()
            .map(|p| (p.name.clone(), p.display_name.clone()))
            .collect(),
        users,
        latency: latency(&stats),
        chart_title: match period {
            Period::Hours24 => "Calls and errors per hour",
            Period::Days(_) => "Calls and errors per day",
        },
        bars: bars(&slots),
        axis: axis(&slots),
        endpoints: top(stats
            .by_endpoint
            .iter()
            .map(|(k, v)| (k.clone(), v.calls, v.errors))),
        clients: top_clients(&state, &stats, &filters).await?,
        kpis: kpis(&state, &user, &stats, period.start(crate::db::now())).await?,
        filters,
        stats,
    };
    super::render(page, StatusCode::OK)
}

/// "p50 / p95 / p99" as bucket bounds ("≤ 100 ms"); a percentile past the last bound
/// shows as "> 10000".
fn latency(stats: &Stats) -> String {
    if stats.total_calls == 0 {
        return "—".into();
    }
    let last = usage::LATENCY_BOUNDS_MS[usage::LATENCY_BOUNDS_MS.len() - 1];
    let shown = |p: Option<i32>| p.map_or(format!("> {last}"), |v| v.to_string());
    format!(
        "≤ {} / {} / {} ms",
        shown(stats.latency_ms.p50),
        shown(stats.latency_ms.p95),
        shown(stats.latency_ms.p99)
    )
}

fn top(rows: impl Iterator<Item = (String, u64, u64)>) -> Vec<Row> {
    let mut rows: Vec<Row> = rows
        .map(|(name, calls, errors)| Row {
            name,
            calls,
            errors,
            href: None,
        })
        .collect();
    rows.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
    rows.truncate(10);
    rows
}

async fn top_clients(
    state: &AppState,
    stats: &Stats,
    filters: &Filters,
) -> Result<Vec<Row>, AppError> {
    let mut rows = top(stats
        .by_client
        .iter()
        .map(|(k, v)| (k.clone(), v.calls, v.errors)));
    let ids = rows.iter().map(|row| row.name.clone()).collect();
    let known = crate::db::run(&state.pool, move |conn| {
        crate::clients::find_many(conn, ids)
    })
    .await?;
    for row in &mut rows {
        let id = row.name.clone();
        row.href = Some(filters.href(|f| f.client = Some((id.clone(), String::new()))));
        // A client no longer stored keeps showing its id.
        if let Some(client) = known.iter().find(|c| c.id == id) {
            row.name = client_name(client);
        }
    }
    Ok(rows)
}

/// How a client is named on the page: "Acme Store (klaviyo)".
fn client_name(client: &crate::clients::Client) -> String {
    format!("{} ({})", client.display_name, client.provider)
}

/// Every hour (24 h) or day of the period, oldest first, with its calls and errors.
fn slots(stats: &Stats, period: Period, now: NaiveDateTime) -> Vec<(String, u64, u64)> {
    let start = period.start(now);
    let (keys, found): (Vec<String>, &[PointStats]) = match period {
        Period::Hours24 => {
            let keys = (0..24)
                .map(|i| {
                    (start + TimeDelta::hours(i))
                        .format("%Y-%m-%dT%H:00")
                        .to_string()
                })
                .collect();
            (keys, &stats.per_hour)
        }
        Period::Days(days) => {
            let keys = (0..i64::from(days))
                .map(|i| (start + TimeDelta::days(i)).format("%Y-%m-%d").to_string())
                .collect();
            (keys, &stats.per_day)
        }
    };
    keys.into_iter()
        .map(|key| {
            let point = found.iter().find(|p| p.start == key);
            let (calls, errors) = point.map_or((0, 0), |p| (p.calls, p.errors));
            (key, calls, errors)
        })
        .collect()
}

/// The chart's labels: where it starts and ends, and its scale.
fn axis(slots: &[(String, u64, u64)]) -> (String, String, u64) {
    let label = |slot: Option<&(String, u64, u64)>| {
        slot.map_or(String::new(), |s| format!("{} UTC", s.0.replace('T', " ")))
    };
    let busiest = slots.iter().map(|s| s.1).max().unwrap_or(0);
    (label(slots.first()), label(slots.last()), busiest)
}

/// One bar per slot, scaled to the busiest slot.
fn bars(slots: &[(String, u64, u64)]) -> Vec<Bar> {
    let busiest = slots.iter().map(|s| s.1).max().unwrap_or(0).max(1) as f64;
    let slot = CHART_WIDTH / slots.len().max(1) as f64;
    slots
        .iter()
        .enumerate()
        .map(|(i, (start, calls, errors))| {
            let height = CHART_HEIGHT * *calls as f64 / busiest;
            let error_height = CHART_HEIGHT * *errors as f64 / busiest;
            Bar {
                x: format!("{:.1}", i as f64 * slot + 1.0),
                width: format!("{:.1}", (slot - 2.0).max(1.0)),
                y: format!("{:.1}", CHART_HEIGHT - height),
                height: format!("{height:.1}"),
                error_y: format!("{:.1}", CHART_HEIGHT - error_height),
                error_height: format!("{error_height:.1}"),
                title: format!(
                    "{}: {calls} calls, {errors} errors",
                    start.replace('T', " ")
                ),
            }
        })
        .collect()
}

fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// The requirement's KPIs: OAuth completion > 90 %, refresh success > 99 %, API error
/// rate < 1 %, and the average call duration. Members' rates count their own flows and
/// clients only (the audit log's member scope).
async fn kpis(
    state: &AppState,
    viewer: &User,
    stats: &Stats,
    since: NaiveDateTime,
) -> Result<Vec<Kpi>, AppError> {
    let actions = [
        "oauth_initiated",
        "oauth_completed",
        "token_refreshed",
        "token_refresh_failed",
    ];
    let member = (!viewer.is_admin()).then(|| viewer.id.clone());
    let [initiated, completed, refreshed, refresh_failed] =
        crate::db::run(&state.pool, move |conn| {
            let scope = crate::audit::scope_for(conn, member.as_deref())?;
            crate::audit::count_since(conn, &scope, actions, since)
        })
        .await?;
    let completion = percent(completed, initiated);
    let (sessions_completed, sessions_created) = match viewer.is_admin() {
        true => crate::connect::completion_since(state, since).await?,
        false => (0, 0),
    };
    let session_completion = percent(sessions_completed, sessions_created);
    let refresh_success = percent(refreshed, refreshed + refresh_failed);
    let error_rate = percent(stats.total_errors as i64, stats.total_calls as i64);
    // Sync runs of every connection that finished in the period.
    let (sync_success, sync_mean_ms) = crate::db::run(&state.pool, move |conn| {
        crate::syncs::runs::kpis_since(conn, since)
    })
    .await?;
    let sync_success = sync_success.map(|share| share * 100.0);
    let shown = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} %"));
    Ok(vec![
        Kpi {
            name: "OAuth completion rate",
            value: shown(completion),
            target: "> 90 %",
            good: completion.map(|v| v > 90.0),
        },
        Kpi {
            name: "Connect session completion",
            value: match session_completion {
                Some(_) => format!(
                    "{} ({sessions_completed} of {sessions_created})",
                    shown(session_completion)
                ),
                None => shown(None),
            },
            target: "> 90 %",
            good: session_completion.map(|v| v > 90.0),
        },
        Kpi {
            name: "Token refresh success",
            value: shown(refresh_success),
            target: "> 99 %",
            good: refresh_success.map(|v| v > 99.0),
        },
        Kpi {
            name: "API error rate",
            value: shown(error_rate),
            target: "< 1 %",
            good: error_rate.map(|v| v < 1.0),
        },
        Kpi {
            name: "Average call duration",
            value: if stats.total_calls == 0 {
                "—".into()
            } else {
                format!("{:.0} ms", stats.average_duration_ms)
            },
            target: "latency percentiles above",
            good: None,
        },
        Kpi {
            name: "Sync success rate",
            value: shown(sync_success),
            target: "> 99 %",
            good: sync_success.map(|v| v > 99.0),
        },
        Kpi {
            name: "Average sync duration",
            value: sync_mean_ms.map_or("—".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
            target: "under the sync frequency",
            good: None,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cover_every_hour_or_day_of_the_period() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_opt(14, 30, 0)
            .unwrap();
        let stats = Stats {
            per_hour: vec![PointStats {
                start: "2026-11-23T14:00".into(),
                calls: 3,
                errors: 1,
            }],
            per_day: vec![PointStats {
                start: "2026-11-17".into(),
                calls: 5,
                errors: 0,
            }],
            ..Default::default()
        };
        let hours = slots(&stats, Period::Hours24, now);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[0].0, "2026-11-22T15:00");
        assert_eq!(hours[23], ("2026-11-23T14:00".into(), 3, 1));
        let days = slots(&stats, Period::Days(7), now);
        assert_eq!(days.len(), 7);
        assert_eq!(days[0], ("2026-11-17".into(), 5, 0));
        assert_eq!(days[6].0, "2026-11-23");
        let drawn = bars(&hours);
        assert_eq!(
            drawn[23].height, "140.0",
            "the busiest slot fills the chart"
        );
        assert_eq!(drawn[0].height, "0.0");
    }
}
