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
mod tests;
