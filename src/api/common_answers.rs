//! What every operation of the OpenAPI document shares, written once instead of on each
//! handler: the answers any keyed call can get (401 for a bad key, 429 when a limit is
//! reached), and for an operation on a client the form of its id (a UUID; anything else
//! names no client) and the 404 for an unknown one. Also which methods a path takes, for
//! the 405 answer to any other method.

use crate::connect::request::END_USER_ID_MAX;
use crate::operations::kustomer;
use crate::webhooks::manage::DESCRIPTION_MAX_CHARS;
use crate::webhooks::url_safety::URL_MAX_CHARS;
use crate::webhooks::EventType;
use actix_web::dev::ResourceDef;
use std::collections::BTreeMap;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema,
};
use utoipa::Modify;

pub struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let one_provider = path
                .strip_prefix("/api/v1/clients/{id}/")
                .is_some_and(|rest| rest.contains('/'));
            for operation in operations_mut(item) {
                if one_provider {
                    let why = "`wrong_provider` (a client of another provider), `needs_reauth` or `disconnected`";
                    add_answer(operation, "409", error_answer(why));
                }
                if operation.security.is_some() {
                    add_keyed_answers(operation);
                }
                if names_a_client(path, operation) {
                    add_answer(
                        operation,
                        "404",
                        error_answer("No such client (`not_found`)"),
                    );
                }
                if takes_input(operation) {
                    let why = "Malformed or missing input; nothing was done (`invalid_request`)";
                    add_answer(operation, "400", error_answer(why));
                }
                give_parameters_their_form(path, operation);
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            give_bodies_their_form(&mut components.schemas);
            list_event_types(&mut components.schemas);
        }
    }
}

/// Request body fields the server checks: (schema, field, form, most characters). A
/// message's 100,000-character limit is in its description only: schemathesis, given that
/// length with the pattern, sends a body that is not even an object.
const BODY_FORMS: [(&str, &str, &str, Option<usize>); 15] = [
    ("EndpointBody", "url", forms::HTTP_URL, Some(URL_MAX_CHARS)),
    (
        "EndpointBody",
        "description",
        forms::ONE_LINE,
        Some(DESCRIPTION_MAX_CHARS),
    ),
    (
        "SessionBody",
        "reconnect_client_id",
        forms::CLIENT_ID,
        Some(36),
    ),
    (
        "EndUserBody",
        "id",
        forms::END_USER_ID,
        Some(END_USER_ID_MAX),
    ),
    ("EndUserBody", "email", forms::EMAIL, Some(254)),
    ("NewCustomerBody", "email", forms::EMAIL, Some(254)),
    (
        "NewCustomerBody",
        "name",
        forms::TEXT,
        Some(kustomer::MAX_NAME_CHARS),
    ),
    (
        "NewConversationBody",
        "customer_id",
        forms::PROVIDER_ID,
        Some(64),
    ),
    (
        "NewConversationBody",
        "name",
        forms::TEXT,
        Some(kustomer::MAX_NAME_CHARS),
    ),
    ("NewConversationBody", "channel", forms::CHANNEL, Some(32)),
    (
        "NewConversationBody",
        "external_id",
        forms::EXTERNAL_ID,
        Some(kustomer::MAX_EXTERNAL_ID_CHARS),
    ),
    (
        "NoteBody",
        "body",
        forms::TEXT,
        Some(kustomer::MAX_NOTE_CHARS),
    ),
    ("MessageBody", "body", forms::TEXT, None),
    ("MessageBody", "channel", forms::CHANNEL, Some(32)),
    ("TeamBody", "team_id", forms::PROVIDER_ID, Some(64)),
];

/// Path and query parameters the server checks: (paths they are on, name, form, most
/// characters); "" for every path. `id` names a client under /clients and an end user
/// (the team's own id) under /end-users.
const PARAMETER_FORMS: [(&str, &str, &str, usize); 6] = [
    ("/api/v1/clients/", "id", forms::CLIENT_ID, 36),
    ("/api/v1/proxy/", "client_id", forms::CLIENT_ID, 36),
    (
        "/api/v1/end-users/",
        "id",
        forms::END_USER_ID,
        END_USER_ID_MAX,
    ),
    (
        "",
        "end_user_id",
        forms::END_USER_ID_FILTER,
        END_USER_ID_MAX,
    ),
    ("", "conversation_id", forms::PROVIDER_ID, 64),
    ("", "email", forms::EMAIL, 254),
];

