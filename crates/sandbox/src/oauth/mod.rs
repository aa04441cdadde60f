//! The token, revocation and introspection endpoints of both sandbox OAuth servers
//! (/sandbox/{klaviyo,kustomer}/oauth/…). The consent step lives in `authorize.rs`.

use super::authorize;
use super::control::TokenFault;
use super::data;
use super::http::{form_body, json, param, percent_decode, random_b64, secure_eq, Params};
use super::quirks::{json_params, Quirks};
use super::tokens::{GrantError, Issued};
use super::{Provider, Sandbox};
use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use serde_json::json;
use std::time::Duration;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/authorize", web::get().to(authorize::show))
        .route("/authorize", web::post().to(authorize::decide))
        .route("/token", web::post().to(token))
        .route("/revoke", web::post().to(revoke))
        .route("/introspect", web::post().to(introspect));
}

/// Either arm of a handler's result; both are complete answers.
fn merge(result: Result<HttpResponse, HttpResponse>) -> HttpResponse {
    result.unwrap_or_else(|response| response)
}

/// An OAuth error answer (RFC 6749 §5.2). Token answers must never be cached.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .content_type("application/json")
        .body(json!({"error": error, "error_description": description}).to_string())
}

fn invalid_request(description: &str) -> HttpResponse {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// 401 invalid_client; with a Basic challenge where Basic is the expected method
/// (RFC 6749 §5.2).
fn invalid_client(provider: Provider, description: &str) -> HttpResponse {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    if provider == Provider::Klaviyo {
        let challenge = format!("Basic realm=\"{}\"", provider.display_name());
        if let Ok(value) = header::HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, HttpResponse> {
    param(params, name).ok_or_else(|| invalid_request(&format!("{name} is required")))
}

/// `id:secret` from an HTTP Basic header; both halves are form-encoded (RFC 6749 §2.3.1).
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form_decode = |s: &str| percent_decode(&s.replace('+', " "));
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Klaviyo takes client credentials only as HTTP Basic; Kustomer only in the body. Sending
/// them the other way (or both ways, which RFC 6749 §2.3 forbids) is refused, so a client
/// that authenticates the wrong way fails here as it would against the real service.
fn authenticate_client(
    provider: Provider,
    req: &HttpRequest,
    params: &Params,
) -> Result<(), HttpResponse> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let body_secret = param(params, "client_secret");
    let (id, secret) = match provider {
        Provider::Klaviyo => {
            if body_secret.is_some() {
                return Err(invalid_client(
                    provider,
                    "Client credentials must be sent with HTTP Basic authentication, not in the body",
                ));
            }
            header.and_then(parse_basic).ok_or_else(|| {
                invalid_client(provider, "HTTP Basic client authentication is required")
            })?
        }
        Provider::Kustomer => {
            if header.is_some() {
                return Err(invalid_client(
                    provider,
                    "Send client_id and client_secret in the request body, not in a header",
                ));
            }
            match (param(params, "client_id"), body_secret) {
                (Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
                _ => {
                    return Err(invalid_client(
                        provider,
                        "client_id and client_secret are required in the request body",
                    ))
                }
            }
        }
    };
    let body_id_differs = param(params, "client_id").is_some_and(|body_id| body_id != id);
    if body_id_differs
        || id != provider.client_id()
        || !secure_eq(&secret, provider.client_secret())
    {
        return Err(invalid_client(provider, "Client authentication failed"));
    }
    Ok(())
}

fn token_response(
    quirks: &Quirks,
    issued: Issued,
    extra: serde_json::Map<String, serde_json::Value>,
) -> HttpResponse {
    let mut body = quirks.answer(issued);
    for (name, value) in extra {
        body[name] = value;
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .content_type("application/json")
        .body(body.to_string())
}

fn grant_error(error: GrantError) -> HttpResponse {
    match error {
        GrantError::InvalidGrant(description) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
        }
        GrantError::InvalidScope => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The requested scope exceeds the scope originally granted",
        ),
    }
}

fn too_many_requests(retry_after_secs: u64) -> HttpResponse {
    let mut response = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests; retry later",
    );
    if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The broken answer of an armed token fault; `None` for a delay, which answers normally
/// once it has waited. Nothing is issued or consumed: the client must cope with the broken
/// answer while its grant stays as it was.
fn fault_response(provider: Provider, fault: TokenFault, expires_in: u64) -> Option<HttpResponse> {
    let ok_json = |body: String| {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("application/json")
            .body(body)
    };
    let response = match fault {
        TokenFault::Status { status, error } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let error = error.unwrap_or_else(|| default_error(status).to_string());
            oauth_error(status, &error, "Injected by the sandbox control API")
        }
        TokenFault::InvalidJson => ok_json("{\"access_token\": \"<html>Bad Gateway".to_string()),
        TokenFault::MissingAccessToken => {
            ok_json(json!({"token_type": "Bearer", "expires_in": expires_in}).to_string())
        }
        TokenFault::TokenType { value } => {
            // Look-alike tokens the sandbox never stored: they open nothing.
            let prefix = provider.token_prefix();
            ok_json(
                json!({
                    "access_token": format!("{prefix}_at_{}", random_b64(32)),
                    "token_type": value,
                    "expires_in": expires_in,
                    "refresh_token": format!("{prefix}_rt_{}", random_b64(32)),
                    "scope": "",
                })
                .to_string(),
            )
        }
        TokenFault::Delay { .. } => return None,
    };
    Some(response)
}

fn default_error(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "invalid_client",
        400..=499 => "invalid_request",
        503 => "temporarily_unavailable",
        _ => "server_error",
    }
}

