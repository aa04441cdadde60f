//! The metered pass-through: a service's request forwarded to the provider's API with the
//! client's fresh token and the provider's fixed headers, retried on 429/5xx (idempotent
//! methods only, honouring Retry-After), its answer streamed back, and the call recorded.

use crate::oauth::credential::Credential;
use crate::oauth::token_cache::{CachedToken, FreshToken};
use crate::provider_http::RetryPolicy;
use crate::providers::Provider;
use crate::state::AppState;
use crate::usage;
use std::time::{Duration, Instant};

/// Request headers never passed on: hop-by-hop ones (RFC 9110 §7.6.1), the caller's own
/// credentials, and those the HTTP client sets itself.
const DROPPED_REQUEST_HEADERS: [&str; 13] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
    "cookie",
    "x-csrf-token",
];

/// Answer headers not passed back (hop-by-hop, and cookies of the provider's domain).
const DROPPED_RESPONSE_HEADERS: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "trailer",
    "upgrade",
    "set-cookie",
    "content-length",
];

/// Longest Retry-After honoured inside one proxied request.
const MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("the path must stay inside the provider's API (no '..', '//', '\\' or absolute URLs)")]
    Escapes,
}

/// The provider URL for `tail` (the part after `/api/v1/proxy/{client_id}/`) and the
/// caller's query string. Anything that could leave the API base is refused, decoded or not.
pub fn target_url(provider: &Provider, tail: &str, query: &str) -> Result<url::Url, PathError> {
    let decoded = percent_decode(tail);
    let escapes = tail.contains('\\')
        || decoded.contains('\\')
        || tail.starts_with('/')
        || tail.contains("//")
        || decoded.contains("//")
        || decoded.contains("://")
        || decoded
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
        || decoded.chars().any(char::is_control);
    if escapes {
        return Err(PathError::Escapes);
    }
    let base = provider.api_base_url.trim_end_matches('/');
    let mut url = url::Url::parse(&format!("{base}/{tail}")).map_err(|_| PathError::Escapes)?;
    if !url.as_str().starts_with(base) {
        return Err(PathError::Escapes);
    }
    url.set_query((!query.is_empty()).then_some(query));
    Ok(url)
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A request as the service sent it.
pub struct Outgoing {
    pub method: reqwest::Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    /// Held whole so a retry can send it again.
    pub body: actix_web::web::Bytes,
}

/// What came back, and whether a 429 was seen on the way.
pub struct Answer {
    pub response: reqwest::Response,
    pub rate_limited: bool,
}

fn is_idempotent(method: &reqwest::Method) -> bool {
    matches!(
        *method,
        reqwest::Method::GET
            | reqwest::Method::HEAD
            | reqwest::Method::PUT
            | reqwest::Method::DELETE
            | reqwest::Method::OPTIONS
    )
}

/// Sends the request with the client's credential, retrying 429/5xx for idempotent methods
/// with exponential backoff, or the provider's Retry-After when it says so. A retry is not
/// made when the token would have expired by then: the provider would answer 401, which
/// reads as a revoked grant. The caller gets the 429 (with its Retry-After) instead and
/// comes back for a fresh token.
pub async fn forward(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    provider: &Provider,
    token: &FreshToken,
    outgoing: &Outgoing,
) -> Result<Answer, reqwest::Error> {
    let credential = Credential::of(provider, token);
    let url = credential.url(&outgoing.url);
    let mut rate_limited = false;
    let mut attempt = 0;
    loop {
        let mut request = http.request(outgoing.method.clone(), url.clone());
        for (name, value) in &outgoing.headers {
            let dropped = DROPPED_REQUEST_HEADERS.contains(&name.as_str())
                || name.eq_ignore_ascii_case(credential.header_name());
            if !dropped {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        for (name, value) in &provider.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = credential
            .apply(request)
            .body(outgoing.body.clone())
            .send()
            .await
            // The URL may carry a query-parameter key: errors, which get logged, must not.
            .map_err(reqwest::Error::without_url)?;
        let status = response.status();
        rate_limited |= status.as_u16() == 429;
        let retryable = status.as_u16() == 429 || status.is_server_error();
        if !retryable || !is_idempotent(&outgoing.method) || attempt >= retry.max_retries {
            return Ok(Answer {
                response,
                rate_limited,
            });
        }
        let wait = wait_before_retry(retry, attempt, &response);
        if expires_within(token, wait) {
            return Ok(Answer {
                response,
                rate_limited,
            });
        }
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// Why a call made for a client got no answer from the provider.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Its rate budget had no room within the wait allowed; nothing was sent.
    #[error("{0}")]
    OverBudget(crate::budgets::OverBudget),
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// `forward` for a client, paced and metered: the call first waits for room in the
/// provider's rate budget (`budgets`); every provider call made for a client (proxied, a
/// typed operation, a sync page) is recorded in usage under the endpoint family of
/// `path`, and the client's last-used time moves.
pub async fn forward_metered(
    state: &AppState,
    entry: &CachedToken,
    provider: &Provider,
    outgoing: &Outgoing,
    path: &str,
) -> Result<Answer, ForwardError> {
    let paced = crate::budgets::Call {
        provider: &provider.name,
        budgets: &provider.rate_budgets,
        client_id: &entry.client.id,
        account_id: &entry.client.provider_account_id,
        path,
    };
    let labels = [provider.name.as_str()];
    match state.budgets.pace(&paced).await {
        Ok(crate::budgets::Pace::Waited(_)) => {
            state.metrics.budget_delays.with_label_values(&labels).inc()
        }
        Ok(_) => {}
        Err(over) => {
            state
                .metrics
                .budget_refusals
                .with_label_values(&labels)
                .inc();
            tracing::info!(provider = %provider.name, budget = %over.budget, retry_after = over.retry_after, "provider call refused to stay under its rate budget");
            return Err(ForwardError::OverBudget(over));
        }
    }
    let started = Instant::now();
    let answer = forward(state.http(), &state.retry, provider, &entry.token, outgoing).await;
    if let Ok(answer) = &answer {
        let response = &answer.response;
        state
            .budgets
            .observe(&paced, response.status().as_u16(), response.headers());
    }
    let status = answer
        .as_ref()
        .map_or(502, |a| a.response.status().as_u16());
    let rate_limited = answer.as_ref().is_ok_and(|a| a.rate_limited);
    state.usage.record(usage::Call {
        client_id: entry.client.id.clone(),
        user_id: entry.client.owner_user_id.clone(),
        ..usage::Call::ended(&provider.name, path, status, rate_limited, started)
    });
    state.tokens.touch(entry);
    Ok(answer?)
}

/// Whether the token stops working within `wait` (and a second to spare for the call).
fn expires_within(token: &FreshToken, wait: Duration) -> bool {
    let FreshToken::Bearer {
        expires_at: Some(expires_at),
        ..
    } = token
    else {
        return false;
    };
    let wait = chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
    *expires_at <= crate::db::now() + wait + chrono::TimeDelta::seconds(1)
}

/// Retry-After when the provider gave one (bounded), else exponential backoff with jitter.
fn wait_before_retry(
    retry: &RetryPolicy,
    attempt: usize,
    response: &reqwest::Response,
) -> Duration {
    let told = crate::provider_http::retry_after(response.headers());
    let backoff = retry.min_delay * 2u32.saturating_pow(attempt as u32);
    let jitter =
        Duration::from_millis(rand::random::<u64>() % (retry.min_delay.as_millis() as u64 + 1));
    match told {
        Some(wait) => wait.min(MAX_WAIT),
        None => (backoff + jitter).min(retry.max_delay),
    }
}

/// Whether an answer header goes back to the service.
pub fn passes_back(name: &str) -> bool {
    !DROPPED_RESPONSE_HEADERS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        let registry = crate::providers::Registry::load(
            &std::collections::HashMap::<String, String>::new(),
            "http://x",
            &crate::providers::Endpoints::Sandbox {
                base: "http://hub.test".into(),
            },
        )
        .unwrap();
        (*registry.get("klaviyo").unwrap()).clone()
    }

    #[test]
    fn paths_stay_inside_the_api() {
        let p = provider();
        let ok = target_url(&p, "api/lists", "page%5Bcursor%5D=abc").unwrap();
        assert_eq!(
            ok.as_str(),
            "http://hub.test/sandbox/klaviyo/api/lists?page%5Bcursor%5D=abc"
        );
        for bad in [
            "../admin",
            "api/../../admin",
            "%2e%2e/admin",
            "api/%2E%2E/%2E%2E/x",
            "/etc/passwd",
            "api//evil.example",
            "http://evil.example/x",
            "https:%2F%2Fevil.example",
            "api\\..\\x",
            "api/%5C..%5Cx",
            "./api",
        ] {
            assert_eq!(target_url(&p, bad, ""), Err(PathError::Escapes), "{bad}");
        }
    }
}