fn form_of(path: &str, parameter: &str) -> Option<(&'static str, usize)> {
    PARAMETER_FORMS
        .iter()
        .find(|(prefix, name, ..)| path.starts_with(prefix) && *name == parameter)
        .map(|(_, _, pattern, max)| (*pattern, *max))
}

fn give_parameters_their_form(path: &str, operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let Some((pattern, max)) = form_of(path, &parameter.name) else {
            continue;
        };
        let mut form = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .max_length(Some(max))
            .build();
        if let Some(RefOr::T(Schema::Object(declared))) = parameter.schema.as_ref() {
            form.description = declared.description.clone();
        }
        parameter.schema = Some(RefOr::T(Schema::Object(form)));
    }
}

/// An endpoint's `event_types` name the catalogue's types an endpoint can ask for (all
/// but `webhook.test`, which goes only to the endpoint being tested).
fn list_event_types(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    let Some(RefOr::T(Schema::Object(body))) = schemas.get_mut("EndpointBody") else {
        return;
    };
    let names = EventType::ALL
        .into_iter()
        .filter(|t| *t != EventType::WebhookTest)
        .map(EventType::as_str);
    let item = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names));
    let list = utoipa::openapi::schema::ArrayBuilder::new().items(item);
    body.properties
        .insert("event_types".into(), RefOr::T(Schema::Array(list.build())));
}

fn give_bodies_their_form(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    for (schema_name, field, pattern, max) in BODY_FORMS {
        let Some(RefOr::T(Schema::Object(body))) = schemas.get_mut(schema_name) else {
            continue;
        };
        if let Some(RefOr::T(Schema::Object(property))) = body.properties.get_mut(field) {
            property.pattern = Some(pattern.to_string());
            property.max_length = max;
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn add_keyed_answers(operation: &mut Operation) {
    add_answer(
        operation,
        "401",
        error_answer("Missing, unknown or revoked API key (`invalid_api_key`)"),
    );
    add_answer(
        operation,
        "403",
        error_answer("The key lacks the operation's scope (`insufficient_scope`) or may not be used from the caller's address (`ip_not_allowed`)"),
    );
    let too_many = ResponseBuilder::new()
        .description(
            "Too many requests for this key or address (`rate_limited`); wait Retry-After seconds",
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .build(),
        )
        .content("application/json", error_body())
        .build();
    add_answer(operation, "429", too_many);
}

/// Whether the caller sends a body or query parameters, which the server checks (400).
fn takes_input(operation: &Operation) -> bool {
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query);
    operation.request_body.is_some() || has_query
}

/// Whether a parameter of the operation names one of connecthub's clients.
fn names_a_client(path: &str, operation: &Operation) -> bool {
    operation
        .parameters
        .iter()
        .flatten()
        .any(|p| form_of(path, &p.name).is_some_and(|(form, _)| form == forms::CLIENT_ID))
}

/// Adds the answer unless the handler documents its own for that status.
fn add_answer(operation: &mut Operation, status: &str, answer: utoipa::openapi::Response) {
    let responses = &mut operation.responses.responses;
    responses
        .entry(status.to_string())
        .or_insert(RefOr::T(answer));
}

fn error_answer(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_body())
        .build()
}

fn error_body() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build()
}

/// Marks every optional query parameter `allowEmptyValue`: a filter left empty
/// (`?provider=`, as a form sends it) is no filter. utoipa has no field for it (OpenAPI
/// 3.1 deprecates it, but clients and checkers still read it), so it is set on the JSON.
pub fn allow_empty_filters(document: &mut serde_json::Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    let parameters = paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("parameters")?.as_array_mut())
        .flatten();
    for parameter in parameters {
        if parameter["in"] == "query" && parameter["required"] != true {
            parameter["allowEmptyValue"] = true.into();
        }
    }
}

