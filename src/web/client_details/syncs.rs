//! The client page's syncs card: each model's last run, next run, duration, counts and
//! error, a "Sync now" button per model, and the latest records.

use super::{client_for, page_path};
use crate::error::AppError;
use crate::input::RecordId;
use crate::state::AppState;
use crate::syncs::admin::ModelSync;
use crate::syncs::records::Record;
use crate::web::current_user::CurrentUser;
use crate::web::layout::Flash;
use crate::web::moment::{moment, Moment};
use actix_session::Session;
use actix_web::{web, HttpResponse};

/// How many of the latest records the card lists.
const LATEST: i64 = 10;

/// One model's row.
pub struct SyncRow {
    pub model: String,
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
            status: sync.status,
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

/// The card's content for a client.
pub async fn card(
    state: &AppState,
    client: &crate::clients::Client,
) -> Result<(Vec<SyncRow>, Vec<RecordRow>), AppError> {
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
    let rows = syncs.into_iter().map(|s| SyncRow::new(s, now)).collect();
    let records = latest
        .into_iter()
        .map(|r: Record| RecordRow {
            modified: moment(Some(r.last_modified), now),
            deleted: r.deleted_at.is_some(),
            model: r.model,
            external_id: r.external_id,
        })
        .collect();
    Ok((rows, records))
}

#[derive(serde::Deserialize)]
pub struct SyncPath {
    id: RecordId,
    model: String,
}

/// `POST /admin/clients/{id}/syncs/{model}/run`: "Sync now".
pub async fn sync_now(
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
    Ok(Flash::success(message).redirect(&session, &page_path(&client.id)))
}
