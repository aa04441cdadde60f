//! Reading a sync definition's pages: the first request, the records of an answer and
//! the request for the next page, for each pagination style.

use super::records::Incoming;
use crate::providers::{Pagination, SyncDef};
use serde_json::Value;

/// A value at a dotted JSON path (`links.next`, `data.0.id`); "" is the value itself.
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, part| match v {
        Value::Array(items) => items.get(part.parse::<usize>().ok()?),
        _ => v.get(part),
    })
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `path` with `name=value` added to (or replacing it in) its query.
pub fn with_param(path: &str, name: &str, value: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or("");
            url::form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(k, _)| k != name)
                .unwrap_or(true)
        })
        .map(str::to_string)
        .collect();
    parts.push(format!("{}={}", encode(name), encode(value)));
    format!("{base}?{}", parts.join("&"))
}

/// The first request of a run: the endpoint, the incremental filter with `since` (an
/// RFC 3339 time, encoded), and the first page's parameters.
pub fn first_request(def: &SyncDef, since: Option<&str>) -> String {
    let mut path = def.endpoint.clone();
    if let (Some(query), Some(since)) = (&def.incremental_query, since) {
        let filled = query.replace("{since}", &encode(since));
        let sep = if path.contains('?') { '&' } else { '?' };
        path = format!("{path}{sep}{filled}");
    }
    if let Pagination::Page {
        param,
        size_param,
        size,
        start,
        ..
    } = &def.pagination
    {
        path = with_param(&path, size_param, &size.to_string());
        path = with_param(&path, param, &start.to_string());
    }
    path
}

/// Why a page could not be used.
#[derive(Debug)]
pub struct BadPage(pub String);

/// The records of an answer, each with its id (a string or a number in the answer).
pub fn records(def: &SyncDef, body: &Value) -> Result<Vec<Incoming>, BadPage> {
    let items = at(body, &def.records_path)
        .and_then(Value::as_array)
        .ok_or_else(|| BadPage(format!("the answer has no array at {:?}", def.records_path)))?;
    items
        .iter()
        .map(|item| {
            let id = match at(item, &def.id_field) {
                Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(BadPage(format!("a record has no id at {:?}", def.id_field))),
            };
            Ok(Incoming {
                external_id: id,
                payload: item.to_string(),
            })
        })
        .collect()
}

/// The `rel="next"` target of an RFC 8288 Link header.
fn link_header_next(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().trim_matches(' ') == "rel=\"next\"" || p.trim() == "rel=next");
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// What comes after this page: a link (absolute or a path, checked by the caller) or a
/// path built from the current one. None at the end.
pub fn next_request(
    def: &SyncDef,
    current: &str,
    body: &Value,
    headers: &reqwest::header::HeaderMap,
    count: usize,
) -> Option<String> {
    match &def.pagination {
        Pagination::NextUrl { path } => at(body, path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        Pagination::BodyCursor { path, param } => {
            let cursor = match at(body, path)? {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            (count > 0).then(|| with_param(current, param, &cursor))
        }
        Pagination::Page {
            param,
            size,
            offset,
            ..
        } => {
            if count < *size as usize {
                return None;
            }
            let (_, query) = current.split_once('?').unwrap_or((current, ""));
            let now: u64 = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == param.as_str())
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let step = if *offset { u64::from(*size) } else { 1 };
            Some(with_param(current, param, &(now + step).to_string()))
        }
        Pagination::LinkHeader => link_header_next(headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn def(pagination: Pagination) -> SyncDef {
        SyncDef {
            model: "deals".into(),
            endpoint: "v2/deals?x=1".into(),
            pagination,
            records_path: "items".into(),
            id_field: "key.id".into(),
            updated_field: Some("updated".into()),
            incremental_query: Some("since={since}".into()),
            frequency: Duration::from_secs(60),
            webhook_events: Vec::new(),
        }
    }

    #[test]
    fn each_pagination_style_finds_the_next_page() {
        let headers = reqwest::header::HeaderMap::new();
        let page = def(Pagination::Page {
            param: "page".into(),
            size_param: "per_page".into(),
            size: 2,
            start: 1,
            offset: false,
        });
        let first = first_request(&page, Some("2024-01-01T00:00:00+00:00"));
        assert_eq!(
            first,
            "v2/deals?x=1&since=2024-01-01T00%3A00%3A00%2B00%3A00&per_page=2&page=1"
        );
        let next = next_request(&page, &first, &json!({}), &headers, 2).unwrap();
        assert!(next.ends_with("&page=2"), "{next}");
        assert_eq!(next_request(&page, &next, &json!({}), &headers, 1), None);

        let cursor = def(Pagination::BodyCursor {
            path: "meta.next".into(),
            param: "cursor".into(),
        });
        let body = json!({"meta": {"next": "abc"}, "items": [{"key": {"id": 7}}]});
        assert_eq!(
            next_request(&cursor, "v2/deals", &body, &headers, 1).unwrap(),
            "v2/deals?cursor=abc"
        );
        assert_eq!(records(&cursor, &body).unwrap()[0].external_id, "7");
        assert!(records(&cursor, &json!({"items": [{}]})).is_err());

        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            "<https://x.example/a?page=1>; rel=\"prev\", <https://x.example/a?page=3>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        let link = def(Pagination::LinkHeader);
        assert_eq!(
            next_request(&link, "", &json!({}), &headers, 1).as_deref(),
            Some("https://x.example/a?page=3")
        );
        let links = def(Pagination::NextUrl {
            path: "links.next".into(),
        });
        assert_eq!(
            next_request(&links, "", &json!({"links": {"next": null}}), &headers, 1),
            None
        );
    }
}
