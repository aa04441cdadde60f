//! The Klaviyo-shaped API under /sandbox/klaviyo/api: accounts, lists and segments in
//! JSON:API envelopes, with Klaviyo's revision header, scopes and rate-limit headers
//! (profiles, at volume, are `klaviyo_profiles`).

use super::control::{api_gate, ApiFault};
use super::data::{self, GroupKind, KlaviyoAccount};
use super::http::{bearer, parse_params};
use super::state::RateHeaders;
use super::{Provider, Sandbox};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

const PAGE_SIZE: usize = 10;
const CURSOR_PARAM: &str = "page[cursor]";

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Klaviyo's own URLs end in a slash; both spellings are accepted.
    for suffix in ["", "/"] {
        cfg.route(&format!("/accounts{suffix}"), web::get().to(accounts))
            .route(&format!("/accounts/{{id}}{suffix}"), web::get().to(account))
            .route(&format!("/lists{suffix}"), web::get().to(lists))
            .route(&format!("/segments{suffix}"), web::get().to(segments));
    }
}

/// Klaviyo's published rate tiers (steady window, per account per app).
#[derive(Clone, Copy)]
pub(super) struct Tier {
    pub(super) name: &'static str,
    pub(super) per_second: u32,
    pub(super) per_minute: u32,
}

const TIER_XS: Tier = Tier {
    name: "XS",
    per_second: 1,
    per_minute: 15,
};
const TIER_L: Tier = Tier {
    name: "L",
    per_second: 75,
    per_minute: 700,
};

/// A JSON:API error answer in Klaviyo's shape.
fn error(status: StatusCode, code: &str, title: &str, detail: &str) -> HttpResponse {
    let body = json!({"errors": [{
        "id": uuid::Uuid::new_v4().to_string(),
        "status": status.as_u16().to_string(),
        "code": code,
        "title": title,
        "detail": detail,
        "source": {"pointer": "/data/"},
    }]});
    HttpResponse::build(status)
        .content_type("application/vnd.api+json")
        .body(body.to_string())
}

fn not_authenticated(detail: &str) -> HttpResponse {
    error(
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
        "Authentication credentials were not provided.",
        detail,
    )
}

pub(super) fn invalid(detail: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, "invalid", "Invalid input.", detail)
}

/// Unknown paths under /sandbox/klaviyo/api.
pub async fn not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found.",
        "The requested resource does not exist.",
    )
}

fn fault_answer(fault: ApiFault) -> HttpResponse {
    match fault {
        ApiFault::RateLimited { retry_after_secs } => {
            let detail = format!(
                "Request was throttled. Expected available in {retry_after_secs} second(s)."
            );
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Request was throttled.",
                &detail,
            );
            if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        ApiFault::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(
                status,
                "error",
                status.canonical_reason().unwrap_or("Error"),
                "Injected by the sandbox control API",
            )
        }
    }
}

/// `revision: YYYY-MM-DD`, optionally with a suffix such as `.pre`.
fn valid_revision(value: &str) -> bool {
    let date = value.split('.').next().unwrap_or("");
    date.len() == 10 && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
}

/// What a call may use once it passed the checks.
pub(super) struct Call {
    pub(super) account: &'static KlaviyoAccount,
    pub(super) rate: RateHeaders,
}

/// The checks every call goes through, in Klaviyo's order: faults (counted), token,
/// revision header, scope. Then the call is counted against its rate window.
pub(super) fn begin(
    sandbox: &Sandbox,
    req: &HttpRequest,
    tier: Tier,
    scope: &str,
) -> Result<Call, HttpResponse> {
    if let Some(fault) = api_gate(sandbox, Provider::Klaviyo) {
        return Err(fault_answer(fault));
    }
    let token_header = sandbox.with(Provider::Klaviyo, |state| state.quirks.token_header.clone());
    let token = match token_header {
        Some(name) => req
            .headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .filter(|_| !req.headers().contains_key(header::AUTHORIZATION)),
        None => bearer(req),
    }
    .ok_or_else(|| not_authenticated("Missing or invalid access token."))?;
    let info = sandbox
        .with(Provider::Klaviyo, |state| state.tokens.access(token))
        .ok_or_else(|| not_authenticated("Access token is invalid, expired or revoked."))?;
    let revision = req
        .headers()
        .get("revision")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid("The 'revision' header is required (YYYY-MM-DD)."))?;
    if !valid_revision(revision) {
        return Err(invalid(
            "The 'revision' header must be a date like 2024-07-15.",
        ));
    }
    // A write scope includes read access to the same object.
    let (object, _) = scope.split_once(':').unwrap_or((scope, ""));
    let write = format!("{object}:write");
    if !info.grant.scopes.iter().any(|s| s == scope || *s == write) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "You do not have permission to perform this action.",
            &format!("This call requires the {scope} scope."),
        ));
    }
    let account = data::klaviyo_account(&info.grant.account)
        .ok_or_else(|| not_authenticated("The token's account no longer exists."))?;
    let budget = format!("{}:{}", account.id, tier.name);
    let (rate, limited) = sandbox.with(Provider::Klaviyo, |state| {
        let burst = state.windows.hit_within(
            &format!("{budget}:burst"),
            tier.per_second,
            std::time::Duration::from_secs(1),
        );
        let rate = state.windows.hit(&budget, tier.per_minute);
        let over = if rate.exceeded {
            Some(rate.reset_secs)
        } else {
            burst.exceeded.then_some(1)
        };
        let limited = super::control::over_budget(state, over);
        (rate, limited)
    });
    if let Some(retry_after_secs) = limited {
        return Err(fault_answer(ApiFault::RateLimited { retry_after_secs }));
    }
    Ok(Call { account, rate })
}

