//! The provider registry. A provider is data, not code: its endpoints, scopes, client
//! authentication and API headers. Klaviyo and Kustomer are built in; any other OAuth 2.0
//! service is added in a TOML file (`PROVIDERS_FILE`, or Nango's `providers.yaml`), on
//! `/admin/providers`, or from the catalogue of definitions shipped as data (`catalogue`).
//! Credentials come from the environment (`<NAME>_OAUTH_CLIENT_ID`, …) or from that page,
//! never from a definition; the environment wins.

mod builtin;
pub mod catalogue;
pub mod connection_config;
pub mod file;
pub mod key_placement;
mod loader;
mod nango;
pub mod rate_budgets;
pub mod syncs;
pub mod token_format;

pub use connection_config::{ConnectionValues, SettingDefs};
pub use key_placement::{BasicLabels, KeyPlacement};
pub use syncs::{Pagination, SyncDef};
pub use token_format::{RequestFormat, TokenFormat};

use crate::env::{ConfigError, Snapshot, Source};
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;

/// Authorize parameters connecthub sets itself on every authorization: a definition or
/// an admin may not set them.
pub const OWN_AUTHORIZE_PARAMS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
];

/// How a provider's accounts are connected; stored as text on each client (`oauth2`,
/// `client_credentials`, `api_key`, `basic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    Oauth2,
    ClientCredentials,
    ApiKey,
    /// HTTP Basic: a user and a password (or token), stored sealed like an API key.
    Basic,
}

impl AuthType {
    const ALL: [AuthType; 4] = [
        AuthType::Oauth2,
        AuthType::ClientCredentials,
        AuthType::ApiKey,
        AuthType::Basic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Oauth2 => "oauth2",
            AuthType::ClientCredentials => "client_credentials",
            AuthType::ApiKey => "api_key",
            AuthType::Basic => "basic",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|auth| auth.as_str() == raw)
    }

    /// An API key (or a Basic pair) has no tokens: nothing to refresh, nothing that expires.
    pub fn is_api_key(self) -> bool {
        matches!(self, AuthType::ApiKey | AuthType::Basic)
    }
}

impl std::fmt::Display for AuthType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the stored text (`#[diesel(deserialize_as = String)]`).
impl TryFrom<String> for AuthType {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).ok_or_else(|| format!("unknown auth type {raw:?}"))
    }
}

/// How the client proves itself at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// How the connected account's id, name and details are read after connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileSource {
    /// `GET /api/accounts`, plus list and segment counts.
    Klaviyo,
    /// `GET /v1/orgs/current` and `GET /v1/teams`.
    Kustomer,
    /// Any JSON endpoint, with dotted paths to the id and name.
    Url {
        url: String,
        account_id_field: String,
        account_name_field: String,
    },
    /// No profile endpoint: the account is the OAuth app itself.
    None,
}

/// The app's registration at the provider.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: String,
}

#[derive(Debug, Clone)]
pub struct Provider {
    /// URL segment and stored `clients.provider`: lowercase letters, digits, `-`, `_`.
    pub name: String,
    pub display_name: String,
    pub auth_type: AuthType,
    pub authorize_url: String,
    pub token_url: String,
    pub revoke_url: Option<String>,
    pub profile: ProfileSource,
    pub scopes: Vec<String>,
    pub scope_separator: String,
    pub pkce: bool,
    pub client_auth: ClientAuth,
    pub api_base_url: String,
    pub authorize_params: Vec<(String, String)>,
    /// Fixed headers on every API call (Klaviyo's `revision`).
    pub headers: Vec<(String, String)>,
    /// The authorization server's issuer, compared with the callback's `iss` (RFC 9207).
    pub issuer: Option<String>,
    /// An API path that answers 200 for a valid API key (or Basic pair), when those are
    /// accepted.
    pub api_key_check_path: Option<String>,
    /// Where a stored key goes on API calls (Basic for `auth_type = "basic"`).
    pub key_placement: KeyPlacement,
    /// Where an OAuth access token goes on API calls: Bearer, or a named header
    /// (`[provider.access_token]`).
    pub token_placement: KeyPlacement,
    /// The labels of the Basic connect form.
    pub basic_labels: BasicLabels,
    /// How the token endpoint is asked and answers.
    pub token_format: TokenFormat,
    /// None until a client id and secret are set (`<NAME>_OAUTH_CLIENT_ID` and
    /// `_CLIENT_SECRET`, or on `/admin/providers`).
    pub app: Option<OAuthApp>,
    pub enabled: bool,
    /// The record syncs this provider offers (`[[provider.sync]]`, or built in).
    pub syncs: Vec<SyncDef>,
    /// The values each connection needs in the URLs above (`${connection.<name>}`).
    pub connection_config: SettingDefs,
    /// Its published rate budgets, which `crate::budgets` paces calls by.
    pub rate_budgets: rate_budgets::RateBudgets,
}