/// The methods the document lists for the path, or None when no path of it matches.
pub fn allowed_methods(document: &OpenApi, path: &str) -> Option<Vec<&'static str>> {
    document.paths.paths.iter().find_map(|(pattern, item)| {
        ResourceDef::new(pattern.as_str())
            .is_match(path)
            .then(|| methods_of(item))
    })
}

fn methods_of(item: &PathItem) -> Vec<&'static str> {
    let listed = [
        ("GET", item.get.is_some()),
        ("PUT", item.put.is_some()),
        ("POST", item.post.is_some()),
        ("DELETE", item.delete.is_some()),
        ("PATCH", item.patch.is_some()),
    ];
    listed
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(m, _)| m)
        .collect()
}

/// The forms of the values the service API checks, as OpenAPI patterns, so generated
/// clients (and schemathesis) know what is accepted. Each mirrors a check in the code.
pub mod forms {
    /// An http(s) URL as `webhooks::url_safety` takes it (a subset: a named host, so the
    /// form never admits what the URL parser reads as a malformed IPv4 address).
    pub const HTTP_URL: &str =
        "^https?://([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*(:[0-9]{1,4})?(/[A-Za-z0-9._~%/-]*)?$";
    /// One line of text, maybe empty: no control character.
    pub const ONE_LINE: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
    /// A client id as `input::RecordId` takes it: the hyphenated UUID, in either case.
    pub const CLIENT_ID: &str =
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
    /// The team's own id for an end user: one line, no control character, not blank, no
    /// space at either end (`connect::request`).
    /// The same as a query filter, where empty means no filter.
    pub const END_USER_ID_FILTER: &str = "^$|^[^\\s\\u0000-\\u001F\\u007F-\\u009F]([^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F])?$";
    pub const END_USER_ID: &str = "^[^\\s\\u0000-\\u001F\\u007F-\\u009F]([^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F])?$";
    /// `Email::parse`, for ASCII addresses (a longer non-ASCII one may pass the length
    /// check here and not there).
    pub const EMAIL: &str = "^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$";
    /// Text that is not blank and has no control character but line breaks and tabs
    /// (`operations::kustomer::required_text`).
    pub const TEXT: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";
    /// `operations::ProviderId`: ids as providers issue them.
    pub const PROVIDER_ID: &str = "^[A-Za-z0-9_-]{1,64}$";
    /// A channel name such as email or chat.
    pub const CHANNEL: &str = "^[a-z_]{1,32}$";
    /// Printable ASCII without spaces.
    pub const EXTERNAL_ID: &str = "^[!-~]{1,128}$";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_lands_on_a_field_or_parameter_of_the_document() {
        let document = super::super::openapi::service_api();
        let schemas = &document.components.as_ref().unwrap().schemas;
        for (schema, field, pattern, _) in BODY_FORMS {
            let Some(RefOr::T(Schema::Object(body))) = schemas.get(schema) else {
                panic!("no schema {schema}");
            };
            let Some(RefOr::T(Schema::Object(property))) = body.properties.get(field) else {
                panic!("no field {schema}.{field}");
            };
            assert_eq!(
                property.pattern.as_deref(),
                Some(pattern),
                "{schema}.{field}"
            );
        }
        let mut paths = document.paths.paths.clone();
        let parameters: Vec<_> = paths
            .values_mut()
            .flat_map(operations_mut)
            .flat_map(|op| op.parameters.clone().unwrap_or_default())
            .collect();
        for (_, name, pattern, _) in PARAMETER_FORMS {
            let formed = parameters.iter().any(|p| {
                p.name == name
                    && matches!(&p.schema, Some(RefOr::T(Schema::Object(s))) if s.pattern.as_deref() == Some(pattern))
            });
            assert!(formed, "no parameter {name} with its form");
        }
    }

    #[test]
    fn a_documented_path_lists_its_methods_and_others_none() {
        let document = super::super::openapi::service_api();
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let token = format!("/api/v1/clients/{id}/token");
        assert_eq!(allowed_methods(document, &token), Some(vec!["GET"]));
        let customers = format!("/api/v1/clients/{id}/kustomer/customers");
        assert_eq!(
            allowed_methods(document, &customers),
            Some(vec!["GET", "POST"])
        );
        assert_eq!(allowed_methods(document, "/api/v1/nothing"), None);
    }
}
