//! The Kustomer-shaped API under /sandbox/kustomer/v1. Callers authenticate with an org
//! API key or a sandbox OAuth access token; either way the call acts for one org.

use super::control::{api_gate, ApiFault};
use super::data::{self, KustomerOrg, User, KUSTOMER_ROLES};
use super::http::{bearer, percent_decode};
use super::kustomer_store::{Conversation, ConversationPatch, Customer, Message, Note, StoreError};
use super::state::RateHeaders;
use super::{Provider, Sandbox};
use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

/// Requests per minute per org (Kustomer's Enterprise plan).
const ORG_LIMIT_PER_MINUTE: u32 = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/tokens/current", web::get().to(token_current))
        .route("/orgs/current", web::get().to(org_current))
        .route("/users/current", web::get().to(user_current))
        .route("/teams", web::get().to(teams))
        .route("/customers", web::post().to(create_customer))
        .route("/customers/search", web::post().to(search_customers))
        .route("/customers/{key}", web::get().to(get_customer))
        .route("/customers/{id}/notes", web::get().to(customer_notes))
        .route("/conversations", web::post().to(create_conversation))
        .route("/conversations/{id}", web::get().to(get_conversation))
        .route("/conversations/{id}", web::patch().to(update_conversation))
        .route("/conversations/{id}/messages", web::post().to(add_message))
        .route("/notes", web::post().to(add_note));
}

/// A Kustomer-style error answer.
fn error(status: StatusCode, detail: Option<&str>) -> HttpResponse {
    let mut entry = json!({
        "status": status.as_u16(),
        "title": status.canonical_reason().unwrap_or("Error"),
    });
    if let Some(detail) = detail {
        entry["detail"] = json!(detail);
    }
    HttpResponse::build(status)
        .content_type("application/json")
        .body(json!({"errors": [entry]}).to_string())
}

fn unauthorized() -> HttpResponse {
    error(StatusCode::UNAUTHORIZED, None)
}

fn bad_request(detail: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, Some(detail))
}

/// Unknown paths under /sandbox/kustomer/v1.
pub async fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, None)
}

fn with_retry_after(mut response: HttpResponse, secs: u64) -> HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn fault_answer(fault: ApiFault) -> HttpResponse {
    match fault {
        ApiFault::RateLimited { retry_after_secs } => {
            let response = error(StatusCode::TOO_MANY_REQUESTS, None);
            with_retry_after(response, retry_after_secs)
        }
        ApiFault::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, Some("Injected by the sandbox control API"))
        }
    }
}

fn store_error(err: StoreError) -> HttpResponse {
    match err {
        StoreError::BadRequest(detail) => bad_request(&detail),
        StoreError::NotFound => error(StatusCode::NOT_FOUND, None),
        StoreError::Conflict(detail) => error(StatusCode::CONFLICT, Some(&detail)),
        StoreError::TooManyRequests { retry_after_secs } => with_retry_after(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                Some("At most 120 notes per minute per customer"),
            ),
            retry_after_secs,
        ),
    }
}

/// Who is calling.
enum Principal {
    ApiKey,
    OAuth {
        token_id: String,
        scopes: Vec<String>,
    },
}

/// An authenticated call, acting for one org.
struct Call {
    org: &'static KustomerOrg,
    principal: Principal,
    rate: RateHeaders,
}

impl Call {
    /// Adds the org's rate-limit headers, which Kustomer sends on every answer.
    fn answer(&self, mut response: HttpResponse) -> HttpResponse {
        let values = [
            ("x-ratelimit-limit", self.rate.limit.to_string()),
            ("x-ratelimit-remaining", self.rate.remaining.to_string()),
            ("x-ratelimit-reset", self.rate.reset_secs.to_string()),
        ];
        for (name, value) in values {
            if let Ok(value) = header::HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(header::HeaderName::from_static(name), value);
            }
        }
        response
    }

    fn json(&self, status: StatusCode, body: Value) -> HttpResponse {
        self.answer(super::http::json(status, body))
    }

    fn user(&self) -> &'static User {
        match self.principal {
            Principal::ApiKey => &self.org.machine_user,
            Principal::OAuth { .. } => &self.org.user,
        }
    }
}

