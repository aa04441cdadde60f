//! The conversation endpoints: creation, look-up, updates, messages and notes.

use super::*;

/// POST /v1/conversations: `{"customer", "name"?, "channel"?}`.
pub(super) async fn create_conversation(
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
pub(super) async fn get_conversation(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<super::IdParam>,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let state = sandbox.lock();
    match state.kustomer_data.conversation(call.org.id, &id.id) {
        Some(conversation) => call.json(
            StatusCode::OK,
            json!({"data": conversation_json(conversation)}),
        ),
        None => call.answer(error(StatusCode::NOT_FOUND, None)),
    }
}

/// PATCH /v1/conversations/{id}: `assignedTeams`, `name` and `status` may change.
pub(super) async fn update_conversation(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<super::IdParam>,
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
        .update_conversation(call.org.id, &id.id, patch, &team_ids)
    {
        Ok(conversation) => call.json(
            StatusCode::OK,
            json!({"data": conversation_json(conversation)}),
        ),
        Err(err) => call.answer(store_error(err)),
    }
}

/// POST /v1/conversations/{id}/messages: `{"body", "direction": "in"|"out", "channel"?}`.
pub(super) async fn add_message(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<super::IdParam>,
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
        .add_message(call.org.id, &id.id, text, direction, channel)
    {
        Ok(message) => call.json(StatusCode::CREATED, json!({"data": message_json(message)})),
        Err(err) => call.answer(store_error(err)),
    }
}

/// POST /v1/notes: `{"body", "conversation"}`.
pub(super) async fn add_note(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
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
