//! One sync run: page by page, each page and the checkpoint written in one transaction,
//! so memory stays at one page and an interrupted run (shutdown, crash) resumes from the
//! page after the last one written. 429s wait for Retry-After and go on; a connection that
//! needs reauthorisation pauses the sync; a failure backs off and, repeated, raises
//! `sync.failed`; the end of a run raises `sync.succeeded`.

use super::paging;
use super::records::{self, Counts, Incoming};
use super::states::{self, status, Checkpoint, SyncState};
use super::RunRequest;
use crate::clients::{self, Client, ClientStatus};
use crate::jobs::worker::{Handler, Outcome};
use crate::jobs::Job;
use crate::oauth::lifecycle::TokenError;
use crate::operations::{Caller, OpError};
use crate::providers::{Pagination, SyncDef};
use crate::state::AppState;
use crate::webhooks::{self, EventType};
use actix_web::web;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// 429s in a row on one page before the run gives up (and backs off).
const MAX_RATE_LIMITED: u32 = 20;
/// The longest single wait a Retry-After or a rate window may impose.
const MAX_WAIT: Duration = Duration::from_secs(300);

pub struct Runner {
    state: web::Data<AppState>,
    stop: watch::Receiver<bool>,
}

/// Why a run ended early.
enum Stop {
    /// Shutdown: the checkpoint stays, the job is taken again (here or elsewhere).
    Shutdown,
    /// The connection must be reconnected; the sync waits paused.
    NeedsReauth,
    /// The run failed; the reason is kept and shown.
    Failed(String),
    Storage(String),
}

impl From<crate::db::DbError> for Stop {
    fn from(e: crate::db::DbError) -> Self {
        Stop::Storage(e.to_string())
    }
}

impl<E: Into<crate::db::DbError>> From<crate::db::RunError<E>> for Stop {
    fn from(e: crate::db::RunError<E>) -> Self {
        let e: crate::db::DbError = e.into();
        Stop::Storage(e.to_string())
    }
}

fn from_op(e: OpError) -> Stop {
    match e {
        OpError::Unauthorized | OpError::Token(TokenError::NeedsReauth(_)) => Stop::NeedsReauth,
        OpError::Token(TokenError::Disconnected) => {
            Stop::Failed("the connection was disconnected".into())
        }
        OpError::Storage(e) => Stop::Storage(e.to_string()),
        other => Stop::Failed(other.to_string()),
    }
}

/// One run's fixed facts.
struct Run {
    client: Client,
    def: SyncDef,
    state: SyncState,
    started: Instant,
}

impl Runner {
    pub fn new(state: web::Data<AppState>, stop: watch::Receiver<bool>) -> Self {
        Self { state, stop }
    }

    /// The job handler of `sync.run`.
    pub fn handler(self: Arc<Self>) -> Handler {
        Arc::new(move |job: Job| {
            let this = self.clone();
            Box::pin(async move { this.run_job(job).await })
        })
    }

    async fn run_job(&self, job: Job) -> Outcome {
        let Ok(request) = serde_json::from_str::<RunRequest>(&job.payload) else {
            return Outcome::Dead {
                error: "the job names no connection and model".into(),
            };
        };
        match self.run(&request).await {
            Ok(()) => Outcome::Done,
            Err(Stop::Shutdown) => Outcome::Retry {
                error: "stopped by a shutdown; resumes from its checkpoint".into(),
                after: Some(Duration::ZERO),
            },
            Err(Stop::Storage(error)) => Outcome::Retry { error, after: None },
            // Recorded on the sync itself; the job did its work.
            Err(Stop::NeedsReauth | Stop::Failed(_)) => Outcome::Done,
        }
    }