/// Faults first (the call is counted), then the token: an org API key or a live OAuth
/// access token of the Kustomer sandbox.
fn begin(sandbox: &Sandbox, req: &HttpRequest) -> Result<Call, HttpResponse> {
    if let Some(fault) = api_gate(sandbox, Provider::Kustomer) {
        return Err(fault_answer(fault));
    }
    let token = bearer(req).ok_or_else(unauthorized)?;
    let (org, principal) = match data::kustomer_org_by_key(token) {
        Some(org) => (org, Principal::ApiKey),
        None => {
            let info = sandbox
                .with(Provider::Kustomer, |state| state.tokens.access(token))
                .ok_or_else(unauthorized)?;
            let org = data::kustomer_org(&info.grant.account).ok_or_else(unauthorized)?;
            let principal = Principal::OAuth {
                token_id: info.id,
                scopes: info.grant.scopes,
            };
            (org, principal)
        }
    };
    let rate = sandbox.with(Provider::Kustomer, |state| {
        state.windows.hit(org.id, ORG_LIMIT_PER_MINUTE)
    });
    Ok(Call {
        org,
        principal,
        rate,
    })
}

/// The authenticated call, or an early return with the refusal (fault or 401).
macro_rules! authenticated {
    ($sandbox:expr, $req:expr) => {
        match begin(&$sandbox, &$req) {
            Ok(call) => call,
            Err(response) => return response,
        }
    };
}

/// A JSON object body, or the 400 answer for anything else.
fn json_object(call: &Call, body: &Bytes) -> Result<Map<String, Value>, HttpResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(call.answer(bad_request("The body must be a JSON object"))),
        Err(e) => Err(call.answer(bad_request(&format!("The body is not valid JSON: {e}")))),
    }
}

/// An optional string field; present with another type is an error.
fn opt_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn org_ref(org: &str) -> Value {
    json!({"data": {"type": "org", "id": org}})
}

fn customer_json(customer: &Customer) -> Value {
    let emails: Vec<Value> = customer
        .emails
        .iter()
        .map(|email| json!({"type": "home", "email": email}))
        .collect();
    json!({
        "type": "customer",
        "id": customer.id,
        "attributes": {
            "name": customer.name,
            "displayName": customer.name,
            "emails": emails,
            "createdAt": customer.created_at,
            "updatedAt": customer.updated_at,
        },
        "relationships": {"org": org_ref(&customer.org)},
        "links": {"self": format!("/v1/customers/{}", customer.id)},
    })
}

fn conversation_json(conversation: &Conversation) -> Value {
    json!({
        "type": "conversation",
        "id": conversation.id,
        "attributes": {
            "name": conversation.name,
            "channels": conversation.channels,
            "status": conversation.status,
            "assignedTeams": conversation.assigned_teams,
            "messageCount": conversation.message_count,
            "noteCount": conversation.note_count,
            "createdAt": conversation.created_at,
            "updatedAt": conversation.updated_at,
        },
        "relationships": {
            "customer": {"data": {"type": "customer", "id": conversation.customer}},
            "org": org_ref(&conversation.org),
        },
        "links": {"self": format!("/v1/conversations/{}", conversation.id)},
    })
}

fn message_json(message: &Message) -> Value {
    let preview: String = message.body.chars().take(100).collect();
    json!({
        "type": "message",
        "id": message.id,
        "attributes": {
            "body": message.body,
            "preview": preview,
            "direction": message.direction,
            "channel": message.channel,
            "createdAt": message.created_at,
        },
        "relationships": {
            "conversation": {"data": {"type": "conversation", "id": message.conversation}},
            "customer": {"data": {"type": "customer", "id": message.customer}},
        },
    })
}

fn note_json(note: &Note) -> Value {
    json!({
        "type": "note",
        "id": note.id,
        "attributes": {"body": note.body, "createdAt": note.created_at, "updatedAt": note.created_at},
        "relationships": {
            "conversation": {"data": {"type": "conversation", "id": note.conversation}},
            "customer": {"data": {"type": "customer", "id": note.customer}},
            "org": org_ref(&note.org),
        },
    })
}

/// A one-page list envelope, as Kustomer's list endpoints answer.
fn list_body(path: &str, data: Vec<Value>) -> Value {
    json!({
        "data": data,
        "links": {"self": path, "first": path, "prev": null, "next": null},
        "meta": {"pageSize": 100, "page": 1},
    })
}

