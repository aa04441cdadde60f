//! The authorization endpoint: the consent page (GET) and the person's decision (POST).
//!
//! Until client_id and redirect_uri are known good, problems are shown on an error page:
//! redirecting to an unvalidated URI would make the sandbox an open redirector. After
//! that, problems travel back to the client as `error=` redirects (RFC 6749 §4.1.2.1).

use super::data::{self, AccountChoice};
use super::http::{form_body, param, parse_params, Params};
use super::tokens::Grant;
use super::{Provider, Sandbox};
use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use url::Url;

/// The parameters carried from the consent page back to the decision, in this order.
const CARRIED: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

#[derive(Template)]
#[template(path = "sandbox_consent.html")]
struct ConsentPage<'a> {
    provider_name: &'a str,
    action: String,
    client_id: &'a str,
    scopes: &'a [String],
    accounts: Vec<AccountChoice>,
    account_noun: &'a str,
    hidden: Vec<Hidden>,
    redirect_host: String,
}

struct Hidden {
    name: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "sandbox_error.html")]
struct ErrorPage<'a> {
    provider_name: &'a str,
    message: &'a str,
}

/// A validated authorization request.
struct AuthRequest {
    redirect_uri: Url,
    /// The redirect_uri exactly as sent: the token request must repeat it byte for byte.
    redirect_raw: String,
    scopes: Vec<String>,
    state: Option<String>,
    challenge: String,
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(body)
}

fn error_page(provider: Provider, message: &str) -> HttpResponse {
    let page = ErrorPage {
        provider_name: provider.display_name(),
        message,
    };
    match page.render() {
        Ok(body) => html(StatusCode::BAD_REQUEST, body),
        Err(_) => HttpResponse::BadRequest().body(message.to_string()),
    }
}

/// A 303 to `uri` with `pairs` appended to whatever query it already has.
fn redirect_to(uri: &Url, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut target = uri.clone();
    {
        let mut query = target.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// An error redirect, with `state` and the issuer (RFC 9207) as every answer carries them.
fn error_redirect(
    sandbox: &Sandbox,
    provider: Provider,
    request: &AuthRequest,
    error: &str,
    description: &str,
) -> HttpResponse {
    let issuer = sandbox.issuer(provider);
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = &request.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &issuer));
    redirect_to(&request.redirect_uri, &pairs)
}

/// An absolute http(s) URL without fragment (RFC 6749 §3.1.2).
fn valid_redirect(raw: &str) -> Option<Url> {
    let url = Url::parse(raw).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.fragment().is_none()
        && raw.len() <= 2048;
    ok.then_some(url)
}

/// An S256 challenge is the base64url of a SHA-256 digest: exactly 43 characters.
fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn validate(
    sandbox: &Sandbox,
    provider: Provider,
    params: &Params,
) -> Result<AuthRequest, HttpResponse> {
    let client_id = param(params, "client_id")
        .ok_or_else(|| error_page(provider, "The request has no client_id."))?;
    if client_id != provider.client_id() {
        return Err(error_page(
            provider,
            "The client_id is not registered with this provider.",
        ));
    }
    let redirect_raw = param(params, "redirect_uri")
        .ok_or_else(|| error_page(provider, "The request has no redirect_uri."))?;
    let redirect_uri = valid_redirect(redirect_raw).ok_or_else(|| {
        error_page(
            provider,
            "The redirect_uri must be an absolute http or https URL without a fragment.",
        )
    })?;
    let mut request = AuthRequest {
        redirect_uri,
        redirect_raw: redirect_raw.to_string(),
        scopes: Vec::new(),
        state: param(params, "state").map(str::to_string),
        challenge: String::new(),
    };
    let refuse = |request: &AuthRequest, error: &str, description: &str| {
        Err(error_redirect(
            sandbox,
            provider,
            request,
            error,
            description,
        ))
    };
    if param(params, "response_type") != Some("code") {
        return refuse(
            &request,
            "unsupported_response_type",
            "response_type must be code",
        );
    }
    let Some(challenge) = param(params, "code_challenge") else {
        return refuse(
            &request,
            "invalid_request",
            "code_challenge is required (PKCE)",
        );
    };
    if param(params, "code_challenge_method") != Some("S256") {
        return refuse(
            &request,
            "invalid_request",
            "code_challenge_method must be S256",
        );
    }
    if !valid_challenge(challenge) {
        return refuse(
            &request,
            "invalid_request",
            "code_challenge is not a valid S256 challenge",
        );
    }
    request.challenge = challenge.to_string();
    match parse_scopes(provider, param(params, "scope").unwrap_or("")) {
        Ok(scopes) => request.scopes = scopes,
        Err(message) => return refuse(&request, "invalid_scope", &message),
    }
    Ok(request)
}