/// What the token endpoint must do before looking at the request.
enum Preflight {
    Normal,
    RateLimited(u64),
    Fault(TokenFault),
}

/// The parameters of a JSON token request (a provider with `json_requests`); a form is
/// refused as such a provider refuses it.
fn json_body(req: &HttpRequest, body: &[u8]) -> Result<Params, String> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("application/json"));
    if !is_json {
        return Err("the body must be application/json".to_string());
    }
    json_params(body)
}

/// POST /oauth/token. The call is counted and faults are taken under one lock, so counts
/// stay exact however many calls arrive at once.
async fn token(
    sandbox: web::Data<Sandbox>,
    provider: web::Data<Provider>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let provider = **provider;
    let quirks = sandbox.with(provider, |state| state.quirks.clone());
    let params = if quirks.json_requests {
        json_body(&req, &body)
    } else {
        form_body(&req, &body)
    };
    let grant_type = params
        .as_ref()
        .ok()
        .and_then(|p| param(p, "grant_type"))
        .map(str::to_string);
    let (preflight, expires_in) = sandbox.with(provider, |state| {
        state.stats.count_token_call(grant_type.as_deref());
        let preflight = if let Some(secs) = state.faults.take_token_rate_limit() {
            state.stats.rate_limited += 1;
            Preflight::RateLimited(secs)
        } else {
            state
                .faults
                .take_token_fault()
                .map_or(Preflight::Normal, Preflight::Fault)
        };
        (preflight, state.tokens.expires_in())
    });
    let outcome = match preflight {
        Preflight::RateLimited(secs) => Err(too_many_requests(secs)),
        Preflight::Fault(fault) => {
            if let TokenFault::Delay { ms } = fault {
                actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
            }
            match fault_response(provider, fault, expires_in) {
                Some(broken) => Err(broken),
                None => grant(&sandbox, provider, &req, params, &quirks),
            }
        }
        Preflight::Normal => grant(&sandbox, provider, &req, params, &quirks),
    };
    if outcome.is_err() {
        sandbox.with(provider, |state| state.stats.token_calls.failed += 1);
    }
    merge(outcome)
}

