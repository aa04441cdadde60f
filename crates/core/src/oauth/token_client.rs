//! The token endpoint (RFC 6749 §4.1.3, §4.4, §6): form posts with the provider's client
//! authentication, and the checks on what comes back.

use crate::provider_http::{CallError, RetryPolicy};
use crate::providers::{ClientAuth, OAuthApp, Provider};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// What a successful token response holds.
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<i64>,
    /// The granted scopes when the provider says; otherwise the requested ones.
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[REDACTED]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

/// Exchanges an authorization code (with the PKCE verifier when the provider uses PKCE).
pub async fn exchange_code(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    provider: &Provider,
    app: &OAuthApp,
    code: &str,
    verifier: Option<&SecretString>,
) -> Result<TokenSet, CallError> {
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", app.redirect_uri.clone()),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier.expose_secret().to_string()));
    }
    // A code is single use, so only failures that never reached the provider's decision
    // (5xx, 429, timeouts) are retried.
    retry.run(|| post_token(http, provider, app, &form)).await
}

/// Client-credentials grant (RFC 6749 §4.4) for machine-to-machine providers.
pub async fn client_credentials(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    provider: &Provider,
    app: &OAuthApp,
) -> Result<TokenSet, CallError> {
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    if !provider.scopes.is_empty() {
        form.push(("scope", provider.scope_string()));
    }
    retry.run(|| post_token(http, provider, app, &form)).await
}

/// Refresh grant (RFC 6749 §6). Only failures that never reached the provider's decision
/// are retried; a provider that rotates refresh tokens answers a lost-and-retried request
/// with invalid_grant, which marks the client for reconnection rather than looping.
pub async fn refresh(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    provider: &Provider,
    app: &OAuthApp,
    refresh_token: &SecretString,
) -> Result<TokenSet, CallError> {
    let form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.expose_secret().to_string()),
    ];
    retry.run(|| post_token(http, provider, app, &form)).await
}

/// Revokes a token at the provider (RFC 7009); any 2xx counts as done.
pub async fn revoke(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    provider: &Provider,
    app: &OAuthApp,
    token: &SecretString,
    hint: &str,
) -> Result<(), CallError> {
    let Some(url) = &provider.revoke_url else {
        return Ok(());
    };
    let form = vec![
        ("token", token.expose_secret().to_string()),
        ("token_type_hint", hint.to_string()),
    ];
    retry
        .run(|| async {
            let mut form: Vec<(&str, String)> = form.clone();
            let request = authenticate(http.post(url), provider, app, &mut form);
            crate::provider_http::send(request.form(&form))
                .await
                .map(|_| ())
        })
        .await
}

/// Adds the provider's client authentication to a token or revocation request.
fn authenticate(
    request: reqwest::RequestBuilder,
    provider: &Provider,
    app: &OAuthApp,
    form: &mut Vec<(&str, String)>,
) -> reqwest::RequestBuilder {
    match provider.client_auth {
        ClientAuth::Basic => request.header("authorization", basic_credentials(app)),
        ClientAuth::Post => {
            form.push(("client_id", app.client_id.clone()));
            form.push((
                "client_secret",
                app.client_secret.expose_secret().to_string(),
            ));
            request
        }
    }
}

/// `application/x-www-form-urlencoded` then Basic, as RFC 6749 §2.3.1 asks.
fn basic_credentials(app: &OAuthApp) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!(
        "{}:{}",
        encode(&app.client_id),
        encode(app.client_secret.expose_secret())
    );
    format!("Basic {}", STANDARD.encode(pair))
}

async fn post_token(
    http: &reqwest::Client,
    provider: &Provider,
    app: &OAuthApp,
    form: &[(&str, String)],
) -> Result<TokenSet, CallError> {
    let mut form: Vec<(&str, String)> = form.to_vec();
    let request = http
        .post(&provider.token_url)
        .header("accept", "application/json");
    let request = authenticate(request, provider, app, &mut form);
    let body = crate::provider_http::send(request.form(&form)).await?;
    parse_token_response(&body)
}

fn parse_token_response(body: &[u8]) -> Result<TokenSet, CallError> {
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|_| CallError::InvalidResponse("the token response is not valid JSON".into()))?;
    let access_token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            CallError::InvalidResponse("the token response has no access_token".into())
        })?;
    match parsed.token_type.as_deref() {
        Some(kind) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(kind) => {
            return Err(CallError::InvalidResponse(format!(
                "the token type {:?} is not supported (only Bearer)",
                crate::provider_http::sanitize(kind, 20)
            )))
        }
        None => {
            return Err(CallError::InvalidResponse(
                "the token response has no token_type".into(),
            ))
        }
    }
    // Some providers send expires_in as a string.
    let expires_in = match parsed.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(TokenSet {
        access_token: SecretString::from(access_token),
        refresh_token: parsed
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(SecretString::from),
        expires_in,
        scope: parsed.scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_are_checked() {
        let ok = parse_token_response(br#"{"access_token":"a","token_type":"bearer","expires_in":"3600","refresh_token":"r","scope":"x y"}"#).unwrap();
        assert_eq!(ok.expires_in, Some(3600));
        assert_eq!(ok.scope.as_deref(), Some("x y"));
        assert!(!format!("{ok:?}").contains("\"a\""));
        for (body, message) in [
            (&b"<html>"[..], "not valid JSON"),
            (br#"{"token_type":"Bearer"}"#, "no access_token"),
            (
                br#"{"access_token":"a","token_type":"mac"}"#,
                "\"mac\" is not supported",
            ),
            (br#"{"access_token":"a"}"#, "no token_type"),
        ] {
            let err = parse_token_response(body).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let app = OAuthApp {
            client_id: "a b".into(),
            client_secret: SecretString::from("p:w"),
            redirect_uri: String::new(),
        };
        let header = basic_credentials(&app);
        let decoded = String::from_utf8(
            STANDARD
                .decode(header.trim_start_matches("Basic "))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(decoded, "a+b:p%3Aw");
    }
}
