//! Typed provider operations: Kustomer customers, conversations, notes, messages and teams;
//! Klaviyo account, lists, segments and profile counts. Each call is made as one client,
//! with its fresh token, through the metered proxy (`proxy::forward_metered`), so retries,
//! fixed headers and usage recording are the same as for proxied calls.

pub mod klaviyo;
pub mod kustomer;
pub mod synced;

use crate::db::DbError;
use crate::oauth::lifecycle::{self, TokenError};
use crate::oauth::token_cache::CachedToken;
use crate::providers::Provider;
use crate::proxy::{self, Outgoing};
use crate::state::AppState;
use serde_json::Value;
use std::sync::Arc;

/// At most this many pages are read when a list is paged through.
const MAX_PAGES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("client not found")]
    ClientNotFound,
    #[error("this is a {actual} client; the operation needs a {expected} client")]
    WrongProvider {
        expected: &'static str,
        actual: String,
    },
    /// The input was refused before anything was sent to the provider.
    #[error("{0}")]
    Invalid(String),
    /// The provider answered 404 for this kind of thing.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the provider is rate limiting this account")]
    RateLimited { retry_after: Option<u64> },
    /// connecthub held the call back: its rate budget had no room in time.
    #[error("{0}")]
    OverBudget(crate::budgets::OverBudget),
    /// A 4xx other than 404 and 429, with the provider's own explanation.
    #[error("the provider refused the request (HTTP {status}): {detail}")]
    Rejected { status: u16, detail: String },
    /// No answer, a 5xx after retries, or an answer that cannot be read.
    #[error("{0}")]
    Unavailable(String),
    /// The credential was refused: the account must be connected again.
    #[error("the provider no longer accepts the credential; reconnect the account")]
    Unauthorized,
    /// Another request is creating the same thing right now.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Storage(#[from] DbError),
}

crate::from_run_error!(OpError, Storage);

/// Runs `op` as the client, after checking that it belongs to `provider`.
pub async fn run<T>(
    state: &AppState,
    client_id: &str,
    provider: &'static str,
    op: impl AsyncFnOnce(&Caller<'_>) -> Result<T, OpError>,
) -> Result<T, OpError> {
    let caller = Caller::new(state, client_id, provider).await?;
    op(&caller).await
}

/// One client's access to its provider's API.
pub struct Caller<'a> {
    state: &'a AppState,
    entry: Arc<CachedToken>,
    provider: Arc<Provider>,
}

impl<'a> Caller<'a> {
    /// The client with a fresh token (refreshed first when needed), if it belongs to
    /// `provider`. Nothing is sent for a client of another provider.
    pub async fn new(
        state: &'a AppState,
        client_id: &str,
        provider: &'static str,
    ) -> Result<Self, OpError> {
        let entry = lifecycle::token_for_service(state, client_id)
            .await?
            .ok_or(OpError::ClientNotFound)?;
        if entry.client.provider != provider {
            return Err(OpError::WrongProvider {
                expected: provider,
                actual: entry.client.provider.clone(),
            });
        }
        let provider = state
            .providers()
            .for_connection(provider, &entry.client.connection_values())
            .map_err(|e| OpError::Unavailable(e.to_string()))?;
        Ok(Self {
            state,
            entry,
            provider,
        })
    }

    /// The client with a fresh token, whatever its provider (syncs are defined per provider).
    pub async fn for_client(state: &'a AppState, client_id: &str) -> Result<Self, OpError> {
        let entry = lifecycle::token_for_service(state, client_id)
            .await?
            .ok_or(OpError::ClientNotFound)?;
        let name = entry.client.provider.clone();
        let provider = state
            .providers()
            .for_connection(&name, &entry.client.connection_values())
            .map_err(|e| OpError::Unavailable(e.to_string()))?;
        Ok(Self {
            state,
            entry,
            provider,
        })
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    pub fn client(&self) -> &crate::clients::Client {
        &self.entry.client
    }

    pub fn state(&self) -> &AppState {
        self.state
    }

    /// `GET path` (relative to the API base, may carry a query); `what` names the thing a
    /// 404 means is missing.
    pub async fn get(&self, path: &str, what: &'static str) -> Result<Value, OpError> {
        self.call(reqwest::Method::GET, path, None, what).await
    }

    /// Sends `body` as JSON with `method` and reads the JSON answer.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        what: &'static str,
    ) -> Result<Value, OpError> {
        self.call(method, path, Some(body), what).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        what: &'static str,
    ) -> Result<Value, OpError> {
        let response = self.respond(method, path, body).await?;
        self.read(response, what).await.map(|(json, _)| json)
    }

    /// `GET path` with the answer's headers (pagination links, rate-limit budgets).
    pub async fn get_page(
        &self,
        path: &str,
        what: &'static str,
    ) -> Result<(Value, reqwest::header::HeaderMap), OpError> {
        let response = self.respond(reqwest::Method::GET, path, None).await?;
        self.read(response, what).await
    }

