//! The token endpoint (RFC 6749 §4.1.3, §4.4, §6): posts (form or JSON, with the
//! provider's extra parameters) with the provider's client authentication; the answer is
//! read by `token_answer`.

use crate::provider_http::{CallError, RetryPolicy};
use crate::providers::{ClientAuth, OAuthApp, Provider, RequestFormat};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

pub use super::token_answer::TokenSet;

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
    with_token_params(&mut form, provider);
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
    let mut form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.expose_secret().to_string()),
    ];
    with_token_params(&mut form, provider);
    retry.run(|| post_token(http, provider, app, &form)).await
}

/// The provider's `token_params` (an `audience`, say), on code exchanges and refreshes.
fn with_token_params<'a>(form: &mut Vec<(&'a str, String)>, provider: &'a Provider) {
    for (name, value) in &provider.token_format.params {
        form.push((name.as_str(), value.clone()));
    }
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
    let request = match provider.token_format.request {
        RequestFormat::Form => request.form(&form),
        RequestFormat::Json => {
            let object: serde_json::Map<String, serde_json::Value> = form
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.into()))
                .collect();
            request.json(&object)
        }
    };
    let body = crate::provider_http::send(request).await?;
    super::token_answer::parse(&body, &provider.token_format)
}

#[cfg(test)]
mod tests {
    use super::*;

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
