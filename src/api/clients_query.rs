//! The query of `GET /api/v1/clients`, parsed once: the Clients list's search, filters and
//! sorts, a page size, and the opaque `cursor` that `next_cursor` gave out.

use super::error::ApiError;
use crate::clients::{ClientStatus, Cursor, Filter, Page, Sort};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const FILTER_MAX_LEN: usize = 100;
pub const SEARCH_MAX_LEN: usize = 100;
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 500;
/// Longer cursors are none this API gave out (an id and a name fit well within).
pub const CURSOR_MAX_LEN: usize = 600;

#[derive(Debug, Default, serde::Deserialize)]
struct Raw {
    q: Option<String>,
    provider: Option<String>,
    owner: Option<String>,
    status: Option<String>,
    tag: Option<String>,
    sort: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    end_user_id: Option<String>,
}

/// The validated query.
#[derive(Debug)]
pub struct ClientQuery {
    /// Search, provider, status, tag, sort, page and limit, for the listing code.
    pub filter: Filter,
    /// A user id or an email.
    pub owner: Option<String>,
    /// The team's id of an end user: only the connections made through their sessions.
    pub end_user_id: Option<String>,
}

/// A filter value: absent or empty is None; too long or odd characters are refused.
fn filter_value(name: &str, raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = raw.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_@.-".contains(c);
    if value.len() > FILTER_MAX_LEN || !value.chars().all(allowed) {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most {FILTER_MAX_LEN} characters of A-Z a-z 0-9 _ @ . -"
        )));
    }
    Ok(Some(value))
}

fn search(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(q) = raw else { return Ok(None) };
    if q.chars().count() > SEARCH_MAX_LEN || q.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "q must be at most {SEARCH_MAX_LEN} characters without control characters"
        )));
    }
    Ok(Some(q.trim().to_string()).filter(|q| !q.is_empty()))
}

fn sort(raw: Option<&str>) -> Result<Sort, ApiError> {
    match raw.unwrap_or_default() {
        "" | "updated" => Ok(Sort::Updated),
        "name" => Ok(Sort::Name),
        "expires" => Ok(Sort::Expires),
        _ => Err(ApiError::bad_request(
            "sort must be updated, name or expires",
        )),
    }
}

fn sort_name(sort: Sort) -> &'static str {
    match sort {
        Sort::Updated => "updated",
        Sort::Name => "name",
        Sort::Expires => "expires",
    }
}

fn limit(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw.filter(|l| !l.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit must be a number from 1 to {MAX_LIMIT}"))
            }),
    }
}

/// `next_cursor` for the row a page ended on: the sort travels with it, so a cursor used
/// with another sort is refused rather than misread.
pub fn encode_cursor(sort: Sort, cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", sort_name(sort), cursor.encode()))
}

fn decode_cursor(sort: Sort, raw: &str) -> Result<Cursor, ApiError> {
    let refused = || {
        ApiError::bad_request(
            "cursor is not one this API gave out for this sort: start again without it",
        )
    };
    if raw.len() > CURSOR_MAX_LEN {
        return Err(refused());
    }
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(refused)?;
    let (named, cursor) = text.split_once(':').ok_or_else(refused)?;
    if named != sort_name(sort) {
        return Err(refused());
    }
    Cursor::decode(sort, cursor).ok_or_else(refused)
}

fn end_user_id(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw.filter(|v| !v.is_empty()) {
        Some(id)
            if id.len() <= crate::connect::request::END_USER_ID_MAX
                && !id.chars().any(char::is_control) =>
        {
            Ok(Some(id))
        }
        Some(_) => Err(ApiError::bad_request(
            "end_user_id must be at most 255 characters without control characters",
        )),
        None => Ok(None),
    }
}

impl ClientQuery {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        // Parsed by hand so a malformed query gets a JSON answer, not actix's plain text.
        let raw: Raw = serde_urlencoded::from_str(query)
            .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
        let status = filter_value("status", raw.status)?;
        if status
            .as_deref()
            .is_some_and(|s| ClientStatus::parse(s).is_none())
        {
            return Err(ApiError::bad_request(
                "status must be active, needs_reauth, error or disconnected",
            ));
        }
        let sort = sort(raw.sort.as_deref())?;
        let page = match raw.cursor.filter(|c| !c.is_empty()) {
            Some(raw) => Page::After(decode_cursor(sort, &raw)?),
            None => Page::Offset(0),
        };
        Ok(Self {
            filter: Filter {
                search: search(raw.q)?,
                provider: filter_value("provider", raw.provider)?,
                status,
                owner: None,
                tag: filter_value("tag", raw.tag)?.map(|t| t.to_lowercase()),
                sort,
                page,
                limit: limit(raw.limit.as_deref())?,
            },
            owner: filter_value("owner", raw.owner)?,
            end_user_id: end_user_id(raw.end_user_id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked() {
        let ok = ClientQuery::parse("provider=klaviyo&owner=ops%40example.com").unwrap();
        assert_eq!(ok.filter.provider.as_deref(), Some("klaviyo"));
        assert_eq!(ok.owner.as_deref(), Some("ops@example.com"));
        assert_eq!(ok.filter.limit, DEFAULT_LIMIT);
        let parse = ClientQuery::parse;
        assert!(parse("provider=").unwrap().filter.provider.is_none());
        assert!(parse("q=%20%20").unwrap().filter.search.is_none());
        for bad in [
            "provider=a%20b".to_string(),
            format!("owner={}", "a".repeat(101)),
            "status=gone".into(),
            "sort=size".into(),
            "limit=0".into(),
            "limit=501".into(),
            "limit=1.5".into(),
            "q=a%0Ab".into(),
            "cursor=nonsense".into(),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cursor_is_read_back_for_its_own_sort_only() {
        let encoded = URL_SAFE_NO_PAD.encode("name:abc~Acme Store");
        let query = ClientQuery::parse(&format!("sort=name&cursor={encoded}")).unwrap();
        let Page::After(cursor) = query.filter.page else {
            panic!("a cursor starts after a row")
        };
        assert_eq!(encode_cursor(Sort::Name, &cursor), encoded);
        assert!(ClientQuery::parse(&format!("cursor={encoded}")).is_err());
        assert!(ClientQuery::parse(&format!("sort=expires&cursor={encoded}")).is_err());
    }
}