    /// Loads what the run needs; Ok(None) when there is nothing to run.
    async fn prepare(&self, request: &RunRequest) -> Result<Option<Run>, Stop> {
        let (id, model) = (request.client_id.clone(), request.model.clone());
        let loaded = crate::db::run(&self.state.pool, move |conn| {
            let Some(client) = clients::find(conn, &id)? else {
                return Ok::<_, diesel::result::Error>(None);
            };
            states::ensure(conn, &id, &model)?;
            Ok(states::find(conn, &id, &model)?.map(|state| (client, state)))
        })
        .await?;
        let Some((client, state)) = loaded else {
            return Ok(None);
        };
        if client.status == ClientStatus::Disconnected {
            return Ok(None);
        }
        let def = self
            .state
            .providers()
            .get(&client.provider)
            .and_then(|p| p.sync(&request.model).cloned());
        let Some(def) = def else {
            tracing::warn!(model = %request.model, provider = %client.provider, "no such sync");
            return Ok(None);
        };
        let not_due = state.next_run_at.is_some_and(|at| at > crate::db::now());
        if request.scheduled && not_due && state.checkpoint.is_none() {
            return Ok(None);
        }
        Ok(Some(Run {
            client,
            def,
            state,
            started: Instant::now(),
        }))
    }

    async fn run(&self, request: &RunRequest) -> Result<(), Stop> {
        let Some(run) = self.prepare(request).await? else {
            return Ok(());
        };
        if run.client.status == ClientStatus::NeedsReauth {
            return self.pause(&run).await;
        }
        let result = self.pages(&run, request.full).await;
        match result {
            Ok(checkpoint) => self.succeed(&run, checkpoint).await,
            Err(Stop::NeedsReauth) => self.pause(&run).await.and(Err(Stop::NeedsReauth)),
            Err(Stop::Failed(reason)) => {
                self.fail(&run, &reason).await?;
                Err(Stop::Failed(reason))
            }
            Err(other) => Err(other),
        }
    }

    /// The run's checkpoint: the one left by an interrupted run, else a new one.
    async fn begin(&self, run: &Run, full: bool) -> Result<Checkpoint, Stop> {
        let checkpoint = match run.state.checkpoint() {
            Some(resumed) => resumed,
            None => {
                let settings = &self.state.config.syncs;
                let since = run
                    .state
                    .last_success_started_at
                    .filter(|_| !full && run.def.incremental())
                    .map(|at| {
                        let overlap = chrono::TimeDelta::from_std(settings.incremental_overlap)
                            .unwrap_or_default();
                        (at - overlap)
                            .and_utc()
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    });
                Checkpoint {
                    full: since.is_none(),
                    next: Some(paging::first_request(&run.def, since.as_deref())),
                    started_at: crate::db::now(),
                    pages: 0,
                    counts: Counts::default(),
                }
            }
        };
        let (id, model, saved) = (
            run.client.id.clone(),
            run.def.model.clone(),
            checkpoint.clone(),
        );
        let fresh = run.state.checkpoint.is_none();
        crate::db::run(&self.state.pool, move |conn| {
            crate::db::transaction(conn, |conn| {
                if fresh {
                    // Ids noted by a run that was given up on must not hide deletions.
                    records::clear_seen(conn, &id, &model)?;
                }
                states::start(conn, &id, &model, &saved)
            })
        })
        .await?;
        Ok(checkpoint)
    }

    /// Reads every page from the checkpoint on.
    async fn pages(&self, run: &Run, full: bool) -> Result<Checkpoint, Stop> {
        let mut checkpoint = self.begin(run, full).await?;
        if checkpoint.next.is_none() {
            return Ok(checkpoint);
        }
        let caller = Caller::for_client(&self.state, &run.client.id)
            .await
            .map_err(from_op)?;
        while let Some(path) = checkpoint.next.clone() {
            if *self.stop.borrow() {
                return Err(Stop::Shutdown);
            }
            let (body, headers) = self.fetch(&caller, &path).await?;
            let page = paging::records(&run.def, &body).map_err(|e| Stop::Failed(e.0))?;
            let next = paging::next_request(&run.def, &path, &body, &headers, page.len());
            let next = match (next, &run.def.pagination) {
                (Some(link), Pagination::NextUrl { .. } | Pagination::LinkHeader) => {
                    Some(caller.relative(&link).map_err(from_op)?)
                }
                (next, _) => next,
            };
            // A provider that links a page to itself would keep the run going for ever.
            checkpoint.next = next.filter(|n| *n != path);
            checkpoint.pages += 1;
            let counts = self.write(run, &page, &checkpoint).await?;
            checkpoint.counts.add(counts);
            self.state
                .metrics
                .sync_records_written
                .with_label_values(&[&run.client.provider, &run.def.model])
                .inc_by(counts.written() as u64);
            self.respect_budget(&headers).await?;
        }
        Ok(checkpoint)
    }

