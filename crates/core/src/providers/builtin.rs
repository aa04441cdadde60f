//! Klaviyo and Kustomer: their real endpoints (every URL overridable by environment
//! variable), or the built-in sandbox in demo mode and tests.

use super::connection_config::{self, SettingDef, SettingDefs, SettingKind};
use super::{apply_env, check_url, AuthType, ClientAuth, Endpoints, ProfileSource, Provider};
use crate::env::{ConfigError, Source};
use connecthub_sandbox as sandbox;

/// The built-ins' names, which a provider file may not take (the Nango reader skips them).
pub(super) const NAMES: [&str; 2] = ["klaviyo", "kustomer"];

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

/// Kustomer's smallest plan budget, requests per org per minute; `KUSTOMER_RATE_PER_MINUTE`
/// sets the org's own.
const KUSTOMER_RATE_PER_MINUTE: u32 = 300;

/// Kustomer hosts are per organisation: each connection's subdomain fills them. The
/// sandbox serves every org under `/sandbox/kustomer/org/{subdomain}`.
fn kustomer_urls(endpoints: &Endpoints) -> Urls {
    match endpoints {
        Endpoints::Real => Urls {
            authorize: "https://${connection.subdomain}.kustomerapp.com/oauth/authorize".into(),
            token: "https://${connection.subdomain}.api.kustomerapp.com/oauth/token".into(),
            revoke: None,
            api_base: "https://${connection.subdomain}.api.kustomerapp.com".into(),
            issuer: None,
        },
        Endpoints::Sandbox { base } => {
            let root = format!("{}/sandbox/kustomer", base.trim_end_matches('/'));
            let org = format!("{root}/org/${{connection.subdomain}}");
            Urls {
                authorize: format!("{org}/oauth/authorize"),
                token: format!("{org}/oauth/token"),
                revoke: Some(format!("{org}/oauth/revoke")),
                api_base: org,
                issuer: Some(root),
            }
        }
    }
}

/// The org subdomain every Kustomer connection asks for; `KUSTOMER_SUBDOMAIN` (or, in the
/// sandbox, `sandbox`) is the deployment-wide default.
fn kustomer_settings(
    source: &dyn Source,
    endpoints: &Endpoints,
) -> Result<SettingDefs, ConfigError> {
    let mut subdomain = SettingDef::new(
        "subdomain",
        "Kustomer subdomain",
        "The part before .kustomerapp.com in your Kustomer address: acme for acme.kustomerapp.com.",
        SettingKind::Subdomain,
    );
    let sandbox_default =
        matches!(endpoints, Endpoints::Sandbox { .. }).then(|| "sandbox".to_string());
    let defs = SettingDefs {
        fields: Vec::new(),
        capture_hosts: Vec::new(),
    };
    subdomain.default = match source.get("KUSTOMER_SUBDOMAIN").or(sandbox_default) {
        Some(raw) => Some(
            defs.check(&subdomain, &raw)
                .map_err(|e| ConfigError::new("KUSTOMER_SUBDOMAIN", e.problem))?,
        ),
        None => None,
    };
    Ok(SettingDefs {
        fields: vec![subdomain],
        ..defs
    })
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
    let mut fields: [(&str, &mut String); 3] = [
        ("AUTHORIZE_URL", &mut provider.authorize_url),
        ("TOKEN_URL", &mut provider.token_url),
        ("API_BASE_URL", &mut provider.api_base_url),
    ];
    for (suffix, field) in fields.iter_mut() {
        let variable = format!("{prefix}_{suffix}");
        if let Some(url) = source.get(&variable) {
            check_url(&variable, &url)?;
            // `{subdomain}` is how these variables named the org before connection settings.
            **field = url.replace("{subdomain}", "${connection.subdomain}");
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

/// `<PREFIX>_RATE_PER_MINUTE`: the account's plan allows another rate than the default
/// (the budgets of a minute's window, per tier, are replaced).
fn override_rate(provider: &mut Provider, source: &dyn Source) -> Result<(), ConfigError> {
    let variable = format!("{}_RATE_PER_MINUTE", Provider::env_prefix(&provider.name));
    let Some(raw) = source.get(&variable) else {
        return Ok(());
    };
    let per_minute = raw
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| ConfigError::new(&variable, "must be a whole number from 1 to 1000000"))?;
    for budget in &mut provider.rate_budgets.budgets {
        if budget.window == std::time::Duration::from_secs(60) {
            budget.requests = per_minute;
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
        key_placement: super::KeyPlacement::Bearer,
        token_placement: super::KeyPlacement::Bearer,
        basic_labels: Default::default(),
        token_format: Default::default(),
        app: None,
        enabled: true,
        syncs: super::syncs::klaviyo(),
        connection_config: SettingDefs::default(),
        rate_budgets: super::rate_budgets::klaviyo(),
    }
}

/// The sandbox's orgs have its own plan's budget.
fn kustomer(urls: Urls, connection_config: SettingDefs, sandboxed: bool) -> Provider {
    let per_minute = if sandboxed {
        sandbox::KUSTOMER_ORG_RATE_PER_MINUTE
    } else {
        KUSTOMER_RATE_PER_MINUTE
    };
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
        key_placement: super::KeyPlacement::Bearer,
        token_placement: super::KeyPlacement::Bearer,
        basic_labels: Default::default(),
        token_format: Default::default(),
        app: None,
        enabled: true,
        syncs: super::syncs::kustomer(),
        connection_config,
        rate_budgets: super::rate_budgets::kustomer(per_minute),
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
            kustomer(
                kustomer_urls(endpoints),
                kustomer_settings(source, endpoints)?,
                sandboxed,
            ),
            (sandbox::KUSTOMER_CLIENT_ID, sandbox::KUSTOMER_CLIENT_SECRET),
        ),
    ];
    let mut providers = Vec::new();
    for (mut provider, sandbox_app) in builtins {
        override_urls(&mut provider, source)?;
        override_rate(&mut provider, source)?;
        apply_env(
            &mut provider,
            source,
            public_url,
            sandboxed.then_some(sandbox_app),
        )?;
        // A setting no URL uses any more (every one overridden) is not asked for.
        let used: Vec<String> = provider
            .urls()
            .flat_map(connection_config::placeholders)
            .map(str::to_string)
            .collect();
        provider
            .connection_config
            .fields
            .retain(|f| used.contains(&f.name));
        let variable = format!("{}_*_URL", Provider::env_prefix(&provider.name));
        provider.check_placeholders(&variable)?;
        providers.push(provider);
    }
    Ok(providers)
}