impl Provider {
    /// Whether "Connect" can start an authorization (or a client-credentials grant).
    pub fn is_configured(&self) -> bool {
        self.app.is_some()
    }

    pub fn accepts_api_keys(&self) -> bool {
        self.api_key_check_path.is_some()
    }

    /// The connect forms' labels: the user field (Basic only) and the secret field.
    pub fn key_labels(&self) -> (Option<String>, String) {
        match self.key_placement {
            KeyPlacement::Basic => (
                Some(self.basic_labels.username_label.clone()),
                self.basic_labels.password_label.clone(),
            ),
            _ => (None, "API key".into()),
        }
    }

    /// The auth type of a connection made with a key: `basic` or `api_key`.
    pub fn key_auth_type(&self) -> AuthType {
        if self.key_placement == KeyPlacement::Basic {
            AuthType::Basic
        } else {
            AuthType::ApiKey
        }
    }

    pub fn sync(&self, model: &str) -> Option<&SyncDef> {
        self.syncs.iter().find(|s| s.model == model)
    }

    pub fn scope_string(&self) -> String {
        self.scopes.join(&self.scope_separator)
    }

    /// This provider as one connection sees it: every `${connection.<name>}` in its URLs
    /// filled from `values` (or the setting's default). `Err` names a setting left
    /// unfilled: a URL with a placeholder is never called.
    pub fn for_connection(&self, values: &ConnectionValues) -> Result<Provider, Unfilled> {
        let fill = |url: &str| self.fill(url, values);
        let fill_opt = |url: &Option<String>| url.as_deref().map(fill).transpose();
        let mut resolved = self.clone();
        resolved.authorize_url = fill(&self.authorize_url)?;
        resolved.token_url = fill(&self.token_url)?;
        resolved.revoke_url = fill_opt(&self.revoke_url)?;
        resolved.api_base_url = fill(&self.api_base_url)?;
        resolved.issuer = fill_opt(&self.issuer)?;
        if let ProfileSource::Url { url, .. } = &mut resolved.profile {
            *url = fill(url)?;
        }
        Ok(resolved)
    }

    /// The authorize URL for the settings entered before the consent page.
    pub fn for_authorize(&self, values: &ConnectionValues) -> Result<String, Unfilled> {
        self.fill(&self.authorize_url, values)
    }

    /// For the code exchange, before the token response's captured values exist: the token
    /// URL and issuer filled (only they are used; every other URL is left empty).
    pub fn for_code_exchange(&self, values: &ConnectionValues) -> Result<Provider, Unfilled> {
        let mut exchange = self.clone();
        exchange.token_url = self.fill(&self.token_url, values)?;
        exchange.issuer = self
            .issuer
            .as_deref()
            .map(|url| self.fill(url, values))
            .transpose()?;
        exchange.authorize_url.clear();
        exchange.api_base_url.clear();
        exchange.revoke_url = None;
        exchange.profile = ProfileSource::None;
        Ok(exchange)
    }

    /// For reading the profile, before the profile's captured values exist: the profile URL
    /// filled, and the API base when it can be (a profile read from its own URL needs none;
    /// an empty base lets nothing else be read).
    pub fn for_profile(&self, values: &ConnectionValues) -> Result<Provider, Unfilled> {
        let mut reading = self.for_code_exchange(values)?;
        reading.profile = self.profile.clone();
        if let ProfileSource::Url { url, .. } = &mut reading.profile {
            *url = self.fill(url, values)?;
        }
        reading.api_base_url = match (self.fill(&self.api_base_url, values), &self.profile) {
            (Ok(base), _) => base,
            (Err(_), ProfileSource::Url { .. }) => String::new(),
            (Err(unfilled), _) => return Err(unfilled),
        };
        Ok(reading)
    }

