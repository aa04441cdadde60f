//! The control API under /sandbox/_control: fault injection, counters and reset. It has no
//! authentication because it exists for tests and the demo only.

mod grants;
mod volume;
mod webhooks;

use super::http::json;
use super::state::ProviderState;
use super::{Provider, Sandbox};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
pub use faults::{ApiFault, Faults, TokenFault};
use faults::{Armed, RateLimitFault};
use serde::Deserialize;
use serde_json::json;
use stats::Stats;

/// Longest delay a fault may ask for, so a typo cannot hang a test run.
const MAX_DELAY_MS: u64 = 60_000;

pub mod faults;
pub mod stats;
pub mod storm;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/faults", web::post().to(set_faults))
        .route("/stats", web::get().to(stats))
        .route("/reset", web::post().to(reset))
        .route("/webhooks", web::post().to(webhooks::send))
        .route("/volume", web::post().to(volume::set))
        .route("/grants", web::post().to(grants::mint))
        .route("/grants", web::get().to(grants::report))
        .route("/quirks", web::post().to(set_quirks))
        .route("/keyed", web::get().to(keyed_stats));
}

/// Counts an API call and takes the fault it must answer with, if any.
pub fn api_gate(sandbox: &Sandbox, provider: Provider) -> Option<ApiFault> {
    sandbox.with(provider, |state| {
        state.stats.api_calls += 1;
        let fault = state.faults.take_api_fault();
        if matches!(fault, Some(ApiFault::RateLimited { .. })) {
            state.stats.rate_limited += 1;
        }
        fault
    })
}

/// The body of POST /sandbox/_control/faults. Unknown fields are refused so a typo in a
/// test fails loudly instead of silently arming nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    provider: String,
    token_failures: Option<u32>,
    token_fault: Option<TokenFault>,
    api_failures: Option<u32>,
    api_status: Option<u16>,
    rate_limit_next: Option<u32>,
    retry_after_secs: Option<u64>,
    rate_limit_token: Option<bool>,
    authorize_error: Option<String>,
    expire_access_tokens: Option<bool>,
    revoke_all: Option<bool>,
    /// Every failure kind at once, on token and API calls alike (`storm::StormRequest`).
    storm: Option<storm::StormRequest>,
    /// Top-level fields added to every token response until reset.
    token_fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// Throttle API calls past the provider's published budgets (429 with Retry-After).
    enforce_budgets: Option<bool>,
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    json(
        StatusCode::BAD_REQUEST,
        json!({"ok": false, "error": message.into()}),
    )
}

fn is_error_status(status: u16) -> bool {
    (400..=599).contains(&status)
}

/// Checks a fault request completely before anything is armed, so a refused request
/// leaves the sandbox as it was.
fn validate(req: &FaultRequest) -> Result<Provider, String> {
    let provider =
        Provider::from_name(&req.provider).ok_or("provider must be \"klaviyo\" or \"kustomer\"")?;
    if req.token_failures.unwrap_or(0) > 0 && req.token_fault.is_none() {
        return Err("token_failures needs a token_fault".into());
    }
    match &req.token_fault {
        Some(TokenFault::Status { status, .. }) if !is_error_status(*status) => {
            return Err("token_fault.status must be between 400 and 599".into());
        }
        Some(TokenFault::Delay { ms }) if *ms > MAX_DELAY_MS => {
            return Err(format!("token_fault.ms must be at most {MAX_DELAY_MS}"));
        }
        _ => {}
    }
    if req.api_status.is_some_and(|s| !is_error_status(s)) {
        return Err("api_status must be between 400 and 599".into());
    }
    if let Some(storm) = &req.storm {
        if storm.slow_ms > MAX_DELAY_MS {
            return Err(format!("storm.slow_ms must be at most {MAX_DELAY_MS}"));
        }
    }
    if let Some(error) = &req.authorize_error {
        let valid = error.len() <= 64 && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !valid {
            return Err("authorize_error must be an OAuth error code like server_error".into());
        }
    }
    Ok(provider)
}

