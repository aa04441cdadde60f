//! Every catalogue file passes a shape check and builds a provider through the strict
//! `file::parse`.

use super::*;
use std::collections::{BTreeSet, HashMap};
use toml::{Table, Value};

const URL_KEYS: [&str; 5] = [
    "authorize_url",
    "token_url",
    "revoke_url",
    "profile_url",
    "api_base_url",
];

/// Text that looks like a credential of a well-known service.
const SECRET_SHAPES: [&str; 10] = [
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "xoxb-",
    "xoxp-",
    "ghp_",
    "gho_",
    "shpat_",
    "-----BEGIN",
];

fn provider_table(name: &str, text: &str) -> Table {
    let mut document: Table = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let Some(Value::Array(mut providers)) = document.remove("provider") else {
        panic!("{name}: no [[provider]]");
    };
    assert_eq!(providers.len(), 1, "{name}: one [[provider]] per file");
    assert!(document.is_empty(), "{name}: only [[provider]] at the top");
    match providers.remove(0) {
        Value::Table(table) => table,
        other => panic!("{name}: [[provider]] is {other:?}"),
    }
}

fn str_of<'a>(table: &'a Table, key: &str) -> Option<&'a str> {
    table.get(key).and_then(Value::as_str)
}

/// The names of `${connection.x}` placeholders in a text.
fn placeholders(text: &str) -> Vec<&str> {
    text.split("${connection.")
        .skip(1)
        .map(|rest| rest.split_once('}').map_or(rest, |(name, _)| name))
        .collect()
}

/// A URL with each placeholder filled the way a connection would fill it: a captured URL
/// by an https origin, any other value by one DNS label.
fn filled(url: &str, captured_urls: &BTreeSet<String>) -> String {
    let mut url = url.to_string();
    for name in placeholders(&url.clone()) {
        let placeholder = format!("${{connection.{name}}}");
        let value = if captured_urls.contains(name) {
            "https://acme.example.com"
        } else {
            "acme"
        };
        url = url.replace(&placeholder, value);
    }
    url
}

#[test]
fn every_file_is_listed_once_in_order() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/providers/catalogue");
    let mut on_disk: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let listed: Vec<String> = FILES.iter().map(|(n, _)| format!("{n}.toml")).collect();
    assert_eq!(listed, on_disk);
    assert!(FILES.len() >= 32, "the issue asks for at least 32 services");
}

#[test]
fn every_entry_lists_with_its_doc_url_and_text() {
    assert_eq!(list().len(), FILES.len(), "an entry failed to list");
    for entry in list() {
        assert!(!entry.display_name.is_empty(), "{}", entry.name);
        assert!(
            url::Url::parse(&entry.doc_url).is_ok_and(|u| u.scheme() == "https"),
            "{}: doc URL {:?}",
            entry.name,
            entry.doc_url
        );
        assert!(text(entry.name).is_some());
    }
    let github = list().iter().find(|e| e.name == "github").unwrap();
    assert_eq!(github.display_name, "GitHub");
    assert_eq!(github.auth_type, "oauth2");
    let stripe = list().iter().find(|e| e.name == "stripe").unwrap();
    assert_eq!(stripe.auth_type, "api_key");
    assert!(text("hubspot").unwrap().contains("name = \"hubspot\""));
    assert_eq!(text("no-such-provider"), None);
}