    fn fill(&self, url: &str, values: &ConnectionValues) -> Result<String, Unfilled> {
        connection_config::fill(url, values, &self.connection_config).map_err(|name| Unfilled {
            provider: self.display_name.clone(),
            setting: name,
        })
    }

    /// Whether any URL of this provider depends on the connection.
    fn has_placeholders(&self) -> bool {
        self.urls()
            .any(|url| !connection_config::placeholders(url).is_empty())
    }

    fn urls(&self) -> impl Iterator<Item = &str> {
        let profile = match &self.profile {
            ProfileSource::Url { url, .. } => Some(url.as_str()),
            _ => None,
        };
        [
            Some(self.authorize_url.as_str()),
            Some(self.token_url.as_str()),
            self.revoke_url.as_deref(),
            Some(self.api_base_url.as_str()),
            self.issuer.as_deref(),
            profile,
        ]
        .into_iter()
        .flatten()
    }

    /// Checks that every placeholder names a declared setting.
    fn check_placeholders(&self, variable: &str) -> Result<(), ConfigError> {
        for url in self.urls() {
            for name in connection_config::placeholders(url) {
                if !self.connection_config.fields.iter().any(|f| f.name == name) {
                    return Err(ConfigError::new(
                        variable,
                        format!(
                            "provider {}: {url:?} uses ${{connection.{name}}}, which is not declared in connection_config or capture",
                            self.name
                        ),
                    ));
                }
            }
        }
        self.check_profile_captures(variable)
    }

    /// A value captured from the profile exists only once the profile is read: after the
    /// consent page and the code exchange, with the profile URL as it is.
    fn check_profile_captures(&self, variable: &str) -> Result<(), ConfigError> {
        let from_profile = self.connection_config.fields.iter().filter(|f| {
            matches!(
                f.captured_from,
                Some(connection_config::CaptureSource::Profile(_))
            )
        });
        let before: Vec<&str> = [
            Some(self.authorize_url.as_str()),
            Some(self.token_url.as_str()),
            self.issuer.as_deref(),
            match &self.profile {
                ProfileSource::Url { url, .. } => Some(url.as_str()),
                _ => None,
            },
        ]
        .into_iter()
        .flatten()
        .collect();
        for field in from_profile {
            let problem = if self.auth_type != AuthType::Oauth2 {
                Some("profile captures need auth_type oauth2".to_string())
            } else {
                before
                    .iter()
                    .find(|url| connection_config::placeholders(url).contains(&field.name.as_str()))
                    .map(|url| format!("{url:?} is used before the profile is read, so it cannot use ${{connection.{}}}", field.name))
            };
            if let Some(problem) = problem {
                return Err(ConfigError::new(
                    variable,
                    format!("provider {}: {problem}", self.name),
                ));
            }
        }
        Ok(())
    }

    /// The prefix of this provider's settings: `KLAVIYO` for `klaviyo`.
    pub fn env_prefix(name: &str) -> String {
        name.to_uppercase().replace('-', "_")
    }
}

/// A provider URL needs a connection setting the connection does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("this {provider} connection has no {setting}; reconnect it and enter one")]
pub struct Unfilled {
    pub provider: String,
    pub setting: String,
}

/// Why a connection's provider cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderProblem {
    #[error("the {0} provider is not configured")]
    Unknown(String),
    #[error(transparent)]
    Unfilled(#[from] Unfilled),
}

/// Where the built-in providers point: the real services, or the built-in sandbox.
#[derive(Debug, Clone)]
pub enum Endpoints {
    Real,
    /// The sandbox mounted on this server at `{base}/sandbox/…`.
    Sandbox {
        base: String,
    },
}

/// Where a provider is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    /// `PROVIDERS_FILE`.
    File,
    /// Pasted on `/admin/providers` (or picked from the catalogue), stored in the database.
    Added,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::BuiltIn => "built-in",
            Origin::File => "file",
            Origin::Added => "added here",
        }
    }
}

