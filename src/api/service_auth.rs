//! Who is calling `/api/v1`: a service presenting an API key as `Authorization: Bearer
//! chk_…`. No cookies, so no session or CSRF. The presented key is never logged.
//!
//! Wrong keys are counted per address (`/metrics`: `connecthub_service_key_rejections_total`):
//! past `SERVICE_KEY_MAX_FAILURES_PER_IP` in a window the address gets 429 for any key not
//! already known to this instance, and each address's burst is audited once, as one
//! `service_key_rejected` entry with the count, when its window ends.

use super::error::ApiError;
use crate::api_keys::{self, ApiKey, Scope};
use crate::audit::{Actor, Event, Origin};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::time::Duration;

/// An active API key; extracting it answers 401 for anything else.
pub struct ServiceKey(pub ApiKey);

impl ServiceKey {
    /// 403 unless the key was granted `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden_scope(scope))
        }
    }

    /// 429 once this key has used up its requests for the minute
    /// (`SERVICE_KEY_REQUESTS_PER_MINUTE`; no limit when unset).
    pub fn within_budget(&self, state: &AppState) -> Result<(), ApiError> {
        let Some(budget) = &state.key_budget else {
            return Ok(());
        };
        budget.check(&self.0.id).map_err(|wait| {
            let secs = retry_secs(wait);
            ApiError::rate_limited(
                format!("this API key used up its requests for now; retry in {secs} s"),
                Some(secs),
            )
        })
    }

    /// Who the audit log names for what this key does.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: "api_key",
            id: Some(self.0.id.clone()),
            label: self.0.name.clone(),
        }
    }
}

/// The bearer token of the Authorization header, if it has one.
fn bearer_token(req: &HttpRequest) -> Option<SecretString> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| SecretString::from(token.to_string()))
}

fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

async fn authenticate(
    state: Option<web::Data<AppState>>,
    presented: Option<SecretString>,
    peer: Option<IpAddr>,
) -> Result<ServiceKey, ApiError> {
    let presented = presented.ok_or_else(ApiError::unauthorized)?;
    let state = state.ok_or_else(|| {
        tracing::error!("app state missing");
        ApiError::internal()
    })?;
    let hash = api_keys::hash(presented.expose_secret());
    if let Some(key) = state.api_key_cache.get(&hash) {
        return from_allowed_address(key, peer);
    }
    if let Some(peer) = peer {
        let (recent, window_left) = state.rejected_keys.recent(&peer);
        if recent >= state.config.service_key_limits.failures_per_ip {
            reject(&state, peer, "rate_limited");
            let secs = retry_secs(window_left);
            return Err(ApiError::rate_limited(
                format!("too many wrong API keys from this address; retry in {secs} s"),
                Some(secs),
            ));
        }
    }
    let seen = state.api_key_generation.current();
    let key = crate::db::run(&state.pool, move |conn| {
        api_keys::authenticate(conn, presented.expose_secret())
    })
    .await?;
    let Some(key) = key else {
        if let Some(peer) = peer {
            reject(&state, peer, "invalid_key");
        }
        return Err(ApiError::unauthorized());
    };
    state.remember_api_key(hash, key.clone(), seen);
    from_allowed_address(key, peer)
}

/// 403 when the key has allowed address ranges and the caller is outside them. The
/// address is `http_util::client_ip`'s: the TCP peer's, or the one a trusted proxy
/// (`TRUSTED_PROXIES`) forwarded for.
fn from_allowed_address(key: ApiKey, peer: Option<IpAddr>) -> Result<ServiceKey, ApiError> {
    if key.allows(peer) {
        return Ok(ServiceKey(key));
    }
    let shown = peer.map_or_else(
        || "an unknown address".to_string(),
        |ip| ip.to_canonical().to_string(),
    );
    Err(ApiError::ip_not_allowed(format!(
        "this API key may not be used from {shown}; an admin sets its allowed address ranges on the API keys page"
    )))
}

/// Counts a refused key for its address and in the metrics.
fn reject(state: &AppState, peer: IpAddr, reason: &str) {
    state.rejected_keys.record(peer);
    state
        .metrics
        .service_key_rejections
        .with_label_values(&[reason])
        .inc();
}

/// Audits each address's burst of wrong keys whose window has ended (every burst with
/// `all`, when the server stops): one `service_key_rejected` entry with the count.
pub async fn report_rejected_keys(state: &AppState, all: bool) {
    let ended = state.rejected_keys.take_ended(all);
    if ended.is_empty() {
        return;
    }
    let now = std::time::Instant::now();
    let events: Vec<Event> = ended
        .into_iter()
        .map(|(ip, burst)| {
            let started = crate::db::now()
                - chrono::TimeDelta::from_std(now.duration_since(burst.started))
                    .unwrap_or_default();
            Event::new(Actor::anonymous(&ip.to_string()), "service_key_rejected")
                .failed()
                .origin(&Origin {
                    ip: Some(ip.to_string()),
                    user_agent: None,
                })
                .details(serde_json::json!({
                    "ip": ip.to_string(),
                    "count": burst.count,
                    "first_at": started.and_utc().to_rfc3339(),
                }))
        })
        .collect();
    let count = events.len();
    let written = crate::db::run(&state.pool, move |conn| {
        crate::audit::append_many(conn, events)
    })
    .await;
    if let Err(e) = written {
        tracing::error!(error = %e, entries = count, "rejected-key audit entries could not be written");
    }
}

impl FromRequest for ServiceKey {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let presented = bearer_token(req);
        let peer = crate::http_util::client_ip(req);
        Box::pin(authenticate(state, presented, peer))
    }
}
