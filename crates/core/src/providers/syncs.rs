//! Sync definitions: what a provider's records look like and how to page through them.
//! Data, like the provider itself: `[[provider.sync]]` tables in the provider file, and
//! built-in ones for Klaviyo (`lists`, `segments`, `profiles`) and Kustomer (`customers`,
//! `conversations`).

use serde::Deserialize;
use std::time::Duration;

/// How the next page is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    /// A URL (absolute or a path) at a JSON path of the answer: JSON:API `links.next`.
    NextUrl { path: String },
    /// A cursor value at a JSON path of the answer, sent back as query parameter `param`.
    BodyCursor { path: String, param: String },
    /// Page numbers (or offsets) in `param`, `size` records per page in `size_param`.
    Page {
        param: String,
        size_param: String,
        size: u32,
        /// The first page's number: 1 for page numbers, 0 for offsets.
        start: u32,
        /// The parameter counts records (an offset), not pages.
        offset: bool,
    },
    /// RFC 8288 `Link: <…>; rel="next"` header.
    LinkHeader,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDef {
    /// `profiles`: the name records are filed under (1-40 of a-z 0-9 _ -).
    pub model: String,
    /// Path under the provider's API base, may carry a query (`api/profiles/?page[size]=100`).
    pub endpoint: String,
    pub pagination: Pagination,
    /// JSON path of the records' array in each answer (`data`; "" for a bare array).
    pub records_path: String,
    /// JSON path of the id inside a record (`id`).
    pub id_field: String,
    /// JSON path of the time a record last changed (`attributes.updated`), if any.
    pub updated_field: Option<String>,
    /// Added to the query on incremental runs; `{since}` becomes the RFC 3339 time.
    pub incremental_query: Option<String>,
    /// How often the scheduler runs it (at least a minute).
    pub frequency: Duration,
    /// Prefixes of the provider webhook event types (Klaviyo topics, Kustomer event
    /// names) that mean this model changed: such a webhook queues an incremental run.
    pub webhook_events: Vec<String>,
}

impl SyncDef {
    pub fn incremental(&self) -> bool {
        self.incremental_query.is_some()
    }

    /// Whether a provider webhook of this event type concerns the model.
    pub fn wants_event(&self, event_type: &str) -> bool {
        self.webhook_events
            .iter()
            .any(|prefix| event_type.starts_with(prefix.as_str()))
    }
}

/// One `[[provider.sync]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncEntry {
    model: String,
    endpoint: String,
    /// `next_url` | `body_cursor` | `page` | `offset` | `link_header`.
    pagination: String,
    next_path: Option<String>,
    cursor_path: Option<String>,
    cursor_param: Option<String>,
    page_param: Option<String>,
    page_size_param: Option<String>,
    page_size: Option<u32>,
    #[serde(default = "default_records_path")]
    records_path: String,
    #[serde(default = "default_id_field")]
    id_field: String,
    updated_field: Option<String>,
    incremental_query: Option<String>,
    /// `5m`, `1h`, `90s`; at least one minute.
    frequency: String,
    #[serde(default)]
    webhook_events: Vec<String>,
}

fn default_records_path() -> String {
    "data".into()
}
fn default_id_field() -> String {
    "id".into()
}

/// `<field> …` for a definition of `provider`'s `model`: what start-up reports.
fn problem(model: &str, field: &str, what: &str) -> String {
    if model.is_empty() {
        format!("sync: {field} {what}")
    } else {
        format!("sync {model:?}: {field} {what}")
    }
}

fn required(model: &str, field: &str, value: Option<String>) -> Result<String, String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(problem(model, field, "is required for this pagination")),
    }
}

