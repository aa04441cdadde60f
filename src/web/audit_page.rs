//! The audit log pages: the filtered list (members see only entries about themselves),
//! one entry in full, chain verification (admins) and the CSV export of any view.

use super::audit_view_state::{AuditQuery, PAGE_SIZE};
use super::csv_export::{csv_rows, defused};
use super::layout::Layout;
use crate::audit::{self, Entry, Start, Verdict};
use crate::auth::users::User;
use crate::db::DbPool;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::current_user::{AdminUser, CurrentUser};
use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use tokio::sync::mpsc::Sender;

const CSV_HEADER: [&str; 12] = [
    "id",
    "at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "ip",
    "user_agent",
    "details",
];
/// Entries read per query while exporting.
const EXPORT_PAGE: i64 = 1000;
const EXPORT_MAX_ROWS: i64 = 100_000;

/// What an entry is about, as a row shows it.
struct Target {
    kind: String,
    id: String,
    /// The first characters of a long id; the whole one sits in the title.
    short: String,
    /// For clients: the query string of the list narrowed to that client.
    filter: Option<String>,
}

struct Row {
    id: i64,
    when: String,
    at: String,
    at_iso: String,
    actor_label: String,
    actor_type: String,
    action: String,
    target: Option<Target>,
    success: bool,
    ip: String,
}

/// The list part of the page: re-rendered alone when htmx changes the filters.
#[derive(Template)]
#[template(path = "_audit_list.html")]
struct AuditList {
    rows: Vec<Row>,
    filtered: bool,
    /// Exact up to `clients::COUNT_BOUND` (1,000), else "1,000+".
    total: String,
    first: i64,
    last: i64,
    page: i64,
    previous_href: Option<String>,
    next_href: Option<String>,
    export_href: String,
}

/// What "Verify chain" found.
struct VerifyResult {
    message: String,
    broken_at: Option<i64>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    query: AuditQuery,
    actions: Vec<String>,
    list: AuditList,
    verified: Option<VerifyResult>,
    /// Query string of this view, so the verify form comes back to it.
    view: String,
}

#[derive(Template)]
#[template(path = "audit_entry.html")]
struct EntryPage {
    layout: Layout,
    entry: Entry,
    when: String,
    at: String,
    at_iso: String,
    details: String,
    client_href: Option<String>,
}

/// Members read within their own scope; admins (None) read everything.
fn member_id(user: &User) -> Option<String> {
    (!user.is_admin()).then(|| user.id.clone())
}

