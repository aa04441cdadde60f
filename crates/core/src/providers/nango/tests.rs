//! The Nango reader on a small hand-made file shaped like Nango's providers.yaml.

use super::*;
use crate::providers::{AuthType, ClientAuth};
use std::collections::HashMap;

const FILE: &str = r#"
acme:
    display_name: Acme CRM
    categories:
        - crm
    auth_mode: OAUTH2
    authorization_url: https://auth.acme.example/oauth/authorize
    token_url: https://auth.acme.example/oauth/token
    authorization_params:
        response_type: code
        prompt: consent
        force_install_if_needed: true
    scope_separator: ','
    default_scopes:
        - contacts.read
        - offline
    token_params:
        grant_type: authorization_code
    refresh_params:
        grant_type: refresh_token
    disable_pkce: true
    token_request_auth_method: basic
    post_connection_script: acmePostConnection
    proxy:
        base_url: https://api.acme.example
        headers:
            acme-version: '2024-10-15'
        retry:
            after:
                - 'retry-after'
    docs: https://nango.dev/docs/integrations/all/acme

acme-eu:
    display_name: Acme CRM (EU)
    alias: acme
    proxy:
        base_url: https://api.eu.acme.example

machines:
    display_name: Machines Inc
    auth_mode: OAUTH2_CC
    token_url: https://${connectionConfig.subdomain}.machines.example/oauth/token
    token_params:
        grant_type: client_credentials
        audience: api
    refresh_params:
        grant_type: refresh_token
        audience: api
    proxy:
        base_url: https://${connectionConfig.subdomain}.machines.example/api
    connection_config:
        subdomain:
            type: string
            title: Machines subdomain
            description: The part before .machines.example
            pattern: '^[a-z0-9-]+$'
    docs: https://nango.dev/docs/integrations/all/machines

keyed:
    display_name: Keyed
    auth_mode: API_KEY
    proxy:
        base_url: https://api.keyed.example
        headers:
            authorization: Bearer ${apiKey}
        verification:
            method: GET
            endpoints:
                - /v1/me
    credentials:
        apiKey:
            type: string
            title: API Key
    docs: https://nango.dev/docs/integrations/all/keyed

templated:
    display_name: Templated
    auth_mode: API_KEY
    proxy:
        base_url: https://api.templated.example
        headers:
            authorization: Klaviyo-API-Key ${apiKey}
        verification:
            endpoints:
                - /api/accounts
    docs: https://nango.dev/docs/integrations/all/templated

helpdesk:
    display_name: Helpdesk
    auth_mode: BASIC
    proxy:
        base_url: https://${connectionConfig.subdomain}.helpdesk.example
        verification:
            endpoints:
                - /api/v2/agents/me
    credentials:
        username:
            type: string
            title: API Key
        password:
            type: string
            title: ''
            default_value: X
            hidden: true
    connection_config:
        subdomain:
            type: string
            title: Helpdesk subdomain
            description: The part before .helpdesk.example
            pattern: '^[a-z0-9_-]+$'
    docs: https://nango.dev/docs/integrations/all/helpdesk

signed:
    display_name: Signed
    auth_mode: OAUTH1
    request_url: https://signed.example/oauth/request_token
    authorization_url: https://signed.example/oauth/authorize
    token_url: https://signed.example/oauth/access_token
    signature_method: HMAC-SHA1
    proxy:
        base_url: https://api.signed.example
    docs: https://nango.dev/docs/integrations/all/signed

regional:
    display_name: Regional
    auth_mode: OAUTH2
    authorization_url: https://app.${connectionConfig.region}.regional.example/oauth || https://app.regional.example/oauth
    token_url: https://api.regional.example/token
    proxy:
        base_url: https://api.regional.example
    docs: https://nango.dev/docs/integrations/all/regional

