//! GET /api/profiles in Klaviyo's shape: JSON:API envelopes, `page[size]` (at most 100,
//! default 20), opaque `page[cursor]`s in absolute `links.next` URLs, and the one filter
//! a sync needs, `greater-than(updated,<ISO 8601 time>)`. The records come from the
//! account's volume (see `volume`); an account without volume has no profiles.

use super::http::parse_params;
use super::klaviyo_api::{api_base, begin, invalid, ok, Tier};
use super::volume::{self, Item};
use super::{Provider, Sandbox};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Klaviyo's own URLs end in a slash; both spellings are accepted.
    for path in ["/profiles", "/profiles/"] {
        cfg.route(path, web::get().to(profiles));
    }
}

/// Klaviyo's "M" tier for profile reads.
const TIER_M: Tier = Tier {
    name: "M",
    per_second: 10,
    per_minute: 150,
};
const DEFAULT_SIZE: usize = 20;
const MAX_SIZE: usize = 100;
const MODEL: &str = "profiles";

/// `greater-than(updated,2024-01-01T00:00:00Z)`: the time, or a message for a 400.
fn parse_filter(raw: &str) -> Result<DateTime<Utc>, String> {
    let inner = raw
        .strip_prefix("greater-than(updated,")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or("Only the filter greater-than(updated,<datetime>) is supported here.")?;
    DateTime::parse_from_rfc3339(inner.trim_matches('"'))
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| format!("'{inner}' is not a valid ISO 8601 datetime."))
}

fn encode_cursor(index: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("profile:{index}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    raw.strip_prefix("profile:")?.parse().ok()
}

fn profile_json(base: &str, account: &str, item: &Item) -> Value {
    let id = volume::record_id(account, MODEL, item.index);
    json!({
        "type": "profile",
        "id": id,
        "attributes": {
            "email": format!("user{}@{}.example", item.index, account.to_lowercase()),
            "first_name": format!("First{}", item.index),
            "last_name": format!("Last{}", item.index),
            "created": volume::timestamp(item.created),
            "updated": volume::timestamp(item.updated),
            "properties": {"version": item.version},
        },
        "links": {"self": format!("{base}/profiles/{id}/")},
    })
}

/// The absolute link to the page starting at `index`, keeping the other parameters.
fn link(base: &str, query: &[(String, String)], index: Option<usize>) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in query.iter().filter(|(name, _)| name != "page[cursor]") {
        serializer.append_pair(name, value);
    }
    if let Some(index) = index {
        serializer.append_pair("page[cursor]", &encode_cursor(index));
    }
    let query = serializer.finish();
    if query.is_empty() {
        format!("{base}/profiles/")
    } else {
        format!("{base}/profiles/?{query}")
    }
}

pub async fn profiles(sandbox: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let call = match begin(&sandbox, &req, TIER_M, "profiles:read") {
        Ok(call) => call,
        Err(response) => return response,
    };
    let params = match parse_params(req.query_string().as_bytes()) {
        Ok(params) => params,
        Err(message) => return invalid(&message),
    };
    let size = match params.get("page[size]").map(|s| s.parse::<usize>()) {
        None => DEFAULT_SIZE,
        Some(Ok(size)) if (1..=MAX_SIZE).contains(&size) => size,
        Some(_) => return invalid("page[size] must be between 1 and 100."),
    };
    let since = match params.get("filter").map(|f| parse_filter(f)) {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(message)) => return invalid(&message),
    };
    let from = match params.get("page[cursor]") {
        None => 0,
        Some(cursor) => match decode_cursor(cursor) {
            Some(index) => index,
            None => return invalid("The page cursor is invalid."),
        },
    };
    let account = call.account.id;
    let (items, next) = {
        let state = sandbox.lock();
        match state.volume.get(Provider::Klaviyo, account, MODEL) {
            Some(set) => set.scan(from, size, since),
            None => (Vec::new(), None),
        }
    };
    let base = api_base(&sandbox);
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let data: Vec<Value> = items
        .iter()
        .map(|item| profile_json(&base, account, item))
        .collect();
    let body = json!({
        "data": data,
        "links": {
            "self": link(&base, &query, (from > 0).then_some(from)),
            "next": next.map(|index| link(&base, &query, Some(index))),
            "prev": null,
        },
    });
    ok(&call.rate).body(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_cursors_are_read_as_klaviyo_writes_them() {
        let at = parse_filter("greater-than(updated,2024-03-01T10:00:00Z)").unwrap();
        assert_eq!(volume::timestamp(at), "2024-03-01T10:00:00.000Z");
        assert!(parse_filter("equals(email,'x')").is_err());
        assert!(parse_filter("greater-than(updated,yesterday)").is_err());
        assert_eq!(decode_cursor(&encode_cursor(300)), Some(300));
        assert_eq!(decode_cursor("bGlzdDo5OTk"), None);
    }
}
