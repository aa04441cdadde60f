//! An API reached with a key or a password instead of OAuth, under /sandbox/keyed/{mode}/…:
//! `basic` wants HTTP Basic, `header` wants `Authorization: Klaviyo-API-Key <key>` (Klaviyo's
//! private keys), `query` wants `?api_key=<key>` and no Authorization header at all. Any
//! path answers the account and what was asked, so the proxy can be tested through it.

use super::http::{json, parse_params, secure_eq};
use super::Sandbox;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde_json::json;

pub const KEYED_API_KEY: &str = "sandbox-keyed-key-1";
pub const KEYED_BASIC_USER: &str = "ann@keyed.example";
/// With a space and a colon: both are legal in a Basic password (RFC 7617).
pub const KEYED_BASIC_PASSWORD: &str = "open sesame:1";

/// Calls answered and calls refused, for the tests (`GET /sandbox/_control/keyed`).
#[derive(Default, Clone, Copy, serde::Serialize)]
pub struct KeyedStats {
    pub calls: u64,
    pub rejected: u64,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/{mode}/{tail:.*}", web::to(answer));
}

async fn answer(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (mode, tail) = path.into_inner();
    let accepted = match mode.as_str() {
        "basic" => basic_matches(&req),
        "header" => authorization(&req)
            .is_some_and(|v| secure_eq(v, &format!("Klaviyo-API-Key {KEYED_API_KEY}"))),
        "query" => {
            authorization(&req).is_none() && query_key(&req).as_deref() == Some(KEYED_API_KEY)
        }
        _ => return super::http::not_found().await,
    };
    sandbox.keyed_count(accepted);
    if !accepted {
        return json(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"status": "401", "detail": "Missing or invalid credentials"}]}),
        );
    }
    json(
        StatusCode::OK,
        json!({
            "account": {"id": format!("keyed-{mode}-1"), "name": format!("Keyed {mode} account")},
            "method": req.method().as_str(),
            "path": tail,
        }),
    )
}

fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()
}

fn query_key(req: &HttpRequest) -> Option<String> {
    parse_params(req.query_string().as_bytes())
        .ok()?
        .remove("api_key")
}

fn basic_matches(req: &HttpRequest) -> bool {
    let Some((scheme, encoded)) = authorization(req).and_then(|v| v.split_once(' ')) else {
        return false;
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    scheme.eq_ignore_ascii_case("basic")
        && decoded.is_some_and(|pair| {
            secure_eq(&pair, &format!("{KEYED_BASIC_USER}:{KEYED_BASIC_PASSWORD}"))
        })
}
