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

use super::KUSTOMER_ORG_RATE_PER_MINUTE as ORG_LIMIT_PER_MINUTE;

/// The `{id}` of a path, by name: under `/sandbox/kustomer/org/{org}` the path has the
/// org too.
#[derive(serde::Deserialize)]
pub(super) struct IdParam {
    id: String,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/tokens/current", web::get().to(token_current))
        .route("/orgs/current", web::get().to(org_current))
        .route("/users/current", web::get().to(user_current))
        .route("/teams", web::get().to(teams))
        .route("/customers", web::get().to(listing::list_customers))
        .route("/customers", web::post().to(create_customer))
        .route("/customers/search", web::post().to(search_customers))
        .route("/customers/{key}", web::get().to(get_customer))
        .route("/customers/{id}/notes", web::get().to(customer_notes))
        .route("/conversations", web::get().to(listing::list_conversations))
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
    let (rate, limited) = sandbox.with(Provider::Kustomer, |state| {
        let rate = state.windows.hit(org.id, ORG_LIMIT_PER_MINUTE);
        let over = rate.exceeded.then_some(rate.reset_secs);
        let limited = super::control::over_budget(state, over);
        (rate, limited)
    });
    if let Some(retry_after_secs) = limited {
        return Err(fault_answer(ApiFault::RateLimited { retry_after_secs }));
    }
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

mod conversations;
mod customers;
mod listing;
#[cfg(test)]
mod tests;

use conversations::{
    add_message, add_note, create_conversation, get_conversation, update_conversation,
};
use customers::{create_customer, customer_notes, get_customer, search_customers};

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
