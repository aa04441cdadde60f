//! The audit log's view as it sits in the URL (`?actor=&action=&client=&outcome=&from=&to=
//! &before=|after=&page=`; `before`/`after` are entry ids, keyset pages that stay fast
//! however deep, `page` alone skips entries): parsed and checked once, turned into a repository filter, and written back into
//! links (pages, CSV export) so a view can be bookmarked and shared.

use crate::audit::{Filter, Start};
use crate::error::AppError;
use chrono::NaiveDate;

pub const PAGE_SIZE: i64 = 50;
const MAX_ACTOR: usize = 100;
const MAX_VALUE: usize = 64;

#[derive(Debug, Default, serde::Deserialize)]
struct Raw {
    actor: Option<String>,
    action: Option<String>,
    client: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    after: Option<String>,
    page: Option<String>,
}

/// The validated view; empty values and None mean "no filter".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor: String,
    pub action: String,
    pub client: String,
    pub outcome: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub page: i64,
    /// Where the page starts: an offset unless a page link carried an entry id.
    pub start: Start,
}

fn bad(message: String) -> AppError {
    AppError::BadRequest(message)
}

fn trimmed(raw: Option<String>) -> String {
    raw.unwrap_or_default().trim().to_string()
}

fn actor(raw: Option<String>) -> Result<String, AppError> {
    let actor = trimmed(raw);
    if actor.chars().count() > MAX_ACTOR || actor.chars().any(char::is_control) {
        return Err(bad(format!(
            "the actor filter must be at most {MAX_ACTOR} characters"
        )));
    }
    Ok(actor)
}

/// Action names are snake_case identifiers.
fn action(raw: Option<String>) -> Result<String, AppError> {
    let action = trimmed(raw);
    if action.len() > MAX_VALUE || !action.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(bad(format!(
            "the action filter must be at most {MAX_VALUE} of a-z and _"
        )));
    }
    Ok(action)
}

/// Client ids are UUIDs; letters, digits and dashes are all a lookup needs.
fn client(raw: Option<String>) -> Result<String, AppError> {
    let client = trimmed(raw);
    if client.len() > MAX_VALUE
        || !client
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad(format!(
            "the client filter must be at most {MAX_VALUE} letters, digits or -"
        )));
    }
    Ok(client)
}

/// `before`/`after`: an entry id (never both), else the page number's offset.
fn start(before: Option<String>, after: Option<String>, page: i64) -> Result<Start, AppError> {
    let id = |raw: String| {
        raw.trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| bad("the page link is malformed: start again from page 1".into()))
    };
    let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    match (nonempty(before), nonempty(after)) {
        (Some(_), Some(_)) => Err(bad("a page link has before or after, not both".into())),
        (Some(raw), None) => Ok(Start::Before(id(raw)?)),
        (None, Some(raw)) => Ok(Start::After(id(raw)?)),
        (None, None) => Ok(Start::Offset((page - 1) * PAGE_SIZE)),
    }
}

fn outcome(raw: Option<String>) -> Result<String, AppError> {
    let outcome = trimmed(raw);
    if !matches!(outcome.as_str(), "" | "success" | "failure") {
        return Err(bad("outcome must be success or failure".into()));
    }
    Ok(outcome)
}

/// A day as YYYY-MM-DD exactly (chrono alone would also take "2026-1-5" or "+2026-01-05").
fn date(name: &str, raw: Option<String>) -> Result<Option<NaiveDate>, AppError> {
    let text = trimmed(raw);
    if text.is_empty() {
        return Ok(None);
    }
    let shaped = text.len() == 10
        && text.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    match shaped.then(|| NaiveDate::parse_from_str(&text, "%Y-%m-%d")) {
        Some(Ok(day)) => Ok(Some(day)),
        _ => Err(bad(format!(
            "{name} must be a date like 2026-11-23 (YYYY-MM-DD)"
        ))),
    }
}

