//! Bad input over every route of the route table (`startup::route_table`, read from the
//! registration itself, so a new route is covered without touching this file): NUL and
//! control characters, invalid UTF-8, over-long values and wrong types in every path
//! parameter, the same in the query and the body, missing fields, huge bodies and odd
//! methods; signed in as an admin with a valid CSRF token and a service key of every
//! scope. Never a 5xx; a refusal is a 4xx with a message and changes no row of any table.
//! Where the bad value sits in a path parameter, or in the body of a route that reads one,
//! it must be refused; elsewhere (a query parameter a route does not read, the body of a
//! route that reads none) the route may ignore it and do its job. The counts per category
//! are printed (`--nocapture`).

use crate::helpers::TestApp;
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::route_table::RouteEntry;
use diesel::prelude::*;
use reqwest::Method;
use std::collections::BTreeMap;

on_both_backends!(every_route_refuses_bad_input_with_a_4xx_and_changes_nothing);

const KUSTOMER_KEY: &str = connecthub_sandbox::KUSTOMER_API_KEYS[0].1;

/// Bad values as they go into a URL (already percent-encoded), by category.
fn url_values() -> Vec<(&'static str, String)> {
    vec![
        ("nul", "a%00b".into()),
        ("control characters", "a%01%1B%7F%0D%0Ab".into()),
        ("invalid utf-8", "%FF%FE%C3%28".into()),
        ("over-long", "a".repeat(5000)),
        ("wrong type", "-1.5e308".into()),
        ("wrong type", "%5B%5D%7B%7D".into()),
        ("path escape", "..%2F..%2FCargo.toml".into()),
    ]
}

/// Field names that some route reads: a bad value under each reaches whichever it reads.
const FIELDS: [&str; 24] = [
    "email",
    "password",
    "display_name",
    "name",
    "role",
    "tags",
    "tag",
    "action",
    "client_id",
    "user_id",
    "url",
    "description",
    "events",
    "api_key",
    "scopes",
    "label",
    "end_user_id",
    "redirect_path",
    "days",
    "owner",
    "provider",
    "status",
    "q",
    "page",
];

/// Raw bad values as a form or JSON field carries them.
fn raw_values() -> Vec<(&'static str, String)> {
    vec![
        ("nul", "a\0b".into()),
        ("control characters", "a\u{1}\u{1b}[31m\u{7f}\r\nb".into()),
        ("over-long", "a".repeat(2500)),
        ("wrong type", "-1.5e308".into()),
    ]
}

/// One request of the suite.
struct Probe {
    category: &'static str,
    method: Method,
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
    /// The bad value sits where the route must read it: only a 4xx will do.
    must_refuse: bool,
    /// For a body: the route it is sent to. A route that refuses an empty body reads its
    /// body, so every bad body sent to it must be refused too.
    route: Option<String>,
}

fn is_json_route(path: &str) -> bool {
    path.starts_with("/api/v1") || path.starts_with("/webhooks/")
}

/// The template with every parameter filled: `bad` in each, or a value that names
/// something real (so the request gets as far as the route goes).
fn fill(template: &str, bad: Option<&str>, ids: &Ids) -> String {
    let mut path = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        path.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("closed parameter");
        let name = rest[start + 1..end].split(':').next().unwrap();
        let value = match bad {
            Some(bad) => bad.to_string(),
            None => ids.value(&path, name).to_string(),
        };
        path.push_str(&value);
        rest = &rest[end + 1..];
    }
    path.push_str(rest);
    path
}

/// What a good parameter value is: the connected Kustomer client where a client is meant,
/// a well-formed unknown id elsewhere.
struct Ids {
    client: String,
    unknown: String,
}

impl Ids {
    fn value(&self, before: &str, name: &str) -> &str {
        match name {
            "provider" => "kustomer",
            "client_id" => &self.client,
            "id" if before.ends_with("/clients/") => &self.client,
            "file" => "app.css",
            "tail" => "v1/teams",
            "conversation_id" => "5f3a1f6c8b2d4a0017c6e131",
            _ => &self.unknown,
        }
    }
}

fn form_body(value: &str) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = FIELDS.iter().map(|f| (*f, value)).collect();
    serde_urlencoded::to_string(pairs).unwrap().into_bytes()
}