/// GET /oauth/authorize: the consent page.
pub async fn show(
    sandbox: web::Data<Sandbox>,
    provider: web::Data<Provider>,
    req: HttpRequest,
) -> HttpResponse {
    let provider = **provider;
    let params = match parse_params(req.query_string().as_bytes()) {
        Ok(params) => params,
        Err(message) => return error_page(provider, &message),
    };
    let request = match validate(&sandbox, provider, &params) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let hidden = CARRIED
        .iter()
        .filter_map(|name| {
            params.get(*name).map(|value| Hidden {
                name,
                value: value.clone(),
            })
        })
        .collect();
    let page = ConsentPage {
        provider_name: provider.display_name(),
        // Back to where the page was served (a Kustomer org's own path included).
        action: req.path().to_string(),
        client_id: provider.client_id(),
        scopes: &request.scopes,
        accounts: data::consent_accounts(provider),
        account_noun: match provider {
            Provider::Klaviyo => "Klaviyo account",
            Provider::Kustomer => "Kustomer organization",
        },
        hidden,
        redirect_host: request.redirect_uri.host_str().unwrap_or("").to_string(),
    };
    match page.render() {
        Ok(body) => html(StatusCode::OK, body),
        Err(_) => error_page(provider, "The consent page could not be shown."),
    }
}

/// POST /oauth/authorize: the person allowed or denied.
pub async fn decide(
    sandbox: web::Data<Sandbox>,
    provider: web::Data<Provider>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let provider = **provider;
    let params = match form_body(&req, &body) {
        Ok(params) => params,
        Err(message) => return error_page(provider, &message),
    };
    let request = match validate(&sandbox, provider, &params) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let allow = match param(&params, "decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return error_page(provider, "Choose Allow or Deny."),
    };
    if let Some(error) = sandbox.with(provider, |state| state.faults.take_authorize_error()) {
        return error_redirect(
            &sandbox,
            provider,
            &request,
            &error,
            "Injected by the sandbox control API",
        );
    }
    if !allow {
        return error_redirect(
            &sandbox,
            provider,
            &request,
            "access_denied",
            "The user denied the request",
        );
    }
    let Some(account) = param(&params, "account").filter(|id| data::account_exists(provider, id))
    else {
        return error_page(provider, "Choose one of the listed accounts.");
    };
    let (code, extra) = sandbox.with(provider, |state| {
        let grant = Grant {
            client_id: provider.client_id().to_string(),
            account: account.to_string(),
            scopes: state.quirks.granted(request.scopes.clone()),
        };
        let code = state
            .tokens
            .create_code(grant, &request.redirect_raw, &request.challenge);
        (code, state.quirks.callback_params.clone())
    });
    let issuer = sandbox.issuer(provider);
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &issuer));
    pairs.extend(
        extra
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    redirect_to(&request.redirect_uri, &pairs)
}