/// GET /v1/auth/tokens/current: which org and roles the presented token has.
async fn token_current(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let default_roles = || KUSTOMER_ROLES.iter().map(|r| r.to_string()).collect();
    let (id, roles): (String, Vec<String>) = match &call.principal {
        Principal::ApiKey => (call.org.api_key_id.to_string(), default_roles()),
        Principal::OAuth { token_id, scopes } if scopes.is_empty() => {
            (token_id.clone(), default_roles())
        }
        Principal::OAuth { token_id, scopes } => (token_id.clone(), scopes.clone()),
    };
    let body = json!({"data": {
        "type": "token",
        "id": id,
        "attributes": {
            "org": call.org.id,
            "orgName": call.org.name,
            "user": call.user().id,
            "roles": roles,
        },
    }});
    call.json(StatusCode::OK, body)
}

/// GET /v1/orgs/current.
async fn org_current(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let body = json!({"data": {
        "type": "org",
        "id": call.org.id,
        "attributes": {
            "name": call.org.name,
            "displayName": call.org.display_name,
            "domain": call.org.domain(),
        },
    }});
    call.json(StatusCode::OK, body)
}

/// GET /v1/users/current: the person who consented, or the org's API-key user.
async fn user_current(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let user = call.user();
    let body = json!({"data": {
        "type": "user",
        "id": user.id,
        "attributes": {
            "name": user.name,
            "displayName": user.name,
            "email": user.email,
            "userType": user.user_type,
        },
        "relationships": {"org": org_ref(call.org.id)},
    }});
    call.json(StatusCode::OK, body)
}

/// GET /v1/teams.
async fn teams(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let data = call
        .org
        .teams
        .iter()
        .map(|team| {
            json!({
                "type": "team",
                "id": team.id,
                "attributes": {"name": team.name, "displayName": team.name},
                "relationships": {"org": org_ref(call.org.id)},
            })
        })
        .collect();
    call.json(StatusCode::OK, list_body("/v1/teams", data))
}

/// GET /v1/customers/{key}: `email=<address>` looks up by email, anything else is an id.
async fn get_customer(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    // The raw segment: actix has decoded only what is safe, so one decode here is exact.
    let key = req.match_info().get("key").unwrap_or("");
    let state = sandbox.lock();
    let found = match key.strip_prefix("email=") {
        Some(raw) => match percent_decode(raw) {
            Some(email) => state.kustomer_data.customer_by_email(call.org.id, &email),
            None => return call.answer(bad_request("The email is not correctly URL-encoded")),
        },
        None => state.kustomer_data.customer(call.org.id, key),
    };
    match found {
        Some(customer) => call.json(StatusCode::OK, json!({"data": customer_json(customer)})),
        None => call.answer(error(StatusCode::NOT_FOUND, None)),
    }
}

/// POST /v1/customers: `{"name", "emails": [{"email"}]}`.
async fn create_customer(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let map = match json_object(&call, &body) {
        Ok(map) => map,
        Err(response) => return response,
    };
    let name = match opt_string(&map, "name") {
        Ok(name) => name,
        Err(message) => return call.answer(bad_request(&message)),
    };
    let emails = match map.get("emails") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let parsed: Option<Vec<String>> = items
                .iter()
                .map(|item| {
                    item.get("email")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            match parsed {
                Some(emails) => emails,
                None => {
                    return call.answer(bad_request(
                        "emails must be a list of {\"email\": \"…\"} objects",
                    ))
                }
            }
        }
        Some(_) => return call.answer(bad_request("emails must be a list")),
    };
    let mut state = sandbox.lock();
    match state
        .kustomer_data
        .create_customer(call.org.id, name, emails)
    {
        Ok(customer) => call.json(
            StatusCode::CREATED,
            json!({"data": customer_json(customer)}),
        ),
        Err(err) => call.answer(store_error(err)),
    }
}