fn json_body(value: serde_json::Value) -> Vec<u8> {
    let object: serde_json::Map<String, serde_json::Value> = FIELDS
        .iter()
        .map(|f| (f.to_string(), value.clone()))
        .collect();
    serde_json::to_vec(&object).unwrap()
}

/// Bodies for a route that takes one: (category, content type, bytes).
fn bodies(json: bool) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let (form, js) = ("application/x-www-form-urlencoded", "application/json");
    let mut out = Vec::new();
    if json {
        out.push(("missing fields", js, b"{}".to_vec()));
        for (category, value) in raw_values() {
            out.push((category, js, json_body(serde_json::Value::String(value))));
        }
        out.push((
            "wrong type",
            js,
            json_body(serde_json::json!([1, {"a": null}])),
        ));
        out.push(("wrong type", js, b"[\"not an object\"]".to_vec()));
        out.push(("invalid utf-8", js, b"{\"name\": \"\xff\xfe\"}".to_vec()));
        out.push(("malformed", js, b"{\"name\": ".to_vec()));
        out.push(("huge body", js, huge(b"{\"name\": \"", b"\"}")));
    } else {
        out.push(("missing fields", form, Vec::new()));
        for (category, value) in raw_values() {
            out.push((category, form, form_body(&value)));
        }
        out.push((
            "invalid utf-8",
            form,
            b"email=\xff\xfe&name=%FF%C3%28".to_vec(),
        ));
        out.push((
            "wrong type",
            form,
            b"days=abc&page=-1&role=root&tags[]=x".to_vec(),
        ));
        out.push(("huge body", form, huge(b"name=", b"")));
    }
    out
}

/// A 2 MB body: far past every body limit.
fn huge(head: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut body = head.to_vec();
    body.resize(head.len() + 2 * 1024 * 1024, b'x');
    body.extend_from_slice(tail);
    body
}

const ODD_METHODS: [&str; 4] = ["TRACE", "PROPFIND", "CONNECTX", "OPTIONS"];
const PLAIN_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Every probe for one path template and the methods registered on it.
fn probes(template: &str, methods: &[Option<Method>], ids: &Ids) -> Vec<Probe> {
    let mut out = Vec::new();
    let any_method = methods.iter().any(Option::is_none);
    let has_params = template.contains('{');
    for method in methods.iter().flatten() {
        let good = fill(template, None, ids);
        if has_params {
            for (category, bad) in url_values() {
                out.push(probe(
                    category,
                    method,
                    fill(template, Some(bad.as_str()), ids),
                    true,
                ));
            }
        }
        for (category, bad) in url_values() {
            // One over-long value, not 24: the URL stays under what clients send at all.
            let fields = if category == "over-long" {
                &FIELDS[..1]
            } else {
                &FIELDS[..]
            };
            let query: Vec<String> = fields.iter().map(|f| format!("{f}={bad}")).collect();
            let path = format!("{good}?{}", query.join("&"));
            out.push(probe(category, method, path, false));
        }
        if *method != Method::GET {
            for (category, content_type, body) in bodies(is_json_route(template)) {
                let mut p = probe(category, method, good.clone(), false);
                p.body = Some((content_type, body));
                p.route = Some(format!("{method} {template}"));
                out.push(p);
            }
        }
    }
    let unregistered = PLAIN_METHODS
        .iter()
        .filter(|m| !methods.contains(&Some((*m).clone())))
        .cloned()
        .chain(
            ODD_METHODS
                .iter()
                .map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
        );
    for method in unregistered {
        out.push(probe(
            "odd method",
            &method,
            fill(template, None, ids),
            !any_method,
        ));
    }
    out
}

fn probe(category: &'static str, method: &Method, path: String, must_refuse: bool) -> Probe {
    Probe {
        category,
        method: method.clone(),
        path,
        body: None,
        must_refuse,
        route: None,
    }
}

/// The routes grouped by path template, in registration order.
fn by_template(routes: Vec<RouteEntry>) -> Vec<(String, Vec<Option<Method>>)> {
    let mut grouped: Vec<(String, Vec<Option<Method>>)> = Vec::new();
    for route in routes {
        let method = route
            .method
            .map(|m| Method::from_bytes(m.as_str().as_bytes()).unwrap());
        match grouped.iter_mut().find(|(path, _)| *path == route.path) {
            Some((_, methods)) => methods.push(method),
            None => grouped.push((route.path, vec![method])),
        }
    }
    grouped
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct TableCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n_rows: i64,
}

