//! The Clients list's view state as it sits in the URL (`?q=&provider=&status=&owner=&tag=
//! &sort=&after=|before=&page=`): parsed and checked once, turned into a repository
//! filter, and written back into links so a view can be bookmarked and the back button
//! works. `after`/`before` carry a row's sort key and id (keyset pages, fast however deep);
//! `page` alone skips rows (a typed or bookmarked page number).

use crate::clients::{ClientStatus, Cursor, Filter, Page, Sort};
use crate::error::AppError;

pub const PAGE_SIZE: i64 = 50;
const MAX_SEARCH: usize = 100;
const MAX_VALUE: usize = 64;
const MAX_PAGE: i64 = 100_000;

#[derive(Debug, Default, serde::Deserialize)]
struct Raw {
    q: Option<String>,
    provider: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    tag: Option<String>,
    sort: Option<String>,
    after: Option<String>,
    before: Option<String>,
    page: Option<String>,
}

/// The validated view state; empty values mean "no filter".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub q: String,
    pub provider: String,
    pub status: String,
    pub owner: String,
    pub tag: String,
    pub sort: String,
    pub page: i64,
    /// Where the page starts: `Page::Offset` unless a page link carried a cursor.
    pub start: Page,
}

fn bad(message: String) -> AppError {
    AppError::BadRequest(message)
}

/// A filter value: letters, digits and `_ @ . -`, at most 64 characters.
fn value(name: &str, raw: Option<String>) -> Result<String, AppError> {
    let value = raw.unwrap_or_default().trim().to_string();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_@.-".contains(c);
    if value.len() > MAX_VALUE || !value.chars().all(allowed) {
        return Err(bad(format!(
            "the {name} filter must be at most {MAX_VALUE} letters, digits or _ @ . -"
        )));
    }
    Ok(value)
}

/// A `page` parameter: 1 when absent, else a number from 1 to 100,000 (lists share it).
pub fn page_number(raw: Option<String>) -> Result<i64, AppError> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(1),
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=MAX_PAGE).contains(p))
            .ok_or_else(|| bad(format!("page must be a number from 1 to {MAX_PAGE}"))),
    }
}

fn sort_of(sort: &str) -> Sort {
    match sort {
        "name" => Sort::Name,
        "expires" => Sort::Expires,
        _ => Sort::Updated,
    }
}

/// The page's start: a cursor from `after` or `before` (never both), else an offset.
fn start(
    sort: Sort,
    after: Option<String>,
    before: Option<String>,
    page: i64,
) -> Result<Page, AppError> {
    let cursor = |raw: &str| {
        Cursor::decode(sort, raw).ok_or_else(|| {
            bad(
                "the page link is malformed or belongs to another sort: start again from page 1"
                    .into(),
            )
        })
    };
    let (after, before) = (
        after.filter(|a| !a.is_empty()),
        before.filter(|b| !b.is_empty()),
    );
    match (after, before) {
        (Some(_), Some(_)) => Err(bad("a page link has after or before, not both".into())),
        (Some(raw), None) => Ok(Page::After(cursor(&raw)?)),
        (None, Some(raw)) => Ok(Page::Before(cursor(&raw)?)),
        (None, None) => Ok(Page::Offset((page - 1) * PAGE_SIZE)),
    }
}

impl ListQuery {
    pub fn parse(query_string: &str) -> Result<Self, AppError> {
        let raw: Raw = serde_urlencoded::from_str(query_string)
            .map_err(|_| bad("the address has a malformed query".into()))?;
        let q = raw.q.unwrap_or_default().trim().to_string();
        if q.chars().count() > MAX_SEARCH || q.chars().any(char::is_control) {
            return Err(bad(format!("search for at most {MAX_SEARCH} characters")));
        }
        let status = value("status", raw.status)?;
        if !status.is_empty() && ClientStatus::parse(&status).is_none() {
            return Err(bad(
                "status must be active, needs_reauth, error or disconnected".into(),
            ));
        }
        let sort = raw.sort.unwrap_or_default();
        if !matches!(sort.as_str(), "" | "updated" | "name" | "expires") {
            return Err(bad("sort must be updated, name or expires".into()));
        }
        let page = page_number(raw.page)?;
        let start = start(sort_of(&sort), raw.after, raw.before, page)?;
        Ok(Self {
            q,
            provider: value("provider", raw.provider)?,
            status,
            owner: value("owner", raw.owner)?,
            tag: value("tag", raw.tag)?.to_lowercase(),
            sort,
            page,
            start,
        })
    }

    pub fn filter(&self) -> Filter {
        let some = |v: &String| (!v.is_empty()).then(|| v.clone());
        Filter {
            search: some(&self.q),
            provider: some(&self.provider),
            status: some(&self.status),
            owner: some(&self.owner),
            tag: some(&self.tag),
            sort: self.sort(),
            page: self.start.clone(),
            limit: PAGE_SIZE,
        }
    }

    pub fn sort(&self) -> Sort {
        sort_of(&self.sort)
    }

    /// The query string of this view on another page by number (page 1 is left out).
    pub fn with_page(&self, page: i64) -> String {
        self.link(page, &Page::Offset(0))
    }

    /// The query string of exactly this view, cursor included.
    pub fn current(&self) -> String {
        self.link(self.page, &self.start)
    }

    /// The query string of this view on page `page`, starting where `start` says.
    pub fn link(&self, page: i64, start: &Page) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("q", &self.q),
            ("provider", &self.provider),
            ("status", &self.status),
            ("owner", &self.owner),
            ("tag", &self.tag),
            ("sort", &self.sort),
        ] {
            if !value.is_empty() {
                pairs.append_pair(name, value);
            }
        }
        match start {
            Page::After(cursor) => pairs.append_pair("after", &cursor.encode()),
            Page::Before(cursor) => pairs.append_pair("before", &cursor.encode()),
            Page::Offset(_) => &mut pairs,
        };
        if page > 1 {
            pairs.append_pair("page", &page.to_string());
        }
        pairs.finish()
    }

    pub fn is_filtered(&self) -> bool {
        self.filter().search.is_some()
            || !(self.provider.is_empty()
                && self.status.is_empty()
                && self.owner.is_empty()
                && self.tag.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_round_trip_through_the_url() {
        let query =
            ListQuery::parse("q=Acme+Store&provider=klaviyo&status=active&sort=name&page=3")
                .unwrap();
        assert_eq!(query.q, "Acme Store");
        assert_eq!(query.filter().page, Page::Offset(100));
        assert_eq!(
            query.with_page(4),
            "q=Acme+Store&provider=klaviyo&status=active&sort=name&page=4"
        );
        assert_eq!(ListQuery::parse("").unwrap().with_page(1), "");
    }

    #[test]
    fn bad_values_are_named() {
        for (query, message) in [
            ("status=happy", "status must be"),
            ("sort=random", "sort must be"),
            ("page=0", "page must be"),
            ("page=x", "page must be"),
            ("provider=a%20b", "the provider filter"),
            ("tag=%3Cscript%3E", "the tag filter"),
            ("after=x", "the page link is malformed"),
            ("sort=expires&after=a~soon", "the page link is malformed"),
            ("after=a~1&before=a~1", "not both"),
        ] {
            let err = ListQuery::parse(query).unwrap_err().to_string();
            assert!(err.contains(message), "{query}: {err}");
        }
        let long = format!("q={}", "a".repeat(101));
        assert!(ListQuery::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 100"));
    }
}
