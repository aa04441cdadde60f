//! Calls to a provider over HTTP: one error type that says whether trying again can help,
//! and the bounded retry with exponential backoff, jitter and Retry-After.

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::RETRY_AFTER;
use std::future::Future;
use std::time::Duration;

/// The reason of a 429 answer.
const RATE_LIMITED: &str = "rate limited (HTTP 429)";

/// Longest Retry-After we are willing to wait inside one request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The provider refused (4xx other than 429), with its OAuth/API error code.
    #[error("rejected with {code} (HTTP {status})")]
    Rejected {
        status: u16,
        code: String,
        description: Option<String>,
    },
    /// Worth another try: timeout, connection failure, 5xx, 429.
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The answer could not be used (not JSON, fields missing, wrong token type).
    #[error("{0}")]
    InvalidResponse(String),
}

impl CallError {
    pub fn is_transient(&self) -> bool {
        matches!(self, CallError::Transient { .. })
    }

    /// A 429: the provider is up but wants fewer calls (not an outage).
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, CallError::Transient { reason, .. } if reason == RATE_LIMITED)
    }

    /// Classifies a transport failure (no HTTP answer).
    pub fn from_transport(e: &reqwest::Error) -> Self {
        let reason = if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            "the connection failed".to_string()
        };
        CallError::Transient {
            reason,
            retry_after: None,
        }
    }

    /// Classifies a non-success HTTP answer; `body` may hold an OAuth error JSON.
    pub fn from_status(
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Self {
        if status.as_u16() == 429 || status.is_server_error() {
            let retry_after = retry_after(headers);
            let reason = if status.as_u16() == 429 {
                RATE_LIMITED.to_string()
            } else {
                format!("unavailable (HTTP {})", status.as_u16())
            };
            return CallError::Transient {
                reason,
                retry_after,
            };
        }
        #[derive(serde::Deserialize)]
        struct OAuthErrorBody {
            error: Option<String>,
            error_description: Option<String>,
        }
        let parsed: Option<OAuthErrorBody> = serde_json::from_slice(body).ok();
        let (code, description) = match parsed {
            Some(OAuthErrorBody {
                error: Some(code),
                error_description,
            }) => (code, error_description),
            _ => (format!("http_{}", status.as_u16()), None),
        };
        CallError::Rejected {
            status: status.as_u16(),
            code: sanitize(&code, 64),
            description: description.map(|d| sanitize(&d, 300)),
        }
    }
}

/// Sends a request and returns the body of a 2xx answer; anything else is classified.
pub async fn send(request: reqwest::RequestBuilder) -> Result<actix_web::web::Bytes, CallError> {
    let response = request
        .send()
        .await
        .map_err(|e| CallError::from_transport(&e))?;
    read(response).await
}

/// The body of a 2xx answer, or the error the answer stands for.
pub async fn read(response: reqwest::Response) -> Result<actix_web::web::Bytes, CallError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| CallError::from_transport(&e))?;
    if !status.is_success() {
        return Err(CallError::from_status(status, &headers, &body));
    }
    Ok(body)
}

/// The wait a provider asked for in `Retry-After` (whole seconds, the form both providers
/// use).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Provider text shown to people: printable, bounded.
pub fn sanitize(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// How hard to try before giving up on a provider.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Runs `call` until it succeeds, fails for good, or the retries are spent. A
    /// Retry-After from the provider replaces the backoff delay when it is longer.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter();
        call.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(CallError::is_transient)
            .adjust(|error, delay| match (error, delay) {
                (_, None) => None,
                (CallError::Transient { retry_after: Some(wait), .. }, Some(delay)) => {
                    Some(delay.max((*wait).min(MAX_RETRY_AFTER)))
                }
                (_, delay) => delay,
            })
            .notify(|error, delay| tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "provider call failed; retrying"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_then_succeed() {
        let calls = AtomicUsize::new(0);
        let result = quick()
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(CallError::Transient {
                        reason: "HTTP 500".into(),
                        retry_after: None,
                    })
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn rejections_are_not_retried_and_retries_are_bounded() {
        let calls = AtomicUsize::new(0);
        let rejected: Result<(), _> = quick()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CallError::Rejected {
                    status: 400,
                    code: "invalid_grant".into(),
                    description: None,
                })
            })
            .await;
        assert!(matches!(rejected, Err(CallError::Rejected { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let down: Result<(), _> = quick()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CallError::Transient {
                    reason: "down".into(),
                    retry_after: None,
                })
            })
            .await;
        assert!(down.unwrap_err().is_transient());
        assert_eq!(calls.load(Ordering::SeqCst), 4, "one try and three retries");
    }

    #[test]
    fn statuses_are_classified() {
        let headers = reqwest::header::HeaderMap::new();
        let error = CallError::from_status(
            reqwest::StatusCode::BAD_REQUEST,
            &headers,
            br#"{"error":"invalid_grant","error_description":"expired"}"#,
        );
        assert!(matches!(error, CallError::Rejected { ref code, .. } if code == "invalid_grant"));
        assert!(
            CallError::from_status(reqwest::StatusCode::BAD_GATEWAY, &headers, b"").is_transient()
        );
        let mut limited = reqwest::header::HeaderMap::new();
        limited.insert(RETRY_AFTER, "2".parse().unwrap());
        let error = CallError::from_status(reqwest::StatusCode::TOO_MANY_REQUESTS, &limited, b"");
        assert!(
            matches!(error, CallError::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(2))
        );
    }
}
