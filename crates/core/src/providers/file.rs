//! Providers from a TOML file (`PROVIDERS_FILE`), one `[[provider]]` table each (`loader`
//! reads a `.yaml`/`.yml` file as Nango's `providers.yaml` instead).

use super::key_placement::{AccessTokenEntry, ApiKeyEntry, BasicLabels, KeyPlacement};
use super::token_format::{RequestFormat, TokenFormat};
use super::{apply_env, check_url, AuthType, ClientAuth, ProfileSource, Provider};
use crate::env::{ConfigError, Source};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    #[serde(default)]
    provider: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    display_name: String,
    #[serde(default = "default_auth_type")]
    auth_type: AuthType,
    #[serde(default)]
    authorize_url: Option<String>,
    /// Not needed by providers connected only with keys (`api_key`, `basic`).
    token_url: Option<String>,
    revoke_url: Option<String>,
    profile_url: Option<String>,
    #[serde(default = "default_id_field")]
    account_id_field: String,
    #[serde(default = "default_name_field")]
    account_name_field: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default = "default_separator")]
    scope_separator: String,
    #[serde(default = "default_true")]
    pkce: bool,
    #[serde(default = "default_client_auth")]
    client_auth: ClientAuth,
    api_base_url: String,
    issuer: Option<String>,
    api_key_check_path: Option<String>,
    api_key: Option<ApiKeyEntry>,
    /// Where OAuth access tokens go on API calls (default `Authorization: Bearer`).
    access_token: Option<AccessTokenEntry>,
    basic: Option<BasicLabels>,
    #[serde(default)]
    token_request_format: RequestFormat,
    #[serde(default)]
    token_params: BTreeMap<String, String>,
    token_path: Option<String>,
    token_type: Option<String>,
    #[serde(default)]
    authorize_params: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    sync: Vec<super::syncs::SyncEntry>,
    /// The values each connection needs (`${connection.<name>}` in the URLs).
    #[serde(default)]
    connection_config: Vec<super::connection_config::SettingEntry>,
    /// Setting name to `token.<field>` or `callback.<param>`.
    #[serde(default)]
    capture: BTreeMap<String, String>,
    /// The domains a captured URL may point at.
    #[serde(default)]
    capture_hosts: Vec<String>,
    #[serde(default)]
    rate_budget: Vec<super::rate_budgets::BudgetEntry>,
    /// The answer header with the calls left (default: `RateLimit-Remaining`, else
    /// `X-RateLimit-Remaining`), and the one with the seconds until the window resets.
    rate_remaining_header: Option<String>,
    rate_reset_header: Option<String>,
}

fn default_auth_type() -> AuthType {
    AuthType::Oauth2
}
fn default_id_field() -> String {
    "id".into()
}
fn default_name_field() -> String {
    "name".into()
}
fn default_separator() -> String {
    " ".into()
}
fn default_true() -> bool {
    true
}
fn default_client_auth() -> ClientAuth {
    ClientAuth::Basic
}

pub(super) const VARIABLE: &str = "PROVIDERS_FILE";

/// A provider file's providers, and the lines saying which entries were left out (only a
/// Nango file leaves any out).
#[derive(Debug)]
pub(super) struct Loaded {
    pub providers: Vec<Provider>,
    pub skipped: Vec<String>,
}

/// The providers a file's text defines, each checked as `load` does.
pub fn parse(
    text: &str,
    source: &dyn Source,
    public_url: &str,
) -> Result<Vec<Provider>, ConfigError> {
    let parsed: ProviderFile = toml::from_str(text).map_err(|e| {
        ConfigError::new(
            VARIABLE,
            format!("is not a valid provider file: {}", one_line(&e.to_string())),
        )
    })?;
    parsed
        .provider
        .into_iter()
        .map(|entry| build(entry, source, public_url))
        .collect()
}

