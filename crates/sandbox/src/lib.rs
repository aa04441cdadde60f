//! The provider sandbox: an in-memory stand-in for Klaviyo's and Kustomer's OAuth 2.0
//! servers and account APIs, served by the same actix-web server under `/sandbox`.
//!
//! The real services cannot be reached from development and test machines, so the sandbox
//! behaves as their documentation describes (PKCE, client authentication, rotating refresh
//! tokens, JSON:API envelopes, rate-limit headers) and adds a control API that injects
//! faults and counts calls, so the client side can be tested against every failure mode.

// Handlers refuse early by returning the finished answer as `Err(HttpResponse)`. It is
// built at most once per request, so its size on the stack does not matter, and boxing it
// would only add noise.
#![allow(clippy::result_large_err)]

mod authorize;
mod control;
mod data;
mod http;
mod keyed_api;
mod klaviyo_api;
mod klaviyo_profiles;
mod kustomer_api;
mod kustomer_store;
mod oauth;
mod quirks;
mod state;
mod tokens;
mod volume;

use actix_web::web;
use state::{ProviderState, State};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const KLAVIYO_CLIENT_ID: &str = "sandbox-klaviyo-client";
pub const KLAVIYO_CLIENT_SECRET: &str = "sandbox-klaviyo-secret";
pub const KUSTOMER_CLIENT_ID: &str = "sandbox-kustomer-client";
pub const KUSTOMER_CLIENT_SECRET: &str = "sandbox-kustomer-secret";
/// Requests per minute per org the sandbox's Kustomer allows (the Enterprise plan).
pub const KUSTOMER_ORG_RATE_PER_MINUTE: u32 = 1000;
/// Valid Kustomer API keys, one per test org.
pub const KUSTOMER_API_KEYS: [(&str, &str); 2] = [
    ("acme-support", "sandbox-kustomer-key-acme-support"),
    ("initech", "sandbox-kustomer-key-initech"),
];

pub use keyed_api::{KEYED_API_KEY, KEYED_BASIC_PASSWORD, KEYED_BASIC_USER};

pub struct SandboxSettings {
    /// External base URL of the server the sandbox is mounted on, e.g. http://localhost:8080
    /// (no trailing slash). Used for `iss` and links.
    pub base_url: String,
    /// Lifetime of issued access tokens (demo: 3600 s; tests set a few seconds).
    pub access_token_ttl: Duration,
}

/// The sandbox's shared state. Cloning is cheap; every clone sees the same state.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: String,
    state: Mutex<State>,
}

impl Sandbox {
    pub fn new(settings: SandboxSettings) -> Self {
        let base_url = settings.base_url.trim_end_matches('/').to_string();
        Self {
            inner: Arc::new(Inner {
                base_url,
                state: Mutex::new(State::new(settings.access_token_ttl)),
            }),
        }
    }

    fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The `iss` value of a provider's authorization responses (RFC 9207).
    fn issuer(&self, provider: Provider) -> String {
        format!("{}/sandbox/{}", self.base_url(), provider.name())
    }

    /// Locks the whole state. Handlers hold it only for the bookkeeping of one request
    /// (never across an await), which keeps every counter exact under concurrency. A
    /// poisoned lock is taken over: the state is plain data and stays usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a call to the keyed API.
    fn keyed_count(&self, accepted: bool) {
        let keyed = &mut self.lock().keyed;
        keyed.calls += 1;
        keyed.rejected += u64::from(!accepted);
    }

    /// Runs `f` on one provider's state under the lock.
    fn with<T>(&self, provider: Provider, f: impl FnOnce(&mut ProviderState) -> T) -> T {
        let mut state = self.lock();
        f(state.provider(provider))
    }
}

/// The two providers the sandbox imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Provider {
    Klaviyo,
    Kustomer,
}

impl Provider {
    const ALL: [Provider; 2] = [Provider::Klaviyo, Provider::Kustomer];

