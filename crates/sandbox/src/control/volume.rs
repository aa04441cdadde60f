//! `POST /sandbox/_control/volume`: gives an account records to sync. `count` creates
//! that many (replacing what was there), then `delete` of them are deleted and `change`
//! others changed (a new version, updated now). Deterministic: the same calls on a fresh
//! sandbox give the same ids, and the counts answered are exact.

use super::super::http::json;
use super::super::{data, volume, Provider, Sandbox};
use super::bad_request;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::json;

/// Enough for the benchmark's 100,000 with room; records cost nothing until served.
const MAX_COUNT: usize = 5_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeRequest {
    provider: String,
    /// The Klaviyo account id or Kustomer org id.
    account: String,
    model: String,
    count: Option<usize>,
    #[serde(default)]
    change: usize,
    #[serde(default)]
    delete: usize,
}

pub async fn set(sandbox: web::Data<Sandbox>, body: Bytes) -> HttpResponse {
    let req: VolumeRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return bad_request(format!("malformed volume request: {e}")),
    };
    let Some(provider) = Provider::from_name(&req.provider) else {
        return bad_request("provider must be \"klaviyo\" or \"kustomer\"");
    };
    if !volume::MODELS.contains(&(provider, req.model.as_str())) {
        return bad_request(
            "model must be profiles (klaviyo), customers or conversations (kustomer)",
        );
    }
    if !data::account_exists(provider, &req.account) {
        return bad_request("account is not one of the sandbox's accounts");
    }
    if req.count.is_some_and(|c| c > MAX_COUNT) {
        return bad_request(format!("count must be at most {MAX_COUNT}"));
    }
    let mut state = sandbox.lock();
    if let Some(count) = req.count {
        state
            .volume
            .create(provider, &req.account, &req.model, count);
    }
    let Some(set) = state.volume.get_mut(provider, &req.account, &req.model) else {
        return bad_request("the account has no records of this model yet: give a count");
    };
    let (changed, deleted) = set.mutate(req.change, req.delete);
    json(
        StatusCode::OK,
        json!({
            "ok": true,
            "count": set.count,
            "live": set.live(),
            "changed": changed,
            "deleted": deleted,
        }),
    )
}
