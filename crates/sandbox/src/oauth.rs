//! The token, revocation and introspection endpoints of both sandbox OAuth servers
//! (/sandbox/{klaviyo,kustomer}/oauth/…). The consent step lives in `authorize.rs`.

use super::authorize;
use super::control::TokenFault;
use super::data;
use super::http::{form_body, json, param, percent_decode, random_b64, secure_eq, Params};
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

/// Splits and checks a space-separated scope. Klaviyo scopes look like `lists:read`;
/// Kustomer's are undocumented, so any RFC 6749 scope token is accepted.
pub fn parse_scopes(provider: Provider, raw: &str) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in raw.split(' ').filter(|s| !s.is_empty()) {
        let valid = match provider {
            Provider::Klaviyo => scope.split_once(':').is_some_and(|(object, access)| {
                !object.is_empty()
                    && object.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    && matches!(access, "read" | "write")
            }),
            Provider::Kustomer => scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
        };
        if !valid {
            return Err(format!("Unknown scope: {scope}"));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    if provider == Provider::Klaviyo && scopes.is_empty() {
        return Err("At least one scope is required".to_string());
    }
    Ok(scopes)
}

/// Scopes of client-credentials tokens that asked for none.
fn default_scopes(provider: Provider) -> Vec<String> {
    match provider {
        Provider::Klaviyo => [
            "accounts:read",
            "lists:read",
            "segments:read",
            "profiles:read",
        ]
        .map(String::from)
        .to_vec(),
        Provider::Kustomer => Vec::new(),
    }
}

fn token_response(issued: Issued) -> HttpResponse {
    let mut body = json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    });
    if let Some(refresh) = issued.refresh_token {
        body["refresh_token"] = json!(refresh);
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

/// POST /oauth/token. The call is counted and faults are taken under one lock, so counts
/// stay exact however many calls arrive at once.
async fn token(
    sandbox: web::Data<Sandbox>,
    provider: web::Data<Provider>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let provider = **provider;
    let params = form_body(&req, &body);
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
                None => grant(&sandbox, provider, &req, params),
            }
        }
        Preflight::Normal => grant(&sandbox, provider, &req, params),
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
) -> Result<HttpResponse, HttpResponse> {
    let params = params.map_err(|message| invalid_request(&message))?;
    authenticate_client(provider, req, &params)?;
    let client_id = provider.client_id();
    let issued = match required(&params, "grant_type")? {
        "authorization_code" => {
            let code = required(&params, "code")?;
            let redirect_uri = required(&params, "redirect_uri")?;
            let verifier = required(&params, "code_verifier")?;
            sandbox.with(provider, |state| {
                state
                    .tokens
                    .redeem_code(code, client_id, redirect_uri, verifier)
            })
        }
        "refresh_token" => {
            let token = required(&params, "refresh_token")?;
            let scopes = match param(&params, "scope") {
                Some(raw) => Some(
                    parse_scopes(provider, raw)
                        .map_err(|_| grant_error(GrantError::InvalidScope))?,
                ),
                None => None,
            };
            sandbox.with(provider, |state| {
                state.tokens.refresh(token, client_id, scopes)
            })
        }
        "client_credentials" => {
            let scopes = match param(&params, "scope") {
                Some(raw) => parse_scopes(provider, raw).map_err(|message| {
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &message)
                })?,
                None => default_scopes(provider),
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
    issued.map(token_response).map_err(grant_error)
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
mod tests {
    use super::super::test_support::*;
    use super::super::{
        KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET, KUSTOMER_CLIENT_ID, KUSTOMER_CLIENT_SECRET,
    };
    use super::*;

    const ACME_ORG: &str = "5f3a1c9e8b2d4a0017c6e101";

    fn exchange(provider: Provider, code: &str, verifier: &str) -> actix_web::test::TestRequest {
        token_request(
            provider,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
    }

    async fn introspect_active(
        app: &TestApp,
        provider: Provider,
        token: &str,
    ) -> serde_json::Value {
        let path = format!("/sandbox/{}/oauth/introspect", provider.name());
        app.json(post_form(&path, &[("token", token)])).await.1
    }

    #[actix_web::test]
    async fn code_exchange_with_correct_verifier() {
        let app = app(sandbox()).await;
        let body = tokens(&app, Provider::Klaviyo, "GlobexK2").await;
        assert!(str_of(&body, "access_token").starts_with("skla_at_"));
        assert!(str_of(&body, "refresh_token").starts_with("skla_rt_"));
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 60);
        assert_eq!(body["scope"], "accounts:read lists:read segments:read");
        let info = introspect_active(&app, Provider::Klaviyo, &str_of(&body, "access_token")).await;
        assert_eq!(info["active"], true);
        assert_eq!(info["account_id"], "GlobexK2");
    }

    #[actix_web::test]
    async fn wrong_verifier_is_refused() {
        let app = app(sandbox()).await;
        let code = authorize_code(&app, Provider::Klaviyo, "AcmeK1").await;
        let wrong = "x".repeat(43);
        let (status, body) = app.json(exchange(Provider::Klaviyo, &code, &wrong)).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"error": "invalid_grant", "error_description": "Invalid code verifier"})
        );
    }

    #[actix_web::test]
    async fn code_reuse_is_refused_and_revokes_tokens() {
        let app = app(sandbox()).await;
        let code = authorize_code(&app, Provider::Kustomer, ACME_ORG).await;
        let (status, first) = app
            .json(exchange(Provider::Kustomer, &code, VERIFIER))
            .await;
        assert_eq!(status, 200);
        let (status, again) = app
            .json(exchange(Provider::Kustomer, &code, VERIFIER))
            .await;
        assert_eq!(
            (status, str_of(&again, "error").as_str()),
            (400, "invalid_grant")
        );
        let info =
            introspect_active(&app, Provider::Kustomer, &str_of(&first, "access_token")).await;
        assert_eq!(info, json!({"active": false}));
    }

    #[actix_web::test]
    async fn mismatched_redirect_uri_is_refused() {
        let app = app(sandbox()).await;
        let code = authorize_code(&app, Provider::Klaviyo, "AcmeK1").await;
        let req = token_request(
            Provider::Klaviyo,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://app.test/callback"),
                ("code_verifier", VERIFIER),
            ],
        );
        let (status, body) = app.json(req).await;
        assert_eq!(
            (status, str_of(&body, "error").as_str()),
            (400, "invalid_grant")
        );
    }

    #[actix_web::test]
    async fn klaviyo_requires_basic_auth() {
        let app = app(sandbox()).await;
        let body_auth = post_form(
            "/sandbox/klaviyo/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", KLAVIYO_CLIENT_ID),
                ("client_secret", KLAVIYO_CLIENT_SECRET),
            ],
        );
        let resp = app.send(body_auth).await;
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
        let wrong_secret = post_form(
            "/sandbox/klaviyo/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .insert_header(("authorization", basic(KLAVIYO_CLIENT_ID, "nope")));
        let (status, body) = app.json(wrong_secret).await;
        assert_eq!(
            (status, str_of(&body, "error").as_str()),
            (401, "invalid_client")
        );
        assert!(!body.to_string().contains("nope"));
        let missing = post_form(
            "/sandbox/klaviyo/oauth/token",
            &[("grant_type", "client_credentials")],
        );
        assert_eq!(app.send(missing).await.status(), 401);
    }

    #[actix_web::test]
    async fn kustomer_requires_body_auth() {
        let app = app(sandbox()).await;
        let basic_auth = post_form(
            "/sandbox/kustomer/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .insert_header((
            "authorization",
            basic(KUSTOMER_CLIENT_ID, KUSTOMER_CLIENT_SECRET),
        ));
        let (status, body) = app.json(basic_auth).await;
        assert_eq!(
            (status, str_of(&body, "error").as_str()),
            (401, "invalid_client")
        );
        let (status, _) = app
            .json(token_request(
                Provider::Kustomer,
                &[("grant_type", "client_credentials")],
            ))
            .await;
        assert_eq!(status, 200);
    }

    #[actix_web::test]
    async fn refresh_rotates_and_old_token_is_refused() {
        let app = app(sandbox()).await;
        let first = tokens(&app, Provider::Klaviyo, "AcmeK1").await;
        let old = str_of(&first, "refresh_token");
        let refresh = |token: &str| {
            token_request(
                Provider::Klaviyo,
                &[("grant_type", "refresh_token"), ("refresh_token", token)],
            )
        };
        let (status, second) = app.json(refresh(&old)).await;
        assert_eq!(status, 200);
        let new = str_of(&second, "refresh_token");
        assert_ne!(new, old);
        assert_eq!(second["scope"], first["scope"]);
        let (status, body) = app.json(refresh(&old)).await;
        assert_eq!(
            (status, str_of(&body, "error").as_str()),
            (400, "invalid_grant")
        );
        // Reuse detection revoked the family, including the newest refresh token.
        let (status, _) = app.json(refresh(&new)).await;
        assert_eq!(status, 400);
    }

    #[actix_web::test]
    async fn revoke_then_introspect_inactive() {
        let app = app(sandbox()).await;
        for provider in Provider::ALL {
            let account = data::first_account(provider);
            let issued = tokens(&app, provider, account).await;
            let access = str_of(&issued, "access_token");
            assert_eq!(
                introspect_active(&app, provider, &access).await["active"],
                true
            );
            let refresh = str_of(&issued, "refresh_token");
            let req = client_request(
                provider,
                "revoke",
                &[("token", &refresh), ("token_type_hint", "refresh_token")],
            );
            assert_eq!(app.send(req).await.status(), 200);
            assert_eq!(
                introspect_active(&app, provider, &access).await,
                json!({"active": false})
            );
            assert_eq!(
                introspect_active(&app, provider, &refresh).await,
                json!({"active": false})
            );
            // Unknown tokens are fine too.
            let req = client_request(provider, "revoke", &[("token", "never-issued")]);
            assert_eq!(app.send(req).await.status(), 200);
        }
        let stats = app
            .json(
                actix_web::test::TestRequest::get().uri("/sandbox/_control/stats?provider=klaviyo"),
            )
            .await
            .1;
        assert_eq!(stats["revocations"], 2);
    }

    #[actix_web::test]
    async fn revoke_requires_client_auth() {
        let app = app(sandbox()).await;
        let req = post_form("/sandbox/klaviyo/oauth/revoke", &[("token", "x")]);
        assert_eq!(app.send(req).await.status(), 401);
    }

    #[actix_web::test]
    async fn bad_token_requests() {
        let app = app(sandbox()).await;
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[], "invalid_request"),
            (&[("grant_type", "password")], "unsupported_grant_type"),
            (
                &[("grant_type", "authorization_code"), ("code", "x")],
                "invalid_request",
            ),
            (&[("grant_type", "refresh_token")], "invalid_request"),
            (
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "unknown"),
                ],
                "invalid_grant",
            ),
        ];
        for (pairs, error) in cases {
            let (status, body) = app.json(token_request(Provider::Klaviyo, pairs)).await;
            assert_eq!(
                (status, str_of(&body, "error").as_str()),
                (400, error),
                "{pairs:?}"
            );
        }
        let json_body = actix_web::test::TestRequest::post()
            .uri("/sandbox/klaviyo/oauth/token")
            .insert_header((
                "authorization",
                basic(KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET),
            ))
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"grant_type\":\"client_credentials\"}");
        let (status, body) = app.json(json_body).await;
        assert_eq!(
            (status, str_of(&body, "error").as_str()),
            (400, "invalid_request")
        );
        let repeated = token_request(
            Provider::Klaviyo,
            &[("grant_type", "client_credentials"), ("grant_type", "x")],
        );
        assert_eq!(app.json(repeated).await.0, 400);
        let stats = app
            .json(
                actix_web::test::TestRequest::get().uri("/sandbox/_control/stats?provider=klaviyo"),
            )
            .await
            .1;
        assert_eq!(stats["token_calls"]["failed"], 7);
    }

    #[actix_web::test]
    async fn client_credentials_issue_no_refresh_token() {
        let app = app(sandbox()).await;
        let (status, body) = app
            .json(token_request(
                Provider::Klaviyo,
                &[("grant_type", "client_credentials")],
            ))
            .await;
        assert_eq!(status, 200);
        assert!(body.get("refresh_token").is_none());
        assert_eq!(
            body["scope"],
            "accounts:read lists:read segments:read profiles:read"
        );
        let info = introspect_active(&app, Provider::Klaviyo, &str_of(&body, "access_token")).await;
        assert_eq!(info["account_id"], "AcmeK1");
    }

    #[test]
    fn scope_rules() {
        assert!(parse_scopes(Provider::Klaviyo, "lists:read  accounts:read").is_ok());
        assert!(parse_scopes(Provider::Klaviyo, "").is_err());
        assert!(parse_scopes(Provider::Klaviyo, "lists:delete").is_err());
        assert!(parse_scopes(Provider::Klaviyo, "Lists:read").is_err());
        assert_eq!(parse_scopes(Provider::Kustomer, ""), Ok(vec![]));
        assert_eq!(
            parse_scopes(
                Provider::Kustomer,
                "org.user.customer.read org.user.customer.read"
            ),
            Ok(vec!["org.user.customer.read".to_string()])
        );
    }

    #[test]
    fn basic_header_parsing() {
        assert_eq!(
            parse_basic(&basic("a%20b", "s:c")),
            Some(("a b".to_string(), "s:c".to_string()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
