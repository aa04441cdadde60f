//! Klaviyo and Kustomer: their real endpoints (every URL overridable by environment
//! variable), or the built-in sandbox in demo mode and tests.

use super::{apply_env, check_url, AuthType, ClientAuth, Endpoints, ProfileSource, Provider};
use crate::env::{ConfigError, Source};
use connecthub_sandbox as sandbox;

/// The API version Klaviyo answers with; pinned as Nango does.
const KLAVIYO_REVISION: &str = "2024-10-15";

struct Urls {
    authorize: String,
    token: String,
    revoke: Option<String>,
    api_base: String,
    issuer: Option<String>,
}

fn klaviyo_urls(endpoints: &Endpoints) -> Urls {
    match endpoints {
        Endpoints::Real => Urls {
            authorize: "https://www.klaviyo.com/oauth/authorize".into(),
            token: "https://a.klaviyo.com/oauth/token".into(),
            revoke: Some("https://a.klaviyo.com/oauth/revoke".into()),
            api_base: "https://a.klaviyo.com".into(),
            issuer: None,
        },
        Endpoints::Sandbox { base } => sandbox_urls(base, "klaviyo"),
    }
}

/// Kustomer hosts are per organisation; `{subdomain}` is filled from KUSTOMER_SUBDOMAIN.
fn kustomer_urls(endpoints: &Endpoints) -> Urls {
    match endpoints {
        Endpoints::Real => Urls {
            authorize: "https://{subdomain}.kustomerapp.com/oauth/authorize".into(),
            token: "https://{subdomain}.api.kustomerapp.com/oauth/token".into(),
            revoke: None,
            api_base: "https://{subdomain}.api.kustomerapp.com".into(),
            issuer: None,
        },
        Endpoints::Sandbox { base } => sandbox_urls(base, "kustomer"),
    }
}

fn sandbox_urls(base: &str, provider: &str) -> Urls {
    let root = format!("{}/sandbox/{provider}", base.trim_end_matches('/'));
    Urls {
        authorize: format!("{root}/oauth/authorize"),
        token: format!("{root}/oauth/token"),
        revoke: Some(format!("{root}/oauth/revoke")),
        api_base: root.clone(),
        issuer: Some(root),
    }
}

/// Applies `<PREFIX>_AUTHORIZE_URL`, `_TOKEN_URL`, `_REVOKE_URL`, `_API_BASE_URL`, `_ISSUER`.
fn override_urls(provider: &mut Provider, source: &dyn Source) -> Result<(), ConfigError> {
    let prefix = Provider::env_prefix(&provider.name);
    let subdomain = source.get(&format!("{prefix}_SUBDOMAIN"));
    let mut fields: [(&str, &mut String); 3] = [
        ("AUTHORIZE_URL", &mut provider.authorize_url),
        ("TOKEN_URL", &mut provider.token_url),
        ("API_BASE_URL", &mut provider.api_base_url),
    ];
    for (suffix, field) in fields.iter_mut() {
        let variable = format!("{prefix}_{suffix}");
        if let Some(url) = source.get(&variable) {
            check_url(&variable, &url)?;
            **field = url;
        }
        if let Some(subdomain) = &subdomain {
            **field = field.replace("{subdomain}", subdomain);
        }
    }
    for (suffix, field) in [
        ("REVOKE_URL", &mut provider.revoke_url),
        ("ISSUER", &mut provider.issuer),
    ] {
        let variable = format!("{prefix}_{suffix}");
        if let Some(url) = source.get(&variable) {
            check_url(&variable, &url)?;
            *field = Some(url);
        }
    }
    Ok(())
}

fn klaviyo(urls: Urls) -> Provider {
    Provider {
        name: "klaviyo".into(),
        display_name: "Klaviyo".into(),
        auth_type: AuthType::Oauth2,
        authorize_url: urls.authorize,
        token_url: urls.token,
        revoke_url: urls.revoke,
        profile: ProfileSource::Klaviyo,
        scopes: [
            "accounts:read",
            "lists:read",
            "segments:read",
            "profiles:read",
        ]
        .map(String::from)
        .to_vec(),
        scope_separator: " ".into(),
        pkce: true,
        client_auth: ClientAuth::Basic,
        api_base_url: urls.api_base,
        authorize_params: Vec::new(),
        headers: vec![("revision".into(), KLAVIYO_REVISION.into())],
        issuer: urls.issuer,
        api_key_check_path: None,
        app: None,
        enabled: true,
        syncs: super::syncs::klaviyo(),
    }
}

fn kustomer(urls: Urls) -> Provider {
    Provider {
        name: "kustomer".into(),
        display_name: "Kustomer".into(),
        auth_type: AuthType::Oauth2,
        authorize_url: urls.authorize,
        token_url: urls.token,
        revoke_url: urls.revoke,
        profile: ProfileSource::Kustomer,
        scopes: [
            "org.user.read",
            "org.permission.customer.read",
            "org.permission.customer.write",
            "org.permission.conversation.write",
        ]
        .map(String::from)
        .to_vec(),
        scope_separator: " ".into(),
        pkce: true,
        client_auth: ClientAuth::Post,
        api_base_url: urls.api_base,
        authorize_params: Vec::new(),
        headers: Vec::new(),
        issuer: urls.issuer,
        api_key_check_path: Some("/v1/auth/tokens/current".into()),
        app: None,
        enabled: true,
        syncs: super::syncs::kustomer(),
    }
}

pub(super) fn all(
    source: &dyn Source,
    public_url: &str,
    endpoints: &Endpoints,
) -> Result<Vec<Provider>, ConfigError> {
    let sandboxed = matches!(endpoints, Endpoints::Sandbox { .. });
    let builtins = [
        (
            klaviyo(klaviyo_urls(endpoints)),
            (sandbox::KLAVIYO_CLIENT_ID, sandbox::KLAVIYO_CLIENT_SECRET),
        ),
        (
            kustomer(kustomer_urls(endpoints)),
            (sandbox::KUSTOMER_CLIENT_ID, sandbox::KUSTOMER_CLIENT_SECRET),
        ),
    ];
    let mut providers = Vec::new();
    for (mut provider, sandbox_app) in builtins {
        override_urls(&mut provider, source)?;
        apply_env(
            &mut provider,
            source,
            public_url,
            sandboxed.then_some(sandbox_app),
        )?;
        // A per-organisation host that was never filled in cannot be reached.
        if provider.token_url.contains("{subdomain}") {
            provider.app = None;
        }
        providers.push(provider);
    }
    Ok(providers)
}
