//! The records and syncs of a connection: `GET /api/v1/clients/{id}/records` (stable
//! cursor pages), `GET /api/v1/clients/{id}/syncs` (each model's state) and
//! `POST /api/v1/clients/{id}/syncs/{model}/run` (start one now).

use super::error::ApiError;
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::clients::{self, Client};
use crate::input::RecordId;
use crate::route_table::Table;
use crate::state::AppState;
use crate::syncs::admin::ModelSync;
use crate::syncs::records::{self, Listing};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::SecondsFormat;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.at(Method::GET, "/clients/{id}/records", list_records)
        .at(Method::GET, "/clients/{id}/syncs", list_syncs)
        .at(Method::POST, "/clients/{id}/syncs/{model}/run", run_sync);
}

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(serde::Deserialize)]
struct RecordsQuery {
    model: Option<String>,
    modified_after: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
    include_deleted: Option<String>,
}

/// A model name as sync definitions allow them.
fn model_name(raw: &str) -> Result<String, ApiError> {
    let valid = (1..=40).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(raw.to_string())
    } else {
        Err(ApiError::bad_request(
            "model must be 1-40 lowercase letters, digits, - or _",
        ))
    }
}

fn decode_cursor(raw: &str) -> Result<i64, ApiError> {
    records::decode_cursor(raw)
        .ok_or_else(|| ApiError::bad_request("cursor is not one this API gave out"))
}

struct Parsed {
    model: Option<String>,
    modified_after: Option<chrono::NaiveDateTime>,
    after: Option<i64>,
    limit: i64,
    include_deleted: bool,
}

fn parse_query(query: &str) -> Result<Parsed, ApiError> {
    let raw: RecordsQuery = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    let nonempty = |v: Option<String>| v.filter(|v| !v.is_empty());
    let modified_after = match nonempty(raw.modified_after) {
        None => None,
        Some(at) => Some(
            chrono::DateTime::parse_from_rfc3339(&at)
                .map_err(|_| {
                    ApiError::bad_request(
                        "modified_after must be an RFC 3339 time such as 2026-12-01T10:00:00Z",
                    )
                })?
                .naive_utc(),
        ),
    };
    let limit = match nonempty(raw.limit) {
        None => DEFAULT_LIMIT,
        Some(n) => n
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be a number from 1 to 1000"))?,
    };
    let include_deleted = match nonempty(raw.include_deleted).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "include_deleted must be true or false",
            ))
        }
    };
    Ok(Parsed {
        model: nonempty(raw.model).map(|m| model_name(&m)).transpose()?,
        modified_after,
        after: nonempty(raw.cursor)
            .map(|c| decode_cursor(&c))
            .transpose()?,
        limit,
        include_deleted,
    })
}

