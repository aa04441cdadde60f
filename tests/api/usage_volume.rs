//! Usage beyond a handful of fresh calls: periods over daily roll-ups, the 24-hour view
//! over hourly ones (narrowed to a client or user too), pruning after the retention (daily
//! roll-ups stay), the page's client and user filters, and the seeding command used by
//! the volume benchmark.

use crate::helpers::{instance_on_same_database, TestApp, GLOBEX_CONNECT_CALLS};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::api_usage_rollup;
use connecthub::usage::{store, Call};
use diesel::prelude::*;

on_both_backends!(
    periods_count_the_right_days_and_pruning_keeps_roll_ups,
    writes_add_to_the_roll_up_rows_they_share,
    the_page_narrows_to_a_client_or_a_user,
);

fn call(client: &str, user: &str, endpoint: &str, status: i32, ago: chrono::TimeDelta) -> Call {
    Call {
        client_id: client.into(),
        user_id: user.into(),
        provider: "klaviyo".into(),
        endpoint: endpoint.into(),
        status,
        duration_ms: 40,
        rate_limited: status == 429,
        at: connecthub::db::now() - ago,
    }
}

/// The text of the element with this id.
fn figure(html: &str, id: &str) -> String {
    html.split(&format!(r#"id="{id}">"#))
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default()
        .to_string()
}

async fn periods_count_the_right_days_and_pruning_keeps_roll_ups(app: TestApp) {
    app.login_as(Role::Admin).await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    let days = chrono::TimeDelta::days;
    let calls = vec![
        call("c1", "u1", "lists", 200, days(10)),
        call("c1", "u1", "lists", 500, days(10)),
        call("c1", "u1", "segments", 429, days(10)),
        call("c1", "u1", "lists", 200, days(3)),
        call("c2", "u2", "accounts", 200, days(3)),
        call("c2", "u2", "accounts", 404, chrono::TimeDelta::hours(1)),
    ];
    app.db(move |conn| store::write(conn, &calls)).await;

    let month = app.usage(&key, "days=30").await["stats"].clone();
    assert_eq!(
        (
            &month["totalCalls"],
            &month["totalErrors"],
            &month["rateLimitHits"]
        ),
        (&6.into(), &3.into(), &1.into())
    );
    assert_eq!(month["byEndpoint"]["lists"]["calls"], 3);
    assert_eq!(month["byEndpoint"]["lists"]["errors"], 1);
    assert_eq!(month["perDay"].as_array().unwrap().len(), 3);
    assert_eq!(
        month["latencyMs"]["p50"], 50,
        "40 ms calls: the ≤50 ms bucket"
    );
    assert_eq!(app.usage(&key, "days=7").await["stats"]["totalCalls"], 3);
    assert_eq!(
        app.usage(&key, "days=30&client_id=c2").await["stats"]["totalCalls"],
        2
    );
    assert_eq!(
        app.usage(&key, "days=30&user_id=u1").await["stats"]["totalCalls"],
        4
    );
    assert_eq!(
        app.usage(&key, "days=30&provider=kustomer").await["stats"]["totalCalls"],
        0
    );

    let day = app.get_html("/admin/usage?period=24h").await;
    assert_eq!(figure(&day, "total-calls"), "1");
    assert!(day.contains("Calls and errors per hour") && day.contains(r#"data-bars="24""#));
    let week = app.get_html("/admin/usage?period=7d").await;
    assert_eq!(figure(&week, "total-calls"), "3");
    assert!(week.contains(r#"data-bars="7""#));
    pruning_keeps_the_daily_roll_ups(&app, &key).await;
}

/// The upsert adds to rows that exist and creates the rest, in one statement: a second
/// batch sharing some keys with the first, and adding new ones, counts both.
async fn writes_add_to_the_roll_up_rows_they_share(app: TestApp) {
    app.login_as(Role::Admin).await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    let days = chrono::TimeDelta::days;
    let first = vec![
        call("c1", "u1", "lists", 200, days(2)),
        call("c1", "u1", "lists", 500, days(2)),
    ];
    let second = vec![
        call("c1", "u1", "lists", 429, days(2)),
        call("c2", "u2", "accounts", 200, days(1)),
    ];
    app.db(move |conn| store::write(conn, &first)).await;
    app.db(move |conn| store::write(conn, &second)).await;

    let month = app.usage(&key, "days=30").await["stats"].clone();
    assert_eq!(month["totalCalls"], 4);
    assert_eq!(month["totalErrors"], 2);
    assert_eq!(month["rateLimitHits"], 1);
    assert_eq!(month["byEndpoint"]["lists"]["calls"], 3);
    assert_eq!(month["byEndpoint"]["accounts"]["calls"], 1);
    let rows: i64 = app
        .db(|conn| api_usage_rollup::table.count().get_result(conn))
        .await;
    // Six grouping sets; c1's calls share one row in each, c2's call has its own.
    assert_eq!(rows, 12);
}

async fn pruning_keeps_the_daily_roll_ups(app: &TestApp, key: &str) {
    // An instance keeping usage 5 days prunes the 10-day-old hourly roll-ups when it
    // starts; the daily ones stay.
    let pruning = instance_on_same_database(app, &[("USAGE_RETENTION_DAYS", "5")]).await;
    let cutoff = connecthub::db::now() - chrono::TimeDelta::days(5);
    let old_sets = move |conn: &mut connecthub::db::DbConnection| {
        api_usage_rollup::table
            .filter(api_usage_rollup::starts_at.lt(cutoff))
            .select(api_usage_rollup::grouping_set)
            .distinct()
            .order(api_usage_rollup::grouping_set)
            .load::<String>(conn)
    };
    let daily_only = ["client_day", "endpoint_day", "full_day"];
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = pruning.db(old_sets).await;
        if seen == daily_only {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen, daily_only,
        "hourly roll-ups older than the retention go"
    );
    let month = app.usage(key, "days=30").await["stats"].clone();
    assert_eq!(month["totalCalls"], 6, "daily roll-ups stay");
    assert_eq!(month["byEndpoint"]["segments"]["calls"], 1);
    let recent_hourly = move |conn: &mut connecthub::db::DbConnection| {
        api_usage_rollup::table
            .filter(api_usage_rollup::starts_at.ge(cutoff))
            .filter(api_usage_rollup::grouping_set.like("%_hour"))
            .select(api_usage_rollup::grouping_set)
            .distinct()
            .order(api_usage_rollup::grouping_set)
            .load::<String>(conn)
    };
    assert_eq!(
        pruning.db(recent_hourly).await,
        ["client_hour", "endpoint_hour", "full_hour"],
        "hourly roll-ups within the retention stay"
    );
}

async fn the_page_narrows_to_a_client_or_a_user(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let member_browser = app.new_browser();
    let member = member_browser.login_as(Role::Member).await;
    let hour = chrono::TimeDelta::hours(1);
    let (admin_id, member_id) = (admin.id.clone(), member.id.clone());
    let calls = vec![
        call("admin-client", &admin_id, "lists", 200, hour),
        call("admin-client", &admin_id, "lists", 200, hour),
        call("member-client", &member_id, "segments", 200, hour),
    ];
    app.db(move |conn| store::write(conn, &calls)).await;

    let everyone = app.get_html("/admin/usage").await;
    assert_eq!(figure(&everyone, "total-calls"), "3");
    assert!(
        everyone.contains(&format!("{}</option>", member.email)),
        "user filter"
    );
    assert!(
        crate::helpers::unescape(&everyone)
            .contains("/admin/usage?period=30d&client=member-client"),
        "top clients link to the page narrowed to them"
    );
    let one_user = app
        .get_html(&format!("/admin/usage?user={member_id}"))
        .await;
    assert_eq!(figure(&one_user, "total-calls"), "1");

    // Clients that exist: the filter shows which one, with a way back to all.
    connect_member_client(&member_browser).await;
    let client_id = member_browser.clients().await.remove(0).id;
    let other = call(&client_id, &member_id, "lists", 200, hour);
    app.db(move |conn| store::write(conn, &[other])).await;
    // The connection's own page sums its last 30 days (with the calls connecting made)
    // and links to the narrowed page.
    let calls = (1 + GLOBEX_CONNECT_CALLS).to_string();
    let details_path = format!("/admin/clients/{client_id}");
    member_browser
        .wait_for_figure(&details_path, "usage-calls", &calls)
        .await;
    let details = member_browser.get_html(&details_path).await;
    assert!(details.contains(&format!("/admin/usage?client={client_id}")));
    let narrowed = app
        .get_html(&format!("/admin/usage?client={client_id}"))
        .await;
    assert_eq!(figure(&narrowed, "total-calls"), calls);
    assert!(narrowed.contains(r#"id="client-filter""#) && narrowed.contains("Show all clients"));
    // Narrowed to one client or user, the last 24 hours come from the full_hour set.
    for (query, expected) in [
        (format!("client={client_id}"), calls.clone()),
        (
            format!("user={member_id}"),
            (2 + GLOBEX_CONNECT_CALLS).to_string(),
        ),
        (format!("user={admin_id}"), "2".to_string()),
    ] {
        let page = app
            .get_html(&format!("/admin/usage?period=24h&{query}"))
            .await;
        assert!(page.contains(r#"data-bars="24""#), "{query}: bars per hour");
        assert_eq!(figure(&page, "total-calls"), expected, "{query}");
    }

    // Members: their own usage, and nobody else's by asking.
    let own = member_browser.get_html("/admin/usage").await;
    assert_eq!(
        figure(&own, "total-calls"),
        (2 + GLOBEX_CONNECT_CALLS).to_string()
    );
    assert!(!own.contains("usage-user"), "members get no user filter");
    for (path, message) in [
        (
            format!("/admin/usage?user={admin_id}"),
            "members see their own usage only",
        ),
        (
            "/admin/usage?client=admin-client".to_string(),
            "unknown client",
        ),
    ] {
        let response = member_browser.get(&path).await;
        assert_eq!(response.status(), 400, "{path}");
        assert!(response.text().await.unwrap().contains(message), "{path}");
    }
    for (path, message) in [
        ("/admin/usage?user=nobody", "unknown user"),
        ("/admin/usage?client=nope", "unknown client"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        assert!(response.text().await.unwrap().contains(message), "{path}");
    }
}

async fn connect_member_client(member: &TestApp) {
    let done = member.connect("klaviyo", Some("GlobexK2")).await;
    assert_eq!(done.status(), 303);
}

/// `seed --usage-rows` records calls in the roll-ups, and says so when there is no client
/// to record calls for.
#[tokio::test]
async fn seeding_usage_writes_rows_and_roll_ups() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let seed = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
            .arg("seed")
            .args(args)
            .env("DATABASE_URL", &app.database_url)
            .env("ENCRYPTION_KEY", crate::helpers::TEST_KEY)
            .output()
            .unwrap()
    };
    let empty = seed(&["--clients", "0", "--usage-rows", "10"]);
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("there are no clients"));
    let rollups = |conn: &mut connecthub::db::DbConnection| {
        api_usage_rollup::table.count().get_result::<i64>(conn)
    };
    assert_eq!(app.db(rollups).await, 0);

    let seeded = seed(&[
        "--clients",
        "3",
        "--usage-rows",
        "2500",
        "--usage-days",
        "7",
    ]);
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    assert!(String::from_utf8_lossy(&seeded.stdout)
        .contains("recorded 2500 made-up provider calls over 7 days"));
    app.login_as(Role::Admin).await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    assert_eq!(app.usage(&key, "days=7").await["stats"]["totalCalls"], 2500);
}
