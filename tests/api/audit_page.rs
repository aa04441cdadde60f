//! The audit log page: filters in the URL, pages, bad filters, one entry in full. Member
//! scoping and chain verification are in `audit_access`, the CSV export in `audit_export`.

use crate::helpers::{unescape, TestApp, TestUser};
use crate::on_both_backends;
use connecthub::audit::{self, Entry};
use connecthub::auth::users::Role;

on_both_backends!(
    filters_narrow_the_list,
    bad_filters_are_refused_clearly,
    an_entry_shows_every_field,
    a_dated_view_pages_through_its_days_entries_newest_first,
);

pub(crate) const WRONG_PASSWORD: &str = "not-the-password-42";

/// The "1–50 of 60" line of the list.
pub(crate) async fn count_line(app: &TestApp, query: &str) -> String {
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
pub(crate) fn listed_ids(html: &str) -> Vec<i64> {
    html.split(r#"<tr id="entry-"#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// A failed sign-in from a fresh browser that sends this user agent.
pub(crate) async fn failed_login(app: &TestApp, email: &str, user_agent: &str) {
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

pub(crate) async fn all_entries(app: &TestApp) -> Vec<Entry> {
    app.db(|conn| audit::recent(conn, None, 100_000)).await
}

pub(crate) async fn export(app: &TestApp, query: &str) -> reqwest::Response {
    app.get(&format!("/admin/audit/export.csv{query}")).await
}

pub(crate) async fn csv(app: &TestApp, query: &str) -> String {
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
    single_filters_narrow_the_list(&app, &entries, &admin, &client).await;
    combined_filters_and_dates_narrow_the_list(&app, entries.len(), &client).await;
    rows_show_each_entry(&app, &entries, &admin, &client).await;
    the_form_and_htmx_keep_the_view(&app).await;
}

async fn single_filters_narrow_the_list(
    app: &TestApp,
    entries: &[Entry],
    admin: &TestUser,
    client: &str,
) {
    let total = entries.len();
    assert_eq!(count_line(app, "").await, format!("1–{total} of {total}"));
    assert_eq!(count_line(app, "?action=login_failed").await, "1–3 of 3");
    assert_eq!(count_line(app, "?action=login").await, "1–1 of 1");
    assert_eq!(count_line(app, "?outcome=failure").await, "1–3 of 3");
    let successes = total - 3;
    assert_eq!(
        count_line(app, "?outcome=success").await,
        format!("1–{successes} of {successes}")
    );
    // The actor matches anywhere in the label, whatever the case; wildcards are plain.
    assert_eq!(count_line(app, "?actor=NOBODY%40EXAMPLE").await, "1–3 of 3");
    assert_eq!(count_line(app, "?actor=%25").await, "No entries");
    assert_eq!(count_line(app, "?actor=_").await, "No entries");
    let by_admin = entries
        .iter()
        .filter(|e| e.actor_label == admin.email)
        .count();
    assert_eq!(
        count_line(app, &format!("?actor={}", admin.email)).await,
        format!("1–{by_admin} of {by_admin}")
    );
    let about_client = entries
        .iter()
        .filter(|e| e.target_id.as_deref() == Some(client))
        .count();
    assert!(about_client >= 2, "connected and disconnected");
    assert_eq!(
        count_line(app, &format!("?client={client}")).await,
        format!("1–{about_client} of {about_client}")
    );
}

async fn combined_filters_and_dates_narrow_the_list(app: &TestApp, total: usize, client: &str) {
    // Combined filters.
    assert_eq!(
        count_line(app, &format!("?client={client}&action=client_disconnected")).await,
        "1–1 of 1"
    );
    assert_eq!(
        count_line(app, "?action=login_failed&outcome=success").await,
        "No entries"
    );
    assert_eq!(
        count_line(
            app,
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
        count_line(app, &format!("?from={}&to={}", today(), today())).await,
        format!("1–{total} of {total}")
    );
    assert_eq!(
        count_line(app, &format!("?to={}", days_from_today(-1))).await,
        "No entries"
    );
    assert_eq!(
        count_line(app, &format!("?from={}", days_from_today(1))).await,
        "No entries"
    );
}

async fn rows_show_each_entry(app: &TestApp, entries: &[Entry], admin: &TestUser, client: &str) {
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
}

async fn the_form_and_htmx_keep_the_view(app: &TestApp) {
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
    // Next carries the last entry's id (a keyset page) and reads the same entries.
    let next = format!("/admin/audit?actor=ghost&before={}&page=2", first_ids[49]);
    assert!(first.contains(&format!(r#"href="{}""#, next.replace('&', "&#38;"))));
    assert_eq!(listed_ids(&app.get_html(&next).await), second_ids);
    assert_eq!(
        count_line(&app, &next["/admin/audit".len()..]).await,
        "51–60 of 60"
    );
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

/// The href of the list's Next link, entities undone.
fn next_link(html: &str) -> Option<String> {
    let before = html.split(r#"rel="next">Next"#).next()?;
    if before.len() == html.len() {
        return None;
    }
    let href = before.rsplit(r#"href=""#).next()?.split('"').next()?;
    Some(unescape(href).replace("&#38;", "&"))
}

/// A dated view reads the time index in its order (newest first by time, then id): its
/// Next links visit every entry of the day once, in that order, and the export of the
/// same view holds the same entries.
async fn a_dated_view_pages_through_its_days_entries_newest_first(app: TestApp) {
    app.login_as(Role::Admin).await;
    app.db(|conn| Ok(connecthub::seed::audit(conn, 900, 3).unwrap()))
        .await;
    let day = days_from_today(-1);
    let from = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let until = from + chrono::TimeDelta::days(1);
    let expected: Vec<(i64, chrono::NaiveDateTime)> = app
        .db(move |conn| {
            use connecthub::db::schema::audit_log;
            use diesel::prelude::*;
            audit_log::table
                .filter(audit_log::at.ge(from).and(audit_log::at.lt(until)))
                .order((audit_log::at.desc(), audit_log::id.desc()))
                .select((audit_log::id, audit_log::at))
                .load(conn)
        })
        .await;
    assert!(
        expected.len() > 100,
        "the seed spreads entries over the day: {}",
        expected.len()
    );
    let mut seen = Vec::new();
    let mut path = format!("/admin/audit?from={day}&to={day}");
    let mut pages = 0;
    loop {
        let html = app.get_html(&path).await;
        seen.extend(listed_ids(&html));
        pages += 1;
        match next_link(&html) {
            Some(next) => path = next,
            None => break,
        }
        assert!(pages < 50, "Next links go on: {path}");
    }
    let wanted: Vec<i64> = expected.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        seen, wanted,
        "every entry of the day once, newest first by time"
    );
    let csv = app
        .get(&format!("/admin/audit/export.csv?from={day}&to={day}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv.lines().count(),
        wanted.len() + 1,
        "a header and one line per entry"
    );
}

/// Every pooled PostgreSQL connection runs without JIT: the bounded reads of the audit and
/// clients pages are costed as whole-table reads, and compiling them took longer than
/// running them. Two connections held at once, so each is a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_run_without_jit() {
    if !crate::helpers::postgres_available() {
        return;
    }
    let db = crate::helpers::BareDatabase::create(crate::helpers::Backend::Postgres);
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        jit: String,
    }
    let (mut first, mut second) = (db.conn(), db.conn());
    for conn in [&mut first, &mut second] {
        let shown: Setting =
            diesel::RunQueryDsl::get_result(diesel::sql_query("SHOW jit"), &mut **conn).unwrap();
        assert_eq!(shown.jit, "off");
    }
}

/// On PostgreSQL the actor filter walks the newest ids until its page is full: statistics
/// on `lower(actor_label)` tell the planner how common an actor is (without them it
/// guessed two matches in 20,000 entries, read them all and sorted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_plans_the_actor_filter_as_a_walk_of_the_newest_ids() {
    if !crate::helpers::postgres_available() {
        return;
    }
    let db = crate::helpers::BareDatabase::create(crate::helpers::Backend::Postgres);
    let conn = &mut db.conn();
    connecthub::seed::seed(conn, 200).unwrap();
    connecthub::seed::audit(conn, 20_000, 30).unwrap();
    connecthub::db::analyze(conn).unwrap();
    // The page's read, as `audit::search` writes it for `?actor=seed-owner-3@`.
    let sql = "SELECT id FROM audit_log WHERE lower(actor_label) LIKE $1 ESCAPE '\\' \
               ORDER BY id DESC LIMIT 51";
    let pattern = connecthub::db::contains_pattern("seed-owner-3@");
    let plan =
        connecthub::db::plan::explain(conn, sql, &[connecthub::db::plan::Param::Text(pattern)])
            .unwrap();
    assert!(
        plan.contains("Index Scan Backward using audit_log_pkey"),
        "{plan}"
    );
}