fn rfc3339(at: chrono::NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One record as services see it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RecordView {
    /// The provider's id of the record.
    pub id: String,
    pub model: String,
    /// The record as the provider sent it.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub first_seen: String,
    pub last_modified: String,
    /// When a full sync found the record gone at the provider; null while it exists.
    pub deleted_at: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RecordPage {
    pub records: Vec<RecordView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

async fn client_of(state: &AppState, id: &RecordId) -> Result<Client, ApiError> {
    let id = id.as_str().to_string();
    crate::db::run(&state.pool, move |conn| clients::find(conn, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("client"))
}

/// The connection's synced records, oldest first, in pages that never skip or repeat a
/// record while syncs write (the cursor is the position of the last record given).
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/records",
    tag = "syncs",
    params(
        ("id" = String, Path, description = "The client (connection)"),
        ("model" = Option<String>, Query, max_length = 40, pattern = "^[a-z0-9_-]*$", description = "Only this model, e.g. profiles"),
        ("modified_after" = Option<String>, Query, format = DateTime, description = "Only records changed after this time (RFC 3339)"),
        ("cursor" = Option<String>, Query, max_length = 18, pattern = "^[0-9]*$", description = "next_cursor of the previous page (opaque)"),
        ("limit" = Option<String>, Query, pattern = "^([1-9][0-9]{0,2}|1000)?$", description = "Records per page, 1 to 1000 (100)"),
        ("include_deleted" = Option<String>, Query, pattern = "^(true|false)?$", description = "Also records deleted at the provider (false)"),
    ),
    responses(
        (status = 200, description = "A page of records", body = RecordPage),
        (status = 400, description = "A query parameter is malformed (`invalid_request`)", body = super::error::ErrorBody),
        (status = 403, description = "The key lacks `records:read` (`insufficient_scope`)", body = super::error::ErrorBody),
        (status = 404, description = "No such client (`not_found`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list_records(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    key: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    key.require(Scope::RecordsRead)?;
    let query = parse_query(req.query_string())?;
    let client = client_of(&state, &path).await?;
    let limit = query.limit;
    let rows = crate::db::run(&state.pool, move |conn| {
        records::list(
            conn,
            &Listing {
                client_id: &client.id,
                model: query.model.as_deref(),
                modified_after: query.modified_after,
                include_deleted: query.include_deleted,
                after: query.after,
                limit,
            },
        )
    })
    .await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| records::encode_cursor(r.id)))
        .flatten();
    let records = rows
        .into_iter()
        .map(|r| RecordView {
            payload: r.payload_value(),
            first_seen: rfc3339(r.first_seen),
            last_modified: rfc3339(r.last_modified),
            deleted_at: r.deleted_at.map(rfc3339),
            id: r.external_id,
            model: r.model,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RecordPage {
        records,
        next_cursor,
    }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SyncList {
    pub client_id: String,
    pub syncs: Vec<ModelSync>,
}

/// Each model the connection's provider syncs: last run, outcome, counts, next run.
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/syncs",
    tag = "syncs",
    params(("id" = String, Path, description = "The client (connection)")),
    responses(
        (status = 200, description = "The state of each sync", body = SyncList),
        (status = 403, description = "The key lacks `records:read` (`insufficient_scope`)", body = super::error::ErrorBody),
        (status = 404, description = "No such client (`not_found`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list_syncs(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    key: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    key.require(Scope::RecordsRead)?;
    let client = client_of(&state, &path).await?;
    let provider = state.providers().get(&client.provider);
    let client_id = client.id.clone();
    let syncs = crate::db::run(&state.pool, move |conn| {
        crate::syncs::admin::for_client(conn, &client, provider.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(SyncList { client_id, syncs }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RunQueued {
    pub model: String,
    /// False when a run was already waiting (that one will run).
    pub queued: bool,
}

#[derive(serde::Deserialize)]
pub struct RunPath {
    id: RecordId,
    model: String,
}

/// Starts a run of one model now (`?full=true` for a full run that also finds deletions).
#[utoipa::path(
    post,
    path = "/api/v1/clients/{id}/syncs/{model}/run",
    tag = "syncs",
    params(
        ("id" = String, Path, description = "The client (connection)"),
        ("model" = String, Path, max_length = 40, pattern = "^[a-z0-9_-]{1,40}$", description = "A model its provider syncs, e.g. profiles"),
        ("full" = Option<String>, Query, pattern = "^(true|false)?$", description = "A full run even for an incremental model (false)"),
    ),
    responses(
        (status = 202, description = "The run is queued", body = RunQueued),
        (status = 400, description = "A query parameter is malformed (`invalid_request`)", body = super::error::ErrorBody),
        (status = 403, description = "The key lacks `syncs:write` (`insufficient_scope`)", body = super::error::ErrorBody),
        (status = 404, description = "No such client, or its provider has no such sync (`not_found`)", body = super::error::ErrorBody),
        (status = 409, description = "The client is disconnected (`conflict`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn run_sync(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<RunPath>,
    key: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    key.require(Scope::SyncsWrite)?;
    #[derive(serde::Deserialize)]
    struct RunQuery {
        full: Option<String>,
    }
    let query: RunQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    let full = match query.full.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("full must be true or false")),
    };
    let path = path.into_inner();
    let client = client_of(&state, &path.id).await?;
    let model = model_name(&path.model).map_err(|_| ApiError::not_found("sync"))?;
    let defined = state
        .providers()
        .get(&client.provider)
        .is_some_and(|p| p.sync(&model).is_some());
    if !defined {
        return Err(ApiError::not_found("sync"));
    }
    if client.status.is_disconnected() {
        return Err(ApiError::conflict(
            "conflict",
            "the client is disconnected",
            Default::default(),
        ));
    }
    let request = crate::syncs::RunRequest {
        client_id: client.id.clone(),
        model: model.clone(),
        full,
        scheduled: false,
    };
    let queued = crate::db::run(&state.pool, move |conn| {
        crate::syncs::request_run(conn, &request)
    })
    .await?;
    Ok(HttpResponse::Accepted().json(RunQueued { model, queued }))
}
