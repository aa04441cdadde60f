//! The worker: takes due jobs, runs each with the handler of its kind, records the outcome,
//! and sleeps until the next job is due. It wakes early when this process queues a job;
//! jobs queued by another instance are seen within one lease (the longest sleep).

use super::{Finish, Job};
use crate::db::DbPool;
use futures_util::future::BoxFuture;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Jobs taken per claim.
const BATCH: i64 = 50;
/// Queue keys (webhook endpoints) served at once.
const CONCURRENCY: usize = 8;
/// Shortest sleep, so a job that stays due for a reason of its own cannot spin the loop.
const MIN_SLEEP: Duration = Duration::from_millis(5);
/// While groups run, how often a wake-up looks for other queue keys' jobs.
const BUSY_LOOK: Duration = Duration::from_millis(25);
/// Wait after a pass that failed (the database is away, say).
const AFTER_ERROR: Duration = Duration::from_secs(5);

/// How an attempt ended, as a handler reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Try again: after `after` when given, else after the queue's backoff.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// No point trying again.
    Dead {
        error: String,
    },
}

pub type Handler = Arc<dyn Fn(Job) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// The handler of each job kind.
#[derive(Default, Clone)]
pub struct Handlers(HashMap<&'static str, Handler>);

impl Handlers {
    pub fn add(mut self, kind: &'static str, handler: Handler) -> Self {
        self.0.insert(kind, handler);
        self
    }
}

pub struct Worker {
    pub pool: DbPool,
    pub lease: Duration,
    pub handlers: Handlers,
    /// Names this worker in `locked_by`.
    pub id: String,
}

impl Worker {
    pub fn new(pool: DbPool, lease: Duration, handlers: Handlers) -> Self {
        Self {
            pool,
            lease,
            handlers,
            id: format!("worker-{}", uuid::Uuid::new_v4()),
        }
    }

    /// Runs until `stop` turns true; jobs in flight then finish, no new one is taken.
    /// Work is taken as groups (one queue key's jobs, run one after the other) and up to
    /// `CONCURRENCY` groups run at once; a slow endpoint holds only its own group, never
    /// the others.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut in_flight: JoinSet<()> = JoinSet::new();
        loop {
            let wake = super::WAKE.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let seen = super::generation();
            let mut pause = this.lease;
            if in_flight.len() < CONCURRENCY {
                match this.take().await {
                    Ok(groups) if !groups.is_empty() => {
                        for group in groups {
                            in_flight.spawn(this.clone().run_group(group));
                        }
                        continue;
                    }
                    Ok(_) => pause = this.until_next_due().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "job worker pass failed");
                        pause = AFTER_ERROR;
                    }
                }
            }
            if *stop.borrow() {
                break;
            }
            let woken = super::generation() != seen
                || tokio::select! {
                    _ = tokio::time::sleep(pause) => false,
                    _ = &mut wake => true,
                    Some(_) = in_flight.join_next() => false,
                    _ = stop.changed() => false,
                };
            if woken && !in_flight.is_empty() {
                // Jobs queued while groups run are mostly for the busy keys (one
                // endpoint's next events), which those groups' end brings up anyway:
                // look for other keys' jobs at most every BUSY_LOOK, not on every wake.
                tokio::select! {
                    _ = tokio::time::sleep(BUSY_LOOK) => {}
                    Some(_) = in_flight.join_next() => {}
                    _ = stop.changed() => {}
                }
            }
            if *stop.borrow() {
                break;
            }
        }
        while in_flight.join_next().await.is_some() {}
        tracing::info!("job worker stopped");
    }

    /// Takes due jobs, grouped by queue key (oldest first within each group).
    async fn take(&self) -> Result<Vec<Vec<Job>>, crate::db::DbError> {
        let lease =
            chrono::TimeDelta::from_std(self.lease).unwrap_or(chrono::TimeDelta::seconds(30));
        let id = self.id.clone();
        let jobs = crate::db::run(&self.pool, move |conn| {
            super::claim(conn, &id, lease, BATCH)
        })
        .await?;
        let mut groups: Vec<Vec<Job>> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for job in jobs {
            match job.queue_key.clone() {
                Some(key) => match by_key.get(&key) {
                    Some(&at) => groups[at].push(job),
                    None => {
                        by_key.insert(key, groups.len());
                        groups.push(vec![job]);
                    }
                },
                None => groups.push(vec![job]),
            }
        }
        Ok(groups)
    }

    /// How long until the next job falls due (at most one lease).
    async fn until_next_due(&self) -> Duration {
        let pause = match crate::db::run(&self.pool, super::next_due).await {
            Ok(Some(at)) => (at - crate::db::now()).to_std().unwrap_or(MIN_SLEEP),
            Ok(None) => self.lease,
            Err(e) => {
                tracing::warn!(error = %e, "job worker could not read the next due time");
                AFTER_ERROR
            }
        };
        pause.clamp(MIN_SLEEP, self.lease)
    }

    /// Runs one group's jobs one after the other, renewing their leases meanwhile.
    async fn run_group(self: Arc<Self>, group: Vec<Job>) {
        let ids: Vec<i64> = group.iter().map(|job| job.id).collect();
        let work = async {
            for job in group {
                self.run_one(job).await;
            }
        };
        tokio::pin!(work);
        let mut renew = tokio::time::interval(self.lease / 3);
        renew.tick().await;
        loop {
            tokio::select! {
                _ = &mut work => return,
                _ = renew.tick() => self.renew(ids.clone()).await,
            }
        }
    }

    async fn renew(&self, ids: Vec<i64>) {
        let (id, lease) = (
            self.id.clone(),
            chrono::TimeDelta::from_std(self.lease).unwrap_or_default(),
        );
        if let Err(e) =
            crate::db::run(&self.pool, move |conn| super::renew(conn, &id, &ids, lease)).await
        {
            tracing::warn!(error = %e, "renewing job leases failed");
        }
    }

    async fn run_one(&self, job: Job) {
        let outcome = match self.handlers.0.get(job.kind.as_str()) {
            Some(handler) => handler(job.clone()).await,
            None => Outcome::Dead {
                error: format!("no handler for jobs of kind {}", job.kind),
            },
        };
        let (id, job_id) = (self.id.clone(), job.id);
        let finish = decide(&job, outcome);
        let stored = crate::db::run(&self.pool, move |conn| {
            let finish = match &finish {
                Decision::Done => Finish::Done,
                Decision::Retry(error, at) => Finish::Retry { error, at: *at },
                Decision::Dead(error) => Finish::Dead { error },
            };
            super::finish(conn, &id, job_id, &finish)
        })
        .await;
        if let Err(e) = stored {
            tracing::warn!(job_id, error = %e, "recording a job's outcome failed");
        }
    }
}

