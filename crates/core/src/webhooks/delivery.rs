//! Delivering one event to one endpoint, per Standard Webhooks: the same `webhook-id` on
//! every attempt, `webhook-timestamp`, and `webhook-signature` with one `v1,` signature
//! per valid secret (two during a rotation). 2xx is delivered; network errors, 3xx, 5xx
//! and 429 (honouring Retry-After) are retried on the schedule; 410 disables the
//! endpoint; other 4xx end the delivery. No redirect is followed and at most
//! `READ_LIMIT` bytes of the answer are read.

use super::attempts::{self, NewAttempt, EXCERPT_BYTES};
use super::{endpoints, find_event, StoredEvent};
use crate::db::DbPool;
use crate::jobs::worker::{jitter, Handler, Outcome};
use crate::jobs::Job;
use crate::vault::Vault;
use crate::webhook_settings::WebhookSettings;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most of an answer that is read before the connection is dropped.
const READ_LIMIT: usize = 64 * 1024;
/// The longest Retry-After honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

pub struct Deliverer {
    pub pool: DbPool,
    pub vault: Arc<Vault>,
    pub http: reqwest::Client,
    pub settings: WebhookSettings,
    /// Endpoints and their opened secrets for a second, so a run of one endpoint's
    /// deliveries reads them once; a delivery that disables its endpoint forgets it.
    endpoints: crate::ttl_cache::TtlCache<Arc<Signer>>,
}

/// An endpoint as a delivery needs it.
struct Signer {
    endpoint: endpoints::Endpoint,
    secrets: Vec<secrecy::SecretString>,
}

const ENDPOINT_CACHE: Duration = Duration::from_secs(1);

/// What one HTTP attempt gave.
struct Answer {
    status: Option<u16>,
    retry_after: Option<Duration>,
    excerpt: String,
    error: Option<String>,
}

impl Deliverer {
    pub fn new(pool: DbPool, vault: Arc<Vault>, settings: WebhookSettings) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .user_agent(concat!("connecthub-webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private {
            builder = builder.dns_resolver(Arc::new(super::url_safety::PublicOnly));
        }
        let endpoints = crate::ttl_cache::TtlCache::new(1_000, ENDPOINT_CACHE);
        Ok(Self {
            pool,
            vault,
            http: builder.build()?,
            settings,
            endpoints,
        })
    }

    /// The job handler of `webhook.deliver`.
    pub fn handler(self: Arc<Self>) -> Handler {
        Arc::new(move |job: Job| {
            let this = self.clone();
            Box::pin(async move { this.deliver(job).await })
        })
    }

    async fn deliver(&self, job: Job) -> Outcome {
        let payload = job.payload_value();
        let (Some(event_id), Some(endpoint_id)) = (
            payload["event_id"].as_str().map(String::from),
            payload["endpoint_id"].as_str().map(String::from),
        ) else {
            return Outcome::Dead {
                error: "the job names no event and endpoint".into(),
            };
        };
        let target = match self.load(&event_id, &endpoint_id).await {
            Ok(target) => target,
            Err(outcome) => return outcome,
        };
        let started = Instant::now();
        let answer = self.post(&target).await;
        let duration = started.elapsed();
        let outcome = self.judge(&job, &answer);
        self.record(&job, &event_id, &endpoint_id, &answer, duration, &outcome)
            .await;
        outcome
    }

    /// The event, the endpoint's URL and its signing secrets; a dead outcome when the
    /// delivery cannot happen any more.
    async fn load(&self, event_id: &str, endpoint_id: &str) -> Result<Target, Outcome> {
        let retry = |e: crate::db::DbError| Outcome::Retry {
            error: format!("database: {e}"),
            after: None,
        };
        let id = event_id.to_string();
        let event = crate::db::run(&self.pool, move |conn| find_event(conn, &id))
            .await
            .map_err(|e| retry(e.into()))?
            .ok_or_else(|| Outcome::Dead {
                error: "the event no longer exists".into(),
            })?;
        let signer = match self.endpoints.get(endpoint_id) {
            Some(signer) => signer,
            None => {
                let (id, vault) = (endpoint_id.to_string(), self.vault.clone());
                let loaded = crate::db::run(&self.pool, move |conn| {
                    let Some(endpoint) = endpoints::find(conn, &id)? else {
                        return Ok::<_, anyhow::Error>(None);
                    };
                    let secrets = endpoints::signing_secrets(conn, &vault, &id)?;
                    Ok(Some(Arc::new(Signer { endpoint, secrets })))
                })
                .await
                .map_err(|e| retry(e.into()))?
                .ok_or_else(|| Outcome::Dead {
                    error: "the endpoint was deleted".into(),
                })?;
                self.endpoints
                    .insert(endpoint_id.to_string(), loaded.clone());
                loaded
            }
        };
        if !signer.endpoint.enabled {
            return Err(Outcome::Dead {
                error: "the endpoint is disabled".into(),
            });
        }
        let url = url::Url::parse(&signer.endpoint.url).map_err(|_| Outcome::Dead {
            error: "the endpoint URL is invalid".into(),
        })?;
        super::url_safety::check_host(&url, self.settings.allow_private)
            .map_err(|error| Outcome::Dead { error })?;
        Ok(Target { event, url, signer })
    }