/// One `[[provider]]` table already read (the Nango reader's translation), checked as
/// `parse` does.
pub(super) fn parse_table(
    table: toml::Table,
    source: &dyn Source,
    public_url: &str,
) -> Result<Provider, ConfigError> {
    let entry: Entry = toml::Value::Table(table).try_into().map_err(|e| {
        ConfigError::new(
            VARIABLE,
            format!("is not a valid provider: {}", one_line(&e.to_string())),
        )
    })?;
    build(entry, source, public_url)
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn build(entry: Entry, source: &dyn Source, public_url: &str) -> Result<Provider, ConfigError> {
    let valid_name = !entry.name.is_empty()
        && entry.name.len() <= 40
        && entry
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid_name {
        return Err(ConfigError::new(
            VARIABLE,
            format!(
                "provider name {:?} must be 1-40 lowercase letters, digits, - or _",
                entry.name
            ),
        ));
    }
    let problem =
        |what: String| ConfigError::new(VARIABLE, format!("provider {}: {what}", entry.name));
    let authorize_url = match (entry.auth_type, entry.authorize_url) {
        (AuthType::Oauth2, None) => {
            return Err(problem("authorize_url is required for oauth2".into()))
        }
        (_, url) => url.unwrap_or_default(),
    };
    let token_url = match (entry.auth_type, entry.token_url) {
        (AuthType::Oauth2 | AuthType::ClientCredentials, None) => {
            return Err(problem(format!(
                "token_url is required for {}",
                entry.auth_type
            )))
        }
        (_, url) => url.unwrap_or_default(),
    };
    for url in [
        Some(&authorize_url).filter(|u| !u.is_empty()),
        Some(&token_url).filter(|u| !u.is_empty()),
        entry.revoke_url.as_ref(),
        entry.profile_url.as_ref(),
        Some(&entry.api_base_url),
    ]
    .into_iter()
    .flatten()
    {
        check_url(VARIABLE, url)
            .map_err(|_| problem(format!("{url:?} is not an absolute http(s) URL")))?;
    }
    let syncs = super::syncs::build_all(entry.sync).map_err(problem)?;
    let token_format = TokenFormat {
        request: entry.token_request_format,
        params: entry.token_params.into_iter().collect(),
        path: entry.token_path,
        token_type: entry.token_type.unwrap_or_else(|| "Bearer".into()),
    };
    token_format.check().map_err(problem)?;
    let key_placement =
        placement(entry.auth_type, entry.api_key, entry.basic.is_some()).map_err(problem)?;
    let keyed = matches!(entry.auth_type, AuthType::ApiKey | AuthType::Basic);
    let token_placement = match entry.access_token {
        Some(_) if keyed => {
            return Err(problem(format!(
                "[provider.access_token] does not apply to {}",
                entry.auth_type
            )))
        }
        Some(placed) => placed.placement().map_err(problem)?,
        None => KeyPlacement::Bearer,
    };
    if keyed && entry.api_key_check_path.is_none() {
        return Err(problem(format!(
            "api_key_check_path is required for {}: a key is checked before it is stored",
            entry.auth_type
        )));
    }
    if keyed && entry.profile_url.is_none() {
        return Err(problem(format!(
            "profile_url is required for {}: it tells one account from another",
            entry.auth_type
        )));
    }
    if let Some(path) = &entry.api_key_check_path {
        if !path.starts_with('/') || path.starts_with("//") || path.contains("..") {
            return Err(problem(format!(
                "api_key_check_path {path:?} must be a path under api_base_url"
            )));
        }
    }
    let own = entry
        .authorize_params
        .keys()
        .find(|name| super::OWN_AUTHORIZE_PARAMS.contains(&name.as_str()));
    if let Some(own) = own {
        return Err(problem(format!(
            "[provider.authorize_params] must not set {own}: connecthub sets it on every authorization"
        )));
    }
    let connection_config = super::connection_config::build(
        entry.connection_config,
        entry.capture,
        entry.capture_hosts,
    )
    .map_err(problem)?;
    let rate_budgets = super::rate_budgets::RateBudgets {
        budgets: super::rate_budgets::build_all(entry.rate_budget).map_err(problem)?,
        remaining_header: entry.rate_remaining_header.map(|h| h.to_lowercase()),
        reset_header: entry.rate_reset_header.map(|h| h.to_lowercase()),
    };
    let profile = match entry.profile_url {
        Some(url) => ProfileSource::Url {
            url,
            account_id_field: entry.account_id_field,
            account_name_field: entry.account_name_field,
        },
        None => ProfileSource::None,
    };
    let mut provider = Provider {
        name: entry.name,
        display_name: entry.display_name,
        auth_type: entry.auth_type,
        authorize_url,
        token_url,
        revoke_url: entry.revoke_url,
        profile,
        scopes: entry.scopes,
        scope_separator: entry.scope_separator,
        pkce: entry.pkce,
        client_auth: entry.client_auth,
        api_base_url: entry.api_base_url,
        authorize_params: entry.authorize_params.into_iter().collect(),
        headers: entry.headers.into_iter().collect(),
        issuer: entry.issuer,
        api_key_check_path: entry.api_key_check_path,
        key_placement,
        token_placement,
        basic_labels: entry.basic.unwrap_or_default(),
        token_format,
        app: None,
        enabled: true,
        syncs,
        connection_config,
        rate_budgets,
    };
    provider.check_placeholders(VARIABLE)?;
    apply_env(&mut provider, source, public_url, None)?;
    Ok(provider)
}

/// Basic for `auth_type = "basic"`; else `[provider.api_key]`, or Bearer without it.
fn placement(
    auth_type: AuthType,
    api_key: Option<ApiKeyEntry>,
    has_basic_labels: bool,
) -> Result<KeyPlacement, String> {
    match (auth_type, api_key) {
        (AuthType::Basic, Some(_)) => Err("[provider.api_key] does not apply to basic".into()),
        (AuthType::Basic, None) => Ok(KeyPlacement::Basic),
        _ if has_basic_labels => Err("[provider.basic] needs auth_type = \"basic\"".into()),
        (_, Some(entry)) => entry.placement(),
        (_, None) => Ok(KeyPlacement::Bearer),
    }
}

#[cfg(test)]
mod tests {
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
}
