//! Typed provider operations as JSON endpoints (scope `proxy`) under
//! `/api/v1/clients/{id}/kustomer/…` and `/api/v1/clients/{id}/klaviyo/…`. The handlers
//! parse, call `crate::operations` and render; the work and the checks live there.

use super::error::ErrorBody;
use super::error::{json_body, ApiError};
use super::service_auth::ServiceKey;
use crate::api_keys::Scope;
use crate::input::RecordId;
use crate::oauth::lifecycle::TokenError;
use crate::operations::kustomer::{self, Direction, NewConversation};
use crate::operations::{self, klaviyo, Caller, OpError};
use crate::route_table::Table;
use crate::state::AppState;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

/// Plain routes, not scopes: a nested scope would answer unknown paths under it with an
/// empty 404 instead of the service API's JSON one.
pub fn routes(cfg: &mut web::ServiceConfig) {
    const KUSTOMER: &str = "/clients/{id}/kustomer";
    const CONVERSATION: &str = "/clients/{id}/kustomer/conversations/{conversation_id}";
    const KLAVIYO: &str = "/clients/{id}/klaviyo";
    cfg.at(Method::GET, &format!("{KUSTOMER}/customers"), find_customer)
        .at(
            Method::POST,
            &format!("{KUSTOMER}/customers"),
            create_customer,
        )
        .at(
            Method::POST,
            &format!("{KUSTOMER}/conversations"),
            create_conversation,
        )
        .at(Method::POST, &format!("{CONVERSATION}/notes"), add_note)
        .at(
            Method::POST,
            &format!("{CONVERSATION}/messages"),
            send_message,
        )
        .at(Method::PUT, &format!("{CONVERSATION}/team"), assign_team)
        .at(Method::GET, &format!("{KUSTOMER}/teams"), teams)
        .at(Method::GET, &format!("{KLAVIYO}/account"), account)
        .at(Method::GET, &format!("{KLAVIYO}/lists"), lists)
        .at(Method::GET, &format!("{KLAVIYO}/segments"), segments)
        .at(
            Method::POST,
            &format!("{KLAVIYO}/profile/refresh"),
            refresh_profile,
        );
}