    /// One page, waiting out 429s (Retry-After, else a few seconds) as often as needed.
    async fn fetch(
        &self,
        caller: &Caller<'_>,
        path: &str,
    ) -> Result<(Value, reqwest::header::HeaderMap), Stop> {
        let mut limited = 0;
        loop {
            match caller.get_page(path, "records").await {
                Ok(page) => return Ok(page),
                Err(OpError::RateLimited { retry_after }) if limited < MAX_RATE_LIMITED => {
                    limited += 1;
                    let wait = Duration::from_secs(retry_after.unwrap_or(5)).min(MAX_WAIT);
                    self.sleep(wait).await?;
                }
                // Our own pacing said when there is room: a sync waits for it.
                Err(OpError::OverBudget(over)) if limited < MAX_RATE_LIMITED => {
                    limited += 1;
                    self.sleep(Duration::from_secs(over.retry_after).min(MAX_WAIT))
                        .await?;
                }
                Err(e) => return Err(from_op(e)),
            }
        }
    }

    /// Sleeps, or stops early on shutdown.
    async fn sleep(&self, wait: Duration) -> Result<(), Stop> {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = stop.wait_for(|s| *s) => Err(Stop::Shutdown),
        }
    }

    /// Kustomer's budget is per org and shared by every caller: once this window's use
    /// passes the configured share, wait for the next window.
    async fn respect_budget(&self, headers: &reqwest::header::HeaderMap) -> Result<(), Stop> {
        let number =
            |name: &str| -> Option<f64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let (Some(limit), Some(remaining)) =
            (number("x-ratelimit-limit"), number("x-ratelimit-remaining"))
        else {
            return Ok(());
        };
        let share = self.state.config.syncs.budget_share;
        if limit > 0.0 && limit - remaining >= limit * share {
            let reset = number("x-ratelimit-reset")
                .unwrap_or(60.0)
                .clamp(1.0, 300.0);
            tracing::info!(reset, "sync waits for the next rate window");
            self.sleep(Duration::from_secs_f64(reset)).await?;
        }
        Ok(())
    }

    async fn write(
        &self,
        run: &Run,
        page: &[Incoming],
        checkpoint: &Checkpoint,
    ) -> Result<Counts, Stop> {
        let (id, model) = (run.client.id.clone(), run.def.model.clone());
        let page: Vec<Incoming> = page
            .iter()
            .map(|r| Incoming {
                external_id: r.external_id.clone(),
                payload: r.payload.clone(),
            })
            .collect();
        let saved = checkpoint.clone();
        let counts = crate::db::run(&self.state.pool, move |conn| {
            crate::db::transaction(conn, |conn| {
                let counts = records::write_page(conn, &id, &model, &page)?;
                if saved.full {
                    records::note_seen(conn, &id, &model, &page)?;
                }
                let mut saved = saved;
                saved.counts.add(counts);
                states::save_checkpoint(conn, &id, &model, &saved)?;
                Ok::<_, diesel::result::Error>(counts)
            })
        })
        .await?;
        Ok(counts)
    }

    fn duration_ms(run: &Run, checkpoint: Option<&Checkpoint>) -> i64 {
        // A resumed run counts from its first start.
        match checkpoint {
            Some(c) if run.state.checkpoint.is_some() => {
                (crate::db::now() - c.started_at).num_milliseconds().max(0)
            }
            _ => run.started.elapsed().as_millis() as i64,
        }
    }

    async fn succeed(&self, run: &Run, mut checkpoint: Checkpoint) -> Result<(), Stop> {
        let (client, state, frequency) = (run.client.clone(), run.state.clone(), run.def.frequency);
        let duration_ms = Self::duration_ms(run, Some(&checkpoint));
        let full = checkpoint.full;
        let counts = crate::db::run(&self.state.pool, move |conn| {
            crate::db::transaction(conn, |conn| {
                if full {
                    checkpoint.counts.deleted +=
                        records::mark_unseen_deleted(conn, &client.id, &state.model)?;
                }
                let next = crate::db::now()
                    + chrono::TimeDelta::from_std(frequency).unwrap_or(chrono::TimeDelta::hours(1));
                states::succeed(conn, &state, &checkpoint, duration_ms, next)?;
                let c = checkpoint.counts;
                webhooks::connection(
                    conn,
                    EventType::SyncSucceeded,
                    &client,
                    json!({"model": state.model, "full": full, "added": c.added,
                        "updated": c.updated, "deleted": c.deleted, "duration_ms": duration_ms}),
                )?;
                Ok::<_, diesel::result::Error>(c)
            })
        })
        .await?;
        self.observe(run, "succeeded", duration_ms);
        if counts.deleted > 0 {
            self.state
                .metrics
                .sync_records_written
                .with_label_values(&[&run.client.provider, &run.def.model])
                .inc_by(counts.deleted as u64);
        }
        tracing::info!(client_id = %run.client.id, model = %run.def.model, added = counts.added,
            updated = counts.updated, deleted = counts.deleted, duration_ms, "sync run succeeded");
        Ok(())
    }

    fn observe(&self, run: &Run, outcome: &str, duration_ms: i64) {
        let labels = [run.client.provider.as_str(), run.def.model.as_str()];
        self.state
            .metrics
            .sync_runs
            .with_label_values(&[labels[0], labels[1], outcome])
            .inc();
        self.state
            .metrics
            .sync_run_seconds
            .with_label_values(&labels)
            .observe(duration_ms as f64 / 1000.0);
    }

    async fn pause(&self, run: &Run) -> Result<(), Stop> {
        let (id, model) = (run.client.id.clone(), run.def.model.clone());
        crate::db::run(&self.state.pool, move |conn| {
            states::set_status(conn, &id, &model, status::PAUSED)
        })
        .await?;
        tracing::info!(client_id = %run.client.id, model = %run.def.model, "sync paused: the connection needs reauthorisation");
        Ok(())
    }

    /// Records the failure with a growing wait before the next run (30 s, 1 min, 2 min …
    /// up to SYNC_MAX_BACKOFF); from the configured streak on, each failure raises
    /// `sync.failed`.
    async fn fail(&self, run: &Run, reason: &str) -> Result<(), Stop> {
        let settings = &self.state.config.syncs;
        let streak = run.state.consecutive_failures + 1;
        let wait = Duration::from_secs(30)
            .saturating_mul(2_u32.saturating_pow((streak - 1).clamp(0, 16) as u32))
            .min(settings.max_backoff);
        let wait = crate::jobs::worker::jitter(wait);
        let alert = streak >= settings.failures_before_alert;
        let (client, state) = (run.client.clone(), run.state.clone());
        let reason = crate::provider_http::sanitize(reason, 300);
        let duration_ms = Self::duration_ms(run, None);
        let stored = reason.clone();
        crate::db::run(&self.state.pool, move |conn| {
            crate::db::transaction(conn, |conn| {
                let next = crate::db::now() + chrono::TimeDelta::from_std(wait).unwrap_or_default();
                states::fail(conn, &state, &stored, duration_ms, next)?;
                if alert {
                    webhooks::connection(
                        conn,
                        EventType::SyncFailed,
                        &client,
                        json!({"model": state.model, "reason": stored,
                            "consecutive_failures": streak}),
                    )?;
                }
                Ok::<_, diesel::result::Error>(())
            })
        })
        .await?;
        self.observe(run, "failed", duration_ms);
        tracing::warn!(client_id = %run.client.id, model = %run.def.model, reason = %reason, streak, "sync run failed");
        Ok(())
    }
}
