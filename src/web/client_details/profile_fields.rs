//! The stored provider profile as the client's page lists it: known fields first, labels
//! that read like words, lists (Kustomer teams) as tags.

use serde_json::Value;

/// One profile value: text, a list (Kustomer teams), or nothing known.
pub enum FieldValue {
    Text(String),
    List(Vec<String>),
    Missing,
}

pub struct ProfileField {
    pub label: String,
    pub value: FieldValue,
}

/// Known fields first, in the order people look for them; others follow alphabetically.
const FIELD_ORDER: [&str; 18] = [
    "account_id",
    "account_name",
    "org_id",
    "org_name",
    "display_name",
    "domain",
    "email_domain",
    "company_id",
    "contact_email",
    "lists_count",
    "segments_count",
    "test_account",
    "timezone",
    "preferred_currency",
    "locale",
    "industry",
    "website_url",
    "teams",
];

/// `account_id` → "Account ID".
fn label(key: &str) -> String {
    let words: Vec<String> = key
        .split('_')
        .enumerate()
        .map(|(i, word)| match word {
            "id" => "ID".to_string(),
            "url" => "URL".to_string(),
            _ if i == 0 => {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default()
            }
            _ => word.to_string(),
        })
        .collect();
    words.join(" ")
}

/// An item of a list: its name when it is an object (a team), else its text.
fn item_text(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        Value::Object(map) => ["name", "display_name", "id"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| item.to_string()),
        other => other.to_string(),
    }
}

fn field_value(value: &Value) -> FieldValue {
    match value {
        Value::Null => FieldValue::Missing,
        Value::String(s) if s.is_empty() => FieldValue::Missing,
        Value::String(s) => FieldValue::Text(s.clone()),
        Value::Bool(b) => FieldValue::Text(if *b { "Yes" } else { "No" }.into()),
        Value::Number(n) => FieldValue::Text(n.to_string()),
        Value::Array(items) => FieldValue::List(items.iter().map(item_text).collect()),
        Value::Object(_) => FieldValue::Text(value.to_string()),
    }
}

/// Every field of the stored profile, known ones first.
pub fn profile_fields(profile: &Value) -> Vec<ProfileField> {
    let Some(map) = profile.as_object() else {
        return Vec::new();
    };
    let rank = |key: &str| {
        FIELD_ORDER
            .iter()
            .position(|k| *k == key)
            .unwrap_or(FIELD_ORDER.len())
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    keys.into_iter()
        .map(|key| ProfileField {
            label: label(key),
            value: field_value(&map[key]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_read_like_words() {
        assert_eq!(label("account_id"), "Account ID");
        assert_eq!(label("website_url"), "Website URL");
        assert_eq!(label("lists_count"), "Lists count");
        assert_eq!(label("timezone"), "Timezone");
    }

    #[test]
    fn profile_fields_come_in_a_stable_order() {
        let profile = json!({
            "zeta": 1, "account_name": "Acme", "account_id": "AcmeK1", "test_account": false,
            "teams": [{"id": "t1", "name": "Support"}, {"id": "t2"}], "locale": null
        });
        let fields = profile_fields(&profile);
        let labels: Vec<&str> = fields.iter().map(|f| f.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Account ID",
                "Account name",
                "Test account",
                "Locale",
                "Teams",
                "Zeta"
            ]
        );
        assert!(matches!(&fields[2].value, FieldValue::Text(t) if t == "No"));
        assert!(matches!(fields[3].value, FieldValue::Missing));
        assert!(matches!(&fields[4].value, FieldValue::List(l) if l == &["Support", "t2"]));
        assert!(profile_fields(&Value::Null).is_empty());
    }
}
