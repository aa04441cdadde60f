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
mod registry;
pub mod syncs;
pub mod token_format;

pub use connection_config::{ConnectionValues, SettingDefs};
pub use key_placement::{BasicLabels, KeyPlacement};
pub use registry::{EnvSettings, Listed, Origin, Registry, StoredSettings};
pub use syncs::{Pagination, SyncDef};
pub use token_format::{RequestFormat, TokenFormat};

use crate::env::ConfigError;
// Shared with `builtin` and `file`, which read them as `super::apply_env` / `super::check_url`.
use registry::{apply_env, check_url};
use secrecy::SecretString;
use serde::Deserialize;

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
