use super::*;
use crate::providers::loader::load;
use std::collections::HashMap;

fn write(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

const ACME: &str = r#"
[[provider]]
name = "acme"
display_name = "Acme CRM"
authorize_url = "https://auth.acme.example/oauth/authorize"
token_url = "https://auth.acme.example/oauth/token"
profile_url = "https://api.acme.example/me"
account_id_field = "data.0.id"
scopes = ["accounts:read", "offline_access"]
client_auth = "post"
api_base_url = "https://api.acme.example"
[provider.authorize_params]
prompt = "consent"
[provider.headers]
revision = "2024-10-15"
"#;

#[test]
fn a_toml_provider_loads_with_its_env_credentials() {
    let file = write(ACME);
    let env: HashMap<String, String> = [
        ("ACME_OAUTH_CLIENT_ID", "id"),
        ("ACME_OAUTH_CLIENT_SECRET", "s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let providers = load(
        &file.path().display().to_string(),
        &env,
        "https://hub.example",
    )
    .unwrap();
    let acme = &providers.providers[0];
    assert_eq!(acme.display_name, "Acme CRM");
    assert_eq!(acme.client_auth, ClientAuth::Post);
    assert_eq!(
        acme.authorize_params,
        vec![("prompt".to_string(), "consent".to_string())]
    );
    assert!(
        matches!(&acme.profile, ProfileSource::Url { account_id_field, .. } if account_id_field == "data.0.id")
    );
    assert_eq!(
        acme.app.as_ref().unwrap().redirect_uri,
        "https://hub.example/api/integrations/acme/oauth/callback"
    );
}

/// ACME with more keys of its own table (before its sub-tables).
fn top_level(keys: &str) -> String {
    ACME.replace(
        "[provider.authorize_params]",
        &format!("{keys}\n[provider.authorize_params]"),
    )
}

#[test]
fn authorize_params_connecthub_sets_are_refused() {
    let env: HashMap<String, String> = HashMap::new();
    for own in ["redirect_uri", "state", "scope", "client_id"] {
        let text = ACME.replace(
            "[provider.authorize_params]",
            &format!("[provider.authorize_params]\n{own} = \"x\""),
        );
        let err = parse(&text, &env, "http://x").unwrap_err().to_string();
        assert!(
            err.contains(&format!("must not set {own}")) && err.contains("acme"),
            "{err}"
        );
    }
}

#[test]
fn quirks_and_key_modes_are_read() {
    let text = format!(
            "{}[provider.token_params]\naudience = \"api\"\n[provider.api_key]\nquery_param = \"api_key\"\n",
            top_level("token_path = \"authed_user\"\ntoken_type = \"user\"\ntoken_request_format = \"json\"")
        );
    let env: HashMap<String, String> = HashMap::new();
    let acme = parse(&text, &env, "http://x").unwrap().remove(0);
    assert_eq!(acme.token_format.path.as_deref(), Some("authed_user"));
    assert_eq!(acme.token_format.token_type, "user");
    assert_eq!(acme.token_format.request, RequestFormat::Json);
    assert_eq!(
        acme.token_format.params,
        [("audience".into(), "api".into())]
    );
    assert_eq!(
        acme.key_placement,
        KeyPlacement::Query {
            name: "api_key".into()
        }
    );
    let basic = "[[provider]]\nname = \"b\"\ndisplay_name = \"B\"\nauth_type = \"basic\"\napi_base_url = \"https://api.b.example\"\napi_key_check_path = \"/me\"\nprofile_url = \"https://api.b.example/me\"\n[provider.basic]\npassword_label = \"API token\"\n";
    let b = parse(basic, &env, "http://x").unwrap().remove(0);
    assert_eq!(b.key_placement, KeyPlacement::Basic);
    assert_eq!(b.key_auth_type(), AuthType::Basic);
    assert_eq!(
        b.key_labels(),
        (Some("Username".to_string()), "API token".to_string())
    );
}

#[test]
fn profile_captures_fill_only_what_comes_after_the_profile() {
    let chimp = |urls: &str, extra: &str| {
        format!("[[provider]]\nname = \"chimp\"\ndisplay_name = \"Chimp\"\n{extra}{urls}\n[provider.capture]\ndc = \"profile.dc\"\n")
    };
    let good = "authorize_url = \"https://login.chimp.example/a\"\ntoken_url = \"https://login.chimp.example/t\"\nprofile_url = \"https://login.chimp.example/me\"\napi_base_url = \"https://${connection.dc}.api.chimp.example\"";
    let env: HashMap<String, String> = HashMap::new();
    let provider = parse(&chimp(good, ""), &env, "http://x").unwrap().remove(0);
    let reading = provider.for_profile(&Default::default()).unwrap();
    assert_eq!(
        reading.api_base_url, "",
        "nothing but the profile is read yet"
    );
    for (urls, extra, problem) in [
        (
            good.replace("/me", "/${connection.dc}"),
            "",
            "is used before the profile is read",
        ),
        (
            good.replace("/t", "/${connection.dc}"),
            "",
            "is used before the profile is read",
        ),
        (
            good.to_string(),
            "auth_type = \"api_key\"\napi_key_check_path = \"/me\"\n",
            "profile captures need auth_type oauth2",
        ),
    ] {
        let err = parse(&chimp(&urls, extra), &env, "http://x").unwrap_err();
        assert!(err.to_string().contains(problem), "{err}");
        assert!(err.to_string().contains("provider chimp"), "{err}");
    }
}

#[test]
fn connection_settings_and_captures_are_read() {
    let text = r#"
[[provider]]
name = "shopco"
display_name = "Shop Co"
authorize_url = "https://${connection.shop}.shopco.example/oauth/authorize"
token_url = "https://${connection.shop}.shopco.example/oauth/token"
profile_url = "${connection.instance_url}/me"
api_base_url = "https://${connection.shop}.shopco.example/${connection.realm}"
capture_hosts = ["shopco.example"]
[[provider.connection_config]]
name = "shop"
label = "Shop name"
help = "The part before .shopco.example"
kind = "subdomain"
[provider.capture]
instance_url = "token.instance_url"
realm = "callback.realmId"
"#;
    let env: HashMap<String, String> = HashMap::new();
    let providers = parse(text, &env, "http://x").unwrap();
    let defs = &providers[0].connection_config;
    let names: Vec<&str> = defs.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["shop", "instance_url", "realm"]);
    assert_eq!(defs.asked().count(), 1);
    let mut values = defs.parse_entered(|_| Some("Widgets")).unwrap();
    let token = serde_json::json!({"instance_url": "https://eu1.shopco.example"});
    let callback = [("realmId".to_string(), "42".to_string())].into();
    let answers = crate::providers::connection_config::Answers {
        token: token.as_object(),
        callback: Some(&callback),
        profile: None,
    };
    defs.capture(&mut values, &answers).unwrap();
    let shop = providers[0].for_connection(&values).unwrap();
    assert_eq!(shop.api_base_url, "https://widgets.shopco.example/42");
    assert!(
        matches!(&shop.profile, ProfileSource::Url { url, .. } if url == "https://eu1.shopco.example/me")
    );
}

#[test]
fn rate_budgets_and_their_headers_are_read() {
    let with_header = ACME.replace(
        "api_base_url",
        "rate_remaining_header = \"X-Acme-Left\"\napi_base_url",
    );
    let text = format!(
        "{with_header}[[provider.rate_budget]]\nname = \"search\"\nscope = \"connection\"\n\
             requests = 10\nper = \"1m\"\npath_prefix = \"/v1/search\"\n\
             [[provider.rate_budget]]\nname = \"api\"\nrequests = 5\nper = \"1s\"\n"
    );
    let acme = parse(&text, &HashMap::<String, String>::new(), "http://x").unwrap();
    let budgets = &acme[0].rate_budgets;
    assert_eq!(budgets.remaining_header.as_deref(), Some("x-acme-left"));
    let (prefix, search) = budgets.tier("v1/search?q=a");
    assert_eq!(prefix, Some("v1/search"));
    assert_eq!(
        search[0].scope,
        super::super::rate_budgets::BudgetScope::Connection
    );
    assert_eq!(search[0].window, std::time::Duration::from_secs(60));
    assert_eq!(budgets.tier("v1/deals").1[0].name, "api");
    let bad = text.replace("per = \"1s\"", "per = \"now\"");
    let err = parse(&bad, &HashMap::<String, String>::new(), "http://x").unwrap_err();
    assert!(
        err.to_string()
            .contains("provider acme: rate budget \"api\": per must be"),
        "{err}"
    );
}

#[test]
fn mistakes_in_the_file_are_named() {
    let env: HashMap<String, String> = HashMap::new();
    let cases = [
            (
                ACME.replace("name = \"acme\"", "name = \"Acme CRM\""),
                "provider name \"Acme CRM\" must be",
            ),
            (
                ACME.replace(
                    "token_url = \"https://auth.acme.example/oauth/token\"",
                    "token_url = \"/token\"",
                ),
                "provider acme: \"/token\" is not an absolute",
            ),
            (
                ACME.replace("scopes", "scope"),
                "is not a valid provider file",
            ),
            (
                "[[provider]]\nname = 3".to_string(),
                "is not a valid provider file",
            ),
            (
                ACME.replace("https://api.acme.example\"", "https://${connection.shop}.acme.example\""),
                "uses ${connection.shop}, which is not declared",
            ),
            (
                format!("{ACME}[[provider.connection_config]]\nname = \"shop\"\nlabel = \"Shop\"\npattern = \"(\"\n"),
                "provider acme: connection_config \"shop\": bad pattern",
            ),
            (
                format!("{ACME}[[provider.sync]]\nmodel = \"deals\"\nendpoint = \"deals\"\npagination = \"next_url\"\nfrequency = \"10s\"\n"),
                "provider acme: sync \"deals\": frequency must be at least 1m",
            ),
            (
                format!("{ACME}[[provider.sync]]\nmodel = \"deals\"\nendpoint = \"deals\"\npagination = \"body_cursor\"\nfrequency = \"10m\"\n"),
                "provider acme: sync \"deals\": cursor_path is required",
            ),
        ];
    for (text, expected) in cases {
        let file = write(&text);
        let err = load(&file.path().display().to_string(), &env, "http://x").unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    let keyed = "[[provider]]\nname = \"k\"\ndisplay_name = \"K\"\napi_base_url = \"https://api.k.example\"\n";
    let more = [
            (
                top_level("token_type = \"bearer token\""),
                "token_type must be a word",
            ),
            (
                top_level("token_path = \"a..b\""),
                "token_path must be dotted names",
            ),
            (
                top_level("token_request_format = \"xml\""),
                "is not a valid provider file",
            ),
            (
                format!("{ACME}[provider.token_params]\nclient_secret = \"x\"\n"),
                "token_params may not set \"client_secret\"",
            ),
            (
                format!("{ACME}[provider.api_key]\nheader = \"X-Key\"\nquery_param = \"k\"\n"),
                "api_key takes header or query_param, not both",
            ),
            (
                format!("{ACME}[provider.basic]\nusername_label = \"Email\"\n"),
                "[provider.basic] needs auth_type = \"basic\"",
            ),
            (
                format!("{keyed}auth_type = \"basic\"\nprofile_url = \"https://api.k.example/me\"\n"),
                "provider k: api_key_check_path is required for basic",
            ),
            (
                format!("{keyed}auth_type = \"api_key\"\napi_key_check_path = \"/me\"\n"),
                "provider k: profile_url is required for api_key",
            ),
            (
                format!("{keyed}auth_type = \"api_key\"\napi_key_check_path = \"https://evil.example/\"\nprofile_url = \"https://api.k.example/me\"\n"),
                "must be a path under api_base_url",
            ),
            (
                format!("{keyed}auth_type = \"oauth2\"\nauthorize_url = \"https://k.example/a\"\n"),
                "provider k: token_url is required for oauth2",
            ),
        ];
    for (text, expected) in more {
        let file = write(&text);
        let err = load(&file.path().display().to_string(), &env, "http://x").unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    let err = load("/no/such/file.toml", &env, "http://x").unwrap_err();
    assert!(err.to_string().starts_with("PROVIDERS_FILE cannot be read"));
}
