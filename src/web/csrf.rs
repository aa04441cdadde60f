//! CSRF protection: one random token per session, carried by every form (`csrf_token`) and
//! by htmx as the `X-CSRF-Token` header. State-changing requests without it get 403 before
//! any handler runs.

use crate::error::AppError;
use actix_session::{Session, SessionExt};
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use rand::distributions::{Alphanumeric, DistString};

const SESSION_KEY: &str = "csrf";
pub const FORM_FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";

/// Paths whose callers authenticate without cookies (service API keys) or that belong to
/// the sandbox provider, which stands in for a foreign site, or that providers call
/// (`/webhooks/{provider}`, checked by their signatures).
const EXEMPT_PREFIXES: [&str; 3] = ["/api/v1/", "/sandbox/", "/webhooks/"];

/// The session's token, created on first use.
pub fn token(session: &Session) -> String {
    match session.get::<String>(SESSION_KEY) {
        Ok(Some(token)) => token,
        _ => rotate(session),
    }
}

/// A value that identifies this browser session without revealing the token: OAuth
/// states are bound to it, so a callback from another session is refused.
pub fn session_binding(session: &Session) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token(session).as_bytes()))
}

/// Replaces the token (at sign-in, so a token seen before sign-in is worthless after).
pub fn rotate(session: &Session) -> String {
    let token = Alphanumeric.sample_string(&mut rand::thread_rng(), 43);
    let _ = session.insert(SESSION_KEY, &token);
    token
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn matches(expected: &str, given: &str) -> bool {
    orion::util::secure_cmp(expected.as_bytes(), given.as_bytes()).is_ok()
}

fn form_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == FORM_FIELD)
        .map(|(_, value)| value.into_owned())
}

/// Middleware: refuses state-changing requests whose token is missing or wrong.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    if !is_state_changing(req.method()) || EXEMPT_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return next.call(req).await;
    }
    let expected = req.get_session().get::<String>(SESSION_KEY).ok().flatten();
    let Some(expected) = expected else {
        return Err(AppError::Csrf.into());
    };
    let header = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let given = match header {
        Some(token) => Some(token),
        None => {
            // Read the form body, then put it back for the handler.
            let body = req.extract::<Bytes>().await?;
            let token = form_token(&body);
            req.set_payload(Payload::from(body));
            token
        }
    };
    match given {
        Some(given) if matches(&expected, &given) => next.call(req).await,
        _ => Err(AppError::Csrf.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_from_a_form_body() {
        assert_eq!(
            form_token(b"a=1&csrf_token=abc%2Bd&b=2").as_deref(),
            Some("abc+d")
        );
        assert_eq!(form_token(b"a=1"), None);
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abd"));
        assert!(!matches("abc", ""));
    }
}