pub(super) fn ok(rate: &RateHeaders) -> HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .content_type("application/vnd.api+json")
        .insert_header(("RateLimit-Limit", rate.limit.to_string()))
        .insert_header(("RateLimit-Remaining", rate.remaining.to_string()))
        .insert_header(("RateLimit-Reset", rate.reset_secs.to_string()));
    builder
}

/// Where this sandbox's Klaviyo API lives, for absolute links.
pub(super) fn api_base(sandbox: &Sandbox) -> String {
    format!("{}/sandbox/klaviyo/api", sandbox.base_url())
}

fn account_json(base: &str, account: &KlaviyoAccount) -> Value {
    let address = &account.address;
    json!({
        "type": "account",
        "id": account.id,
        "attributes": {
            "test_account": account.test_account,
            "contact_information": {
                "default_sender_name": account.sender_name,
                "default_sender_email": account.sender_email,
                "website_url": account.website_url,
                "organization_name": account.organization_name,
                "street_address": {
                    "address1": address.address1,
                    "address2": address.address2,
                    "city": address.city,
                    "region": address.region,
                    "country": address.country,
                    "zip": address.zip,
                },
            },
            "industry": account.industry,
            "timezone": account.timezone,
            "preferred_currency": account.currency,
            "public_api_key": account.id,
            "locale": account.locale,
        },
        "links": {"self": format!("{base}/accounts/{}/", account.id)},
    })
}

/// GET /api/accounts: the token's account (an OAuth token sees exactly one).
async fn accounts(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let call = match begin(&sandbox, &req, TIER_XS, "accounts:read") {
        Ok(call) => call,
        Err(response) => return response,
    };
    let base = api_base(&sandbox);
    let mut body = json!({
        "data": [account_json(&base, call.account)],
        "links": {"self": format!("{base}/accounts/"), "next": null, "prev": null},
    });
    let extra = sandbox.with(Provider::Klaviyo, |state| {
        state.quirks.profile_fields.clone()
    });
    for (name, value) in extra {
        body[name] = json!(value);
    }
    ok(&call.rate).body(body.to_string())
}

/// GET /api/accounts/{id}: only the token's own account exists for it.
async fn account(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let call = match begin(&sandbox, &req, TIER_XS, "accounts:read") {
        Ok(call) => call,
        Err(response) => return response,
    };
    if call.account.id != id.as_str() {
        return not_found().await;
    }
    let base = api_base(&sandbox);
    let body = json!({
        "data": account_json(&base, call.account),
        "links": {"self": format!("{base}/accounts/{}/", call.account.id)},
    });
    ok(&call.rate).body(body.to_string())
}

async fn lists(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    page(&sandbox, &req, GroupKind::List)
}

async fn segments(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    page(&sandbox, &req, GroupKind::Segment)
}

fn kind_name(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::List => "list",
        GroupKind::Segment => "segment",
    }
}

/// Cursors are opaque to clients, as Klaviyo's are; inside they name the kind and offset.
fn encode_cursor(kind: GroupKind, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{offset}", kind_name(kind)))
}

fn decode_cursor(kind: GroupKind, cursor: &str) -> Option<usize> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (name, offset) = raw.split_once(':')?;
    (name == kind_name(kind)).then_some(())?;
    offset.parse().ok()
}

