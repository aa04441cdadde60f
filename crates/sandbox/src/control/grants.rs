//! `POST /sandbox/_control/grants`: mints grants in bulk, as if that many users had gone
//! through the consent page — each an access token living the given number of seconds and
//! a rotating refresh token — so a benchmark can seed 100,000 connections whose tokens are
//! real here, with staggered expiry. `GET /sandbox/_control/grants` reports how often each
//! grant was refreshed, to prove no connection was refreshed twice.

use super::super::http::json;
use super::super::tokens::Grant;
use super::super::{Provider, Sandbox};
use super::bad_request;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// Grants per call: the answer stays a few megabytes.
const MAX_PER_CALL: usize = 10_000;
/// Longest access-token lifetime a minted grant may ask for (a day).
const MAX_EXPIRES_IN: u64 = 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    provider: String,
    /// The account every minted grant stands for.
    account: String,
    /// One lifetime in seconds per grant to mint.
    expires_in: Vec<u64>,
}

pub async fn mint(sandbox: web::Data<Sandbox>, body: Bytes) -> HttpResponse {
    let req: MintRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return bad_request(format!("malformed grants request: {e}")),
    };
    let Some(provider) = Provider::from_name(&req.provider) else {
        return bad_request("provider must be \"klaviyo\" or \"kustomer\"");
    };
    if req.expires_in.len() > MAX_PER_CALL {
        return bad_request(format!("at most {MAX_PER_CALL} grants per call"));
    }
    if req
        .expires_in
        .iter()
        .any(|s| !(1..=MAX_EXPIRES_IN).contains(s))
    {
        return bad_request(format!(
            "each expires_in must be from 1 to {MAX_EXPIRES_IN} seconds"
        ));
    }
    if req.account.is_empty() || req.account.len() > 200 {
        return bad_request("account must be 1 to 200 characters");
    }
    let grant = Grant {
        client_id: provider.client_id().to_string(),
        account: req.account,
        scopes: provider.default_scopes(),
    };
    let grants: Vec<_> = sandbox.with(provider, |state| {
        req.expires_in
            .iter()
            .map(|secs| {
                let issued = state.tokens.mint(grant.clone(), Duration::from_secs(*secs));
                json!({
                    "access_token": issued.access_token,
                    "refresh_token": issued.refresh_token,
                    "expires_in": issued.expires_in,
                })
            })
            .collect()
    });
    json(StatusCode::OK, json!({ "grants": grants }))
}

/// How often grants were refreshed since start: how many were refreshed at all, the most
/// refreshes any one grant had, and how many rotated refresh tokens came back (a copy used
/// twice: a client refreshed twice from the same token).
pub async fn report(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let provider = match super::provider_param(&req) {
        Ok(Some(provider)) => provider,
        Ok(None) => return bad_request("the provider query parameter is required"),
        Err(response) => return response,
    };
    let counts = sandbox.with(provider, |state| state.tokens.refresh_counts());
    json(StatusCode::OK, json!(counts))
}