/// Authenticates the client and runs the grant; `Err` is a refusal.
fn grant(
    sandbox: &Sandbox,
    provider: Provider,
    req: &HttpRequest,
    params: Result<Params, String>,
    quirks: &Quirks,
) -> Result<HttpResponse, HttpResponse> {
    let params = params.map_err(|message| invalid_request(&message))?;
    authenticate_client(provider, req, &params)?;
    let client_id = provider.client_id();
    let grant_type = required(&params, "grant_type")?;
    if matches!(grant_type, "authorization_code" | "refresh_token") {
        if let Some(missing) = quirks.missing_param(&params) {
            return Err(invalid_request(&missing));
        }
    }
    let issued = match grant_type {
        "authorization_code" => {
            let code = required(&params, "code")?;
            let redirect_uri = required(&params, "redirect_uri")?;
            let verifier = required(&params, "code_verifier")?;
            sandbox.with(provider, |state| {
                let issued = state
                    .tokens
                    .redeem_code(code, client_id, redirect_uri, verifier)?;
                Ok(state.quirks.adjust(&mut state.tokens, issued))
            })
        }
        "refresh_token" => {
            let token = required(&params, "refresh_token")?;
            let scopes = match param(&params, "scope") {
                Some(raw) => Some(
                    authorize::parse_scopes(provider, raw)
                        .map_err(|_| grant_error(GrantError::InvalidScope))?,
                ),
                None => None,
            };
            sandbox.with(provider, |state| {
                if let Some(only) = &state.quirks.grant_only {
                    state.tokens.narrow(token, only);
                }
                let issued = state.tokens.refresh(token, client_id, scopes)?;
                Ok(state.quirks.adjust(&mut state.tokens, issued))
            })
        }
        "client_credentials" => {
            let scopes = match param(&params, "scope") {
                Some(raw) => authorize::parse_scopes(provider, raw).map_err(|message| {
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &message)
                })?,
                None => provider.default_scopes(),
            };
            let grant = super::tokens::Grant {
                client_id: client_id.to_string(),
                account: data::first_account(provider).to_string(),
                scopes,
            };
            Ok(sandbox.with(provider, |state| state.tokens.client_credentials(grant)))
        }
        _ => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials",
            ))
        }
    };
    let extra = sandbox.with(provider, |state| state.faults.token_fields.clone());
    issued
        .map(|issued| token_response(quirks, issued, extra))
        .map_err(grant_error)
}

/// POST /oauth/revoke (RFC 7009). Unknown tokens still get 200: revocation only promises
/// that the token no longer works.
async fn revoke(
    sandbox: web::Data<Sandbox>,
    provider: web::Data<Provider>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let provider = **provider;
    merge((|| {
        let params = form_body(&req, &body).map_err(|message| invalid_request(&message))?;
        authenticate_client(provider, &req, &params)?;
        let token = required(&params, "token")?;
        sandbox.with(provider, |state| {
            state.tokens.revoke(token, provider.client_id());
            state.stats.revocations += 1;
        });
        Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish())
    })())
}

/// POST /oauth/introspect (RFC 7662-like, without client authentication: tests only).
async fn introspect(
    sandbox: web::Data<Sandbox>,
    provider: web::Data<Provider>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let provider = **provider;
    merge((|| {
        let params = form_body(&req, &body).map_err(|message| invalid_request(&message))?;
        let token = required(&params, "token")?;
        let answer = match sandbox.with(provider, |state| state.tokens.introspect(token)) {
            Some(info) => json!({
                "active": true,
                "account_id": info.grant.account,
                "client_id": info.grant.client_id,
                "scope": info.grant.scope_string(),
                "token_type": info.token_type,
                "exp": info.exp,
                "iat": info.iat,
            }),
            None => json!({"active": false}),
        };
        Ok(json(StatusCode::OK, answer))
    })())
}

#[cfg(test)]
mod tests;