    fn name(self) -> &'static str {
        match self {
            Provider::Klaviyo => "klaviyo",
            Provider::Kustomer => "kustomer",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Scopes of tokens that asked for none (client-credentials tokens, minted grants).
    fn default_scopes(self) -> Vec<String> {
        match self {
            Provider::Klaviyo => [
                "accounts:read",
                "lists:read",
                "segments:read",
                "profiles:read",
            ]
            .map(String::from)
            .to_vec(),
            Provider::Kustomer => Vec::new(),
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            Provider::Klaviyo => "Sandbox Klaviyo",
            Provider::Kustomer => "Sandbox Kustomer",
        }
    }

    fn client_id(self) -> &'static str {
        match self {
            Provider::Klaviyo => KLAVIYO_CLIENT_ID,
            Provider::Kustomer => KUSTOMER_CLIENT_ID,
        }
    }

    fn client_secret(self) -> &'static str {
        match self {
            Provider::Klaviyo => KLAVIYO_CLIENT_SECRET,
            Provider::Kustomer => KUSTOMER_CLIENT_SECRET,
        }
    }

    /// Token prefixes make a leaked token recognisable at a glance.
    fn token_prefix(self) -> &'static str {
        match self {
            Provider::Klaviyo => "skla",
            Provider::Kustomer => "skus",
        }
    }
}

/// Registers everything under the scope "/sandbox".
pub fn routes(cfg: &mut web::ServiceConfig, sandbox: Sandbox) {
    cfg.service(
        web::scope("/sandbox")
            .app_data(web::Data::new(sandbox.clone()))
            .service(
                web::scope("/_control")
                    .configure(control::routes)
                    .default_service(web::to(http::not_found)),
            )
            .service(
                web::scope("/keyed")
                    .configure(keyed_api::routes)
                    .default_service(web::to(http::not_found)),
            )
            .service(provider_scope(Provider::Klaviyo, &sandbox, "klaviyo"))
            // Each Kustomer org has its own host; here, its own path (before the shared one,
            // which would match it too). Calls are counted per org.
            .service(
                provider_scope(Provider::Kustomer, &sandbox, "kustomer/org/{org}").wrap(
                    actix_web::middleware::from_fn({
                        let sandbox = sandbox.clone();
                        move |req, next| count_org_call(sandbox.clone(), req, next)
                    }),
                ),
            )
            .service(provider_scope(Provider::Kustomer, &sandbox, "kustomer"))
            .default_service(web::to(http::not_found)),
    );
}

/// One provider's OAuth server and API. The provider travels as scoped app data, so the
/// OAuth handlers are shared by both.
fn provider_scope(
    provider: Provider,
    sandbox: &Sandbox,
    path: &str,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // Nested scopes fall back to the app's default service, not their parent's, so each
    // one names its own.
    let oauth = web::scope("/oauth")
        .configure(oauth::routes)
        .default_service(web::to(http::not_found));
    let scope = web::scope(path)
        .app_data(web::Data::new(provider))
        .service(oauth);
    match provider {
        Provider::Klaviyo => scope.service(
            web::scope("/api")
                .configure(klaviyo_api::routes)
                .configure(klaviyo_profiles::routes)
                .default_service(web::to(klaviyo_api::not_found)),
        ),
        Provider::Kustomer => scope.service(
            web::scope("/v1")
                .configure(kustomer_api::routes)
                .default_service(web::to(kustomer_api::not_found)),
        ),
    }
    .default_service(web::to(http::not_found))
    .wrap(actix_web::middleware::from_fn({
        let sandbox = sandbox.clone();
        move |req: actix_web::dev::ServiceRequest,
              next: actix_web::middleware::Next<actix_web::body::BoxBody>| {
            control::storm::gate(sandbox.clone(), provider, req, next)
        }
    }))
}

async fn count_org_call(
    sandbox: Sandbox,
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<actix_web::body::BoxBody>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let org = req.match_info().get("org").unwrap_or_default().to_string();
    sandbox.with(Provider::Kustomer, |state| {
        *state.stats.org_calls.entry(org).or_default() += 1;
    });
    next.call(req).await
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
