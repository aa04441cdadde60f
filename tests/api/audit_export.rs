//! The audit log's CSV export: escaped and defused cells, and the row limit.

use crate::audit_page::{all_entries, csv, export, failed_login, WRONG_PASSWORD};
use crate::helpers::{header, TestApp, TestUser, PASSWORD};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::db::schema::audit_log;
use diesel::prelude::*;

on_both_backends!(
    csv_export_is_escaped_and_defused,
    csv_export_stops_at_the_row_limit,
);

const CSV_HEADER: &str = r#""id","at","actor_type","actor_id","actor_label","action","target_type","target_id","outcome","ip","user_agent","details""#;

async fn csv_export_is_escaped_and_defused(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let (key, access_token) = awkward_sign_ins_and_a_handed_out_token(&app).await;
    the_export_is_escaped_and_defused(&app).await;
    other_filters_count_and_no_secret_appears(&app, &admin, &key, &access_token).await;
}

/// Failed sign-ins whose fields need quoting or defusing, and a token handed out to a
/// service (its audit entry written). Returns the service key and the token.
async fn awkward_sign_ins_and_a_handed_out_token(app: &TestApp) -> (String, String) {
    app.connect("klaviyo", Some("AcmeK1")).await;
    failed_login(
        app,
        "quoted@example.com",
        r#"Mozilla/5.0 (X11, "quoted") test"#,
    )
    .await;
    failed_login(
        app,
        "=cmd@example.com",
        r#"=HYPERLINK("http://evil.example")"#,
    )
    .await;
    failed_login(app, "plain@example.com", "test-agent").await;
    // Separators other than the comma: a spreadsheet that splits on them must not see
    // a new cell (here a formula) start.
    failed_login(app, "semi@example.com", "a;=1+1|=2+2\t=3+3").await;
    // A token handed out to a service, to show it appears nowhere.
    let key = app
        .api_key(&[connecthub::api_keys::Scope::TokensRead])
        .await;
    let client = app.clients().await.remove(0).id;
    let token: serde_json::Value = app.service_token(&key, &client).await.json().await.unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_string();
    for _ in 0..40 {
        if app
            .audit_actions()
            .await
            .iter()
            .any(|a| a == "token_handed_out")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (key, access_token)
}

async fn the_export_is_escaped_and_defused(app: &TestApp) {
    let before = chrono::Utc::now().format("%Y%m%d").to_string();
    let response = export(app, "?action=login_failed").await;
    let after = chrono::Utc::now().format("%Y%m%d").to_string();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "content-type"),
        "text/csv; charset=utf-8"
    );
    let disposition = header(response.headers(), "content-disposition");
    assert!(
        disposition == format!(r#"attachment; filename="connecthub-audit-{before}.csv""#)
            || disposition == format!(r#"attachment; filename="connecthub-audit-{after}.csv""#),
        "{disposition}"
    );
    let body = response.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 5, "header and exactly four rows: {body}");
    assert!(body.ends_with("\r\n"));
    // Newest first; every field but a number is quoted, with quotes doubled.
    assert!(
        lines[1].ends_with(concat!(
            r#","semi@example.com","login_failed","","","failure","127.0.0.1","a;=1+1|=2+2"#,
            "\t",
            r#"=3+3","{}""#
        )),
        "{}",
        lines[1]
    );
    assert!(
        lines[4].ends_with(
            r#","quoted@example.com","login_failed","","","failure","127.0.0.1","Mozilla/5.0 (X11, ""quoted"") test","{}""#
        ),
        "{}",
        lines[4]
    );
    // Formulas are defused with an apostrophe, inside the quotes.
    assert!(
        lines[3].contains(r#","'=cmd@example.com","login_failed","#),
        "{}",
        lines[3]
    );
    assert!(
        lines[3].contains(r#","'=HYPERLINK(""http://evil.example"")","#),
        "{}",
        lines[3]
    );
    assert!(lines[2].contains(r#","anonymous","","plain@example.com","#));
    let first = &all_entries(app)
        .await
        .into_iter()
        .find(|e| e.actor_label == "plain@example.com")
        .unwrap();
    assert!(lines[2].starts_with(&format!(
        r#"{},"{}","anonymous","#,
        first.id,
        first
            .at
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )));
}

async fn other_filters_count_and_no_secret_appears(
    app: &TestApp,
    admin: &TestUser,
    key: &str,
    access_token: &str,
) {
    // Another filter, exact count; the whole log.
    let by_admin = csv(app, &format!("?actor={}&outcome=success", admin.email)).await;
    let expected = all_entries(app)
        .await
        .iter()
        .filter(|e| e.actor_label == admin.email && e.outcome == "success")
        .count();
    assert_eq!(by_admin.lines().count(), expected + 1);
    let everything = csv(app, "").await;
    assert_eq!(everything.lines().count(), all_entries(app).await.len() + 1);
    assert!(everything.contains("token_handed_out"));
    // No secret anywhere: passwords typed, the token handed out, the service key.
    let page = app.get_html("/admin/audit").await;
    for secret in [PASSWORD, WRONG_PASSWORD, access_token, key] {
        assert!(!everything.contains(secret), "{secret} in the CSV");
        assert!(!page.contains(secret), "{secret} on the page");
    }
    for entry in all_entries(app).await {
        let html = app.get_html(&format!("/admin/audit/{}", entry.id)).await;
        assert!(!html.contains(access_token) && !html.contains(PASSWORD));
    }
}

/// 100,001 matching entries: 100,000 rows and a line that says it was cut, streamed.
async fn csv_export_stops_at_the_row_limit(app: TestApp) {
    app.login_as(Role::Admin).await;
    app.db(|conn| {
        diesel::sql_query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100001) \
             INSERT INTO audit_log (at, actor_type, actor_id, actor_label, action, target_type, \
             target_id, outcome, ip, user_agent, details, prev_hash, hash) \
             SELECT CURRENT_TIMESTAMP, 'system', NULL, 'connecthub', 'bulk_test', NULL, NULL, \
             'success', NULL, NULL, '{}', 'x', 'y' FROM n",
        )
        .execute(conn)
    })
    .await;
    let response = export(&app, "?action=bulk_test").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), None, "streamed, not buffered");
    let body = response.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 100_002);
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines[100_001], "# truncated at 100000 rows");
    // Ids descend without gaps: keyset pages neither skip nor repeat.
    let ids: Vec<i64> = lines[1..100_001]
        .iter()
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1] + 1));
    // Exactly at the limit: no note.
    let oldest = *ids.last().unwrap();
    app.db(move |conn| {
        diesel::update(
            audit_log::table
                .filter(audit_log::id.lt(oldest))
                .filter(audit_log::action.eq("bulk_test")),
        )
        .set(audit_log::action.eq("bulk_other"))
        .execute(conn)
    })
    .await;
    let body = csv(&app, "?action=bulk_test").await;
    assert_eq!(body.lines().count(), 100_001);
    assert!(!body.contains("# truncated"));
}