/// What the environment sets for one provider: these win over stored settings.
#[derive(Debug, Clone, Default)]
pub struct EnvSettings {
    /// `FEATURE_<PREFIX>_OAUTH` is set.
    pub enabled: bool,
    /// `<PREFIX>_OAUTH_SCOPES` is set.
    pub scopes: bool,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
}

impl EnvSettings {
    fn read(source: &dyn Source, name: &str) -> Self {
        let prefix = Provider::env_prefix(name);
        Self {
            enabled: source.get(&format!("FEATURE_{prefix}_OAUTH")).is_some(),
            scopes: source.get(&format!("{prefix}_OAUTH_SCOPES")).is_some(),
            client_id: source.get(&format!("{prefix}_OAUTH_CLIENT_ID")),
            // A bad secret setting already stopped the start (`apply_env`).
            client_secret: crate::env::secret(source, &format!("{prefix}_OAUTH_CLIENT_SECRET"))
                .ok()
                .flatten()
                .map(SecretString::from),
        }
    }
}

/// Settings stored for one provider on `/admin/providers`, laid over its definition
/// (None: the definition's value stays).
#[derive(Debug, Clone, Default)]
pub struct StoredSettings {
    pub enabled: Option<bool>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub scopes: Option<Vec<String>>,
    pub authorize_params: Option<Vec<(String, String)>>,
}

/// A provider with where it comes from and what the environment fixes.
#[derive(Debug, Clone)]
pub struct Listed {
    pub provider: Arc<Provider>,
    pub origin: Origin,
    pub env: EnvSettings,
    /// Where the provider sends the browser back: to register at the provider.
    pub redirect_uri: String,
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: Vec<Listed>,
    /// The settings it was loaded with, to read providers added at run time.
    env: Snapshot,
    public_url: String,
    /// One line for each entry of a Nango `PROVIDERS_FILE` left out, and why.
    skipped: Vec<String>,
}

impl Registry {
    /// The built-ins, then the providers of `PROVIDERS_FILE`, each with its settings from
    /// the environment.
    pub fn load(
        source: &dyn Source,
        public_url: &str,
        endpoints: &Endpoints,
    ) -> Result<Self, ConfigError> {
        let mut registry = Self {
            providers: Vec::new(),
            env: source.snapshot(),
            public_url: public_url.to_string(),
            skipped: Vec::new(),
        };
        for provider in builtin::all(source, public_url, endpoints)? {
            registry.push(provider, Origin::BuiltIn);
        }
        if let Some(path) = source.get("PROVIDERS_FILE") {
            let loaded = loader::load(&path, source, public_url)?;
            registry.skipped = loaded.skipped;
            for provider in loaded.providers {
                if registry.find(&provider.name).is_some() {
                    return Err(ConfigError::new(
                        "PROVIDERS_FILE",
                        format!(
                            "defines provider {:?} twice (or redefines a built-in)",
                            provider.name
                        ),
                    ));
                }
                registry.push(provider, Origin::File);
            }
        }
        Ok(registry)
    }

    fn push(&mut self, provider: Provider, origin: Origin) {
        let env = EnvSettings::read(&self.env, &provider.name);
        let redirect_uri = redirect_uri(&self.env, &self.public_url, &provider.name);
        self.providers.push(Listed {
            provider: Arc::new(provider),
            origin,
            env,
            redirect_uri,
        });
    }

    /// Reads a provider added at run time: one `[[provider]]` table in the
    /// `PROVIDERS_FILE` format, with a name no other provider has.
    pub fn parse_added(&self, definition: &str) -> Result<Provider, ConfigError> {
        let mut parsed = file::parse(definition, &self.env, &self.public_url)?;
        let provider = match (parsed.pop(), parsed.is_empty()) {
            (Some(provider), true) => provider,
            _ => {
                return Err(ConfigError::new(
                    "definition",
                    "must hold exactly one [[provider]] table",
                ))
            }
        };
        if self.find(&provider.name).is_some() {
            return Err(ConfigError::new(
                "definition",
                format!("names provider {:?}, which exists already", provider.name),
            ));
        }
        Ok(provider)
    }