/// Arms what the request asks for. A count of 0 disarms; a fault without a count is armed
/// for one call.
fn apply(req: FaultRequest, state: &mut ProviderState) {
    let faults = &mut state.faults;
    if let Some(fault) = req.token_fault.clone() {
        let remaining = req.token_failures.unwrap_or(1);
        faults.token = (remaining > 0).then_some(Armed { remaining, fault });
    } else if req.token_failures == Some(0) {
        faults.token = None;
    }
    if req.api_failures.is_some() || req.api_status.is_some() {
        let remaining = req.api_failures.unwrap_or(1);
        let fault = req.api_status.unwrap_or(500);
        faults.api = (remaining > 0).then_some(Armed { remaining, fault });
    }
    if let Some(remaining) = req.rate_limit_next {
        faults.rate_limit = (remaining > 0).then_some(RateLimitFault {
            remaining,
            retry_after_secs: req.retry_after_secs.unwrap_or(1),
            token_calls: req.rate_limit_token.unwrap_or(false),
        });
    }
    if let Some(error) = req.authorize_error {
        faults.authorize_error = (!error.is_empty()).then_some(error);
    }
    if req.expire_access_tokens == Some(true) {
        state.tokens.expire_all_access();
    }
    if req.revoke_all == Some(true) {
        state.tokens.revoke_all();
    }
    if let Some(storm) = req.storm {
        state.faults.storm.arm(storm);
    }
    if let Some(fields) = req.token_fields {
        state.faults.token_fields = fields;
    }
    if let Some(enforce) = req.enforce_budgets {
        state.faults.enforce_budgets = enforce;
    }
}

/// Counts a call against its budgets' windows: Retry-After seconds when it is over one
/// that is enforced.
pub fn over_budget(state: &mut ProviderState, over: Option<u64>) -> Option<u64> {
    let limited = over.filter(|_| state.faults.enforces_budgets());
    if limited.is_some() {
        state.stats.rate_limited += 1;
    }
    limited
}

async fn set_faults(sandbox: web::Data<Sandbox>, body: Bytes) -> HttpResponse {
    let req: FaultRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return bad_request(format!("malformed fault request: {e}")),
    };
    let provider = match validate(&req) {
        Ok(provider) => provider,
        Err(message) => return bad_request(message),
    };
    sandbox.with(provider, |state| apply(req, state));
    json(StatusCode::OK, json!({"ok": true}))
}

/// The body of POST /sandbox/_control/quirks: the provider's token-endpoint behaviour,
/// replacing what was set before (`{}` for none).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuirksRequest {
    provider: String,
    quirks: super::quirks::Quirks,
}

async fn set_quirks(sandbox: web::Data<Sandbox>, body: Bytes) -> HttpResponse {
    let req: QuirksRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return bad_request(format!("malformed quirks request: {e}")),
    };
    let Some(provider) = Provider::from_name(&req.provider) else {
        return bad_request("provider must be \"klaviyo\" or \"kustomer\"");
    };
    if let Err(message) = req.quirks.check() {
        return bad_request(message);
    }
    sandbox.with(provider, |state| state.quirks = req.quirks);
    json(StatusCode::OK, json!({"ok": true}))
}

/// Calls answered and refused by the keyed API (/sandbox/keyed).
async fn keyed_stats(sandbox: web::Data<Sandbox>) -> HttpResponse {
    let stats = sandbox.lock().keyed;
    json(StatusCode::OK, json!(stats))
}

/// The `provider` query parameter; `Ok(None)` when absent.
fn provider_param(req: &HttpRequest) -> Result<Option<Provider>, HttpResponse> {
    let params = super::http::parse_params(req.query_string().as_bytes()).map_err(bad_request)?;
    match params.get("provider") {
        None => Ok(None),
        Some(name) => Provider::from_name(name)
            .map(Some)
            .ok_or_else(|| bad_request("provider must be \"klaviyo\" or \"kustomer\"")),
    }
}

async fn stats(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let provider = match provider_param(&req) {
        Ok(Some(provider)) => provider,
        Ok(None) => return bad_request("the provider query parameter is required"),
        Err(response) => return response,
    };
    let body = sandbox.with(provider, |state| {
        json!({
            "token_calls": state.stats.token_calls,
            "revocations": state.stats.revocations,
            "api_calls": state.stats.api_calls,
            "rate_limited": state.stats.rate_limited,
            "live_access_tokens": state.tokens.live_access_tokens(),
            "live_refresh_tokens": state.tokens.live_refresh_tokens(),
            "storm_served": state.faults.storm.served.clone(),
            "org_calls": state.stats.org_calls.clone(),
        })
    });
    json(StatusCode::OK, body)
}

/// Clears faults, quirks, counters and rate windows (of one provider with `?provider=`, else of
/// both). Issued tokens and Kustomer data stay.
async fn reset(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let only = match provider_param(&req) {
        Ok(only) => only,
        Err(response) => return response,
    };
    let mut state = sandbox.lock();
    if only.is_none() {
        state.keyed = Default::default();
    }
    for provider in Provider::ALL {
        if only.is_none_or(|p| p == provider) {
            let provider_state = state.provider(provider);
            provider_state.faults = Faults::default();
            provider_state.stats = Stats::default();
            provider_state.windows.clear();
            provider_state.quirks = Default::default();
            if provider == Provider::Kustomer {
                state.kustomer_data.clear_note_windows();
            }
        }
    }
    json(StatusCode::OK, json!({"ok": true}))
}

#[cfg(test)]
mod tests;
