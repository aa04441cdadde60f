//! The usage page's sync KPIs (issue 15) count the runs that finished in the selected
//! period only: real runs (one succeeds, one fails at the provider), moved in time, and
//! one more run weeks ago. Both databases.

use crate::helpers::TestApp;
use crate::on_both_backends;
use crate::operations::klaviyo_client;
use crate::syncs::{run_and_wait, sync_key};
use connecthub::db::schema::sync_runs;
use diesel::prelude::*;
use serde_json::json;

on_both_backends!(sync_kpis_count_the_runs_of_the_period);

/// The value shown under a KPI's name on the usage page.
async fn kpi(app: &TestApp, period: &str, name: &str) -> String {
    let html = app.get_html(&format!("/admin/usage?period={period}")).await;
    let after = html
        .split(&format!(">{name}</div>"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} KPI"));
    let value = after.split("class=\"stat-value\">").nth(1).unwrap();
    value.split('<').next().unwrap().to_string()
}

async fn sync_kpis_count_the_runs_of_the_period(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&sync_key()).await;
    assert_eq!(kpi(&app, "24h", "Sync success rate").await, "—");
    let lists = run_and_wait(&app, &key, &client, "lists", false).await;
    assert_eq!(lists["last_outcome"], "succeeded", "{lists}");
    app.sandbox_faults(json!({"provider": "klaviyo", "api_failures": 1, "api_status": 400}))
        .await;
    let segments = run_and_wait(&app, &key, &client, "segments", false).await;
    assert_eq!(segments["last_outcome"], "failed", "{segments}");

    // The success took 1.5 s today, the failure was 3 days ago, and a 9.5 s success 20 days ago.
    let now = connecthub::db::now();
    let id = client.clone();
    app.db(move |conn| {
        diesel::update(sync_runs::table.filter(sync_runs::model.eq("lists")))
            .set(sync_runs::duration_ms.eq(1_500_i64))
            .execute(conn)?;
        diesel::update(sync_runs::table.filter(sync_runs::model.eq("segments")))
            .set(sync_runs::finished_at.eq(now - chrono::TimeDelta::days(3)))
            .execute(conn)?;
        diesel::insert_into(sync_runs::table)
            .values((
                sync_runs::client_id.eq(id),
                sync_runs::model.eq("profiles"),
                sync_runs::finished_at.eq(now - chrono::TimeDelta::days(20)),
                sync_runs::succeeded.eq(true),
                sync_runs::duration_ms.eq(9_500_i64),
            ))
            .execute(conn)
    })
    .await;
    for (period, rate, duration) in [
        ("24h", "100.0 %", "1.5 s"),
        ("7d", "50.0 %", "1.5 s"),
        ("30d", "66.7 %", "5.5 s"),
    ] {
        assert_eq!(
            kpi(&app, period, "Sync success rate").await,
            rate,
            "{period}"
        );
        assert_eq!(
            kpi(&app, period, "Average sync duration").await,
            duration,
            "{period}"
        );
    }
}