    async fn post(&self, target: &Target) -> Answer {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = match sign(target, timestamp) {
            Ok(signature) => signature,
            Err(error) => {
                return Answer {
                    status: None,
                    retry_after: None,
                    excerpt: String::new(),
                    error: Some(error),
                }
            }
        };
        let sent = self
            .http
            .post(target.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &target.event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(target.event.body.clone())
            .send()
            .await;
        match sent {
            Err(e) => Answer {
                status: None,
                retry_after: None,
                excerpt: String::new(),
                error: Some(describe(&e)),
            },
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = crate::provider_http::retry_after(response.headers())
                    .map(|d| d.min(MAX_RETRY_AFTER));
                let excerpt = read_excerpt(response).await;
                Answer {
                    status: Some(status),
                    retry_after,
                    excerpt,
                    error: None,
                }
            }
        }
    }

    /// What the answer means for the job. Attempt n (1-based) waits `schedule[n-1]`
    /// before the next; past the schedule the delivery is dead.
    fn judge(&self, job: &Job, answer: &Answer) -> Outcome {
        let error = match (answer.status, &answer.error) {
            (Some(s), _) if (200..300).contains(&s) => return Outcome::Done,
            (Some(410), _) => {
                return Outcome::Dead {
                    error: "the receiver answered 410 Gone: endpoint disabled".into(),
                }
            }
            (Some(s), _) if (400..500).contains(&s) && s != 429 => {
                return Outcome::Dead {
                    error: format!("the receiver answered {s}"),
                }
            }
            (Some(s), _) => format!("the receiver answered {s}"),
            (None, Some(error)) => error.clone(),
            (None, None) => "no answer".into(),
        };
        let schedule = &self.settings.retry_schedule;
        let spent = usize::try_from(job.attempts).unwrap_or(usize::MAX);
        match schedule.get(spent.saturating_sub(1)) {
            None => Outcome::Dead {
                error: format!("{error} (last of {} attempts)", schedule.len() + 1),
            },
            Some(wait) => {
                let wait = jitter(*wait).max(answer.retry_after.unwrap_or_default());
                Outcome::Retry {
                    error,
                    after: Some(wait),
                }
            }
        }
    }

    async fn record(
        &self,
        job: &Job,
        event_id: &str,
        endpoint_id: &str,
        answer: &Answer,
        duration: Duration,
        outcome: &Outcome,
    ) {
        let endpoint = endpoint_id;
        let (event_id, endpoint_id, job_id) =
            (event_id.to_string(), endpoint_id.to_string(), job.id);
        let succeeded = *outcome == Outcome::Done;
        let gone = answer.status == Some(410);
        let error = match outcome {
            Outcome::Done => None,
            Outcome::Retry { error, .. } | Outcome::Dead { error } => Some(error.clone()),
        };
        let (status, excerpt) = (answer.status.map(i32::from), answer.excerpt.clone());
        let disable_after = chrono::TimeDelta::from_std(self.settings.disable_after)
            .unwrap_or(chrono::TimeDelta::days(5));
        let stored = crate::db::run(&self.pool, move |conn| {
            crate::db::transaction(conn, |conn| {
                crate::jobs::relaxed_commit(conn)?;
                attempts::record(
                    conn,
                    &NewAttempt {
                        endpoint_id: &endpoint_id,
                        event_id: &event_id,
                        job_id,
                        status,
                        duration_ms: i32::try_from(duration.as_millis()).unwrap_or(i32::MAX),
                        succeeded,
                        error: error.as_deref(),
                        response_excerpt: &excerpt,
                    },
                )?;
                if gone {
                    endpoints::disable(conn, &endpoint_id, "the receiver answered 410 Gone")
                } else {
                    endpoints::record_outcome(conn, &endpoint_id, succeeded, disable_after)
                }
            })
        })
        .await;
        match stored {
            Ok(true) => self.endpoints.invalidate(endpoint),
            Ok(false) => {}
            Err(e) => tracing::warn!(job_id, error = %e, "recording a webhook attempt failed"),
        }
    }
}

struct Target {
    event: StoredEvent,
    url: url::Url,
    signer: Arc<Signer>,
}

/// One `v1,<base64>` per secret, space-separated (Standard Webhooks).
fn sign(target: &Target, timestamp: i64) -> Result<String, String> {
    let mut signatures = Vec::new();
    for secret in &target.signer.secrets {
        let webhook = standardwebhooks::Webhook::new(secret.expose_secret())
            .map_err(|_| "the endpoint's secret is malformed".to_string())?;
        let signature = webhook
            .sign(&target.event.id, timestamp, target.event.body.as_bytes())
            .map_err(|_| "the event body cannot be signed".to_string())?;
        signatures.push(signature);
    }
    if signatures.is_empty() {
        return Err("the endpoint has no secret".into());
    }
    Ok(signatures.join(" "))
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the receiver did not answer in time".into()
    } else if e.is_connect() {
        "could not connect to the receiver".into()
    } else {
        "the request to the receiver failed".into()
    }
}

/// The first KB of the answer as text; reading stops at `READ_LIMIT`.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut read = 0usize;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if kept.len() < EXCERPT_BYTES {
            let room = EXCERPT_BYTES - kept.len();
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if read >= READ_LIMIT {
            break;
        }
    }
    crate::provider_http::sanitize(&String::from_utf8_lossy(&kept), EXCERPT_BYTES)
}
