//! The providers a deployment has: built-in, from the catalogue, from `PROVIDERS_FILE` and
//! added in the browser, with the environment's and the stored settings applied.

use super::{builtin, connection_config, file, loader};
use super::{ConnectionValues, Endpoints, OAuthApp, Provider, ProviderProblem};
use crate::env::{ConfigError, Snapshot, Source};
use secrecy::SecretString;
use std::sync::Arc;

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
pub(super) fn apply_env(
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
pub(super) fn check_url(variable: &str, url: &str) -> Result<(), ConfigError> {
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
    use crate::providers::ClientAuth;
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
