//! Providers from a TOML file (`PROVIDERS_FILE`), one `[[provider]]` table each.

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
    token_url: String,
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
    #[serde(default)]
    authorize_params: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    sync: Vec<super::syncs::SyncEntry>,
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

const VARIABLE: &str = "PROVIDERS_FILE";

pub(super) fn load(
    path: &str,
    source: &dyn Source,
    public_url: &str,
) -> Result<Vec<Provider>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(VARIABLE, format!("cannot be read ({path}: {e})")))?;
    parse(&text, source, public_url)
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
    for url in [
        Some(&authorize_url).filter(|u| !u.is_empty()),
        Some(&entry.token_url),
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
        token_url: entry.token_url,
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
        app: None,
        enabled: true,
        syncs,
    };
    apply_env(&mut provider, source, public_url, None)?;
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let acme = &providers[0];
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
        let err = load("/no/such/file.toml", &env, "http://x").unwrap_err();
        assert!(err.to_string().starts_with("PROVIDERS_FILE cannot be read"));
    }
}