#[test]
fn every_entry_passes_the_shape_check() {
    for (name, text) in FILES {
        let table = provider_table(name, text);
        assert_eq!(str_of(&table, "name"), Some(name), "name = file name");
        let auth = str_of(&table, "auth_type").unwrap_or("oauth2");
        assert!(
            ["oauth2", "client_credentials", "api_key", "basic"].contains(&auth),
            "{name}: auth_type {auth}"
        );
        if auth == "oauth2" {
            for key in ["authorize_url", "token_url", "scope_separator"] {
                assert!(str_of(&table, key).is_some(), "{name}: {key} missing");
            }
            let client_auth = str_of(&table, "client_auth");
            assert!(matches!(client_auth, Some("basic" | "post")), "{name}");
            assert!(
                table.get("pkce").and_then(Value::as_bool).is_some(),
                "{name}"
            );
            let refresh = text
                .lines()
                .find_map(|line| line.strip_prefix("# refresh: "))
                .and_then(|rest| rest.split_once(" — https://"));
            assert!(
                matches!(refresh, Some(("none" | "rotating" | "reusable", _))),
                "{name}: `# refresh: <none|rotating|reusable> — <doc url>`"
            );
        } else {
            assert!(
                str_of(&table, "api_key_check_path").is_some_and(|p| p.starts_with('/')),
                "{name}: a key is checked before it is stored"
            );
        }

        let declared: BTreeSet<String> = table
            .get("connection_config")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|setting| {
                let setting = setting.as_table().unwrap();
                for key in ["label", "help", "pattern"] {
                    assert!(str_of(setting, key).is_some(), "{name}: setting {key}");
                }
                assert_eq!(str_of(setting, "kind"), Some("subdomain"), "{name}");
                str_of(setting, "name").unwrap().to_string()
            })
            .collect();
        let captures: HashMap<String, String> = table
            .get("capture")
            .and_then(Value::as_table)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        for (setting, source) in &captures {
            assert!(
                ["token.", "callback.", "profile."]
                    .iter()
                    .any(|p| source.starts_with(p)),
                "{name}: capture {setting} = {source}"
            );
        }
        // A captured value that is a whole origin must be held to the provider's domains.
        let captured_urls: BTreeSet<String> = URL_KEYS
            .iter()
            .filter_map(|key| str_of(&table, key))
            .filter_map(|url| url.strip_prefix("${connection."))
            .filter_map(|rest| rest.split_once('}').map(|(n, _)| n.to_string()))
            .collect();
        if !captured_urls.is_empty() {
            assert!(
                table
                    .get("capture_hosts")
                    .and_then(Value::as_array)
                    .is_some_and(|hosts| !hosts.is_empty()),
                "{name}: capture_hosts"
            );
        }
        for url in URL_KEYS.iter().filter_map(|key| str_of(&table, key)) {
            for placeholder in placeholders(url) {
                assert!(
                    declared.contains(placeholder) || captures.contains_key(placeholder),
                    "{name}: ${{connection.{placeholder}}} is neither a setting nor captured"
                );
                if !captured_urls.contains(placeholder) && !captures.contains_key(placeholder) {
                    assert!(
                        url.contains(&format!("//${{connection.{placeholder}}}.")),
                        "{name}: a setting is one label of the host, never the host"
                    );
                }
            }
            let parsed = url::Url::parse(&filled(url, &captured_urls))
                .unwrap_or_else(|e| panic!("{name}: {url}: {e}"));
            assert_eq!(parsed.scheme(), "https", "{name}: {url}");
            assert!(parsed.host_str().is_some_and(|h| h.contains('.')), "{url}");
        }

        for key in [
            "client_id",
            "client_secret",
            "api_key",
            "password",
            "access_token",
            "refresh_token",
        ] {
            // `[provider.api_key]` and `[provider.access_token]` are tables saying where
            // the credential goes; a value there would be the credential itself.
            assert!(
                table.get(key).is_none_or(Value::is_table),
                "{name}: a {key} value is never in a file"
            );
        }
        for shape in SECRET_SHAPES {
            assert!(
                !text.contains(shape),
                "{name}: looks like a secret ({shape})"
            );
        }
    }
}

/// Each entry, as an admin adds it (no credentials, nothing in the environment), builds a
/// provider.
#[test]
fn every_entry_builds_with_the_strict_parser() {
    let env: HashMap<String, String> = HashMap::new();
    let mut built = 0;
    for entry in list() {
        let parsed =
            super::super::file::parse(text(entry.name).unwrap(), &env, "https://hub.example");
        let providers = parsed.unwrap_or_else(|e| panic!("{}: {e}", entry.name));
        let [provider] = &providers[..] else {
            panic!("{}: one provider", entry.name)
        };
        assert_eq!(provider.name, entry.name);
        assert_eq!(provider.display_name, entry.display_name);
        assert_eq!(provider.auth_type.to_string(), entry.auth_type);
        assert!(
            provider.app.is_none(),
            "{}: credentials never come from a file",
            entry.name
        );
        built += 1;
    }
    assert_eq!(built, list().len());
    assert!(built >= 32, "{built}");
}