    /// This registry plus the providers added at run time (their definitions), with the
    /// stored settings laid over each; the environment's settings still win. Definitions
    /// that no longer read (a name now taken by the file) are left out, each with a line
    /// saying why.
    pub fn with_stored(
        &self,
        added: &[String],
        settings: &[(String, StoredSettings)],
    ) -> (Registry, Vec<String>) {
        let mut registry = self.clone();
        let mut problems = Vec::new();
        for definition in added {
            match registry.parse_added(definition) {
                Ok(provider) => registry.push(provider, Origin::Added),
                Err(e) => problems.push(e.to_string()),
            }
        }
        for listed in &mut registry.providers {
            if let Some((_, stored)) = settings.iter().find(|(n, _)| *n == listed.provider.name) {
                let mut provider = (*listed.provider).clone();
                apply_stored(&mut provider, stored, &listed.env, &listed.redirect_uri);
                listed.provider = Arc::new(provider);
            }
        }
        (registry, problems)
    }

    /// The entries of `PROVIDERS_FILE` left out, one line each, for the log: the registry
    /// is read with the settings, before logging is set up.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// An enabled provider by name.
    pub fn get(&self, name: &str) -> Option<Arc<Provider>> {
        self.enabled().find(|p| p.name == name).cloned()
    }

    /// An enabled provider as one connection sees it (`Provider::for_connection`); a
    /// provider whose URLs need no setting is shared as it is.
    pub fn for_connection(
        &self,
        name: &str,
        values: &ConnectionValues,
    ) -> Result<Arc<Provider>, ProviderProblem> {
        let provider = self
            .get(name)
            .ok_or_else(|| ProviderProblem::Unknown(name.to_string()))?;
        if !provider.has_placeholders() {
            return Ok(provider);
        }
        Ok(Arc::new(provider.for_connection(values)?))
    }

    /// Enabled providers, built-ins first.
    pub fn enabled(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers
            .iter()
            .map(|l| &l.provider)
            .filter(|p| p.enabled)
    }

    /// Every provider, disabled ones too, built-ins first.
    pub fn listed(&self) -> &[Listed] {
        &self.providers
    }

    /// A provider by name, enabled or not.
    pub fn find(&self, name: &str) -> Option<&Listed> {
        self.providers.iter().find(|l| l.provider.name == name)
    }
}

/// Lays stored settings over a provider, except where the environment set the value.
fn apply_stored(
    provider: &mut Provider,
    stored: &StoredSettings,
    env: &EnvSettings,
    redirect_uri: &str,
) {
    if let (false, Some(enabled)) = (env.enabled, stored.enabled) {
        provider.enabled = enabled;
    }
    if let (false, Some(scopes)) = (env.scopes, &stored.scopes) {
        provider.scopes = scopes.clone();
    }
    if let Some(params) = &stored.authorize_params {
        provider.authorize_params = params.clone();
    }
    if stored.client_id.is_some() || stored.client_secret.is_some() {
        let default = provider.app.take();
        let client_id = env
            .client_id
            .clone()
            .or_else(|| stored.client_id.clone())
            .or_else(|| default.as_ref().map(|a| a.client_id.clone()));
        let client_secret = env
            .client_secret
            .clone()
            .or_else(|| stored.client_secret.clone())
            .or_else(|| default.map(|a| a.client_secret));
        provider.app = match (client_id, client_secret) {
            (Some(client_id), Some(client_secret)) => Some(OAuthApp {
                client_id,
                client_secret,
                redirect_uri: redirect_uri.to_string(),
            }),
            _ => None,
        };
    }
    // A per-organisation host that was never filled in cannot be reached.
    if provider.token_url.contains("{subdomain}") {
        provider.app = None;
    }
}

/// `<PREFIX>_OAUTH_REDIRECT_URI`, else `{PUBLIC_URL}/api/integrations/{name}/oauth/callback`.
fn redirect_uri(source: &dyn Source, public_url: &str, name: &str) -> String {
    let prefix = Provider::env_prefix(name);
    source
        .get(&format!("{prefix}_OAUTH_REDIRECT_URI"))
        .unwrap_or_else(|| {
            format!(
                "{}/api/integrations/{name}/oauth/callback",
                public_url.trim_end_matches('/')
            )
        })
}