/// Checks one table and builds the definition; the error names the model and the field.
pub(super) fn build(entry: SyncEntry) -> Result<SyncDef, String> {
    let model = entry.model.clone();
    let valid_model = (1..=40).contains(&model.len())
        && model
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid_model {
        return Err(problem(
            "",
            "model",
            &format!("{model:?} must be 1-40 lowercase letters, digits, - or _"),
        ));
    }
    let endpoint = entry.endpoint.trim_start_matches('/').to_string();
    let endpoint_ok = !endpoint.is_empty()
        && !endpoint.contains("://")
        && !endpoint.starts_with('/')
        && !endpoint.split(['/', '?']).any(|s| s == "..")
        && endpoint.chars().all(|c| c.is_ascii_graphic());
    if !endpoint_ok {
        return Err(problem(
            &model,
            "endpoint",
            "must be a path under the provider's api_base_url",
        ));
    }
    let pagination = match entry.pagination.as_str() {
        "next_url" => Pagination::NextUrl {
            path: entry.next_path.unwrap_or_else(|| "links.next".into()),
        },
        "body_cursor" => Pagination::BodyCursor {
            path: required(&model, "cursor_path", entry.cursor_path)?,
            param: required(&model, "cursor_param", entry.cursor_param)?,
        },
        kind @ ("page" | "offset") => {
            let size = entry.page_size.unwrap_or(100);
            if !(1..=1000).contains(&size) {
                return Err(problem(&model, "page_size", "must be between 1 and 1000"));
            }
            Pagination::Page {
                param: required(&model, "page_param", entry.page_param)?,
                size_param: required(&model, "page_size_param", entry.page_size_param)?,
                size,
                start: u32::from(kind == "page"),
                offset: kind == "offset",
            }
        }
        "link_header" => Pagination::LinkHeader,
        other => {
            return Err(problem(
                &model,
                "pagination",
                &format!(
                    "{other:?} is not one of next_url, body_cursor, page, offset, link_header"
                ),
            ))
        }
    };
    if entry.id_field.trim().is_empty() {
        return Err(problem(&model, "id_field", "must not be empty"));
    }
    if let Some(query) = &entry.incremental_query {
        if !query.contains("{since}") {
            return Err(problem(&model, "incremental_query", "must contain {since}"));
        }
        if entry.updated_field.is_none() {
            return Err(problem(
                &model,
                "updated_field",
                "is required with incremental_query",
            ));
        }
    }
    let frequency = crate::duration::parse_duration(&entry.frequency)
        .ok_or_else(|| problem(&model, "frequency", "must be a duration such as 5m or 1h"))?;
    if frequency < Duration::from_secs(60) {
        return Err(problem(&model, "frequency", "must be at least 1m"));
    }
    let prefix_ok =
        |p: &String| (1..=100).contains(&p.len()) && p.chars().all(|c| c.is_ascii_graphic());
    if !entry.webhook_events.iter().all(prefix_ok) {
        return Err(problem(
            &model,
            "webhook_events",
            "must hold event type prefixes of 1-100 visible ASCII characters",
        ));
    }
    Ok(SyncDef {
        model,
        endpoint,
        pagination,
        records_path: entry.records_path,
        id_field: entry.id_field,
        updated_field: entry.updated_field,
        incremental_query: entry.incremental_query,
        frequency,
        webhook_events: entry.webhook_events,
    })
}

/// Checks a provider's definitions together: each model once.
pub(super) fn build_all(entries: Vec<SyncEntry>) -> Result<Vec<SyncDef>, String> {
    let mut defs: Vec<SyncDef> = Vec::new();
    for entry in entries {
        let def = build(entry)?;
        if defs.iter().any(|d| d.model == def.model) {
            return Err(problem(&def.model, "model", "is defined twice"));
        }
        defs.push(def);
    }
    Ok(defs)
}

fn next_url(
    model: &str,
    endpoint: &str,
    updated: &str,
    since: &str,
    minutes: u64,
    events: &[&str],
) -> SyncDef {
    SyncDef {
        model: model.into(),
        endpoint: endpoint.into(),
        pagination: Pagination::NextUrl {
            path: "links.next".into(),
        },
        records_path: "data".into(),
        id_field: "id".into(),
        updated_field: Some(updated.into()),
        incremental_query: (!since.is_empty()).then(|| since.into()),
        frequency: Duration::from_secs(minutes * 60),
        webhook_events: events.iter().map(|e| e.to_string()).collect(),
    }
}

/// Klaviyo: lists and segments are small (full runs), profiles are incremental on
/// `updated` with Klaviyo's filter syntax. Its system webhooks are metric events
/// (`event:klaviyo.<metric>`); the consent ones (subscribed/unsubscribed) change a
/// profile's subscriptions (and a list's members). `profile.`, `list.` and `segment.`
/// catch topics named after the objects.
pub(super) fn klaviyo() -> Vec<SyncDef> {
    vec![
        next_url(
            "lists",
            "api/lists/",
            "attributes.updated",
            "",
            60,
            &[
                "list.",
                "event:klaviyo.subscribed_to_list",
                "event:klaviyo.unsubscribed_from_list",
            ],
        ),
        next_url(
            "segments",
            "api/segments/",
            "attributes.updated",
            "",
            60,
            &["segment."],
        ),
        next_url(
            "profiles",
            "api/profiles/?page[size]=100",
            "attributes.updated",
            "filter=greater-than(updated,{since})",
            15,
            &[
                "profile.",
                "event:klaviyo.subscribed_",
                "event:klaviyo.unsubscribed_",
            ],
        ),
    ]
}

/// Kustomer: customers and conversations, incremental on their update time.
pub(super) fn kustomer() -> Vec<SyncDef> {
    vec![
        next_url(
            "customers",
            "v1/customers?pageSize=100",
            "attributes.updatedAt",
            "filter[updated_at][gt]={since}",
            15,
            &["kustomer.customer."],
        ),
        next_url(
            "conversations",
            "v1/conversations?pageSize=100",
            "attributes.updatedAt",
            "filter[updated_at][gt]={since}",
            15,
            &["kustomer.conversation."],
        ),
    ]
}

