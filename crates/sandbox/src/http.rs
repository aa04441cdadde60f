//! Small wire-level helpers shared by the sandbox handlers: parameter parsing, random
//! tokens, PKCE hashing and JSON answers.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Request parameters by name. A parameter given twice is refused while parsing (RFC 6749
/// §3.1), so one value per name is all a handler ever sees.
pub type Params = HashMap<String, String>;

/// Parses `a=1&b=2` (query string or form body); `Err` names a repeated parameter.
pub fn parse_params(raw: &[u8]) -> Result<Params, String> {
    let mut params = Params::new();
    for (name, value) in url::form_urlencoded::parse(raw) {
        if params.contains_key(name.as_ref()) {
            return Err(format!("parameter '{name}' is repeated"));
        }
        params.insert(name.into_owned(), value.into_owned());
    }
    Ok(params)
}

/// A form-encoded body; other content types are refused, as real token endpoints do.
pub fn form_body(req: &HttpRequest, body: &[u8]) -> Result<Params, String> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err("the body must be application/x-www-form-urlencoded".to_string());
    }
    parse_params(body)
}

/// A parameter's value, treating an empty value as absent.
pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The token of an `Authorization: Bearer …` header (scheme matched case-insensitively).
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `bytes` random bytes from the OS generator, base64url without padding.
pub fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A random id in the 24-hex-digit shape Kustomer uses for its objects.
pub fn random_hex_id() -> String {
    let mut buf = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The PKCE S256 transform: base64url(SHA-256(verifier)) without padding.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Compares secrets without an early exit, so timing does not reveal how much matched.
pub fn secure_eq(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Decodes `%XX` escapes of a URL path segment. Unlike form decoding, `+` stays `+`,
/// which matters for addresses like `jane+news@example.com`.
pub fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A JSON answer with the given status.
pub fn json(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string())
}

/// Unknown paths under /sandbox.
pub async fn not_found() -> HttpResponse {
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": "not_found", "error_description": "No such sandbox endpoint"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(parse_params(b"a=1&a=2").is_err());
        let params = parse_params(b"a=1&b=x+y").unwrap();
        assert_eq!(params["b"], "x y");
    }

    #[test]
    fn pkce_matches_rfc_7636_example() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn percent_decoding_keeps_plus_and_rejects_bad_escapes() {
        assert_eq!(
            percent_decode("jane+news%40example.com").as_deref(),
            Some("jane+news@example.com")
        );
        assert_eq!(percent_decode("bad%4"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
    }

    #[test]
    fn secure_eq_compares_whole_strings() {
        assert!(secure_eq("abc", "abc"));
        assert!(!secure_eq("abc", "abd"));
        assert!(!secure_eq("abc", "abcd"));
    }
}