/// Every string under a key that mentions "email", at any depth: enough to read the email
/// filters of Kustomer's search language (`{"and":[{"customer_email":{"equals":…}}]}`).
fn email_filters(value: &Value, under_email_key: bool, found: &mut Vec<String>) {
    match value {
        Value::String(s) if under_email_key => found.push(s.clone()),
        Value::Array(items) => {
            for item in items {
                email_filters(item, under_email_key, found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let is_email = under_email_key || key.to_ascii_lowercase().contains("email");
                email_filters(item, is_email, found);
            }
        }
        _ => {}
    }
}

/// POST /v1/customers/search: customers matching the body's email filters (all customers
/// of the org when it has none).
async fn search_customers(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let map = match json_object(&call, &body) {
        Ok(map) => map,
        Err(response) => return response,
    };
    let mut emails = Vec::new();
    email_filters(&Value::Object(map), false, &mut emails);
    let state = sandbox.lock();
    let data: Vec<Value> = state
        .kustomer_data
        .search(call.org.id, &emails)
        .into_iter()
        .map(customer_json)
        .collect();
    let total = data.len();
    let mut body = list_body("/v1/customers/search", data);
    body["meta"]["total"] = json!(total);
    call.json(StatusCode::OK, body)
}

/// GET /v1/customers/{id}/notes.
async fn customer_notes(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let state = sandbox.lock();
    match state.kustomer_data.notes_of(call.org.id, &id) {
        Some(notes) => {
            let data = notes.into_iter().map(note_json).collect();
            let path = format!("/v1/customers/{id}/notes");
            call.json(StatusCode::OK, list_body(&path, data))
        }
        None => call.answer(error(StatusCode::NOT_FOUND, None)),
    }
}

/// POST /v1/conversations: `{"customer", "name"?, "channel"?}`.
async fn create_conversation(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let map = match json_object(&call, &body) {
        Ok(map) => map,
        Err(response) => return response,
    };
    let fields = (
        opt_string(&map, "customer"),
        opt_string(&map, "name"),
        opt_string(&map, "channel"),
    );
    let (customer, name, channel) = match fields {
        (Ok(Some(customer)), Ok(name), Ok(channel)) => (customer, name, channel),
        (Ok(None), _, _) => return call.answer(bad_request("customer is required")),
        (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => return call.answer(bad_request(&m)),
    };
    let mut state = sandbox.lock();
    let created = state
        .kustomer_data
        .create_conversation(call.org.id, &customer, name, channel);
    match created {
        Ok(conversation) => call.json(
            StatusCode::CREATED,
            json!({"data": conversation_json(conversation)}),
        ),
        Err(err) => call.answer(store_error(err)),
    }
}

/// GET /v1/conversations/{id}.
async fn get_conversation(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let state = sandbox.lock();
    match state.kustomer_data.conversation(call.org.id, &id) {
        Some(conversation) => call.json(
            StatusCode::OK,
            json!({"data": conversation_json(conversation)}),
        ),
        None => call.answer(error(StatusCode::NOT_FOUND, None)),
    }
}

/// PATCH /v1/conversations/{id}: `assignedTeams`, `name` and `status` may change.
async fn update_conversation(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let map = match json_object(&call, &body) {
        Ok(map) => map,
        Err(response) => return response,
    };
    let assigned_teams = match map.get("assignedTeams") {
        None => None,
        Some(Value::Array(items)) => {
            let teams: Option<Vec<String>> = items
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect();
            match teams {
                Some(teams) => Some(teams),
                None => {
                    return call.answer(bad_request("assignedTeams must be a list of team ids"))
                }
            }
        }
        Some(_) => return call.answer(bad_request("assignedTeams must be a list of team ids")),
    };
    let patch = match (opt_string(&map, "name"), opt_string(&map, "status")) {
        (Ok(name), Ok(status)) => ConversationPatch {
            assigned_teams,
            name,
            status,
        },
        (Err(m), _) | (_, Err(m)) => return call.answer(bad_request(&m)),
    };
    let team_ids: Vec<&str> = call.org.teams.iter().map(|t| t.id).collect();
    let mut state = sandbox.lock();
    match state
        .kustomer_data
        .update_conversation(call.org.id, &id, patch, &team_ids)
    {
        Ok(conversation) => call.json(
            StatusCode::OK,
            json!({"data": conversation_json(conversation)}),
        ),
        Err(err) => call.answer(store_error(err)),
    }
}

/// POST /v1/conversations/{id}/messages: `{"body", "direction": "in"|"out", "channel"?}`.
async fn add_message(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let map = match json_object(&call, &body) {
        Ok(map) => map,
        Err(response) => return response,
    };
    let fields = (
        opt_string(&map, "body"),
        opt_string(&map, "direction"),
        opt_string(&map, "channel"),
    );
    let (text, direction, channel) = match fields {
        (Ok(Some(text)), Ok(Some(direction)), Ok(channel)) => (text, direction, channel),
        (Ok(None), _, _) => return call.answer(bad_request("body is required")),
        (_, Ok(None), _) => return call.answer(bad_request("direction is required")),
        (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => return call.answer(bad_request(&m)),
    };
    let mut state = sandbox.lock();
    match state
        .kustomer_data
        .add_message(call.org.id, &id, text, direction, channel)
    {
        Ok(message) => call.json(StatusCode::CREATED, json!({"data": message_json(message)})),
        Err(err) => call.answer(store_error(err)),
    }
}

/// POST /v1/notes: `{"body", "conversation"}`.
async fn add_note(sandbox: web::Data<Sandbox>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let map = match json_object(&call, &body) {
        Ok(map) => map,
        Err(response) => return response,
    };
    let (text, conversation) = match (opt_string(&map, "body"), opt_string(&map, "conversation")) {
        (Ok(Some(text)), Ok(Some(conversation))) => (text, conversation),
        (Ok(None), _) => return call.answer(bad_request("body is required")),
        (_, Ok(None)) => return call.answer(bad_request("conversation is required")),
        (Err(m), _) | (_, Err(m)) => return call.answer(bad_request(&m)),
    };
    let mut state = sandbox.lock();
    match state
        .kustomer_data
        .add_note(call.org.id, &conversation, text)
    {
        Ok(note) => call.json(StatusCode::CREATED, json!({"data": note_json(note)})),
        Err(err) => call.answer(store_error(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::KUSTOMER_API_KEYS;
    use super::*;
    use actix_web::test;

    const ACME_KEY: &str = KUSTOMER_API_KEYS[0].1;
    const INITECH_KEY: &str = KUSTOMER_API_KEYS[1].1;

    fn post(path: &str, key: &str, body: Value) -> test::TestRequest {
        post_json(path, body).insert_header(("authorization", format!("Bearer {key}")))
    }

    #[actix_web::test]
    async fn api_key_identifies_the_org() {
        let app = app(sandbox()).await;
        let resp = app
            .send(get_bearer(
                "/sandbox/kustomer/v1/auth/tokens/current",
                ACME_KEY,
            ))
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-ratelimit-limit"), "1000");
        assert_eq!(header(&resp, "x-ratelimit-remaining"), "999");
        assert!(resp.headers().contains_key("x-ratelimit-reset"));
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["data"]["type"], "token");
        assert_eq!(body["data"]["attributes"]["orgName"], "acme-support");
        assert_eq!(
            body["data"]["attributes"]["org"],
            "5f3a1c9e8b2d4a0017c6e101"
        );
        assert!(body["data"]["attributes"]["roles"]
            .as_array()
            .is_some_and(|r| !r.is_empty()));

        let (_, org) = app
            .json(get_bearer("/sandbox/kustomer/v1/orgs/current", INITECH_KEY))
            .await;
        assert_eq!(org["data"]["attributes"]["name"], "initech");
        assert_eq!(org["data"]["attributes"]["displayName"], "Initech Helpdesk");
        assert_eq!(
            org["data"]["attributes"]["domain"],
            "initech.kustomerapp.com"
        );

        let (_, teams) = app
            .json(get_bearer("/sandbox/kustomer/v1/teams", ACME_KEY))
            .await;
        let names: Vec<&str> = teams["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["attributes"]["name"].as_str())
            .collect();
        assert_eq!(names, ["Tier 1", "Billing", "Escalations"]);

        let (_, user) = app
            .json(get_bearer("/sandbox/kustomer/v1/users/current", ACME_KEY))
            .await;
        assert_eq!(user["data"]["attributes"]["userType"], "machine");
    }

    #[actix_web::test]
    async fn bad_tokens_are_unauthorized() {
        let app = app(sandbox()).await;
        for token in ["sandbox-kustomer-key-nope", "skus_at_unknown"] {
            let (status, body) = app
                .json(get_bearer("/sandbox/kustomer/v1/orgs/current", token))
                .await;
            assert_eq!(status, 401);
            assert_eq!(
                body,
                json!({"errors": [{"status": 401, "title": "Unauthorized"}]})
            );
        }
        let (status, _) = app
            .json(test::TestRequest::get().uri("/sandbox/kustomer/v1/teams"))
            .await;
        assert_eq!(status, 401);
    }

    #[actix_web::test]
    async fn oauth_tokens_act_as_the_consenting_user() {
        let app = app(sandbox()).await;
        let issued = tokens(&app, Provider::Kustomer, "5f3a1c9e8b2d4a0017c6e202").await;
        let token = str_of(&issued, "access_token");
        let (_, current) = app
            .json(get_bearer(
                "/sandbox/kustomer/v1/auth/tokens/current",
                &token,
            ))
            .await;
        assert_eq!(current["data"]["attributes"]["orgName"], "initech");
        let (_, user) = app
            .json(get_bearer("/sandbox/kustomer/v1/users/current", &token))
            .await;
        assert_eq!(user["data"]["attributes"]["userType"], "user");
        // A Klaviyo token does not open Kustomer.
        let klaviyo = tokens(&app, Provider::Klaviyo, "AcmeK1").await;
        let (status, _) = app
            .json(get_bearer(
                "/sandbox/kustomer/v1/orgs/current",
                &str_of(&klaviyo, "access_token"),
            ))
            .await;
        assert_eq!(status, 401);
    }

    #[actix_web::test]
    async fn customer_by_email_create_and_search() {
        let app = app(sandbox()).await;
        let (status, body) = app
            .json(get_bearer(
                "/sandbox/kustomer/v1/customers/email=jane.doe%40example.com",
                ACME_KEY,
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["attributes"]["name"], "Jane Doe");
        let (status, body) = app
            .json(get_bearer(
                "/sandbox/kustomer/v1/customers/email=jane.doe%40example.com",
                INITECH_KEY,
            ))
            .await;
        assert_eq!(
            (status, body),
            (
                404,
                json!({"errors": [{"status": 404, "title": "Not Found"}]})
            )
        );

        let create = post(
            "/sandbox/kustomer/v1/customers",
            ACME_KEY,
            json!({"name": "Max Plus", "emails": [{"email": "max+news@example.com"}]}),
        );
        let (status, created) = app.json(create).await;
        assert_eq!(status, 201);
        let id = str_of(&created["data"], "id");
        assert_eq!(id.len(), 24);
        let (status, found) = app
            .json(get_bearer(
                "/sandbox/kustomer/v1/customers/email=max%2Bnews%40example.com",
                ACME_KEY,
            ))
            .await;
        assert_eq!((status, str_of(&found["data"], "id")), (200, id.clone()));
        let (status, _) = app
            .json(get_bearer(
                "/sandbox/kustomer/v1/customers/email=max+news@example.com",
                ACME_KEY,
            ))
            .await;
        assert_eq!(status, 200);
        let duplicate = post(
            "/sandbox/kustomer/v1/customers",
            ACME_KEY,
            json!({"emails": [{"email": "MAX+news@example.com"}]}),
        );
        assert_eq!(app.json(duplicate).await.0, 409);

        let search = post(
            "/sandbox/kustomer/v1/customers/search",
            ACME_KEY,
            json!({"and": [{"customer_email": {"equals": "max+news@example.com"}}], "queryContext": "customer"}),
        );
        let (status, results) = app.json(search).await;
        assert_eq!(status, 200);
        assert_eq!(results["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(str_of(&results["data"][0], "id"), id);
        let bad = post(
            "/sandbox/kustomer/v1/customers",
            ACME_KEY,
            json!({"emails": "x"}),
        );
        assert_eq!(app.json(bad).await.0, 400);
        let not_json = test::TestRequest::post()
            .uri("/sandbox/kustomer/v1/customers")
            .insert_header(("authorization", format!("Bearer {ACME_KEY}")))
            .set_payload("{{{");
        assert_eq!(app.json(not_json).await.0, 400);
    }

    #[actix_web::test]
    async fn conversation_message_and_note_limits() {
        let app = app(sandbox()).await;
        let jane = "5f3a1f6c8b2d4a0017c6e131";
        let unknown = post(
            "/sandbox/kustomer/v1/conversations",
            ACME_KEY,
            json!({"customer": "000000000000000000000000"}),
        );
        assert_eq!(app.json(unknown).await.0, 400);
        // Another org's customer is unknown here.
        let foreign = post(
            "/sandbox/kustomer/v1/conversations",
            INITECH_KEY,
            json!({"customer": jane}),
        );
        assert_eq!(app.json(foreign).await.0, 400);

        let create = post(
            "/sandbox/kustomer/v1/conversations",
            ACME_KEY,
            json!({"customer": jane, "name": "Order #1001", "channel": "email"}),
        );
        let (status, conversation) = app.json(create).await;
        assert_eq!(status, 201);
        let id = str_of(&conversation["data"], "id");

        let patch = test::TestRequest::patch()
            .uri(&format!("/sandbox/kustomer/v1/conversations/{id}"))
            .insert_header(("authorization", format!("Bearer {ACME_KEY}")))
            .insert_header(("content-type", "application/json"))
            .set_payload(json!({"assignedTeams": ["5f3a1d2e8b2d4a0017c6e112"]}).to_string());
        let (status, patched) = app.json(patch).await;
        assert_eq!(status, 200);
        assert_eq!(
            patched["data"]["attributes"]["assignedTeams"],
            json!(["5f3a1d2e8b2d4a0017c6e112"])
        );
        let bad_team = test::TestRequest::patch()
            .uri(&format!("/sandbox/kustomer/v1/conversations/{id}"))
            .insert_header(("authorization", format!("Bearer {ACME_KEY}")))
            .set_payload(json!({"assignedTeams": ["5f3a1d2e8b2d4a0017c6e211"]}).to_string());
        assert_eq!(app.json(bad_team).await.0, 400);

        let message = post(
            &format!("/sandbox/kustomer/v1/conversations/{id}/messages"),
            ACME_KEY,
            json!({"body": "Hello", "direction": "out", "channel": "email"}),
        );
        let (status, message) = app.json(message).await;
        assert_eq!(status, 201);
        assert_eq!(message["data"]["attributes"]["direction"], "out");
        let sideways = post(
            &format!("/sandbox/kustomer/v1/conversations/{id}/messages"),
            ACME_KEY,
            json!({"body": "Hello", "direction": "sideways"}),
        );
        assert_eq!(app.json(sideways).await.0, 400);

        let at_limit = "a".repeat(10_240);
        let note = post(
            "/sandbox/kustomer/v1/notes",
            ACME_KEY,
            json!({"body": at_limit, "conversation": id}),
        );
        assert_eq!(app.json(note).await.0, 201);
        let too_long = "é".repeat(10_241);
        let note = post(
            "/sandbox/kustomer/v1/notes",
            ACME_KEY,
            json!({"body": too_long, "conversation": id}),
        );
        assert_eq!(app.json(note).await.0, 400);
        let nowhere = post(
            "/sandbox/kustomer/v1/notes",
            ACME_KEY,
            json!({"body": "x", "conversation": "nope"}),
        );
        assert_eq!(app.json(nowhere).await.0, 400);
        let missing = post("/sandbox/kustomer/v1/notes", ACME_KEY, json!({"body": "x"}));
        assert_eq!(app.json(missing).await.0, 400);

        let (status, notes) = app
            .json(get_bearer(
                &format!("/sandbox/kustomer/v1/customers/{jane}/notes"),
                ACME_KEY,
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(notes["data"].as_array().map(Vec::len), Some(1));
        let (status, _) = app
            .json(get_bearer(
                &format!("/sandbox/kustomer/v1/customers/{jane}/notes"),
                INITECH_KEY,
            ))
            .await;
        assert_eq!(status, 404);
        let (_, fetched) = app
            .json(get_bearer(
                &format!("/sandbox/kustomer/v1/conversations/{id}"),
                ACME_KEY,
            ))
            .await;
        assert_eq!(fetched["data"]["attributes"]["noteCount"], 1);
        assert_eq!(fetched["data"]["attributes"]["messageCount"], 1);
    }

    #[actix_web::test]
    async fn rate_limit_fault_answers_429_with_retry_after() {
        let app = app(sandbox()).await;
        let arm = post_json(
            "/sandbox/_control/faults",
            json!({"provider": "kustomer", "rate_limit_next": 1, "retry_after_secs": 30}),
        );
        assert_eq!(app.json(arm).await.0, 200);
        let resp = app
            .send(get_bearer("/sandbox/kustomer/v1/teams", ACME_KEY))
            .await;
        assert_eq!(resp.status(), 429);
        assert_eq!(header(&resp, "retry-after"), "30");
        let resp = app
            .send(get_bearer("/sandbox/kustomer/v1/teams", ACME_KEY))
            .await;
        assert_eq!(resp.status(), 200);
    }

    #[actix_web::test]
    async fn unknown_paths_answer_kustomer_404() {
        let app = app(sandbox()).await;
        let (status, body) = app
            .json(get_bearer("/sandbox/kustomer/v1/widgets", ACME_KEY))
            .await;
        assert_eq!(
            (status, body["errors"][0]["status"].clone()),
            (404, json!(404))
        );
    }
}