/// The built-in models of a built-in provider (metrics start them at zero).
pub fn builtin_models(provider: &str) -> &'static [&'static str] {
    match provider {
        "klaviyo" => &["lists", "segments", "profiles"],
        "kustomer" => &["customers", "conversations"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(extra: &str) -> Result<Vec<SyncDef>, String> {
        #[derive(Deserialize)]
        struct Wrapper {
            sync: Vec<SyncEntry>,
        }
        let text = format!("[[sync]]\n{extra}");
        let parsed: Wrapper = toml::from_str(&text).map_err(|e| e.to_string())?;
        build_all(parsed.sync)
    }

    const GOOD: &str = "model = \"deals\"\nendpoint = \"v2/deals\"\npagination = \"page\"\n\
        page_param = \"page\"\npage_size_param = \"per_page\"\nupdated_field = \"updated_at\"\n\
        incremental_query = \"updated_since={since}\"\nfrequency = \"5m\"\nrecords_path = \"\"\n";

    #[test]
    fn a_good_definition_builds() {
        let defs = entry(GOOD).unwrap();
        assert_eq!(defs[0].model, "deals");
        assert_eq!(defs[0].frequency, Duration::from_secs(300));
        assert!(matches!(
            defs[0].pagination,
            Pagination::Page {
                start: 1,
                size: 100,
                offset: false,
                ..
            }
        ));
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let cases = [
            (
                GOOD.replace("\"5m\"", "\"30s\""),
                "sync \"deals\": frequency must be at least 1m",
            ),
            (
                GOOD.replace("\"5m\"", "\"often\""),
                "sync \"deals\": frequency must be a duration",
            ),
            (
                GOOD.replace("\"page\"\n", "\"pages\"\n"),
                "sync \"deals\": pagination \"pages\" is not one of",
            ),
            (
                GOOD.replace("page_param = \"page\"\n", ""),
                "sync \"deals\": page_param is required",
            ),
            (
                GOOD.replace("{since}", ""),
                "sync \"deals\": incremental_query must contain {since}",
            ),
            (
                GOOD.replace("\"v2/deals\"", "\"https://evil.example/x\""),
                "sync \"deals\": endpoint must be a path",
            ),
            (
                GOOD.replace("\"deals\"", "\"Deals!\""),
                "sync: model \"Deals!\" must be",
            ),
            (
                GOOD.replace("updated_field = \"updated_at\"\n", ""),
                "sync \"deals\": updated_field is required",
            ),
            (
                format!("{GOOD}webhook_events = [\"deal.\", \"\"]\n"),
                "sync \"deals\": webhook_events must hold",
            ),
            (
                format!("{GOOD}webhook_events = [\"deal \\u0000\"]\n"),
                "sync \"deals\": webhook_events must hold",
            ),
        ];
        for (text, expected) in cases {
            let err = entry(&text).unwrap_err();
            assert!(err.starts_with(expected), "{err} / {expected}");
        }
        let twice = format!("{GOOD}[[sync]]\n{GOOD}");
        assert!(entry(&twice).unwrap_err().contains("defined twice"));
    }

    #[test]
    fn builtins_are_valid() {
        for def in klaviyo().into_iter().chain(kustomer()) {
            assert!(def.frequency >= Duration::from_secs(60));
            assert!(def
                .incremental_query
                .as_deref()
                .is_none_or(|q| q.contains("{since}")));
        }
        assert_eq!(klaviyo().iter().filter(|d| d.incremental()).count(), 1);
    }

    #[test]
    fn webhook_events_match_by_prefix() {
        let with = entry(&format!("{GOOD}webhook_events = [\"deal.\"]\n")).unwrap();
        assert!(with[0].wants_event("deal.updated"));
        assert!(!with[0].wants_event("contact.updated"));
        assert!(!entry(GOOD).unwrap()[0].wants_event("deal.updated"));
        let model_of = |defs: Vec<SyncDef>, event: &str| -> Vec<String> {
            defs.into_iter()
                .filter(|d| d.wants_event(event))
                .map(|d| d.model)
                .collect()
        };
        assert_eq!(
            model_of(kustomer(), "kustomer.conversation.update"),
            ["conversations"]
        );
        assert_eq!(
            model_of(kustomer(), "kustomer.customer.create"),
            ["customers"]
        );
        assert_eq!(
            model_of(klaviyo(), "event:klaviyo.subscribed_to_list"),
            ["lists", "profiles"]
        );
        assert_eq!(
            model_of(klaviyo(), "event:klaviyo.unsubscribed_from_sms"),
            ["profiles"]
        );
        assert_eq!(model_of(klaviyo(), "list.updated"), ["lists"]);
        assert!(model_of(klaviyo(), "event:klaviyo.opened_email").is_empty());
    }
}