/// Runs `op` as the client (`operations::run`); every failure becomes the service API's
/// JSON error.
async fn as_client<T>(
    state: &AppState,
    client_id: &str,
    provider: &'static str,
    op: impl AsyncFnOnce(&Caller<'_>) -> Result<T, OpError>,
) -> Result<T, ApiError> {
    operations::run(state, client_id, provider, op)
        .await
        .map_err(|e| op_error(state, client_id, e))
}

fn op_error(state: &AppState, client_id: &str, error: OpError) -> ApiError {
    let message = error.to_string();
    match error {
        OpError::ClientNotFound => ApiError::not_found("client"),
        OpError::WrongProvider { .. } => {
            ApiError::conflict("wrong_provider", message, Default::default())
        }
        OpError::Invalid(message) => ApiError::bad_request(message),
        OpError::NotFound(what) => ApiError::not_found(what),
        OpError::RateLimited { retry_after } => ApiError::rate_limited(message, retry_after),
        OpError::OverBudget(over) => ApiError::over_budget(&over),
        OpError::Rejected { status, detail } => ApiError::provider_rejected(status, detail),
        OpError::Unavailable(message) => ApiError::unavailable(message),
        OpError::Unauthorized => super::tokens::token_error(
            state,
            client_id,
            TokenError::NeedsReauth("the provider refused the credential (HTTP 401)".into()),
        ),
        OpError::Conflict(message) => ApiError::conflict("conflict", message, Default::default()),
        OpError::Token(e) => super::tokens::token_error(state, client_id, e),
        OpError::Storage(e) => e.into(),
    }
}

fn created(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Created().json(body)
}

fn ok(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

#[derive(serde::Deserialize)]
struct EmailQuery {
    email: Option<String>,
}

/// Finds a Kustomer customer by email address.
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/kustomer/customers",
    tag = "operations",
    params(
        ("id" = String, Path, description = "A Kustomer client"),
        ("email" = String, Query, description = "The customer's email address"),
    ),
    responses(
        (status = 200, description = "The customer", body = kustomer::Customer),
        (status = 400, description = "email is missing or malformed (`invalid_request`)", body = ErrorBody),
        (status = 404, description = "No such client or customer (`not_found`)", body = ErrorBody),
        (status = 409, description = "`wrong_provider`, `needs_reauth` or `disconnected`", body = ErrorBody),
        (status = 429, description = "Kustomer kept rate limiting (`rate_limited`, `retry_after`)", body = ErrorBody),
        (status = 503, description = "Kustomer did not answer (`provider_unavailable`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn find_customer(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let query: EmailQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    let email = query
        .email
        .ok_or_else(|| ApiError::bad_request("email is required"))?;
    let found = as_client(&state, path.as_str(), kustomer::PROVIDER, async |caller| {
        kustomer::find_customer(caller, &email).await
    })
    .await?;
    found.map(ok).ok_or_else(|| ApiError::not_found("customer"))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomerBody {
    pub email: String,
    pub name: Option<String>,
}

/// Creates a Kustomer customer with one email address.
#[utoipa::path(
    post,
    path = "/api/v1/clients/{id}/kustomer/customers",
    tag = "operations",
    params(("id" = String, Path, description = "A Kustomer client")),
    request_body = NewCustomerBody,
    responses(
        (status = 201, description = "The new customer", body = kustomer::Customer),
        (status = 400, description = "Bad input; nothing was sent (`invalid_request`)", body = ErrorBody),
        (status = 422, description = "Kustomer refused, e.g. the email exists (`provider_rejected`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create_customer(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    body: web::Bytes,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let input: NewCustomerBody = json_body(&body)?;
    let customer = as_client(&state, path.as_str(), kustomer::PROVIDER, async |caller| {
        kustomer::create_customer(caller, input.name.as_deref(), &input.email).await
    })
    .await?;
    Ok(created(customer))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversationBody {
    pub customer_id: String,
    pub name: Option<String>,
    /// email, chat, sms…
    pub channel: Option<String>,
    /// Your id for what the conversation is about (a chat session id): a repeat with the
    /// same external_id answers the first conversation (200, `created: false`).
    pub external_id: Option<String>,
}

/// Creates a Kustomer conversation, once per external_id.
#[utoipa::path(
    post,
    path = "/api/v1/clients/{id}/kustomer/conversations",
    tag = "operations",
    params(("id" = String, Path, description = "A Kustomer client")),
    request_body = NewConversationBody,
    responses(
        (status = 201, description = "Created (`created: true`)", body = kustomer::ConversationCreated),
        (status = 200, description = "Created before for this external_id (`created: false`)", body = kustomer::ConversationCreated),
        (status = 400, description = "Bad input; nothing was sent (`invalid_request`)", body = ErrorBody),
        (status = 409, description = "external_id belongs to another customer or is being created (`conflict`)", body = ErrorBody),
        (status = 422, description = "Kustomer refused, e.g. unknown customer (`provider_rejected`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create_conversation(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    body: web::Bytes,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let input: NewConversationBody = json_body(&body)?;
    let new = NewConversation {
        customer_id: &input.customer_id,
        name: input.name.as_deref(),
        channel: input.channel.as_deref(),
        external_id: input.external_id.as_deref(),
    };
    let answer = as_client(&state, path.as_str(), kustomer::PROVIDER, async |caller| {
        kustomer::create_conversation(caller, &new).await
    })
    .await?;
    Ok(if answer.created {
        created(answer)
    } else {
        ok(answer)
    })
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// At most 10,240 characters.
    pub body: String,
}

/// Adds an internal note to a Kustomer conversation.
#[utoipa::path(
    post,
    path = "/api/v1/clients/{id}/kustomer/conversations/{conversation_id}/notes",
    tag = "operations",
    params(
        ("id" = String, Path, description = "A Kustomer client"),
        ("conversation_id" = String, Path, description = "The Kustomer conversation"),
    ),
    request_body = NoteBody,
    responses(
        (status = 201, description = "The note", body = kustomer::Note),
        (status = 400, description = "Empty or longer than 10,240 characters; nothing was sent (`invalid_request`)", body = ErrorBody),
        (status = 422, description = "Kustomer refused, e.g. unknown conversation (`provider_rejected`)", body = ErrorBody),
        (status = 429, description = "More than 120 notes a minute for this customer (`rate_limited`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn add_note(
    state: web::Data<AppState>,
    path: web::Path<(RecordId, String)>,
    body: web::Bytes,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let (id, conversation) = path.into_inner();
    let input: NoteBody = json_body(&body)?;
    let note = as_client(&state, id.as_str(), kustomer::PROVIDER, async |caller| {
        kustomer::add_note(caller, &conversation, &input.body).await
    })
    .await?;
    Ok(created(note))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// At most 100,000 characters.
    pub body: String,
    pub direction: Direction,
    pub channel: Option<String>,
}

/// Adds a message to a Kustomer conversation.
#[utoipa::path(
    post,
    path = "/api/v1/clients/{id}/kustomer/conversations/{conversation_id}/messages",
    tag = "operations",
    params(
        ("id" = String, Path, description = "A Kustomer client"),
        ("conversation_id" = String, Path, description = "The Kustomer conversation"),
    ),
    request_body = MessageBody,
    responses(
        (status = 201, description = "The message", body = kustomer::Message),
        (status = 400, description = "Bad input; nothing was sent (`invalid_request`)", body = ErrorBody),
        (status = 404, description = "No such client or conversation (`not_found`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn send_message(
    state: web::Data<AppState>,
    path: web::Path<(RecordId, String)>,
    body: web::Bytes,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let (id, conversation) = path.into_inner();
    let input: MessageBody = json_body(&body)?;
    let message = as_client(&state, id.as_str(), kustomer::PROVIDER, async |caller| {
        kustomer::send_message(
            caller,
            &conversation,
            &input.body,
            input.direction,
            input.channel.as_deref(),
        )
        .await
    })
    .await?;
    Ok(created(message))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamBody {
    pub team_id: String,
}

/// Assigns a Kustomer conversation to one team.
#[utoipa::path(
    put,
    path = "/api/v1/clients/{id}/kustomer/conversations/{conversation_id}/team",
    tag = "operations",
    params(
        ("id" = String, Path, description = "A Kustomer client"),
        ("conversation_id" = String, Path, description = "The Kustomer conversation"),
    ),
    request_body = TeamBody,
    responses(
        (status = 200, description = "The conversation as Kustomer has it now", body = kustomer::Conversation),
        (status = 404, description = "No such client or conversation (`not_found`)", body = ErrorBody),
        (status = 422, description = "Kustomer refused, e.g. unknown team (`provider_rejected`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn assign_team(
    state: web::Data<AppState>,
    path: web::Path<(RecordId, String)>,
    body: web::Bytes,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let (id, conversation) = path.into_inner();
    let input: TeamBody = json_body(&body)?;
    let updated = as_client(&state, id.as_str(), kustomer::PROVIDER, async |caller| {
        kustomer::assign_team(caller, &conversation, &input.team_id).await
    })
    .await?;
    Ok(ok(updated))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TeamList {
    pub teams: Vec<kustomer::Team>,
}

/// The Kustomer org's teams.
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/kustomer/teams",
    tag = "operations",
    params(("id" = String, Path, description = "A Kustomer client")),
    responses((status = 200, description = "Every team", body = TeamList)),
    security(("api_key" = []))
)]
pub async fn teams(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let teams = as_client(&state, path.as_str(), kustomer::PROVIDER, async |caller| {
        kustomer::teams(caller).await
    })
    .await?;
    Ok(ok(TeamList { teams }))
}

/// The Klaviyo account's profile fields.
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/klaviyo/account",
    tag = "operations",
    params(("id" = String, Path, description = "A Klaviyo client")),
    responses(
        (status = 200, description = "account_id, account_name, contact_email, timezone, …", body = Object),
        (status = 409, description = "`wrong_provider`, `needs_reauth` or `disconnected`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn account(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let account = as_client(&state, path.as_str(), klaviyo::PROVIDER, async |caller| {
        klaviyo::account(caller).await
    })
    .await?;
    Ok(ok(account))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct GroupList {
    pub count: usize,
    pub data: Vec<klaviyo::Group>,
}

impl From<Vec<klaviyo::Group>> for GroupList {
    fn from(data: Vec<klaviyo::Group>) -> Self {
        Self {
            count: data.len(),
            data,
        }
    }
}

/// Every list of the Klaviyo account (all pages).
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/klaviyo/lists",
    tag = "operations",
    params(("id" = String, Path, description = "A Klaviyo client")),
    responses((status = 200, description = "Every list", body = GroupList)),
    security(("api_key" = []))
)]
pub async fn lists(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let lists = as_client(&state, path.as_str(), klaviyo::PROVIDER, async |caller| {
        klaviyo::lists(caller).await
    })
    .await?;
    Ok(ok(GroupList::from(lists)))
}

/// Every segment of the Klaviyo account (all pages).
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}/klaviyo/segments",
    tag = "operations",
    params(("id" = String, Path, description = "A Klaviyo client")),
    responses((status = 200, description = "Every segment", body = GroupList)),
    security(("api_key" = []))
)]
pub async fn segments(
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let segments = as_client(&state, path.as_str(), klaviyo::PROVIDER, async |caller| {
        klaviyo::segments(caller).await
    })
    .await?;
    Ok(ok(GroupList::from(segments)))
}

/// Reads the account, list and segment counts again into the client's stored profile
/// (audited as `client_profile_refreshed`).
#[utoipa::path(
    post,
    path = "/api/v1/clients/{id}/klaviyo/profile/refresh",
    tag = "operations",
    params(("id" = String, Path, description = "A Klaviyo client")),
    responses((status = 200, description = "The stored profile, with the counts before and after", body = klaviyo::ProfileRefreshed)),
    security(("api_key" = []))
)]
pub async fn refresh_profile(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    service: ServiceKey,
) -> Result<HttpResponse, ApiError> {
    service.require(Scope::Proxy)?;
    let refreshed = as_client(&state, path.as_str(), klaviyo::PROVIDER, async |caller| {
        klaviyo::refresh_profile(caller, service.actor(), crate::http_util::origin(&req)).await
    })
    .await?;
    Ok(ok(refreshed))
}