enum Decision {
    Done,
    Retry(String, chrono::NaiveDateTime),
    Dead(String),
}

/// A retry past the job's last attempt makes it dead.
fn decide(job: &Job, outcome: Outcome) -> Decision {
    match outcome {
        Outcome::Done => Decision::Done,
        Outcome::Dead { error } => Decision::Dead(error),
        Outcome::Retry { error, .. } if job.attempts >= job.max_attempts => {
            Decision::Dead(format!("{error} (last of {} attempts)", job.max_attempts))
        }
        Outcome::Retry { error, after } => {
            let wait = after.unwrap_or_else(|| backoff(job.attempts));
            let wait = chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::hours(1));
            Decision::Retry(error, crate::db::now() + wait)
        }
    }
}

/// 2, 4, 8 … seconds (at most an hour), each with up to 20 % jitter either way.
pub fn backoff(attempts: i32) -> Duration {
    let base = 2_u64.saturating_pow(attempts.clamp(1, 12) as u32).min(3600);
    jitter(Duration::from_secs(base))
}

/// `wait` moved by up to 20 % either way, so retries of many jobs do not arrive together.
pub fn jitter(wait: Duration) -> Duration {
    let factor = rand::thread_rng().gen_range(0.8..1.2);
    wait.mul_f64(factor)
}
