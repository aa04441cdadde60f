//! The provider registry. A provider is data, not code: its endpoints, scopes, client
//! authentication and API headers. Klaviyo and Kustomer are built in; any other OAuth 2.0
//! service is added in a TOML file (`PROVIDERS_FILE`). Credentials always come from the
//! environment (`<NAME>_OAUTH_CLIENT_ID`, …), never from the file.

mod builtin;
pub mod file;
pub mod syncs;

pub use syncs::{Pagination, SyncDef};

use crate::env::{ConfigError, Source};
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;

/// How a provider's accounts are connected; stored as text on each client (`oauth2`,
/// `client_credentials`, `api_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    Oauth2,
    ClientCredentials,
    ApiKey,
}

impl AuthType {
    const ALL: [AuthType; 3] = [
        AuthType::Oauth2,
        AuthType::ClientCredentials,
        AuthType::ApiKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Oauth2 => "oauth2",
            AuthType::ClientCredentials => "client_credentials",
            AuthType::ApiKey => "api_key",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|auth| auth.as_str() == raw)
    }

    /// An API key has no tokens: nothing to refresh, nothing that expires.
    pub fn is_api_key(self) -> bool {
        self == AuthType::ApiKey
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
    /// An API path that answers 200 for a valid API key, when API keys are accepted.
    pub api_key_check_path: Option<String>,
    /// None until `<NAME>_OAUTH_CLIENT_ID` and `_CLIENT_SECRET` are set.
    pub app: Option<OAuthApp>,
    pub enabled: bool,
    /// The record syncs this provider offers (`[[provider.sync]]`, or built in).
    pub syncs: Vec<SyncDef>,
}

impl Provider {
    /// Whether "Connect" can start an authorization (or a client-credentials grant).
    pub fn is_configured(&self) -> bool {
        self.app.is_some()
    }

    pub fn accepts_api_keys(&self) -> bool {
        self.api_key_check_path.is_some()
    }

    pub fn sync(&self, model: &str) -> Option<&SyncDef> {
        self.syncs.iter().find(|s| s.model == model)
    }

    pub fn scope_string(&self) -> String {
        self.scopes.join(&self.scope_separator)
    }

    /// The prefix of this provider's settings: `KLAVIYO` for `klaviyo`.
    pub fn env_prefix(name: &str) -> String {
        name.to_uppercase().replace('-', "_")
    }
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

#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: Vec<Arc<Provider>>,
}

impl Registry {
    /// The built-ins, then the providers of `PROVIDERS_FILE`, each with its settings from
    /// the environment.
    pub fn load(
        source: &dyn Source,
        public_url: &str,
        endpoints: &Endpoints,
    ) -> Result<Self, ConfigError> {
        let mut providers = builtin::all(source, public_url, endpoints)?;
        if let Some(path) = source.get("PROVIDERS_FILE") {
            for provider in file::load(&path, source, public_url)? {
                if providers.iter().any(|p| p.name == provider.name) {
                    return Err(ConfigError::new(
                        "PROVIDERS_FILE",
                        format!(
                            "defines provider {:?} twice (or redefines a built-in)",
                            provider.name
                        ),
                    ));
                }
                providers.push(provider);
            }
        }
        Ok(Self {
            providers: providers.into_iter().map(Arc::new).collect(),
        })
    }

    /// An enabled provider by name.
    pub fn get(&self, name: &str) -> Option<Arc<Provider>> {
        self.providers
            .iter()
            .find(|p| p.enabled && p.name == name)
            .cloned()
    }

    /// Enabled providers, built-ins first.
    pub fn enabled(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.iter().filter(|p| p.enabled)
    }
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
    let redirect_uri = var("OAUTH_REDIRECT_URI").unwrap_or_else(|| {
        format!(
            "{}/api/integrations/{}/oauth/callback",
            public_url.trim_end_matches('/'),
            provider.name
        )
    });
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

/// Checks that a configured URL is absolute http(s).
fn check_url(variable: &str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(url) {
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
}
