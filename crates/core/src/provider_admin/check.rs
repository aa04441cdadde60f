//! "Check configuration": the provider's authorize URL answers, and its token endpoint
//! answers a made-up code with an OAuth error (a client-credentials provider: issues a
//! token). Nothing is stored; the secret goes only to the token endpoint, as in a connect.

use crate::oauth::{pkce, token_client};
use crate::provider_http::{CallError, RetryPolicy};
use crate::providers::{AuthType, OAuthApp, Provider};
use secrecy::ExposeSecret;

/// One checked step and what came of it, in words for the page.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub steps: Vec<Step>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.passed)
    }
}

fn step(name: &'static str, passed: bool, detail: impl Into<String>) -> Step {
    Step {
        name,
        passed,
        detail: detail.into(),
    }
}

/// The code sent to the token endpoint: no provider issued it.
const MADE_UP_CODE: &str = "connecthub-configuration-check";

pub async fn run(http: &reqwest::Client, retry: &RetryPolicy, provider: &Provider) -> Report {
    // One try each: the page shows what the provider answers now.
    let retry = RetryPolicy {
        max_retries: 0,
        ..retry.clone()
    };
    let Some(app) = provider.app.as_ref() else {
        return Report {
            steps: vec![step(
                "Credentials",
                false,
                "No client id and secret yet: set them first.",
            )],
        };
    };
    let steps = match provider.auth_type {
        AuthType::Oauth2 => vec![
            authorize(http, provider, app).await,
            token(http, &retry, provider, app).await,
        ],
        AuthType::ClientCredentials => vec![client_credentials(http, &retry, provider, app).await],
        AuthType::ApiKey | AuthType::Basic => vec![step(
            "Credentials",
            true,
            "API keys and passwords are checked against the provider when a connection is added.",
        )],
    };
    Report { steps }
}

/// The authorize URL a connect would open, with a state no one will redeem.
fn authorize_url(provider: &Provider, app: &OAuthApp) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(&provider.authorize_url)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", &app.redirect_uri)
            .append_pair("state", pkce::random_token().expose_secret());
        if !provider.scopes.is_empty() {
            query.append_pair("scope", &provider.scope_string());
        }
        if provider.pkce {
            query
                .append_pair("code_challenge", &pkce::challenge(&pkce::random_token()))
                .append_pair("code_challenge_method", "S256");
        }
        for (name, value) in &provider.authorize_params {
            query.append_pair(name, value);
        }
    }
    Ok(url)
}

async fn authorize(http: &reqwest::Client, provider: &Provider, app: &OAuthApp) -> Step {
    const NAME: &str = "Authorize URL";
    let Ok(url) = authorize_url(provider, app) else {
        return step(NAME, false, "The authorize URL is not a valid URL.");
    };
    match http.get(url).send().await {
        Ok(response) if response.status().is_server_error() => step(
            NAME,
            false,
            format!(
                "Answered HTTP {}: the provider has a problem.",
                response.status().as_u16()
            ),
        ),
        Ok(response) => step(
            NAME,
            true,
            format!("Answered HTTP {}.", response.status().as_u16()),
        ),
        Err(e) => step(
            NAME,
            false,
            format!("No answer: {}.", CallError::from_transport(&e)),
        ),
    }
}

async fn token(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    provider: &Provider,
    app: &OAuthApp,
) -> Step {
    const NAME: &str = "Token endpoint";
    let verifier = provider.pkce.then(pkce::random_token);
    let answer =
        token_client::exchange_code(http, retry, provider, app, MADE_UP_CODE, verifier.as_ref())
            .await;
    match answer {
        Err(CallError::Rejected { status, code, .. })
            if matches!(code.as_str(), "invalid_grant" | "invalid_request") =>
        {
            step(
                NAME,
                true,
                format!("Refused a made-up code with {code} (HTTP {status}), as it should: the client id and secret were accepted."),
            )
        }
        Err(CallError::Rejected { status, code, .. })
            if matches!(code.as_str(), "invalid_client" | "unauthorized_client") =>
        {
            step(
                NAME,
                false,
                format!("Refused the client id or secret: {code} (HTTP {status})."),
            )
        }
        Err(CallError::Rejected { status, code, .. }) if code.starts_with("http_") => step(
            NAME,
            false,
            format!("Answered HTTP {status} without an OAuth error: is the token URL right?"),
        ),
        Err(CallError::Rejected { status, code, .. }) => step(
            NAME,
            false,
            format!("Answered {code} (HTTP {status})."),
        ),
        Err(e) => step(NAME, false, format!("No usable answer: {e}.")),
        Ok(_) => step(
            NAME,
            false,
            "Issued a token for a made-up code: this is not a trustworthy token endpoint.",
        ),
    }
}

async fn client_credentials(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    provider: &Provider,
    app: &OAuthApp,
) -> Step {
    const NAME: &str = "Token endpoint";
    match token_client::client_credentials(http, retry, provider, app).await {
        Ok(_) => step(NAME, true, "Issued a token for these credentials."),
        Err(e) => step(NAME, false, format!("Refused: {e}.")),
    }
}
