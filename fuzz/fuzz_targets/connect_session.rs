//! `POST /api/v1/connect-sessions` bodies as they land: any bytes either parse into a
//! checked request or are refused, never a panic; what is accepted keeps its promises
//! (an end user id of 1–255 characters without NUL or control characters, only known
//! providers, return URLs only on the allowed origins).
#![no_main]
use connecthub::config::ConnectPolicy;
use connecthub::connect::request::{SessionBody, SessionRequest, END_USER_ID_MAX};
use connecthub::providers::{Endpoints, Registry};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

const ALLOWED: &str = "https://app.example.com";

fuzz_target!(|body: &[u8]| {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        let env: HashMap<String, String> = HashMap::new();
        Registry::load(&env, "https://hub.example", &Endpoints::Real).unwrap()
    });
    let policy = ConnectPolicy {
        allowed_redirects: vec![ALLOWED.to_string()],
        session_ttl: std::time::Duration::from_secs(1800),
    };
    let Ok(body) = serde_json::from_slice::<SessionBody>(body) else {
        return;
    };
    let Ok(request) = SessionRequest::parse(body, registry, &policy) else {
        return;
    };
    let id = &request.end_user.external_id;
    assert!(
        !id.is_empty() && id.chars().count() <= END_USER_ID_MAX,
        "{id:?}"
    );
    assert!(!id.chars().any(char::is_control), "{id:?}");
    for provider in &request.allowed_providers {
        assert!(registry.get(provider).is_some(), "{provider:?}");
    }
    for url in request.success_url.iter().chain(&request.error_url) {
        let origin = url::Url::parse(url).unwrap().origin().ascii_serialization();
        assert_eq!(origin, ALLOWED, "{url:?}");
    }
    for origin in &request.allowed_origins {
        assert_eq!(origin, ALLOWED);
    }
});