/// The row count of every table of the schema, in one query.
async fn counts(app: &TestApp, tables: &str) -> Vec<TableCount> {
    let sql = tables.to_string();
    app.db(move |conn| diesel::sql_query(sql).load::<TableCount>(conn))
        .await
}

async fn count_query(app: &TestApp) -> String {
    let list = match app.backend {
        crate::helpers::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        crate::helpers::Backend::Postgres => {
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        }
    };
    let names = app
        .db(move |conn| diesel::sql_query(list).load::<TableName>(conn))
        .await;
    assert!(
        names.len() > 10,
        "the schema has its tables: {}",
        names.len()
    );
    names
        .iter()
        .map(|t| {
            format!(
                "SELECT '{0}' AS name, CAST(COUNT(*) AS BIGINT) AS n_rows FROM \"{0}\"",
                t.name
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// What a refusal must carry: a message a person can read (JSON with an `error` where
/// the service API answers; the proxy passes on the provider's own answer).
fn has_message(path: &str, body: &str) -> bool {
    if path.starts_with("/api/v1/proxy/") {
        !body.trim().is_empty()
    } else if is_json_route(path) {
        serde_json::from_str::<serde_json::Value>(body)
            .map(|v| v["error"].as_str().is_some_and(|e| !e.is_empty()) || v["message"].is_string())
            .unwrap_or(false)
    } else {
        body.trim().len() > 10
    }
}

/// Tried / refused (4xx) / accepted (2xx, 3xx) / 5xx, per category.
type Tally = BTreeMap<&'static str, [u32; 4]>;

struct Session {
    key: String,
    csrf: String,
    kustomer_client: String,
}

impl Session {
    async fn send(&self, app: &TestApp, probe: &Probe) -> Result<(u16, String), String> {
        let url = app.url(&probe.path);
        let mut request = app
            .client
            .request(probe.method.clone(), url)
            .bearer_auth(&self.key)
            .header("x-csrf-token", &self.csrf)
            .header("origin", &app.address);
        if let Some((content_type, body)) = &probe.body {
            request = request
                .header("content-type", *content_type)
                .body(body.clone());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                Ok((status, response.text().await.unwrap_or_default()))
            }
            // A huge body may be refused before it is all sent: the connection closes.
            Err(e) if probe.category == "huge body" => Ok((413, format!("closed: {e}"))),
            Err(e) => Err(format!("no answer: {e}")),
        }
    }

    /// After a request that did something: signed in again (it may have been /logout)
    /// and the Kustomer client connected again (it may have been a disconnect).
    async fn restore(&mut self, app: &TestApp, admin: &crate::helpers::TestUser) {
        if app.get("/account").await.status() != 200 {
            app.login(&admin.email, &admin.password).await;
            self.csrf = app.csrf_token().await;
        }
        let active = app
            .clients()
            .await
            .iter()
            .any(|c| c.id == self.kustomer_client && c.status.to_string() == "active");
        if !active {
            connect_kustomer(app).await;
        }
    }
}

async fn connect_kustomer(app: &TestApp) -> String {
    let answer = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", KUSTOMER_KEY)],
        )
        .await;
    assert!(answer.status().is_success() || answer.status().is_redirection());
    app.clients()
        .await
        .into_iter()
        .find(|c| c.provider == "kustomer")
        .expect("the Kustomer client")
        .id
}

async fn every_route_refuses_bad_input_with_a_4xx_and_changes_nothing(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let kustomer_client = connect_kustomer(&app).await;
    let mut session = Session {
        key: app.api_key(&Scope::ALL).await,
        csrf: app.csrf_token().await,
        kustomer_client: kustomer_client.clone(),
    };
    let ids = Ids {
        client: kustomer_client,
        unknown: uuid::Uuid::new_v4().to_string(),
    };
    let routes = by_template(connecthub::startup::route_table());
    assert!(
        routes.len() > 60,
        "the table lists the routes: {}",
        routes.len()
    );
    let count_sql = count_query(&app).await;
    let (mut tally, mut failures, mut audited) = (Tally::new(), Vec::new(), 0);
    let mut reading_body = std::collections::HashSet::new();
    for (template, methods) in &routes {
        for mut probe in probes(template, methods, &ids) {
            // In a form every field is text: "wrong type" there is only a value the route
            // may take or turn down in its own words (a toast), so it is not held to a 4xx.
            let typed = is_json_route(template) || probe.category != "wrong type";
            probe.must_refuse |= typed
                && probe
                    .route
                    .as_ref()
                    .is_some_and(|r| reading_body.contains(r));
            let before = counts(&app, &count_sql).await;
            let answer = session.send(&app, &probe).await;
            let entry = tally.entry(probe.category).or_default();
            entry[0] += 1;
            let what = format!(
                "{} {} ({})",
                probe.method,
                short(&probe.path),
                probe.category
            );
            let (status, body) = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    failures.push(format!("{what}: {}", short(&e)));
                    continue;
                }
            };
            if probe.category == "missing fields" && (400..500).contains(&status) {
                reading_body.extend(probe.route.clone());
            }
            match status {
                400..=499 => {
                    entry[1] += 1;
                    if !has_message(&probe.path, &body) {
                        failures.push(format!("{what}: {status} without a message: {body:?}"));
                    }
                    let after = counts(&app, &count_sql).await;
                    if data_changed(&before, &after, &probe.path)
                        && changed_again(&app, &session, &probe, &count_sql).await
                    {
                        failures.push(format!("{what}: {status} but rows changed"));
                    } else if after != before {
                        audited += 1;
                    }
                }
                500.. => {
                    entry[3] += 1;
                    failures.push(format!("{what}: {status} {}", short(&body)));
                }
                _ => {
                    entry[2] += 1;
                    if probe.must_refuse {
                        failures.push(format!("{what}: {status}, not refused"));
                    } else if probe.body.is_some() || probe.category == "odd method" {
                        println!("  accepted (reads no body): {what} → {status}");
                    }
                    session.restore(&app, &admin).await;
                }
            }
        }
    }
    print_tally(&tally, routes.len());
    println!(
        "  refusals that wrote their audit entry (refused sign-ins, failed connects): {audited}"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A refused request seemed to change rows: perhaps what an earlier request buffered (usage,
/// audit) was written meanwhile. Once the buffers are written (once a second), the same
/// request again must change nothing.
async fn changed_again(app: &TestApp, session: &Session, probe: &Probe, sql: &str) -> bool {
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let before = counts(app, sql).await;
    let _ = session.send(app, probe).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let after = counts(app, sql).await;
    if data_changed(&before, &after, &probe.path) {
        let diff: Vec<String> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b.n_rows != a.n_rows)
            .map(|(b, a)| format!("{} {}→{}", b.name, b.n_rows, a.n_rows))
            .collect();
        eprintln!(
            "rows changed by {} {}: {diff:?}",
            probe.method,
            short(&probe.path)
        );
    }
    data_changed(&before, &after, &probe.path)
}

/// Whether a table other than the audit log changed, or the audit log by more than one
/// entry: a refusal may be audited (a refused sign-in, a failed connect), nothing more.
/// Through the proxy, a 4xx may be the provider's own answer to a call that was made (an
/// odd method forwarded as it came): that call is metered, so `api_usage_rollup` may grow.
fn data_changed(before: &[TableCount], after: &[TableCount], path: &str) -> bool {
    let proxied = path.starts_with("/api/v1/proxy/");
    before.len() != after.len()
        || before.iter().zip(after).any(|(b, a)| {
            let grown = a.n_rows - b.n_rows;
            let allowed = (b.name == "audit_log" && grown == 1)
                || (proxied && b.name == "api_usage_rollup" && grown > 0);
            b.name != a.name || (grown != 0 && !allowed)
        })
}

fn short(text: &str) -> String {
    let text: String = text.chars().take(120).collect();
    text.replace('\0', "\\0")
}

fn print_tally(tally: &Tally, routes: usize) {
    println!("bad-input suite over {routes} route paths: category, tried, refused (4xx), accepted (input not read), 5xx");
    let mut total = [0u32; 4];
    for (category, [tried, refused, accepted, errors]) in tally {
        println!("  {category:<20} {tried:>5} {refused:>5} {accepted:>5} {errors:>3}");
        for (sum, n) in total.iter_mut().zip([tried, refused, accepted, errors]) {
            *sum += n;
        }
    }
    let [tried, refused, accepted, errors] = total;
    println!(
        "  {:<20} {tried:>5} {refused:>5} {accepted:>5} {errors:>3}",
        "total"
    );
}
