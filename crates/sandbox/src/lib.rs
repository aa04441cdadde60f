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

/// Shared helpers for the unit tests of every sandbox file.
#[cfg(test)]
mod test_support {
    use super::*;
    use actix_web::dev::ServiceResponse;
    use actix_web::{test, App};
    use base64::Engine;
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;

    pub const BASE: &str = "http://sandbox.test";
    pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    pub const REDIRECT: &str = "http://app.test/callback?x=1";

    type Call = Box<dyn Fn(test::TestRequest) -> Pin<Box<dyn Future<Output = ServiceResponse>>>>;

    /// The sandbox mounted on a test service; `send` runs one request through it.
    pub struct TestApp {
        call: Call,
    }

    impl TestApp {
        pub async fn send(&self, req: test::TestRequest) -> ServiceResponse {
            (self.call)(req).await
        }

        pub async fn json(&self, req: test::TestRequest) -> (u16, serde_json::Value) {
            let resp = self.send(req).await;
            let status = resp.status().as_u16();
            let body = test::read_body(resp).await;
            let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            (status, value)
        }
    }

    pub fn sandbox() -> Sandbox {
        Sandbox::new(SandboxSettings {
            base_url: BASE.to_string(),
            access_token_ttl: Duration::from_secs(60),
        })
    }

    pub async fn app(sandbox: Sandbox) -> TestApp {
        let service = test::init_service(App::new().configure(move |c| routes(c, sandbox))).await;
        let service = Rc::new(service);
        TestApp {
            call: Box::new(move |req| {
                let service = service.clone();
                Box::pin(async move { test::call_service(&*service, req.to_request()).await })
            }),
        }
    }

    pub fn challenge(verifier: &str) -> String {
        http::s256(verifier)
    }