klaviyo:
    display_name: Klaviyo
    auth_mode: API_KEY
    proxy:
        base_url: https://a.klaviyo.com
        headers:
            authorization: Klaviyo-API-Key ${apiKey}
        verification:
            endpoints:
                - /api/accounts
    docs: https://nango.dev/docs/integrations/all/klaviyo
"#;

fn entries() -> BTreeMap<String, Json> {
    serde_saphyr::from_str(FILE).unwrap()
}

fn translated(name: &str) -> Result<Table, String> {
    translate(name, &resolve(name, &entries())?)
}

fn table(toml_text: &str) -> Table {
    toml::from_str(toml_text).unwrap()
}

#[test]
fn an_oauth2_entry_translates_and_loads() {
    assert_eq!(
        translated("acme").unwrap(),
        table(
            r#"
            name = "acme"
            display_name = "Acme CRM"
            auth_type = "oauth2"
            api_base_url = "https://api.acme.example"
            authorize_url = "https://auth.acme.example/oauth/authorize"
            token_url = "https://auth.acme.example/oauth/token"
            scope_separator = ","
            scopes = ["contacts.read", "offline"]
            pkce = false
            client_auth = "basic"
            [authorize_params]
            prompt = "consent"
            force_install_if_needed = "true"
            [headers]
            acme-version = "2024-10-15"
            "#
        )
    );
    let env: HashMap<String, String> = [
        ("ACME_OAUTH_CLIENT_ID", "id"),
        ("ACME_OAUTH_CLIENT_SECRET", "s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let providers = parse(FILE, &env, "https://hub.example").unwrap().providers;
    let acme = providers.iter().find(|p| p.name == "acme").unwrap();
    assert_eq!(acme.auth_type, AuthType::Oauth2);
    assert_eq!(acme.scope_string(), "contacts.read,offline");
    assert_eq!(acme.client_auth, ClientAuth::Basic);
    assert!(!acme.pkce);
    assert!(acme.is_configured());
    // An alias takes the aliased entry's keys and overrides the top level.
    let eu = providers.iter().find(|p| p.name == "acme-eu").unwrap();
    assert_eq!(eu.display_name, "Acme CRM (EU)");
    assert_eq!(eu.api_base_url, "https://api.eu.acme.example");
    assert_eq!(eu.token_url, acme.token_url);
}

#[test]
fn client_credentials_api_key_and_basic_entries_translate() {
    assert_eq!(
        translated("machines").unwrap(),
        table(
            r#"
            name = "machines"
            display_name = "Machines Inc"
            auth_type = "client_credentials"
            api_base_url = "https://${connection.subdomain}.machines.example/api"
            token_url = "https://${connection.subdomain}.machines.example/oauth/token"
            pkce = true
            client_auth = "post"
            [[connection_config]]
            name = "subdomain"
            kind = "subdomain"
            label = "Machines subdomain"
            help = "The part before .machines.example"
            pattern = "^[a-z0-9-]+$"
            [token_params]
            audience = "api"
            "#
        )
    );
    let keyed = translated("keyed").unwrap();
    assert_eq!(keyed["auth_type"].as_str(), Some("api_key"));
    assert_eq!(keyed["api_key_check_path"].as_str(), Some("/v1/me"));
    assert!(!keyed.contains_key("api_key"), "Bearer is the default");
    let templated = translated("templated").unwrap();
    assert_eq!(
        templated["api_key"]["header"].as_str(),
        Some("authorization")
    );
    assert_eq!(
        templated["api_key"]["template"].as_str(),
        Some("Klaviyo-API-Key ${key}")
    );
    assert_eq!(
        translated("helpdesk").unwrap(),
        table(
            r#"
            name = "helpdesk"
            display_name = "Helpdesk"
            auth_type = "basic"
            api_base_url = "https://${connection.subdomain}.helpdesk.example"
            api_key_check_path = "/api/v2/agents/me"
            [[connection_config]]
            name = "subdomain"
            kind = "subdomain"
            label = "Helpdesk subdomain"
            help = "The part before .helpdesk.example"
            pattern = "^[a-z0-9_-]+$"
            [basic]
            username_label = "API Key"
            password_label = "Password (any text, e.g. X: it is ignored)"
            "#
        )
    );
}

#[test]
fn unsupported_entries_are_refused_with_the_reason() {
    assert_eq!(
        translated("signed").unwrap_err(),
        "auth_mode OAUTH1 is not supported"
    );
    assert_eq!(
        translated("regional").unwrap_err(),
        "URL alternatives (`||`) are not supported"
    );
    assert_eq!(
        translated("klaviyo").unwrap_err(),
        "connecthub has it built in"
    );
}

#[test]
fn each_skipped_entry_is_one_line() {
    let env: HashMap<String, String> = HashMap::new();
    let loaded = parse(FILE, &env, "https://hub.example").unwrap();
    let skipped = |name: &str| {
        loaded
            .skipped
            .iter()
            .filter(|l| l.starts_with(&format!("PROVIDERS_FILE: Nango entry {name} skipped: ")))
            .count()
    };
    for name in ["signed", "regional", "klaviyo"] {
        assert_eq!(skipped(name), 1, "{:?}", loaded.skipped);
    }
    // One line per entry not loaded: nothing is dropped silently.
    assert_eq!(
        loaded.skipped.len() + loaded.providers.len(),
        entries().len(),
        "{:?}",
        loaded.skipped
    );
    let names: Vec<&str> = loaded.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["acme", "acme-eu", "machines"]);
    // Translated, but refused by the provider file's strict parser: a key needs a profile
    // URL to tell one account from another, and these Nango entries name none.
    for keyed in ["keyed", "templated", "helpdesk"] {
        let line = loaded
            .skipped
            .iter()
            .find(|l| l.contains(&format!("Nango entry {keyed} skipped: ")))
            .unwrap();
        assert!(line.contains("profile_url is required for"), "{line}");
    }
}

#[test]
fn a_file_that_is_not_nango_yaml_is_refused() {
    let env: HashMap<String, String> = HashMap::new();
    for text in ["- a\n- b\n", "acme: [unclosed\n", "\0"] {
        let err = parse(text, &env, "http://x").unwrap_err();
        assert!(
            err.to_string()
                .contains("is not a valid Nango providers.yaml"),
            "{err}"
        );
    }
}

#[test]
fn a_yaml_providers_file_is_read_as_nango() {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), FILE).unwrap();
    let env: HashMap<String, String> = [("PROVIDERS_FILE", file.path().to_str().unwrap())]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let registry = crate::providers::Registry::load(
        &env,
        "https://hub.example",
        &crate::providers::Endpoints::Real,
    )
    .unwrap();
    assert!(registry.get("acme").is_some());
    assert!(registry.get("klaviyo").is_some(), "the built-in stays");
    assert_eq!(registry.skipped().len(), 6, "{:?}", registry.skipped());
}

#[test]
fn an_access_token_header_translates_and_loads() {
    let yaml = r#"
shopco:
    display_name: Shop Co
    auth_mode: OAUTH2
    authorization_url: https://shopco.example/oauth/authorize
    token_url: https://shopco.example/oauth/token
    proxy:
        base_url: https://api.shopco.example
        headers:
            X-Shop-Access-Token: ${accessToken}
"#;
    let entries: BTreeMap<String, Json> = serde_saphyr::from_str(yaml).unwrap();
    let table = translate("shopco", &resolve("shopco", &entries).unwrap()).unwrap();
    assert_eq!(
        table["access_token"],
        toml::Value::Table(self::table(
            "header = \"X-Shop-Access-Token\"\ntemplate = \"${token}\""
        ))
    );
    let env: HashMap<String, String> = HashMap::new();
    let loaded = parse(yaml, &env, "https://hub.example").unwrap();
    assert_eq!(
        loaded.providers[0].token_placement,
        crate::providers::KeyPlacement::Header {
            name: "x-shop-access-token".into(),
            template: "${key}".into()
        }
    );
}
