//! The customer endpoints: look-up, creation, search and a customer's notes.

use super::*;

/// GET /v1/customers/{key}: `email=<address>` looks up by email, anything else is an id.
pub(super) async fn get_customer(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
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
pub(super) async fn create_customer(
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
pub(super) async fn search_customers(
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
pub(super) async fn customer_notes(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
    id: web::Path<super::IdParam>,
) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let state = sandbox.lock();
    match state.kustomer_data.notes_of(call.org.id, &id.id) {
        Some(notes) => {
            let data = notes.into_iter().map(note_json).collect();
            let path = format!("/v1/customers/{}/notes", id.id);
            call.json(StatusCode::OK, list_body(&path, data))
        }
        None => call.answer(error(StatusCode::NOT_FOUND, None)),
    }
}