/// Splits and checks a space-separated scope. Klaviyo scopes look like `lists:read`;
/// Kustomer's are undocumented, so any RFC 6749 scope token is accepted.
pub fn parse_scopes(provider: Provider, raw: &str) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in raw.split(' ').filter(|s| !s.is_empty()) {
        let valid = match provider {
            Provider::Klaviyo => scope.split_once(':').is_some_and(|(object, access)| {
                !object.is_empty()
                    && object.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    && matches!(access, "read" | "write")
            }),
            Provider::Kustomer => scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
        };
        if !valid {
            return Err(format!("Unknown scope: {scope}"));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    if provider == Provider::Klaviyo && scopes.is_empty() {
        return Err("At least one scope is required".to_string());
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use actix_web::test;

    fn authorize_url(provider: Provider, extra: &[(&str, &str)]) -> String {
        let challenge = challenge(VERIFIER);
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", provider.client_id()),
            ("redirect_uri", REDIRECT),
            ("scope", "accounts:read lists:read"),
            ("state", "abc 123"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        for (name, value) in extra {
            pairs.retain(|(n, _)| n != name);
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        format!(
            "/sandbox/{}/oauth/authorize?{}",
            provider.name(),
            form(&pairs)
        )
    }

    async fn page(app: &TestApp, uri: &str) -> (u16, String) {
        let resp = app.send(test::TestRequest::get().uri(uri)).await;
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[actix_web::test]
    async fn consent_page_shows_buttons_accounts_and_scopes() {
        let app = app(sandbox()).await;
        let (status, body) = page(&app, &authorize_url(Provider::Klaviyo, &[])).await;
        assert_eq!(status, 200);
        assert!(body.contains("Sandbox Klaviyo"));
        assert!(body.contains("id=\"allow\""));
        assert!(body.contains("id=\"deny\""));
        assert!(body.contains("value=\"AcmeK1\" checked"));
        assert!(body.contains("Globex Retail"));
        assert!(body.contains("<label for=\"account-GlobexK2\""));
        assert!(body.contains("lists:read"));
        assert!(body.contains("name=\"state\" value=\"abc 123\""));
        assert!(!body.contains("<script"));
        assert!(!body.contains("style="));

        let (status, body) = page(&app, &authorize_url(Provider::Kustomer, &[("scope", "")])).await;
        assert_eq!(status, 200);
        assert!(body.contains("Sandbox Kustomer"));
        assert!(body.contains("Acme Support"));
        assert!(body.contains("Initech Helpdesk"));
    }

    #[actix_web::test]
    async fn bad_client_or_redirect_shows_an_error_page() {
        let app = app(sandbox()).await;
        let cases = [
            ("client_id", "someone-else"),
            ("client_id", ""),
            ("redirect_uri", ""),
            ("redirect_uri", "/relative"),
            ("redirect_uri", "javascript:alert(1)"),
            ("redirect_uri", "http://app.test/cb#frag"),
        ];
        for (name, value) in cases {
            let resp = app
                .send(
                    test::TestRequest::get()
                        .uri(&authorize_url(Provider::Klaviyo, &[(name, value)])),
                )
                .await;
            assert_eq!(resp.status(), 400, "{name}={value}");
            assert!(!resp.headers().contains_key("location"));
        }
    }

    #[actix_web::test]
    async fn other_problems_redirect_with_an_error() {
        let app = app(sandbox()).await;
        let cases = [
            (("response_type", "token"), "unsupported_response_type"),
            (("code_challenge", ""), "invalid_request"),
            (("code_challenge_method", "plain"), "invalid_request"),
            (("code_challenge", "short"), "invalid_request"),
            (("scope", "everything"), "invalid_scope"),
            (("scope", ""), "invalid_scope"),
        ];
        for ((name, value), error) in cases {
            let resp = app
                .send(
                    test::TestRequest::get()
                        .uri(&authorize_url(Provider::Klaviyo, &[(name, value)])),
                )
                .await;
            assert_eq!(resp.status(), 303, "{name}={value}");
            let location = &header(&resp, "location");
            assert!(location.starts_with("http://app.test/callback?x=1&"));
            assert_eq!(query_param(location, "error").as_deref(), Some(error));
            assert_eq!(query_param(location, "state").as_deref(), Some("abc 123"));
            assert_eq!(
                query_param(location, "iss").as_deref(),
                Some("http://sandbox.test/sandbox/klaviyo")
            );
        }
    }

    #[actix_web::test]
    async fn allow_redirects_with_code_state_and_issuer() {
        let app = app(sandbox()).await;
        let location = consent(
            &app,
            Provider::Kustomer,
            "5f3a1c9e8b2d4a0017c6e202",
            "allow",
        )
        .await;
        assert!(location.starts_with("http://app.test/callback?x=1&code="));
        assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
        assert_eq!(
            query_param(&location, "iss").as_deref(),
            Some("http://sandbox.test/sandbox/kustomer")
        );
        assert_eq!(query_param(&location, "x").as_deref(), Some("1"));
    }

    #[actix_web::test]
    async fn deny_redirects_with_access_denied() {
        let app = app(sandbox()).await;
        let location = consent(&app, Provider::Klaviyo, "AcmeK1", "deny").await;
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some("access_denied")
        );
        assert!(query_param(&location, "error_description").is_some());
        assert_eq!(query_param(&location, "code"), None);
    }

    #[actix_web::test]
    async fn unknown_account_or_decision_is_refused() {
        let app = app(sandbox()).await;
        let challenge = challenge(VERIFIER);
        for (account, decision) in [("NoSuch", "allow"), ("AcmeK1", "maybe")] {
            let req = post_form(
                "/sandbox/klaviyo/oauth/authorize",
                &[
                    ("response_type", "code"),
                    ("client_id", Provider::Klaviyo.client_id()),
                    ("redirect_uri", REDIRECT),
                    ("scope", "lists:read"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                    ("account", account),
                    ("decision", decision),
                ],
            );
            assert_eq!(app.send(req).await.status(), 400);
        }
    }
}