impl AuditQuery {
    pub fn parse(query_string: &str) -> Result<Self, AppError> {
        let raw: Raw = serde_urlencoded::from_str(query_string)
            .map_err(|_| bad("the address has a malformed query".into()))?;
        let from = date("from", raw.from)?;
        let to = date("to", raw.to)?;
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(bad("from must not be after to".into()));
            }
        }
        let page = super::clients_view_state::page_number(raw.page)?;
        Ok(Self {
            actor: actor(raw.actor)?,
            action: action(raw.action)?,
            client: client(raw.client)?,
            outcome: outcome(raw.outcome)?,
            from,
            to,
            page,
            start: start(raw.before, raw.after, page)?,
        })
    }

    /// The repository filter; `to` is inclusive, so it ends at the start of the next day.
    pub fn filter(&self) -> Filter {
        let some = |v: &String| (!v.is_empty()).then(|| v.clone());
        Filter {
            actor: some(&self.actor),
            action: some(&self.action),
            client: some(&self.client),
            outcome: some(&self.outcome),
            from: self.from.and_then(|d| d.and_hms_opt(0, 0, 0)),
            until: self
                .to
                .and_then(|d| d.succ_opt())
                .and_then(|d| d.and_hms_opt(0, 0, 0)),
        }
    }

    pub fn date_from(&self) -> String {
        self.from.map(|d| d.to_string()).unwrap_or_default()
    }

    pub fn date_to(&self) -> String {
        self.to.map(|d| d.to_string()).unwrap_or_default()
    }

    /// The query string of this view on another page by number (page 1 is left out).
    pub fn with_page(&self, page: i64) -> String {
        self.link(page, Start::Offset(0))
    }

    /// The query string of this view on page `page`, starting where `start` says.
    pub fn link(&self, page: i64, start: Start) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("client", &self.client),
            ("outcome", &self.outcome),
            ("from", &self.date_from()),
            ("to", &self.date_to()),
        ] {
            if !value.is_empty() {
                pairs.append_pair(name, value);
            }
        }
        match start {
            Start::Before(id) => pairs.append_pair("before", &id.to_string()),
            Start::After(id) => pairs.append_pair("after", &id.to_string()),
            Start::Offset(_) => &mut pairs,
        };
        if page > 1 {
            pairs.append_pair("page", &page.to_string());
        }
        pairs.finish()
    }

    #[cfg(test)]
    fn current_link(&self) -> String {
        self.link(self.page, self.start)
    }

    pub fn is_filtered(&self) -> bool {
        !self.with_page(1).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_round_trip_through_the_url() {
        let query = AuditQuery::parse(
            "actor=Ann%40example&action=login_failed&outcome=failure&from=2026-11-01&to=2026-11-23&page=2",
        )
        .unwrap();
        assert_eq!(query.actor, "Ann@example");
        assert_eq!(query.start, Start::Offset(50));
        let deeper = AuditQuery::parse("action=login&before=120&page=3").unwrap();
        assert_eq!(deeper.start, Start::Before(120));
        assert_eq!(deeper.current_link(), "action=login&before=120&page=3");
        for bad in ["before=x", "after=0", "before=5&after=9"] {
            assert!(AuditQuery::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            query.with_page(3),
            "actor=Ann%40example&action=login_failed&outcome=failure&from=2026-11-01&to=2026-11-23&page=3"
        );
        let filter = query.filter();
        assert_eq!(filter.from.unwrap().to_string(), "2026-11-01 00:00:00");
        assert_eq!(filter.until.unwrap().to_string(), "2026-11-24 00:00:00");
        assert_eq!(AuditQuery::parse("").unwrap().with_page(1), "");
        assert!(!AuditQuery::parse("page=4").unwrap().is_filtered());
    }

    #[test]
    fn bad_values_are_named() {
        for (query, message) in [
            ("action=Login", "the action filter"),
            ("client=a%20b", "the client filter"),
            ("outcome=maybe", "outcome must be success or failure"),
            ("from=2026-1-5", "from must be a date"),
            ("to=2026-02-30", "to must be a date"),
            ("from=%2B2026-01-05", "from must be a date"),
            ("from=2026-11-23&to=2026-11-01", "from must not be after to"),
            ("page=0", "page must be"),
            ("page=100001", "page must be"),
        ] {
            let err = AuditQuery::parse(query).unwrap_err().to_string();
            assert!(err.contains(message), "{query}: {err}");
        }
        let long = format!("actor={}", "a".repeat(101));
        assert!(AuditQuery::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 100"));
    }
}