/// Reads `<PREFIX>_OAUTH_*` and `FEATURE_<PREFIX>_OAUTH` into a provider.
fn apply_env(
    provider: &mut Provider,
    source: &dyn Source,
    public_url: &str,
    default_app: Option<(&str, &str)>,
) -> Result<(), ConfigError> {
    let prefix = Provider::env_prefix(&provider.name);
    let var = |suffix: &str| source.get(&format!("{prefix}_{suffix}"));
    let feature = format!("FEATURE_{prefix}_OAUTH");
    provider.enabled = match source
        .get(&feature)
        .as_deref()
        .map(str::to_lowercase)
        .as_deref()
    {
        None | Some("true" | "1" | "yes" | "on") => true,
        Some("false" | "0" | "no" | "off") => false,
        Some(_) => return Err(ConfigError::new(&feature, "must be true or false")),
    };
    if let Some(scopes) = var("OAUTH_SCOPES") {
        provider.scopes = scopes
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    let redirect_uri = redirect_uri(source, public_url, &provider.name);
    let id = var("OAUTH_CLIENT_ID").or_else(|| default_app.map(|(id, _)| id.to_string()));
    let secret = crate::env::secret(source, &format!("{prefix}_OAUTH_CLIENT_SECRET"))?
        .or_else(|| default_app.map(|(_, s)| s.to_string()));
    provider.app = match (id, secret) {
        (Some(client_id), Some(secret)) => Some(OAuthApp {
            client_id,
            client_secret: SecretString::from(secret),
            redirect_uri,
        }),
        _ => None,
    };
    Ok(())
}

/// Checks that a configured URL is absolute http(s) (with sample values in its
/// `${connection.<name>}` placeholders).
fn check_url(variable: &str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(&connection_config::sample(url)) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        _ => Err(ConfigError::new(
            variable,
            format!("must be an absolute http(s) URL, not {url:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_plan_rate_replaces_the_per_minute_budgets() {
        let vars = env(&[("KUSTOMER_RATE_PER_MINUTE", "2000")]);
        let registry = Registry::load(&vars, "https://hub.example", &Endpoints::Real).unwrap();
        let budgets = &registry.get("kustomer").unwrap().rate_budgets.budgets;
        assert_eq!(budgets[0].requests, 2000);
        let default = Registry::load(&env(&[]), "https://hub.example", &Endpoints::Real).unwrap();
        assert_eq!(
            default.get("kustomer").unwrap().rate_budgets.budgets[0].requests,
            300
        );
        for bad in ["0", "many", "2000000"] {
            let vars = env(&[("KUSTOMER_RATE_PER_MINUTE", bad)]);
            let err = Registry::load(&vars, "https://hub.example", &Endpoints::Real).unwrap_err();
            assert!(
                err.to_string().starts_with("KUSTOMER_RATE_PER_MINUTE"),
                "{err}"
            );
        }
    }

    #[test]
    fn builtins_use_real_urls_and_env_overrides() {
        let vars = env(&[
            ("KLAVIYO_OAUTH_CLIENT_ID", "id"),
            ("KLAVIYO_OAUTH_CLIENT_SECRET", "secret"),
            ("KLAVIYO_OAUTH_SCOPES", "accounts:read lists:read"),
            ("KLAVIYO_TOKEN_URL", "https://proxy.example/token"),
            ("FEATURE_KUSTOMER_OAUTH", "false"),
        ]);
        let registry = Registry::load(&vars, "https://hub.example", &Endpoints::Real).unwrap();
        let klaviyo = registry.get("klaviyo").unwrap();
        assert_eq!(
            klaviyo.authorize_url,
            "https://www.klaviyo.com/oauth/authorize"
        );
        assert_eq!(klaviyo.token_url, "https://proxy.example/token");
        assert_eq!(klaviyo.scope_string(), "accounts:read lists:read");
        assert_eq!(klaviyo.client_auth, ClientAuth::Basic);
        let app = klaviyo.app.as_ref().unwrap();
        assert_eq!(
            app.redirect_uri,
            "https://hub.example/api/integrations/klaviyo/oauth/callback"
        );
        assert!(
            registry.get("kustomer").is_none(),
            "disabled providers are hidden"
        );
    }

    #[test]
    fn enabled_without_credentials_is_listed_but_not_configured() {
        let registry = Registry::load(&env(&[]), "http://x", &Endpoints::Real).unwrap();
        let klaviyo = registry.get("klaviyo").unwrap();
        assert!(!klaviyo.is_configured());
        assert_eq!(registry.enabled().count(), 2);
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let err = Registry::load(
            &env(&[("FEATURE_KLAVIYO_OAUTH", "maybe")]),
            "http://x",
            &Endpoints::Real,
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("FEATURE_KLAVIYO_OAUTH must be true or false"));
        let err = Registry::load(
            &env(&[("KLAVIYO_TOKEN_URL", "token")]),
            "http://x",
            &Endpoints::Real,
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("KLAVIYO_TOKEN_URL must be an absolute"));
    }

    const ADDED: &str = r#"
[[provider]]
name = "acme"
display_name = "Acme CRM"
authorize_url = "https://auth.acme.example/authorize"
token_url = "https://auth.acme.example/token"
api_base_url = "https://api.acme.example"
"#;

    fn stored(id: &str, secret: &str) -> StoredSettings {
        StoredSettings {
            enabled: Some(true),
            client_id: Some(id.into()),
            client_secret: Some(SecretString::from(secret)),
            scopes: Some(vec!["a".into(), "b".into()]),
            authorize_params: Some(vec![("prompt".into(), "consent".into())]),
        }
    }

    #[test]
    fn stored_settings_apply_where_the_environment_is_silent() {
        use secrecy::ExposeSecret;
        let vars = env(&[
            ("KLAVIYO_OAUTH_CLIENT_ID", "env-id"),
            ("KLAVIYO_OAUTH_SCOPES", "env:scope"),
            ("FEATURE_KLAVIYO_OAUTH", "true"),
        ]);
        let base = Registry::load(&vars, "https://hub.example", &Endpoints::Real).unwrap();
        let mut klaviyo = stored("db-id", "db-secret");
        klaviyo.enabled = Some(false);
        let settings = [
            ("klaviyo".to_string(), klaviyo),
            ("acme".to_string(), stored("acme-id", "acme-secret")),
        ];
        let (registry, problems) = base.with_stored(&[ADDED.to_string()], &settings);
        assert!(problems.is_empty(), "{problems:?}");
        let klaviyo = registry
            .get("klaviyo")
            .expect("FEATURE_ wins over disabling");
        let app = klaviyo.app.as_ref().unwrap();
        assert_eq!(app.client_id, "env-id");
        assert_eq!(app.client_secret.expose_secret(), "db-secret");
        assert_eq!(klaviyo.scope_string(), "env:scope");
        assert_eq!(
            klaviyo.authorize_params,
            [("prompt".into(), "consent".into())]
        );
        let acme = registry.find("acme").unwrap();
        assert_eq!(acme.origin, Origin::Added);
        assert_eq!(acme.provider.app.as_ref().unwrap().client_id, "acme-id");
        assert_eq!(
            acme.redirect_uri,
            "https://hub.example/api/integrations/acme/oauth/callback"
        );
        assert_eq!(acme.provider.scope_string(), "a b");
        assert!(
            base.find("acme").is_none(),
            "the base registry is unchanged"
        );
    }

    #[test]
    fn an_added_definition_that_clashes_is_left_out_with_a_reason() {
        let base = Registry::load(&env(&[]), "http://x", &Endpoints::Real).unwrap();
        let clash = ADDED.replace("\"acme\"", "\"kustomer\"");
        let (registry, problems) = base.with_stored(&[clash, ADDED.to_string()], &[]);
        assert_eq!(registry.listed().len(), 3);
        assert_eq!(
            problems,
            ["definition names provider \"kustomer\", which exists already"]
        );
        assert!(registry.parse_added(ADDED).is_err(), "acme exists now");
        assert!(registry.get("acme").is_some_and(|p| !p.is_configured()));
    }
}
