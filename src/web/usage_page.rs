//! `/admin/usage`: calls, errors and rate-limit hits of proxied provider calls over a period,
//! per-day charts drawn as server-side SVG, top endpoints and clients, and the integration
//! health KPIs with their targets. Members see their own usage.

use super::layout::Layout;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::startup::AppState;
use crate::usage::{self, Stats};
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

const CHART_WIDTH: f64 = 720.0;
const CHART_HEIGHT: f64 = 140.0;

/// One day's bar: calls, with the errors drawn over it.
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
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
    period: &'static str,
    provider: String,
    providers: Vec<(String, String)>,
    stats: Stats,
    bars: Vec<Bar>,
    endpoints: Vec<Row>,
    clients: Vec<Row>,
    kpis: Vec<Kpi>,
}

#[derive(serde::Deserialize, Default)]
struct Query {
    period: Option<String>,
    provider: Option<String>,
}

fn period(raw: Option<&str>) -> Result<(&'static str, i64), AppError> {
    match raw.unwrap_or("30d") {
        "24h" => Ok(("24h", 1)),
        "7d" => Ok(("7d", 7)),
        "30d" | "" => Ok(("30d", 30)),
        _ => Err(AppError::BadRequest("period must be 24h, 7d or 30d".into())),
    }
}

pub async fn index(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let query: Query = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| AppError::BadRequest("the address has a malformed query".into()))?;
    let (period, days) = period(query.period.as_deref())?;
    let provider = query.provider.unwrap_or_default();
    if !provider.is_empty() && state.providers().get(&provider).is_none() {
        return Err(AppError::BadRequest("unknown provider".into()));
    }
    let since = crate::db::now() - chrono::TimeDelta::days(days);
    let scope = usage::Scope {
        since,
        client_id: None,
        provider: (!provider.is_empty()).then(|| provider.clone()),
        user_id: (!user.is_admin()).then(|| user.id.clone()),
    };
    let stats = crate::db::run(&state.pool, move |conn| usage::stats(conn, &scope)).await?;
    let clients = top_clients(&state, &stats).await?;
    let page = UsagePage {
        layout: Layout::new(&session, Some(&user), "usage"),
        period,
        providers: state
            .providers()
            .enabled()
            .map(|p| (p.name.clone(), p.display_name.clone()))
            .collect(),
        bars: bars(&stats, since, days),
        endpoints: top(stats
            .by_endpoint
            .iter()
            .map(|(k, v)| (k.clone(), v.calls, v.errors))),
        clients,
        kpis: kpis(&state, &stats, since).await?,
        provider,
        stats,
    };
    super::render(page, StatusCode::OK)
}

fn top(rows: impl Iterator<Item = (String, u64, u64)>) -> Vec<Row> {
    let mut rows: Vec<Row> = rows
        .map(|(name, calls, errors)| Row {
            name,
            calls,
            errors,
        })
        .collect();
    rows.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
    rows.truncate(10);
    rows
}

async fn top_clients(state: &AppState, stats: &Stats) -> Result<Vec<Row>, AppError> {
    let mut rows = top(stats
        .by_client
        .iter()
        .map(|(k, v)| (k.clone(), v.calls, v.errors)));
    for row in &mut rows {
        let id = row.name.clone();
        if let Some(client) =
            crate::db::run(&state.pool, move |conn| crate::clients::find(conn, &id)).await?
        {
            row.name = format!("{} ({})", client.display_name, client.provider);
        }
    }
    Ok(rows)
}

/// One bar per day of the period, scaled to the busiest day.
fn bars(stats: &Stats, since: chrono::NaiveDateTime, days: i64) -> Vec<Bar> {
    let first = since.date();
    let count = days as usize + 1;
    let per_day: Vec<(String, u64, u64)> = (0..count)
        .map(|i| {
            let day = (first + chrono::TimeDelta::days(i as i64))
                .format("%Y-%m-%d")
                .to_string();
            let found = stats.per_day.iter().find(|d| d.day == day);
            (
                day,
                found.map_or(0, |d| d.calls),
                found.map_or(0, |d| d.errors),
            )
        })
        .collect();
    let busiest = per_day.iter().map(|d| d.1).max().unwrap_or(0).max(1) as f64;
    let slot = CHART_WIDTH / count as f64;
    per_day
        .into_iter()
        .enumerate()
        .map(|(i, (day, calls, errors))| {
            let height = CHART_HEIGHT * calls as f64 / busiest;
            let error_height = CHART_HEIGHT * errors as f64 / busiest;
            Bar {
                x: format!("{:.1}", i as f64 * slot + 1.0),
                width: format!("{:.1}", (slot - 2.0).max(1.0)),
                y: format!("{:.1}", CHART_HEIGHT - height),
                height: format!("{height:.1}"),
                error_y: format!("{:.1}", CHART_HEIGHT - error_height),
                error_height: format!("{error_height:.1}"),
                title: format!("{day}: {calls} calls, {errors} errors"),
            }
        })
        .collect()
}

fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// The requirement's KPIs: OAuth completion > 90 %, refresh success > 99 %, API error
/// rate < 1 %, and the average call duration.
async fn kpis(
    state: &AppState,
    stats: &Stats,
    since: chrono::NaiveDateTime,
) -> Result<Vec<Kpi>, AppError> {
    let actions = [
        "oauth_initiated",
        "oauth_completed",
        "token_refreshed",
        "token_refresh_failed",
    ];
    let counts = crate::db::run(&state.pool, move |conn| {
        crate::audit::count_since(conn, &actions, since)
    })
    .await?;
    let count = |action: &str| {
        counts
            .iter()
            .find(|(a, _)| a == action)
            .map_or(0, |(_, n)| *n)
    };
    let completion = percent(count("oauth_completed"), count("oauth_initiated"));
    let refreshes = count("token_refreshed") + count("token_refresh_failed");
    let refresh_success = percent(count("token_refreshed"), refreshes);
    let error_rate = percent(stats.total_errors as i64, stats.total_calls as i64);
    let shown = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} %"));
    Ok(vec![
        Kpi {
            name: "OAuth completion rate",
            value: shown(completion),
            target: "> 90 %",
            good: completion.map(|v| v > 90.0),
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
    ])
}