/// The absolute URL of the page at `offset`, keeping the caller's other query parameters.
fn page_link(base: &str, kind: GroupKind, query: &[(String, String)], offset: usize) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in query.iter().filter(|(name, _)| name != CURSOR_PARAM) {
        serializer.append_pair(name, value);
    }
    if offset > 0 {
        serializer.append_pair(CURSOR_PARAM, &encode_cursor(kind, offset));
    }
    let query = serializer.finish();
    let path = format!("{base}/{}s/", kind_name(kind));
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// GET /api/lists and /api/segments: 10 per page, cursor paging, no total count.
fn page(sandbox: &Sandbox, req: &HttpRequest, kind: GroupKind) -> HttpResponse {
    let scope = match kind {
        GroupKind::List => "lists:read",
        GroupKind::Segment => "segments:read",
    };
    let call = match begin(sandbox, req, TIER_L, scope) {
        Ok(call) => call,
        Err(response) => return response,
    };
    let params = match parse_params(req.query_string().as_bytes()) {
        Ok(params) => params,
        Err(message) => return invalid(&message),
    };
    let groups = data::groups(call.account, kind);
    let offset = match params.get(CURSOR_PARAM) {
        None => 0,
        Some(cursor) => match decode_cursor(kind, cursor) {
            Some(offset) if offset < groups.len() => offset,
            _ => return invalid("The page cursor is invalid."),
        },
    };
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let base = api_base(sandbox);
    let end = (offset + PAGE_SIZE).min(groups.len());
    let data: Vec<Value> = groups[offset..end]
        .iter()
        .map(|group| {
            let mut attributes = json!({
                "name": group.name,
                "created": group.created,
                "updated": group.updated,
            });
            match kind {
                GroupKind::List => attributes["opt_in_process"] = json!("single_opt_in"),
                GroupKind::Segment => {
                    attributes["is_active"] = json!(true);
                    attributes["is_processing"] = json!(false);
                    attributes["is_starred"] = json!(false);
                }
            }
            json!({
                "type": kind_name(kind),
                "id": group.id,
                "attributes": attributes,
                "links": {"self": format!("{base}/{}s/{}/", kind_name(kind), group.id)},
            })
        })
        .collect();
    let next = (end < groups.len()).then(|| page_link(&base, kind, &query, end));
    let prev =
        (offset > 0).then(|| page_link(&base, kind, &query, offset.saturating_sub(PAGE_SIZE)));
    let body = json!({
        "data": data,
        "links": {
            "self": page_link(&base, kind, &query, offset),
            "next": next,
            "prev": prev,
        },
    });
    ok(&call.rate).body(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use actix_web::test;

    fn api(path: &str, token: &str) -> test::TestRequest {
        get_bearer(path, token).insert_header(("revision", "2024-07-15"))
    }

    async fn token_for(app: &TestApp, account: &str) -> String {
        str_of(
            &tokens(app, Provider::Klaviyo, account).await,
            "access_token",
        )
    }

    #[actix_web::test]
    async fn accounts_returns_the_tokens_account() {
        let app = app(sandbox()).await;
        let token = token_for(&app, "AcmeK1").await;
        let resp = app.send(api("/sandbox/klaviyo/api/accounts", &token)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "ratelimit-limit"), "15");
        assert_eq!(header(&resp, "ratelimit-remaining"), "14");
        assert!(resp.headers().contains_key("ratelimit-reset"));
        let body: Value = test::read_body_json(resp).await;
        let account = &body["data"][0];
        assert_eq!(account["id"], "AcmeK1");
        let attributes = &account["attributes"];
        assert_eq!(
            attributes["contact_information"]["organization_name"],
            "Acme Store"
        );
        assert_eq!(
            attributes["contact_information"]["default_sender_email"],
            "hello@acme-store.example"
        );
        assert_eq!(attributes["timezone"], "America/New_York");
        assert_eq!(attributes["preferred_currency"], "USD");
        assert_eq!(attributes["test_account"], false);
        assert_eq!(body["links"]["next"], Value::Null);

        let globex = token_for(&app, "GlobexK2").await;
        let (_, body) = app
            .json(api("/sandbox/klaviyo/api/accounts/", &globex))
            .await;
        assert_eq!(body["data"][0]["attributes"]["locale"], "de-DE");
        assert_eq!(body["data"][0]["attributes"]["test_account"], true);
        let (status, _) = app
            .json(api("/sandbox/klaviyo/api/accounts/GlobexK2/", &globex))
            .await;
        assert_eq!(status, 200);
        let (status, _) = app
            .json(api("/sandbox/klaviyo/api/accounts/AcmeK1/", &globex))
            .await;
        assert_eq!(status, 404);
    }

    #[actix_web::test]
    async fn revision_header_and_token_are_required() {
        let app = app(sandbox()).await;
        let token = token_for(&app, "AcmeK1").await;
        let (status, body) = app
            .json(get_bearer("/sandbox/klaviyo/api/accounts", &token))
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"][0]["status"], "400");
        let bad =
            get_bearer("/sandbox/klaviyo/api/accounts", &token).insert_header(("revision", "July"));
        assert_eq!(app.json(bad).await.0, 400);

        let (status, body) = app
            .json(api("/sandbox/klaviyo/api/accounts", "skla_at_unknown"))
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["errors"][0]["code"], "not_authenticated");
        assert_eq!(body["errors"][0]["status"], "401");
        assert!(!body.to_string().contains("skla_at_unknown"));
        let anonymous = test::TestRequest::get()
            .uri("/sandbox/klaviyo/api/accounts")
            .insert_header(("revision", "2024-07-15"));
        assert_eq!(app.json(anonymous).await.0, 401);
        // Kustomer tokens are foreign here.
        let kustomer = tokens(
            &app,
            Provider::Kustomer,
            data::first_account(Provider::Kustomer),
        )
        .await;
        let (status, _) = app
            .json(api(
                "/sandbox/klaviyo/api/accounts",
                &str_of(&kustomer, "access_token"),
            ))
            .await;
        assert_eq!(status, 401);
    }

    #[actix_web::test]
    async fn lists_page_by_ten_with_absolute_next_links() {
        let app = app(sandbox()).await;
        let token = token_for(&app, "AcmeK1").await;
        let mut url = "/sandbox/klaviyo/api/lists".to_string();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let resp = app.send(api(&url, &token)).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(header(&resp, "ratelimit-limit"), "700");
            let body: Value = test::read_body_json(resp).await;
            pages += 1;
            for item in body["data"].as_array().unwrap() {
                assert_eq!(item["type"], "list");
                assert!(item["attributes"]["name"].is_string());
                assert!(item["attributes"]["created"].is_string());
                seen.push(item["id"].as_str().unwrap().to_string());
            }
            match body["links"]["next"].as_str() {
                Some(next) => {
                    assert!(next.starts_with(
                        "http://sandbox.test/sandbox/klaviyo/api/lists/?page%5Bcursor%5D="
                    ));
                    url = next.trim_start_matches(BASE).to_string();
                }
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 23);
        seen.dedup();
        assert_eq!(seen.len(), 23);
    }

    #[actix_web::test]
    async fn segments_and_empty_accounts() {
        let app = app(sandbox()).await;
        let globex = token_for(&app, "GlobexK2").await;
        let (_, first) = app
            .json(api("/sandbox/klaviyo/api/segments", &globex))
            .await;
        assert_eq!(first["data"].as_array().map(Vec::len), Some(10));
        assert_eq!(first["data"][0]["type"], "segment");
        let next = first["links"]["next"]
            .as_str()
            .unwrap()
            .trim_start_matches(BASE)
            .to_string();
        let (_, second) = app.json(api(&next, &globex)).await;
        assert_eq!(second["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(second["links"]["next"], Value::Null);
        assert!(second["links"]["prev"].is_string());

        let hooli = token_for(&app, "HooliK3").await;
        let (status, lists) = app.json(api("/sandbox/klaviyo/api/lists", &hooli)).await;
        assert_eq!(status, 200);
        assert_eq!(lists["data"], json!([]));
        assert_eq!(lists["links"]["next"], Value::Null);
    }

    #[actix_web::test]
    async fn bad_cursors_and_missing_scopes_are_refused() {
        let app = app(sandbox()).await;
        let token = token_for(&app, "AcmeK1").await;
        for cursor in ["garbage!", "c2VnbWVudDoxMA", "bGlzdDo5OTk"] {
            let url = format!("/sandbox/klaviyo/api/lists?page%5Bcursor%5D={cursor}");
            assert_eq!(app.json(api(&url, &token)).await.0, 400, "{cursor}");
        }
        let narrow = token_request(
            Provider::Klaviyo,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "accounts:read"),
            ],
        );
        let narrow = str_of(&app.json(narrow).await.1, "access_token");
        let (status, body) = app
            .json(api("/sandbox/klaviyo/api/segments", &narrow))
            .await;
        assert_eq!(
            (status, body["errors"][0]["code"].clone()),
            (403, json!("permission_denied"))
        );
    }

    #[actix_web::test]
    async fn unknown_paths_answer_json_api_404() {
        let app = app(sandbox()).await;
        let (status, body) = app
            .json(test::TestRequest::get().uri("/sandbox/klaviyo/api/flows"))
            .await;
        assert_eq!(status, 404);
        assert_eq!(body["errors"][0]["code"], "not_found");
    }
}
