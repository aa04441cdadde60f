//! The audit log page: filters in the URL, pages, member scoping, one entry in full, chain
//! verification and the CSV export.

use crate::helpers::{header, unescape, TestApp, PASSWORD};
use crate::on_both_backends;
use connecthub::audit::{self, Actor, Entry, Event};
use connecthub::auth::users::Role;
use connecthub::db::schema::audit_log;
use diesel::prelude::*;

on_both_backends!(
    filters_narrow_the_list,
    bad_filters_are_refused_clearly,
    members_see_only_entries_about_themselves,
    an_entry_shows_every_field,
    verify_finds_an_edited_entry,
    csv_export_is_escaped_and_defused,
    csv_export_stops_at_the_row_limit,
);

const CSV_HEADER: &str = r#""id","at","actor_type","actor_id","actor_label","action","target_type","target_id","outcome","ip","user_agent","details""#;
const WRONG_PASSWORD: &str = "not-the-password-42";

/// The "1–50 of 60" line of the list.
async fn count_line(app: &TestApp, query: &str) -> String {
    let response = app.get(&format!("/admin/audit{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    let html = unescape(&response.text().await.unwrap());
    html.split(r#"id="audit-count">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default()
        .to_string()
}

/// The entry ids a page lists, top to bottom.
fn listed_ids(html: &str) -> Vec<i64> {
    html.split(r#"<tr id="entry-"#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// A failed sign-in from a fresh browser that sends this user agent.
async fn failed_login(app: &TestApp, email: &str, user_agent: &str) {
    let browser = app.new_browser();
    let token = browser.csrf_token().await;
    let response = browser
        .client
        .post(browser.url("/login"))
        .header("User-Agent", user_agent)
        .form(&[
            ("email", email),
            ("password", WRONG_PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "{email}");
}

async fn all_entries(app: &TestApp) -> Vec<Entry> {
    app.db(|conn| audit::recent(conn, None, 100_000)).await
}

async fn export(app: &TestApp, query: &str) -> reqwest::Response {
    app.get(&format!("/admin/audit/export.csv{query}")).await
}

async fn csv(app: &TestApp, query: &str) -> String {
    let response = export(app, query).await;
    assert_eq!(response.status(), 200, "{query}");
    response.text().await.unwrap()
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

fn days_from_today(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::TimeDelta::days(days)).to_string()
}

/// A failed and a successful sign-in, three failures for an unknown account, a Klaviyo
/// connection and its disconnection. Returns the client id.
async fn activity(app: &TestApp) -> String {
    for _ in 0..3 {
        failed_login(app, "Nobody@Example.com", "test-agent").await;
    }
    app.connect("klaviyo", Some("AcmeK1")).await;
    let client = app.clients().await.remove(0).id;
    let response = app
        .post_form(
            &format!("/api/integrations/klaviyo/disconnect/{client}"),
            &[],
        )
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    client
}

async fn filters_narrow_the_list(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let client = activity(&app).await;
    let entries = all_entries(&app).await;
    let total = entries.len();
    assert_eq!(count_line(&app, "").await, format!("1–{total} of {total}"));
    assert_eq!(count_line(&app, "?action=login_failed").await, "1–3 of 3");
    assert_eq!(count_line(&app, "?action=login").await, "1–1 of 1");
    assert_eq!(count_line(&app, "?outcome=failure").await, "1–3 of 3");
    let successes = total - 3;
    assert_eq!(
        count_line(&app, "?outcome=success").await,
        format!("1–{successes} of {successes}")
    );
    // The actor matches anywhere in the label, whatever the case; wildcards are plain.
    assert_eq!(
        count_line(&app, "?actor=NOBODY%40EXAMPLE").await,
        "1–3 of 3"
    );
    assert_eq!(count_line(&app, "?actor=%25").await, "No entries");
    assert_eq!(count_line(&app, "?actor=_").await, "No entries");
    let by_admin = entries
        .iter()
        .filter(|e| e.actor_label == admin.email)
        .count();
    assert_eq!(
        count_line(&app, &format!("?actor={}", admin.email)).await,
        format!("1–{by_admin} of {by_admin}")
    );
    let about_client = entries
        .iter()
        .filter(|e| e.target_id.as_deref() == Some(client.as_str()))
        .count();
    assert!(about_client >= 2, "connected and disconnected");
    assert_eq!(
        count_line(&app, &format!("?client={client}")).await,
        format!("1–{about_client} of {about_client}")
    );
    // Combined filters.
    assert_eq!(
        count_line(
            &app,
            &format!("?client={client}&action=client_disconnected")
        )
        .await,
        "1–1 of 1"
    );
    assert_eq!(
        count_line(&app, "?action=login_failed&outcome=success").await,
        "No entries"
    );
    assert_eq!(
        count_line(
            &app,
            &format!(
                "?actor=nobody&outcome=failure&from={}&to={}",
                today(),
                today()
            )
        )
        .await,
        "1–3 of 3"
    );
    // Dates are whole UTC days, both ends included.
    assert_eq!(
        count_line(&app, &format!("?from={}&to={}", today(), today())).await,
        format!("1–{total} of {total}")
    );
    assert_eq!(
        count_line(&app, &format!("?to={}", days_from_today(-1))).await,
        "No entries"
    );
    assert_eq!(
        count_line(&app, &format!("?from={}", days_from_today(1))).await,
        "No entries"
    );
    // Rows: relative time with the UTC time in the title, actor and type, target, badge,
    // address, and a link to the entry.
    let html = app
        .get_html("/admin/audit?action=client_disconnected")
        .await;
    let disconnected = entries
        .iter()
        .find(|e| e.action == "client_disconnected")
        .unwrap();
    assert_eq!(listed_ids(&html), vec![disconnected.id]);
    assert!(html.contains(&format!(
        r#"title="{}""#,
        disconnected.at.format("%Y-%m-%d %H:%M:%S UTC")
    )));
    assert!(html.contains("just now") || html.contains(" s ago"));
    assert!(html.contains(&admin.email) && html.contains(">user</div>"));
    assert!(html.contains("<code>client_disconnected</code>"));
    assert!(html.contains(&format!(r#"href="/admin/audit?client={client}""#)));
    assert!(html.contains(r#"<span class="badge badge-success">success</span>"#));
    assert!(html.contains("<code>127.0.0.1</code>"));
    assert!(html.contains(&format!(r#"href="/admin/audit/{}""#, disconnected.id)));
    // The form shows the view; the export link keeps it.
    let html = app
        .get_html("/admin/audit?actor=nobody&outcome=failure")
        .await;
    assert!(html.contains(r#"value="nobody""#));
    assert!(html.contains(r#"<option value="failure" selected>"#));
    assert!(html.contains(r#"href="/admin/audit/export.csv?actor=nobody&#38;outcome=failure""#));
    // htmx filter changes get the list only.
    let partial = app
        .client
        .get(app.url("/admin/audit?action=login_failed"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(partial.starts_with(r#"<div id="audit-list" class="audit-list">"#));
    assert!(!partial.contains("<html"));
    assert_eq!(listed_ids(&partial).len(), 3);
}

/// 60 failed sign-ins of one account: two pages, newest first, links that keep the filter.
async fn paging(app: TestApp) {
    app.login_as(Role::Admin).await;
    for _ in 0..60 {
        failed_login(&app, "ghost@example.com", "test-agent").await;
    }
    assert_eq!(count_line(&app, "?actor=ghost").await, "1–50 of 60");
    assert_eq!(count_line(&app, "?actor=ghost&page=2").await, "51–60 of 60");
    assert_eq!(
        count_line(&app, "?actor=ghost&page=3").await,
        "Page 3 is past the end (60 in all)"
    );
    let first = app.get_html("/admin/audit?actor=ghost").await;
    let second = app.get_html("/admin/audit?actor=ghost&page=2").await;
    let (first_ids, second_ids) = (listed_ids(&first), listed_ids(&second));
    assert_eq!((first_ids.len(), second_ids.len()), (50, 10));
    let all: Vec<i64> = first_ids.iter().chain(&second_ids).copied().collect();
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    assert!(first.contains(r#"href="/admin/audit?actor=ghost&#38;page=2""#));
    assert!(!first.contains(r#"rel="prev""#));
    assert!(
        second.contains(r#"href="/admin/audit?actor=ghost""#) && second.contains(r#"rel="prev""#)
    );
    assert!(!second.contains(r#"rel="next""#));
    // Everything: the admin's sign-in too.
    assert_eq!(count_line(&app, "?page=2").await, "51–61 of 61");
}

const MANY_LOGINS: [(&str, &str); 2] = [
    ("LOGIN_MAX_ATTEMPTS_PER_ACCOUNT", "1000"),
    ("LOGIN_MAX_ATTEMPTS_PER_IP", "1000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_fifty_keep_the_filters_on_sqlite() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, &MANY_LOGINS).await;
    paging(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_fifty_keep_the_filters_on_postgres() {
    if !crate::helpers::postgres_available() {
        return;
    }
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, &MANY_LOGINS).await;
    paging(app).await;
}

async fn bad_filters_are_refused_clearly(app: TestApp) {
    app.login_as(Role::Admin).await;
    let long_actor = format!("?actor={}", "x".repeat(101));
    let long_action = format!("?action={}", "a".repeat(65));
    for (query, message) in [
        (
            long_actor.as_str(),
            "the actor filter must be at most 100 characters",
        ),
        (
            "?action=Login",
            "the action filter must be at most 64 of a-z and _",
        ),
        (long_action.as_str(), "the action filter must be at most 64"),
        (
            "?client=a%20b",
            "the client filter must be at most 64 letters, digits or -",
        ),
        ("?client=x'%20OR%201=1", "the client filter must be"),
        ("?outcome=maybe", "outcome must be success or failure"),
        (
            "?from=yesterday",
            "from must be a date like 2026-11-23 (YYYY-MM-DD)",
        ),
        ("?from=2026-1-5", "from must be a date like"),
        ("?to=2026-02-30", "to must be a date like"),
        (
            "?from=2026-11-23&to=2026-11-01",
            "from must not be after to",
        ),
        ("?page=0", "page must be a number from 1 to 100000"),
        ("?page=100001", "page must be a number from 1 to 100000"),
        ("?page=two", "page must be a number from 1 to 100000"),
    ] {
        let response = app.get(&format!("/admin/audit{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let html = unescape(&response.text().await.unwrap());
        assert!(html.contains(message), "{query}: {message}");
        let csv = export(&app, query).await;
        assert_eq!(csv.status(), 400, "export{query}");
    }
    // The limits themselves are fine.
    assert_eq!(app.get("/admin/audit?page=100000").await.status(), 200);
    assert_eq!(
        app.get(&format!("/admin/audit?actor={}", "x".repeat(100)))
            .await
            .status(),
        200
    );
}

async fn members_see_only_entries_about_themselves(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some("GlobexK2")).await;
    let member_browser = app.new_browser();
    let member = member_browser.login_as(Role::Member).await;
    member_browser.connect("klaviyo", Some("AcmeK1")).await;
    let clients = app.clients().await;
    let theirs = clients
        .iter()
        .find(|c| c.owner_user_id == member.id)
        .unwrap()
        .id
        .clone();
    let admins = clients
        .iter()
        .find(|c| c.owner_user_id == admin.id)
        .unwrap()
        .id
        .clone();
    // The admin disconnects the member's client, and something is done to the member.
    app.post_form(
        &format!("/api/integrations/klaviyo/disconnect/{theirs}"),
        &[],
    )
    .await;
    let (admin_id, admin_email, member_id) =
        (admin.id.clone(), admin.email.clone(), member.id.clone());
    app.db(move |conn| {
        audit::append(
            conn,
            Event::new(Actor::user(&admin_id, &admin_email), "user_role_changed")
                .target("user", member_id),
        )
    })
    .await;
    failed_login(&app, "someone-else@example.com", "test-agent").await;

    let entries = all_entries(&app).await;
    let visible: Vec<i64> = entries
        .iter()
        .filter(|e| {
            e.actor_id.as_deref() == Some(member.id.as_str())
                || (e.target_type.as_deref() == Some("client")
                    && e.target_id.as_deref() == Some(theirs.as_str()))
                || (e.target_type.as_deref() == Some("user")
                    && e.target_id.as_deref() == Some(member.id.as_str()))
        })
        .map(|e| e.id)
        .collect();
    let html = member_browser.get_html("/admin/audit").await;
    assert_eq!(listed_ids(&html), visible);
    for action in [
        "login",
        "oauth_completed",
        "client_disconnected",
        "user_role_changed",
    ] {
        assert!(html.contains(&format!("<code>{action}</code>")), "{action}");
    }
    assert!(!html.contains("login_failed") && !html.contains(&admins));
    assert!(!html.contains(r#"id="verify-chain""#), "no verify button");
    // Filters apply inside the scope: the admin's entries are only those about the member.
    let by_admin = member_browser
        .get_html(&format!("/admin/audit?actor={}", admin.email))
        .await;
    let expected: Vec<i64> = entries
        .iter()
        .filter(|e| visible.contains(&e.id) && e.actor_label == admin.email)
        .map(|e| e.id)
        .collect();
    assert_eq!(expected.len(), 2, "disconnect and role change");
    assert_eq!(listed_ids(&by_admin), expected);
    assert_eq!(
        count_line(&member_browser, &format!("?client={admins}")).await,
        "No entries"
    );
    // Entries outside the scope do not exist for the member.
    let hidden = entries.iter().find(|e| !visible.contains(&e.id)).unwrap();
    let own = visible[0];
    assert_eq!(
        member_browser
            .get(&format!("/admin/audit/{}", hidden.id))
            .await
            .status(),
        404
    );
    assert_eq!(
        member_browser
            .get(&format!("/admin/audit/{own}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/admin/audit/{}", hidden.id))
            .await
            .status(),
        200
    );
    // Nor in the export; and verification is for admins.
    let exported = csv(&member_browser, "").await;
    let exported_ids: Vec<i64> = exported
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(exported_ids, visible);
    let verify = member_browser.post_form("/admin/audit/verify", &[]).await;
    assert_eq!(verify.status(), 403);
    // An admin sees everything.
    assert_eq!(
        listed_ids(&app.get_html("/admin/audit").await).len(),
        entries.len()
    );
}

async fn an_entry_shows_every_field(app: TestApp) {
    app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some("AcmeK1")).await;
    failed_login(&app, "who@example.com", "Agent <script>x</script>").await;
    let entries = all_entries(&app).await;
    let completed = entries
        .iter()
        .find(|e| e.action == "oauth_completed")
        .unwrap();
    let response = app.get(&format!("/admin/audit/{}", completed.id)).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let text = unescape(&html);
    let client = completed.target_id.clone().unwrap();
    assert!(text.contains(&format!("<h1>Entry {}</h1>", completed.id)));
    assert!(text.contains(&format!(
        "<code>{}</code>",
        completed.actor_id.clone().unwrap()
    )));
    assert!(text.contains(&completed.actor_label));
    assert!(text.contains(&format!(
        r#"<a href="/admin/clients/{client}"><code>{client}</code></a>"#
    )));
    assert!(text.contains(&completed.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()));
    assert!(text.contains(&format!(r#"id="entry-prev-hash">{}<"#, completed.prev_hash)));
    assert!(text.contains(&format!(r#"id="entry-hash">{}<"#, completed.hash)));
    // Details, pretty-printed.
    let details: serde_json::Value = serde_json::from_str(&completed.details).unwrap();
    let pretty = serde_json::to_string_pretty(&details).unwrap();
    assert!(pretty.contains('\n'));
    assert!(text.contains(&format!(
        r#"<pre class="json" id="entry-details">{pretty}</pre>"#
    )));
    assert!(text.contains(r#""provider": "klaviyo""#));
    // The user agent and address of a failed sign-in; markup in it stays text.
    let failed = entries.iter().find(|e| e.action == "login_failed").unwrap();
    let html = app.get_html(&format!("/admin/audit/{}", failed.id)).await;
    assert!(
        html.contains("Agent &#60;script&#62;x&#60;/script&#62;")
            || html.contains("Agent &lt;script&gt;")
    );
    assert!(!html.contains("<script>x"));
    assert!(html.contains("<code>127.0.0.1</code>"));
    assert!(html.contains(r#"<span class="badge badge-danger">failure</span>"#));
    // Unknown or malformed ids.
    for path in ["999999", "0", "-1", "abc", "1.5", "99999999999999999999"] {
        assert_eq!(
            app.get(&format!("/admin/audit/{path}")).await.status(),
            404,
            "{path}"
        );
    }
}

async fn verify_finds_an_edited_entry(app: TestApp) {
    app.login_as(Role::Admin).await;
    failed_login(&app, "a@example.com", "test-agent").await;
    failed_login(&app, "b@example.com", "test-agent").await;
    let html = app.get_html("/admin/audit").await;
    assert!(html.contains(r#"id="verify-chain""#));
    let response = app.post_form("/admin/audit/verify", &[]).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<span id="verify-message">Intact: 3 entries</span>"#));
    assert_eq!(listed_ids(&html).len(), 3, "the list is still shown");
    // The view the admin was looking at comes back with the result.
    let response = app
        .post_form("/admin/audit/verify", &[("view", "action=login_failed")])
        .await;
    let html = response.text().await.unwrap();
    assert!(html.contains("Intact: 3 entries"));
    assert_eq!(listed_ids(&html).len(), 2);
    // Without the CSRF token nothing runs.
    let forged = app
        .client
        .post(app.url("/admin/audit/verify"))
        .form(&[("view", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Someone edits the second entry in the database.
    let edited = all_entries(&app).await[1].id;
    app.db(move |conn| {
        diesel::update(audit_log::table.find(edited))
            .set(audit_log::actor_label.eq("x"))
            .execute(conn)
    })
    .await;
    let html = app
        .post_form("/admin/audit/verify", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            "Broken at entry {edited}: its content does not match its hash (the entry was edited)"
        )),
        "{html}"
    );
    assert!(html.contains(&format!(
        r#"<a href="/admin/audit/{edited}">Open entry {edited}</a>"#
    )));
}

async fn csv_export_is_escaped_and_defused(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some("AcmeK1")).await;
    failed_login(
        &app,
        "quoted@example.com",
        r#"Mozilla/5.0 (X11, "quoted") test"#,
    )
    .await;
    failed_login(
        &app,
        "=cmd@example.com",
        r#"=HYPERLINK("http://evil.example")"#,
    )
    .await;
    failed_login(&app, "plain@example.com", "test-agent").await;
    // Separators other than the comma: a spreadsheet that splits on them must not see
    // a new cell (here a formula) start.
    failed_login(&app, "semi@example.com", "a;=1+1|=2+2\t=3+3").await;
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

    let before = chrono::Utc::now().format("%Y%m%d").to_string();
    let response = export(&app, "?action=login_failed").await;
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
    let first = &all_entries(&app)
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
    // Another filter, exact count; the whole log.
    let by_admin = csv(&app, &format!("?actor={}&outcome=success", admin.email)).await;
    let expected = all_entries(&app)
        .await
        .iter()
        .filter(|e| e.actor_label == admin.email && e.outcome == "success")
        .count();
    assert_eq!(by_admin.lines().count(), expected + 1);
    let everything = csv(&app, "").await;
    assert_eq!(
        everything.lines().count(),
        all_entries(&app).await.len() + 1
    );
    assert!(everything.contains("token_handed_out"));
    // No secret anywhere: passwords typed, the token handed out, the service key.
    let page = app.get_html("/admin/audit").await;
    for secret in [
        PASSWORD,
        WRONG_PASSWORD,
        access_token.as_str(),
        key.as_str(),
    ] {
        assert!(!everything.contains(secret), "{secret} in the CSV");
        assert!(!page.contains(secret), "{secret} on the page");
    }
    for entry in all_entries(&app).await {
        let html = app.get_html(&format!("/admin/audit/{}", entry.id)).await;
        assert!(!html.contains(&access_token) && !html.contains(PASSWORD));
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

mod in_the_browser {
    use crate::browser::Browser;
    use crate::helpers::{spawn_app, Backend};
    use connecthub::auth::users::Role;

    /// Changing a filter swaps the list in place and puts the view in the URL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn filters_update_the_list_without_a_reload() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let admin = app.create_user(Role::Admin).await;
        app.login_as(Role::Member).await;
        app.connect("klaviyo", Some("AcmeK1")).await;
        for email in ["ghost@example.com", "ghost@example.com", "eve@example.com"] {
            super::failed_login(&app, email, "Mozilla/5.0").await;
        }
        browser.goto(&app.url("/login?next=/admin/audit")).await;
        browser.fill("#email", &admin.email).await;
        browser.fill("#password", &admin.password).await;
        browser.click("button[type=submit]").await;
        browser.wait_for_text("h1", "Audit log").await;
        let total = super::all_entries(&app).await.len();
        browser
            .wait_for_text("#audit-count", &format!("1–{total} of {total}"))
            .await;
        browser
            .client
            .execute("window.sameDocument = true;", vec![])
            .await
            .unwrap();

        browser
            .client
            .execute("const s = document.querySelector('#filter-outcome'); s.value = 'failure'; s.dispatchEvent(new Event('change', {bubbles: true}));", vec![])
            .await
            .unwrap();
        browser.wait_for_text("#audit-count", "1–3 of 3").await;
        assert_eq!(browser.path().await.split('?').next(), Some("/admin/audit"));
        assert!(browser.path().await.contains("outcome=failure"));
        browser.fill("#filter-actor", "ghost").await;
        browser.wait_for_text("#audit-count", "1–2 of 2").await;
        assert!(browser.path().await.contains("actor=ghost"));
        let same = browser
            .client
            .execute("return window.sameDocument === true;", vec![])
            .await
            .unwrap();
        assert_eq!(same, serde_json::json!(true), "without a page reload");

        // Back to everything, for the picture.
        browser
            .client
            .execute("const a = document.querySelector('#filter-actor'); a.value = ''; a.dispatchEvent(new Event('input', {bubbles: true})); const s = document.querySelector('#filter-outcome'); s.value = ''; s.dispatchEvent(new Event('change', {bubbles: true}));", vec![])
            .await
            .unwrap();
        browser
            .wait_for_text("#audit-count", &format!("1–{total} of {total}"))
            .await;
        browser.click("#verify-chain").await;
        browser
            .wait_for_text("#verify-message", &format!("Intact: {total} entries"))
            .await;
        browser.screenshot("audit").await;

        // One entry in full.
        browser
            .click("#audit-table tbody tr:first-child .row-actions a")
            .await;
        browser.wait_for_text("#entry-action", "login").await;
        browser.screenshot("audit-entry").await;
        browser.close().await;
    }
}
