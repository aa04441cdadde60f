use super::*;

fn kustomer() -> SettingDefs {
    SettingDefs {
        fields: vec![SettingDef::new(
            "subdomain",
            "Kustomer subdomain",
            "",
            SettingKind::Subdomain,
        )],
        capture_hosts: Vec::new(),
    }
}

fn entered(defs: &SettingDefs, value: &str) -> Result<ConnectionValues, SettingError> {
    defs.parse_entered(|name| (name == "subdomain").then_some(value))
}

#[test]
fn a_subdomain_is_one_dns_label() {
    let defs = kustomer();
    for good in [
        "acme",
        "acme-support",
        "a",
        "0rg",
        "xn--bcher-kva",
        &"a".repeat(63),
    ] {
        let values = entered(&defs, good).unwrap();
        assert_eq!(values.get("subdomain"), Some(good));
    }
    assert_eq!(
        entered(&defs, "ACME").unwrap().get("subdomain"),
        Some("acme"),
        "uppercase is lowercased"
    );
    let long = "a".repeat(64);
    for bad in [
        "evil.com",
        "a.b",
        "a/b",
        "a?b",
        "a#b",
        "a@b",
        "127.0.0.1",
        "[::1]",
        "%2e",
        "a%2fb",
        "..",
        ".",
        "-a",
        "a-",
        &long,
        " ",
        "a b",
        "a\tb",
        "a\nb",
        "a\0b",
        "ａ",
        "ab--c",
        "xn--",
        "xn--a-",
        "xn--zz-zzzzzzzzzzzz",
        "http://x",
        "a:80",
        "a\\b",
        "ä",
        "a_b",
    ] {
        let err = entered(&defs, bad).unwrap_err();
        assert_eq!(err.label, "Kustomer subdomain", "{bad:?}");
    }
    assert_eq!(
        entered(&defs, "").unwrap_err().problem,
        "enter a value",
        "empty, with no default"
    );
}

#[test]
fn the_default_fills_an_empty_value() {
    let mut defs = kustomer();
    defs.fields[0].default = Some("initech".into());
    assert_eq!(
        entered(&defs, "").unwrap().get("subdomain"),
        Some("initech")
    );
    assert_eq!(
        entered(&defs, "acme").unwrap().get("subdomain"),
        Some("acme")
    );
}

#[test]
fn placeholders_are_filled_or_refused() {
    let defs = kustomer();
    let values = entered(&defs, "acme").unwrap();
    let template = "https://${connection.subdomain}.api.kustomerapp.com/v1";
    assert_eq!(
        fill(template, &values, &defs).unwrap(),
        "https://acme.api.kustomerapp.com/v1"
    );
    assert_eq!(
        fill(template, &ConnectionValues::default(), &defs).unwrap_err(),
        "subdomain"
    );
    assert_eq!(placeholders(template), vec!["subdomain"]);
    assert_eq!(sample(template), "https://sample.api.kustomerapp.com/v1");
}

fn salesforce() -> SettingDefs {
    let capture = [("instance_url".to_string(), "token.instance_url".to_string())];
    build(
        Vec::new(),
        capture.into_iter().collect(),
        vec!["salesforce.com".into(), "force.com".into()],
    )
    .unwrap()
}

fn tokens(token: &serde_json::Map<String, serde_json::Value>) -> Answers<'_> {
    Answers {
        token: Some(token),
        ..Answers::default()
    }
}

#[test]
fn a_captured_url_must_be_on_the_providers_hosts() {
    let defs = salesforce();
    let token = |url: &str| {
        let mut map = serde_json::Map::new();
        map.insert("instance_url".into(), url.into());
        map
    };
    let mut values = ConnectionValues::default();
    let found = token("https://acme.my.salesforce.com/");
    defs.capture(&mut values, &tokens(&found)).unwrap();
    assert_eq!(
        values.get("instance_url"),
        Some("https://acme.my.salesforce.com")
    );
    for bad in [
        "https://evil.com",
        "https://salesforce.com.evil.com",
        "https://evilsalesforce.com",
        "http://acme.my.salesforce.com",
        "https://acme.my.salesforce.com/path",
        "https://user@acme.my.salesforce.com",
        "https://acme.my.salesforce.com:8443",
        "https://127.0.0.1",
        "not a url",
    ] {
        let mut values = ConnectionValues::default();
        let found = token(bad);
        let err = defs.capture(&mut values, &tokens(&found)).unwrap_err();
        assert!(
            err.problem
                .starts_with("the provider sent a value that is refused"),
            "{bad}: {err}"
        );
        assert!(values.is_empty());
    }
    let empty = serde_json::Map::new();
    let err = defs
        .capture(&mut ConnectionValues::default(), &tokens(&empty))
        .unwrap_err();
    assert!(
        err.problem
            .contains("had no token response field instance_url"),
        "{err}"
    );
}