    pub fn basic(id: &str, secret: &str) -> String {
        let raw = format!("{id}:{secret}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    pub fn form(pairs: &[(&str, &str)]) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    }

    pub fn post_form(path: &str, pairs: &[(&str, &str)]) -> test::TestRequest {
        test::TestRequest::post()
            .uri(path)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(form(pairs))
    }

    pub fn post_json(path: &str, body: serde_json::Value) -> test::TestRequest {
        test::TestRequest::post()
            .uri(path)
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_string())
    }

    /// A form POST to one of `provider`'s OAuth endpoints, authenticated the way that
    /// provider requires.
    pub fn client_request(
        provider: Provider,
        endpoint: &str,
        pairs: &[(&str, &str)],
    ) -> test::TestRequest {
        let path = format!("/sandbox/{}/oauth/{endpoint}", provider.name());
        match provider {
            Provider::Klaviyo => post_form(&path, pairs).insert_header((
                "authorization",
                basic(KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET),
            )),
            Provider::Kustomer => {
                let mut all = pairs.to_vec();
                all.push(("client_id", KUSTOMER_CLIENT_ID));
                all.push(("client_secret", KUSTOMER_CLIENT_SECRET));
                post_form(&path, &all)
            }
        }
    }

    pub fn token_request(provider: Provider, pairs: &[(&str, &str)]) -> test::TestRequest {
        client_request(provider, "token", pairs)
    }

    pub fn query_param(location: &str, name: &str) -> Option<String> {
        let url = url::Url::parse(location).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Posts the consent form with `decision` and returns the redirect location.
    pub async fn consent(
        app: &TestApp,
        provider: Provider,
        account: &str,
        decision: &str,
    ) -> String {
        let challenge = challenge(VERIFIER);
        let path = format!("/sandbox/{}/oauth/authorize", provider.name());
        let req = post_form(
            &path,
            &[
                ("response_type", "code"),
                ("client_id", provider.client_id()),
                ("redirect_uri", REDIRECT),
                ("scope", "accounts:read lists:read segments:read"),
                ("state", "st"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("account", account),
                ("decision", decision),
            ],
        );
        let resp = app.send(req).await;
        assert_eq!(resp.status(), 303);
        header(&resp, "location")
    }

    pub async fn authorize_code(app: &TestApp, provider: Provider, account: &str) -> String {
        let location = consent(app, provider, account, "allow").await;
        query_param(&location, "code").expect("code in redirect")
    }

    /// Full flow: consent, then code exchange. Returns the token response JSON.
    pub async fn tokens(app: &TestApp, provider: Provider, account: &str) -> serde_json::Value {
        let code = authorize_code(app, provider, account).await;
        let req = token_request(
            provider,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        );
        let (status, body) = app.json(req).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A response header as text ("" when absent).
    pub fn header(resp: &ServiceResponse, name: &str) -> String {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn str_of(v: &serde_json::Value, key: &str) -> String {
        v[key].as_str().unwrap_or_default().to_string()
    }

    pub fn get_bearer(path: &str, token: &str) -> test::TestRequest {
        test::TestRequest::get()
            .uri(path)
            .insert_header(("authorization", format!("Bearer {token}")))
    }
}

/// The sandbox over real HTTP, as `connecthub demo` and the integration tests use it.
#[cfg(test)]
mod tests {
    use super::test_support::{challenge, VERIFIER};
    use super::*;
    use actix_web::{App, HttpServer};
    use serde_json::Value;

    /// Starts the sandbox on a free port with several workers; returns its base URL.
    fn serve() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let sandbox = Sandbox::new(SandboxSettings {
            base_url: base.clone(),
            access_token_ttl: Duration::from_secs(2),
        });
        let server = HttpServer::new(move || {
            let sandbox = sandbox.clone();
            App::new().configure(move |c| routes(c, sandbox))
        })
        .workers(4)
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        base
    }

    #[actix_web::test]
    async fn full_flow_over_http() {
        let base = serve();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let authorize = format!("{base}/sandbox/kustomer/oauth/authorize");
        let query = [
            ("response_type", "code"),
            ("client_id", KUSTOMER_CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("state", "s1"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ];
        let page = http
            .get(&authorize)
            .query(&query)
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), 200);
        let mut form = query.to_vec();
        form.push(("account", "5f3a1c9e8b2d4a0017c6e202"));
        form.push(("decision", "allow"));
        let decision = http
            .post(&authorize)
            .form(&form)
            .send()
            .await
            .expect("decide");
        assert_eq!(decision.status(), 303);
        let location = decision.headers()["location"].to_str().expect("location");
        let code = url::Url::parse(location)
            .expect("url")
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code");

        let token_url = format!("{base}/sandbox/kustomer/oauth/token");
        let exchange = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_verifier", VERIFIER),
            ("client_id", KUSTOMER_CLIENT_ID),
            ("client_secret", KUSTOMER_CLIENT_SECRET),
        ];
        let tokens: Value = http
            .post(&token_url)
            .form(&exchange)
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        assert_eq!(tokens["expires_in"], 2);
        let access = tokens["access_token"].as_str().unwrap_or_default();
        let customer = http
            .get(format!(
                "{base}/sandbox/kustomer/v1/customers/email=peter%40initech.example"
            ))
            .bearer_auth(access)
            .send()
            .await
            .expect("customer");
        assert_eq!(customer.status(), 200);

        // The access token lapses after its short lifetime.
        actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
        let expired = http
            .get(format!("{base}/sandbox/kustomer/v1/orgs/current"))
            .bearer_auth(access)
            .send()
            .await
            .expect("expired");
        assert_eq!(expired.status(), 401);
    }

    #[actix_web::test]
    async fn refresh_counts_are_exact_under_concurrent_http() {
        let base = serve();
        let http = reqwest::Client::new();
        let token_url = format!("{base}/sandbox/klaviyo/oauth/token");
        let issued: Value = http
            .post(&token_url)
            .basic_auth(KLAVIYO_CLIENT_ID, Some(KLAVIYO_CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        assert!(issued["access_token"].is_string());
        // 500 concurrent refreshes of one (unknown) refresh token: all counted, all refused.
        let calls: Vec<_> = (0..500)
            .map(|_| {
                http.post(&token_url)
                    .basic_auth(KLAVIYO_CLIENT_ID, Some(KLAVIYO_CLIENT_SECRET))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", "skla_rt_x"),
                    ])
                    .send()
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.expect("refresh").status(), 400);
        }
        let stats: Value = http
            .get(format!("{base}/sandbox/_control/stats?provider=klaviyo"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        assert_eq!(stats["token_calls"]["refresh_token"], 500);
        assert_eq!(stats["token_calls"]["failed"], 500);
        assert_eq!(stats["token_calls"]["client_credentials"], 1);
    }
}