    async fn respond(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, OpError> {
        let (tail, query) = path.split_once('?').unwrap_or((path, ""));
        // Ids are checked before they reach a path, so only a provider's own link can fail.
        let url = proxy::target_url(&self.provider, tail, query)
            .map_err(|_| OpError::Unavailable("the provider pointed outside its API".into()))?;
        let mut headers = vec![("accept".to_string(), "application/json".to_string())];
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        let outgoing = Outgoing {
            method,
            url,
            headers,
            body: body.map(|b| b.to_string().into()).unwrap_or_default(),
        };
        let answer = proxy::forward_metered(
            self.state,
            &self.entry,
            &self.provider,
            &outgoing,
            tail,
        )
        .await
        .map_err(|e| match e {
            proxy::ForwardError::OverBudget(over) => OpError::OverBudget(over),
            proxy::ForwardError::Transport(e) => {
                tracing::warn!(provider = %self.provider.name, error = %e, "provider call failed");
                OpError::Unavailable(format!("{} did not answer", self.provider.display_name))
            }
        })?;
        Ok(answer.response)
    }

    /// The JSON of a 2xx answer; any other answer as the typed error it stands for.
    async fn read(
        &self,
        response: reqwest::Response,
        what: &'static str,
    ) -> Result<(Value, reqwest::header::HeaderMap), OpError> {
        let name = &self.provider.display_name;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let retry_after =
            crate::provider_http::retry_after(response.headers()).map(|d| d.as_secs());
        let bytes = response
            .bytes()
            .await
            .map_err(|_| OpError::Unavailable(format!("{name} did not answer")))?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == 401 {
            lifecycle::credential_rejected(self.state, self.client(), what).await?;
            return Err(OpError::Unauthorized);
        }
        match status {
            200..=299 => Ok((json, headers)),
            404 => Err(OpError::NotFound(what)),
            429 => Err(OpError::RateLimited { retry_after }),
            400..=499 => Err(OpError::Rejected {
                status,
                detail: error_detail(&json),
            }),
            _ => Err(OpError::Unavailable(format!(
                "{name} answered HTTP {status}"
            ))),
        }
    }

    /// Every item of a JSON:API list, following `links.next` (absolute, as Klaviyo sends
    /// it, or a path, as Kustomer does) for at most `MAX_PAGES` pages.
    pub async fn get_all(&self, path: &str, what: &'static str) -> Result<Vec<Value>, OpError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        for _ in 0..MAX_PAGES {
            let Some(current) = next.take() else { break };
            let page = self.get(&current, what).await?;
            if let Some(data) = page.get("data").and_then(Value::as_array) {
                items.extend(data.iter().cloned());
            }
            next = match page.pointer("/links/next").and_then(Value::as_str) {
                Some(link) => Some(self.relative(link)?),
                None => None,
            };
        }
        Ok(items)
    }

    /// A provider link as a path under the API base; a link elsewhere is refused, so the
    /// token is never sent to another host.
    pub fn relative(&self, link: &str) -> Result<String, OpError> {
        let base = self.provider.api_base_url.trim_end_matches('/');
        let path = match link.strip_prefix(base) {
            Some(rest) => rest,
            None if link.starts_with('/') && !link.starts_with("//") => link,
            None => {
                return Err(OpError::Unavailable(
                    "the provider pointed outside its API".into(),
                ))
            }
        };
        Ok(path.trim_start_matches('/').to_string())
    }
}

/// The provider's explanation in a JSON:API error answer (`errors[0].detail` or `title`).
fn error_detail(body: &Value) -> String {
    let first = body.pointer("/errors/0");
    let text = first
        .and_then(|e| e.get("detail").or_else(|| e.get("title")))
        .and_then(Value::as_str)
        .unwrap_or("no reason given");
    crate::provider_http::sanitize(text, 300)
}

/// A string field of a JSON:API resource (`attributes.name`, say).
fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The `id` of a JSON:API resource; an answer without one cannot be used.
fn id_of(value: &Value, provider: &str) -> Result<String, OpError> {
    text(value, "/id").ok_or_else(|| OpError::Unavailable(format!("{provider}'s answer has no id")))
}

/// An id as providers issue them: 1 to 64 of A-Z a-z 0-9 - _. Checked before it goes into
/// a URL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderId(String);

impl ProviderId {
    pub fn parse(name: &str, raw: &str) -> Result<Self, OpError> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(Self(raw.to_string()))
        } else {
            Err(OpError::Invalid(format!(
                "{name} must be 1 to 64 of A-Z a-z 0-9 - _"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        assert!(ProviderId::parse("id", "5f3a1f6c8b2d4a0017c6e131").is_ok());
        for bad in ["", "../x", "a/b", "a%2Fb", "a b", &"x".repeat(65)] {
            assert!(ProviderId::parse("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn provider_errors_are_read_from_json_api_bodies() {
        let body = json!({"errors": [{"status": 400, "title": "Bad Request", "detail": "team x does not exist"}]});
        assert_eq!(error_detail(&body), "team x does not exist");
        let body = json!({"errors": [{"title": "Conflict"}]});
        assert_eq!(error_detail(&body), "Conflict");
        assert_eq!(error_detail(&Value::Null), "no reason given");
    }
}
