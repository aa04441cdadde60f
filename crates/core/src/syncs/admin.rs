//! What the pages and the service API show of syncs: each model of a connection with its
//! state, and the list of every sync (failures first).

use super::states::{self, SyncState};
use crate::clients::Client;
use crate::db::schema::{clients, jobs, sync_states};
use crate::db::DbConnection;
use crate::providers::Provider;
use diesel::prelude::*;

/// One model of one connection, as the client page and `GET …/syncs` show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ModelSync {
    pub model: String,
    /// `idle`, `running`, `paused` (reconnect needed), `failing`, or `never_run`.
    pub status: String,
    pub incremental: bool,
    pub frequency_secs: u64,
    #[serde(serialize_with = "utc")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_started_at: Option<chrono::NaiveDateTime>,
    #[serde(serialize_with = "utc")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_finished_at: Option<chrono::NaiveDateTime>,
    /// `succeeded` or `failed`.
    pub last_outcome: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub added: i32,
    pub updated: i32,
    pub deleted: i32,
    pub last_error: Option<String>,
    #[serde(serialize_with = "utc")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<chrono::NaiveDateTime>,
    pub consecutive_failures: i32,
    /// A run is waiting to start (or starting): "Sync now", a webhook or the schedule.
    pub queued: bool,
}

/// Times in the API as RFC 3339 UTC (`2026-12-01T10:00:00.123456Z`).
fn utc<S: serde::Serializer>(at: &Option<chrono::NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(
            &at.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        None => s.serialize_none(),
    }
}

/// Every sync the connection's provider defines, with its state when it has run.
pub fn for_client(
    conn: &mut DbConnection,
    client: &Client,
    provider: Option<&Provider>,
) -> QueryResult<Vec<ModelSync>> {
    let stored = states::for_client(conn, &client.id)?;
    let Some(provider) = provider else {
        return Ok(Vec::new());
    };
    let keys: Vec<String> = provider
        .syncs
        .iter()
        .map(|def| super::queue_key(&client.id, &def.model))
        .collect();
    let pending: Vec<Option<String>> = jobs::table
        .filter(jobs::queue_key.eq_any(&keys))
        .filter(jobs::state.eq_any(["queued", "running", "failed"]))
        .select(jobs::queue_key)
        .load(conn)?;
    Ok(provider
        .syncs
        .iter()
        .map(|def| {
            let state = stored.iter().find(|s| s.model == def.model);
            let key = super::queue_key(&client.id, &def.model);
            ModelSync {
                queued: pending.iter().any(|k| k.as_deref() == Some(key.as_str())),
                ..view(
                    &def.model,
                    def.incremental(),
                    def.frequency.as_secs(),
                    state,
                )
            }
        })
        .collect())
}

fn view(model: &str, incremental: bool, frequency_secs: u64, s: Option<&SyncState>) -> ModelSync {
    ModelSync {
        model: model.to_string(),
        status: s.map_or("never_run".into(), |s| {
            if s.last_started_at.is_none() && s.status == states::status::IDLE {
                "never_run".into()
            } else {
                s.status.clone()
            }
        }),
        incremental,
        frequency_secs,
        last_started_at: s.and_then(|s| s.last_started_at),
        last_finished_at: s.and_then(|s| s.last_finished_at),
        last_outcome: s.and_then(|s| s.last_outcome.clone()),
        last_duration_ms: s.and_then(|s| s.last_duration_ms),
        added: s.map_or(0, |s| s.added),
        updated: s.map_or(0, |s| s.updated),
        deleted: s.map_or(0, |s| s.deleted),
        last_error: s.and_then(|s| s.last_error.clone()),
        next_run_at: s.and_then(|s| s.next_run_at),
        consecutive_failures: s.map_or(0, |s| s.consecutive_failures),
        queued: false,
    }
}

/// One row of /admin/syncs.
#[derive(Debug, Clone)]
pub struct ListedSync {
    pub client_id: String,
    pub client_name: String,
    pub provider: String,
    pub sync: ModelSync,
}

/// Every sync state, filtered by provider and status, failing ones first, then by the
/// latest start.
pub fn list(
    conn: &mut DbConnection,
    provider: Option<&str>,
    status: Option<&str>,
) -> QueryResult<Vec<ListedSync>> {
    let mut query = sync_states::table
        .inner_join(clients::table.on(clients::id.eq(sync_states::client_id)))
        .into_boxed();
    if let Some(provider) = provider {
        query = query.filter(clients::provider.eq(provider.to_string()));
    }
    if let Some(status) = status {
        query = query.filter(sync_states::status.eq(status.to_string()));
    }
    let rows: Vec<(SyncState, (String, String, String))> = query
        .order((
            sync_states::consecutive_failures.desc(),
            sync_states::last_started_at.desc(),
        ))
        .limit(500)
        .select((
            SyncState::as_select(),
            (clients::id, clients::display_name, clients::provider),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(state, (client_id, client_name, provider))| ListedSync {
            client_id,
            client_name,
            provider,
            sync: view(&state.model, false, 0, Some(&state)),
        })
        .collect())
}