#[test]
fn callback_values_are_captured_as_text() {
    let capture = [("realm_id".to_string(), "callback.realmId".to_string())];
    let defs = build(Vec::new(), capture.into_iter().collect(), Vec::new()).unwrap();
    let mut values = ConnectionValues::default();
    let callback = [("realmId".to_string(), "9130350".to_string())].into();
    let answers = |callback| Answers {
        callback: Some(callback),
        ..Answers::default()
    };
    defs.capture(&mut values, &answers(&callback)).unwrap();
    assert_eq!(values.to_json(), r#"{"realm_id":"9130350"}"#);
    let callback = [("realmId".to_string(), "../x".to_string())].into();
    assert!(defs
        .capture(&mut ConnectionValues::default(), &answers(&callback))
        .is_err());
    let empty = serde_json::Map::new();
    assert!(
        defs.capture(&mut ConnectionValues::default(), &tokens(&empty))
            .is_ok(),
        "no callback read yet: nothing to capture"
    );
}

#[test]
fn profile_values_are_captured_by_path() {
    let capture = [("dc".to_string(), "profile.login.dc".to_string())];
    let defs = build(Vec::new(), capture.into_iter().collect(), Vec::new()).unwrap();
    fn profile(value: &serde_json::Value) -> Answers<'_> {
        Answers {
            profile: Some(value),
            ..Answers::default()
        }
    }
    let mut values = ConnectionValues::default();
    let good = serde_json::json!({"login": {"dc": "us6"}});
    defs.capture(&mut values, &profile(&good)).unwrap();
    assert_eq!(values.to_json(), r#"{"dc":"us6"}"#);
    for bad in [
        serde_json::json!({"login": {"dc": "evil.com"}}),
        serde_json::json!({"login": {"dc": "a/b"}}),
        serde_json::json!({"login": {}}),
        serde_json::json!({"dc": "us6"}),
    ] {
        let mut values = ConnectionValues::default();
        assert!(defs.capture(&mut values, &profile(&bad)).is_err());
        assert!(values.is_empty());
    }
    for bad in ["profile.", "profile.a..b", "profile.a/b", "profiles.dc"] {
        let capture = [("dc".to_string(), bad.to_string())];
        assert!(build(Vec::new(), capture.into_iter().collect(), Vec::new()).is_err());
    }
}

#[test]
fn declarations_are_checked() {
    let entry = |name: &str, pattern: Option<&str>| SettingEntry {
        name: name.into(),
        label: "L".into(),
        help: String::new(),
        kind: SettingKind::Text,
        pattern: pattern.map(str::to_string),
    };
    let pattern = build(
        vec![entry("shop", Some("[a-z]+-shop"))],
        BTreeMap::new(),
        Vec::new(),
    )
    .unwrap();
    let shop = &pattern.fields[0];
    assert!(pattern.check(shop, "acme-shop").is_ok());
    assert!(
        pattern.check(shop, "acme-shop-x").is_err(),
        "the pattern matches in full"
    );
    for (entries, capture, hosts, expected) in [
        (vec![entry("Shop", None)], vec![], vec![], "must be 1-40"),
        (
            vec![entry("redirect_path", None)],
            vec![],
            vec![],
            "not a form field",
        ),
        (vec![entry("a", Some("("))], vec![], vec![], "bad pattern"),
        (
            vec![entry("a", None), entry("a", None)],
            vec![],
            vec![],
            "declared twice",
        ),
        (
            vec![],
            vec![("x", "header.x")],
            vec![],
            "must start with token.",
        ),
        (
            vec![],
            vec![("x_url", "token.x")],
            vec![],
            "needs capture_hosts",
        ),
        (
            vec![],
            vec![("x_url", "token.x")],
            vec!["evil/com"],
            "must be a domain",
        ),
    ] {
        let capture = capture
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let hosts = hosts.into_iter().map(str::to_string).collect();
        let err = build(entries, capture, hosts).unwrap_err();
        assert!(err.contains(expected), "{err}");
    }
}