fn absolute(at: chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn iso(at: chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn list_href(view: &str) -> String {
    match view {
        "" => "/admin/audit".into(),
        view => format!("/admin/audit?{view}"),
    }
}

fn target(entry: &Entry) -> Option<Target> {
    let (kind, id) = (entry.target_type.clone()?, entry.target_id.clone()?);
    let filter = (kind == "client").then(|| format!("client={}", super::urlencode(&id)));
    Some(Target {
        short: id.chars().take(8).collect(),
        kind,
        id,
        filter,
    })
}

fn row(entry: Entry, now: chrono::NaiveDateTime) -> Row {
    Row {
        id: entry.id,
        when: super::moment::relative(Some(entry.at), now),
        at: absolute(entry.at),
        at_iso: iso(entry.at),
        target: target(&entry),
        success: entry.outcome == "success",
        actor_label: entry.actor_label,
        actor_type: entry.actor_type,
        action: entry.action,
        ip: entry.ip.unwrap_or_default(),
    }
}

/// Loads one page of the view for this user. Next and Previous links carry the last and
/// first entry's id (keyset); the count stops at 1,000 ("1,000+").
async fn load_list(
    state: &AppState,
    user: &User,
    query: &AuditQuery,
) -> Result<AuditList, AppError> {
    let (member, filter, start) = (member_id(user), query.filter(), query.start);
    let (entries, more, total) = crate::db::run(&state.pool, move |conn| {
        let scope = audit::scope_for(conn, member.as_deref())?;
        audit::search(conn, &scope, &filter, start, PAGE_SIZE)
    })
    .await?;
    let now = crate::db::now();
    let shown = entries.len() as i64;
    let offset = (query.page - 1) * PAGE_SIZE;
    let backwards = matches!(start, Start::After(_));
    let has_previous = query.page > 1 && (!backwards || more);
    let has_next = if backwards { shown > 0 } else { more };
    let (first_id, last_id) = (entries.first().map(|e| e.id), entries.last().map(|e| e.id));
    let previous_href = has_previous.then(|| match first_id {
        Some(id) if query.page > 2 => query.link(query.page - 1, Start::After(id)),
        _ => query.with_page(query.page - 1),
    });
    let next_href = has_next.then(|| match last_id {
        Some(id) => query.link(query.page + 1, Start::Before(id)),
        None => query.with_page(query.page + 1),
    });
    Ok(AuditList {
        rows: entries.into_iter().map(|e| row(e, now)).collect(),
        filtered: query.is_filtered(),
        total: total.to_string(),
        first: if shown == 0 { 0 } else { offset + 1 },
        last: offset + shown,
        page: query.page,
        previous_href: previous_href.map(|view| list_href(&view)),
        next_href: next_href.map(|view| list_href(&view)),
        export_href: match query.with_page(1) {
            view if view.is_empty() => "/admin/audit/export.csv".into(),
            view => format!("/admin/audit/export.csv?{view}"),
        },
    })
}

/// The whole page around a loaded list.
async fn full_page(
    state: &AppState,
    session: &Session,
    user: &User,
    query: AuditQuery,
    list: AuditList,
    verified: Option<VerifyResult>,
) -> Result<HttpResponse, AppError> {
    let member = member_id(user);
    let mut actions = crate::db::run(&state.pool, move |conn| {
        let scope = audit::scope_for(conn, member.as_deref())?;
        audit::actions(conn, &scope)
    })
    .await?;
    // A bookmarked action that was never recorded still shows as chosen.
    if !query.action.is_empty() && !actions.contains(&query.action) {
        actions.push(query.action.clone());
    }
    let page = AuditPage {
        layout: Layout::new(session, Some(user), "audit"),
        view: query.with_page(query.page),
        query,
        actions,
        list,
        verified,
    };
    super::render(page, StatusCode::OK)
}

/// `GET /admin/audit?actor=&action=&client=&outcome=&from=&to=&page=`
pub async fn index(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let query = AuditQuery::parse(req.query_string())?;
    let list = load_list(&state, &user, &query).await?;
    if super::wants_fragment(&req) {
        return super::render(list, StatusCode::OK);
    }
    full_page(&state, &session, &user, query, list, None).await
}

#[derive(Default, serde::Deserialize)]
struct VerifyForm {
    view: Option<String>,
}

fn verify_result(verdict: Verdict) -> VerifyResult {
    match verdict {
        Verdict::Intact { entries } => VerifyResult {
            message: format!("Intact: {entries} entries"),
            broken_at: None,
        },
        Verdict::Broken { entry_id, reason } => VerifyResult {
            message: format!("Broken at entry {entry_id}: {reason}"),
            broken_at: Some(entry_id),
        },
        // The page verifies without a published head, so this is not reached from it.
        Verdict::ShorterThanHead { entries, head } => VerifyResult {
            message: format!("Cut off: {entries} entries, the published head had {head}"),
            broken_at: None,
        },
    }
}

/// `POST /admin/audit/verify` (admins): walks the whole chain and shows what it found on
/// the page, above the view the admin was looking at.
pub async fn verify(
    session: Session,
    state: web::Data<AppState>,
    body: web::Bytes,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, AppError> {
    let form: VerifyForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    // Only a view the list itself could produce is shown again.
    let query = AuditQuery::parse(form.view.as_deref().unwrap_or_default())
        .or_else(|_| AuditQuery::parse(""))?;
    let verdict = crate::db::run(&state.pool, audit::verify).await?;
    let list = load_list(&state, &admin, &query).await?;
    let verified = Some(verify_result(verdict));
    full_page(&state, &session, &admin, query, list, verified).await
}

/// `GET /admin/audit/{id}`: every stored field of one entry; 404 for entries the reader
/// may not see, so their existence is not revealed either.
pub async fn show(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let id = path
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(AppError::NotFound)?;
    let member = member_id(&user);
    let entry = crate::db::run(&state.pool, move |conn| {
        let scope = audit::scope_for(conn, member.as_deref())?;
        audit::find_visible(conn, &scope, id)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let page = EntryPage {
        layout: Layout::new(&session, Some(&user), "audit"),
        when: super::moment::relative(Some(entry.at), crate::db::now()),
        at: absolute(entry.at),
        at_iso: iso(entry.at),
        details: pretty_json(&entry.details),
        client_href: target(&entry)
            .filter(|t| t.kind == "client")
            .map(|t| format!("/admin/clients/{}", t.id)),
        entry,
    };
    super::render(page, StatusCode::OK)
}

/// Stored details are compact JSON; anything else is shown as it is.
fn pretty_json(details: &str) -> String {
    serde_json::from_str::<serde_json::Value>(details)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| details.to_string())
}

type Chunk = Result<web::Bytes, AppError>;

/// `GET /admin/audit/export.csv?<filters>`: the view as CSV, streamed page by page from a
/// blocking task, so a large export never sits in memory.
pub async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let query = AuditQuery::parse(req.query_string())?;
    let (pool, member, filter) = (state.pool.clone(), member_id(&user), query.filter());
    // A few chunks in flight: the reader waits for a slow download instead of buffering.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Chunk>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write_csv(&pool, member.as_deref(), &filter, &sender) {
            tracing::error!(error = ?e, "audit export failed");
            let _ = sender.blocking_send(Err(e));
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let filename = format!(
        "connecthub-audit-{}.csv",
        chrono::Utc::now().format("%Y%m%d")
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body))
}

/// Sends the header, then the matching entries newest first, at most `EXPORT_MAX_ROWS`.
/// A connection is taken per page and given back before the page is sent; a cancelled
/// download (closed channel) ends the work.
fn write_csv(
    pool: &DbPool,
    member: Option<&str>,
    filter: &audit::Filter,
    out: &Sender<Chunk>,
) -> Result<(), AppError> {
    let send = |text: Vec<u8>| out.blocking_send(Ok(web::Bytes::from(text))).is_ok();
    if !send(csv_rows(std::iter::once(CSV_HEADER.map(str::to_string)))?) {
        return Ok(());
    }
    let scope = audit::scope_for(&mut *crate::db::checkout(pool)?, member)?;
    let (mut before, mut written) = (None, 0);
    while written < EXPORT_MAX_ROWS {
        let want = EXPORT_PAGE.min(EXPORT_MAX_ROWS - written);
        let page = audit::page_before(
            &mut *crate::db::checkout(pool)?,
            &scope,
            filter,
            before,
            want,
        )?;
        let complete = (page.len() as i64) < want;
        written += page.len() as i64;
        before = page.last().map(|e| e.id).or(before);
        let cancelled = !page.is_empty() && !send(csv_rows(page.iter().map(csv_record))?);
        if cancelled || complete {
            return Ok(());
        }
    }
    // Exactly at the limit: say so only when more entries match.
    if !audit::page_before(&mut *crate::db::checkout(pool)?, &scope, filter, before, 1)?.is_empty()
    {
        send(format!("# truncated at {EXPORT_MAX_ROWS} rows\r\n").into_bytes());
    }
    Ok(())
}

/// One entry's fields, formulas defused.
fn csv_record(entry: &Entry) -> [String; 12] {
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    [
        entry.id.to_string(),
        entry
            .at
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        entry.actor_type.clone(),
        optional(&entry.actor_id),
        entry.actor_label.clone(),
        entry.action.clone(),
        optional(&entry.target_type),
        optional(&entry.target_id),
        entry.outcome.clone(),
        optional(&entry.ip),
        optional(&entry.user_agent),
        entry.details.clone(),
    ]
    .map(|field| defused(&field))
}
