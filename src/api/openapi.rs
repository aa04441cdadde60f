//! The OpenAPI document of the service API, generated from the handlers' annotations and
//! served at `/api/v1/openapi.json`.

use super::common_answers::CommonAnswers;
use super::error::ErrorBody;
use super::operation_endpoints as operations;
use super::webhook_endpoints as hooks;
use crate::operations::{klaviyo, kustomer};
use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("chk_…")
                    .description(Some("A service API key from /admin/api-keys"))
                    .build(),
            ),
        );
    }
}

// The handlers of renamed modules name their old tag (`tag = ...`): the document, which
// clients are generated from, stays as it was.
#[derive(OpenApi)]
#[openapi(
    info(title = "connecthub service API", description = "Fresh OAuth tokens, client lists, a metered proxy, usage statistics and typed Kustomer and Klaviyo operations for your own backends, and the endpoints that receive connecthub's signed webhooks."),
    paths(
        super::clients::list_clients, super::tokens::client_token, super::tokens::default_token,
        super::refreshes::list,
        super::usage::stats, super::proxy_endpoint::forward,
        super::connect_sessions::create, super::connect_sessions::end_user_connections,
        super::connect_sessions::disconnect_client,
        operations::find_customer, operations::create_customer, operations::create_conversation,
        operations::add_note, operations::send_message, operations::assign_team, operations::teams,
        operations::account, operations::lists, operations::segments, operations::refresh_profile,
        hooks::list, hooks::create, hooks::show, hooks::update, hooks::delete, hooks::rotate,
        hooks::send_test, hooks::replay,
        super::syncs::list_records, super::syncs::list_syncs, super::syncs::run_sync,
    ),
    components(schemas(
        ErrorBody, crate::connect::request::SessionBody, crate::connect::request::EndUserBody,
        super::connect_sessions::SessionCreated, super::connect_sessions::EndUserConnections,
        super::connect_sessions::EndUserView, super::connect_sessions::Disconnected,
        super::clients::ClientList, super::clients::ClientView, super::tokens::TokenResponse,
        super::refreshes::RefreshHistory, super::refreshes::RefreshAttempt,
        super::usage::UsageResponse, crate::usage::Stats, crate::usage::EndpointStats,
        crate::usage::PointStats, crate::usage::Percentiles,
        operations::NewCustomerBody, operations::NewConversationBody, operations::NoteBody,
        operations::MessageBody, operations::TeamBody, operations::TeamList, operations::GroupList,
        kustomer::Customer, kustomer::Conversation, kustomer::ConversationCreated, kustomer::Note,
        kustomer::Message, kustomer::Team, kustomer::Direction, klaviyo::Group, klaviyo::ProfileRefreshed,
        hooks::EndpointBody, hooks::ReplayBody, hooks::EndpointView, hooks::AttemptView, hooks::EndpointList,
        hooks::SecretAnswer, hooks::Queued, hooks::TestSent,
        super::syncs::RecordPage, super::syncs::RecordView, super::syncs::SyncList,
        super::syncs::RunQueued, crate::syncs::admin::ModelSync,
    )),
    modifiers(&ApiKeyAuth, &CommonAnswers)
)]
struct ServiceApi;

/// The document, built once.
pub fn service_api() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(ServiceApi::openapi)
}

/// The document as served, built once.
fn served() -> &'static serde_json::Value {
    static JSON: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = serde_json::to_value(service_api()).expect("the document serialises");
        super::common_answers::allow_empty_filters(&mut json);
        json
    })
}

/// `GET /api/v1/openapi.json` (public: it describes, it does not grant).
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(served())
}
