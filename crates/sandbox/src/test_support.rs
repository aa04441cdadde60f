//! Shared helpers for the unit tests of every sandbox file.

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
pub async fn consent(app: &TestApp, provider: Provider, account: &str, decision: &str) -> String {
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
