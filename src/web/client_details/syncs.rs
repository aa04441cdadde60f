//! The client page's syncs card: each model's last run, next run, duration, counts and
//! error, a "Sync now" button per model, and the latest records. With htmx, "Sync now"
//! answers the card itself, which then reloads every second while a run waits or runs.

use super::{client_for, page_path};
use crate::error::AppError;
use crate::input::RecordId;
use crate::state::AppState;
use crate::syncs::admin::ModelSync;
use crate::syncs::records::Record;
use crate::web::answer::CardAnswer;
use crate::web::current_user::CurrentUser;
use crate::web::layout::Flash;
use crate::web::moment::{moment, Moment};
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

/// How many of the latest records the card lists.
const LATEST: i64 = 10;

/// One model's row.
pub struct SyncRow {
    pub model: String,
    /// `queued` while a run waits to start, else the sync's status.
    pub status: String,
    pub outcome: String,
    pub last_run: Moment,
    pub next_run: Moment,
    pub duration: String,
    pub added: i32,
    pub updated: i32,
    pub deleted: i32,
    pub error: Option<String>,
}

impl SyncRow {
    fn new(sync: ModelSync, now: chrono::NaiveDateTime) -> Self {
        Self {
            duration: sync
                .last_duration_ms
                .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "—".into()),
            outcome: sync.last_outcome.unwrap_or_else(|| "—".into()),
            last_run: moment(sync.last_started_at, now),
            next_run: moment(sync.next_run_at, now),
            model: sync.model,
            status: if sync.queued && sync.status != "running" {
                "queued".into()
            } else {
                sync.status
            },
            added: sync.added,
            updated: sync.updated,
            deleted: sync.deleted,
            error: sync.last_error,
        }
    }
}

/// One of the latest records.
pub struct RecordRow {
    pub model: String,
    pub external_id: String,
    pub modified: Moment,
    pub deleted: bool,
}

/// The card: its rows, the latest records, and what its forms need.
pub struct SyncsCard {
    pub client_id: String,
    pub connected: bool,
    pub csrf_token: String,
    pub rows: Vec<SyncRow>,
    pub records: Vec<RecordRow>,
    /// A run waits or runs: the card reloads itself until none does.
    pub polling: bool,
}

/// The card alone, for htmx.
#[derive(Template)]
#[template(path = "client_details.html", block = "syncs_card")]
struct SyncsFragment {
    syncs_card: SyncsCard,
}

/// The card's content for a client.
pub async fn card(
    state: &AppState,
    session: &Session,
    client: &crate::clients::Client,
) -> Result<SyncsCard, AppError> {
    let provider = state.providers().get(&client.provider);
    let loaded = client.clone();
    let (syncs, latest) = crate::db::run(&state.pool, move |conn| {
        Ok::<_, diesel::result::Error>((
            crate::syncs::admin::for_client(conn, &loaded, provider.as_deref())?,
            crate::syncs::records::latest(conn, &loaded.id, LATEST)?,
        ))
    })
    .await?;
    let now = crate::db::now();
    let rows: Vec<SyncRow> = syncs.into_iter().map(|s| SyncRow::new(s, now)).collect();
    let records = latest
        .into_iter()
        .map(|r: Record| RecordRow {
            modified: moment(Some(r.last_modified), now),
            deleted: r.deleted_at.is_some(),
            model: r.model,
            external_id: r.external_id,
        })
        .collect();
    Ok(SyncsCard {
        client_id: client.id.clone(),
        connected: !client.status.is_disconnected(),
        csrf_token: crate::web::csrf::token(session),
        polling: rows
            .iter()
            .any(|r| r.status == "queued" || r.status == "running"),
        rows,
        records,
    })
}

/// `GET /admin/clients/{id}/syncs`: the card alone for htmx (its reloads), else the page.
pub async fn show(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let client = client_for(&state, &user, path.into_inner()).await?;
    if !crate::web::is_htmx(&req) {
        return Ok(crate::web::redirect(&page_path(&client.id)));
    }
    let syncs_card = card(&state, &session, &client).await?;
    crate::web::render(SyncsFragment { syncs_card }, StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct SyncPath {
    id: RecordId,
    model: String,
}

/// `POST /admin/clients/{id}/syncs/{model}/run`: "Sync now"; htmx gets the card back.
pub async fn sync_now(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<SyncPath>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let path = path.into_inner();
    let client = client_for(&state, &user, path.id).await?;
    let defined = state
        .providers()
        .get(&client.provider)
        .is_some_and(|p| p.sync(&path.model).is_some());
    if !defined || client.status.is_disconnected() {
        return Err(AppError::NotFound);
    }
    let request = crate::syncs::RunRequest {
        client_id: client.id.clone(),
        model: path.model.clone(),
        full: false,
        scheduled: false,
    };
    let queued = crate::db::run(&state.pool, move |conn| {
        crate::syncs::request_run(conn, &request)
    })
    .await?;
    let message = if queued {
        format!(
            "A {} sync of {} starts now",
            path.model, client.display_name
        )
    } else {
        format!(
            "A {} sync of {} is already waiting",
            path.model, client.display_name
        )
    };
    let card = match crate::web::is_htmx(&req) {
        true => Some(SyncsFragment {
            syncs_card: card(&state, &session, &client).await?,
        }),
        false => None,
    };
    let answer = CardAnswer {
        flash: Flash::success(message),
        status: StatusCode::OK,
        card,
    };
    answer.send(&req, &session, &page_path(&client.id))
}
