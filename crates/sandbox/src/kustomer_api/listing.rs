//! GET /v1/customers and GET /v1/conversations: the org's volume records (see `volume`),
//! paged as Kustomer pages (`page` from 1, `pageSize` at most 100, `links.next` a path),
//! with `filter[updated_at][gt]=<ISO 8601>` for what changed since.

use super::*;
use crate::volume::{self, Item};
use chrono::{DateTime, Utc};

const MAX_SIZE: usize = 100;

pub(super) async fn list_customers(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    list(&sandbox, &req, "customers")
}

pub(super) async fn list_conversations(
    sandbox: web::Data<Sandbox>,
    req: HttpRequest,
) -> HttpResponse {
    list(&sandbox, &req, "conversations")
}

struct Query {
    page: usize,
    size: usize,
    since: Option<DateTime<Utc>>,
}

fn read_query(raw: &str) -> Result<Query, String> {
    let params = crate::http::parse_params(raw.as_bytes())?;
    let number = |name: &str, default: usize| match params.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("{name} must be a number")),
    };
    let page = number("page", 1)?;
    let size = number("pageSize", 100)?;
    if page == 0 {
        return Err("page starts at 1".into());
    }
    if !(1..=MAX_SIZE).contains(&size) {
        return Err("pageSize must be between 1 and 100".into());
    }
    let since = match params.get("filter[updated_at][gt]") {
        None => None,
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw)
                .map_err(|_| "filter[updated_at][gt] must be an ISO 8601 time".to_string())?
                .with_timezone(&Utc),
        ),
    };
    Ok(Query { page, size, since })
}

fn record_json(org: &str, model: &str, item: &Item) -> Value {
    let id = volume::record_id(org, model, item.index);
    let common = json!({
        "createdAt": volume::timestamp(item.created),
        "updatedAt": volume::timestamp(item.updated),
        "modifiedAt": volume::timestamp(item.updated),
        "rev": item.version,
    });
    let mut attributes = match model {
        "customers" => json!({
            "name": format!("Customer {}", item.index),
            "displayName": format!("Customer {}", item.index),
            "emails": [{"type": "home", "email": format!("customer{}@example.com", item.index)}],
        }),
        _ => json!({
            "name": format!("Conversation {}", item.index),
            "status": if item.version.is_multiple_of(2) { "done" } else { "open" },
            "messageCount": item.version,
        }),
    };
    if let (Some(map), Some(extra)) = (attributes.as_object_mut(), common.as_object()) {
        map.extend(extra.clone());
    }
    let mut body = json!({
        "type": &model[..model.len() - 1],
        "id": id,
        "attributes": attributes,
        "relationships": {"org": org_ref(org)},
        "links": {"self": format!("/v1/{model}/{id}")},
    });
    if model == "conversations" {
        body["relationships"]["customer"] = json!({"data": {"type": "customer",
            "id": volume::record_id(org, "customers", item.index)}});
    }
    body
}

/// The path of page `page` with the caller's other parameters.
fn page_link(model: &str, raw_query: &str, page: usize) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        if name != "page" {
            serializer.append_pair(&name, &value);
        }
    }
    serializer.append_pair("page", &page.to_string());
    format!("/v1/{model}?{}", serializer.finish())
}

fn list(sandbox: &Sandbox, req: &HttpRequest, model: &str) -> HttpResponse {
    let call = authenticated!(sandbox, req);
    let query = match read_query(req.query_string()) {
        Ok(query) => query,
        Err(message) => return call.answer(bad_request(&message)),
    };
    let org = call.org.id;
    let (items, more) = {
        let state = sandbox.lock();
        match state.volume.get(Provider::Kustomer, org, model) {
            None => (Vec::new(), false),
            Some(set) => match set.nth_index((query.page - 1) * query.size, query.since) {
                None => (Vec::new(), false),
                Some(from) => {
                    let (items, next) = set.scan(from, query.size, query.since);
                    (items, next.is_some())
                }
            },
        }
    };
    let data: Vec<Value> = items.iter().map(|i| record_json(org, model, i)).collect();
    let raw = req.query_string();
    let body = json!({
        "data": data,
        "links": {
            "self": page_link(model, raw, query.page),
            "first": page_link(model, raw, 1),
            "prev": (query.page > 1).then(|| page_link(model, raw, query.page - 1)),
            "next": more.then(|| page_link(model, raw, query.page + 1)),
        },
        "meta": {"page": query.page, "pageSize": query.size},
    });
    call.json(StatusCode::OK, body)
}
