//! Providers managed in the browser (`/admin/providers`): enable or disable, client id
//! and secret, scopes, extra authorize parameters, providers added from a TOML table, and
//! a configuration check. Settings are stored per provider (`store`) and laid over the
//! definitions by `providers::Registry::with_stored`; environment variables still win and
//! cannot be changed here. Every change is audited (never the secret) and rebuilds the
//! registry: at once on this instance, within `invalidation::POLL` on the others
//! (PostgreSQL NOTIFY from a trigger on `provider_settings`).

pub mod check;
pub mod from_catalogue;
pub mod removal;
pub mod store;

use crate::audit::{self, Actor, Event};
use crate::db::DbError;
use crate::input::SingleLine;
use crate::providers::{Listed, Provider, Registry};
use crate::state::AppState;
use secrecy::SecretString;
use serde_json::json;
use store::Row;

pub const CLIENT_ID_MAX_CHARS: usize = 200;
pub const CLIENT_SECRET_MAX_CHARS: usize = 500;
pub const SCOPES_MAX: usize = 100;
pub const SCOPE_MAX_CHARS: usize = 200;
pub const PARAMS_MAX: usize = 20;
pub const PARAM_VALUE_MAX_CHARS: usize = 500;
pub const DEFINITION_MAX_BYTES: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// What to fix, in a sentence for the page.
    #[error("{0}")]
    Invalid(String),
    #[error("no such provider")]
    NotFound,
    #[error(transparent)]
    Storage(#[from] DbError),
}

crate::from_run_error!(AdminError, Storage);

impl From<anyhow::Error> for AdminError {
    fn from(e: anyhow::Error) -> Self {
        Self::Storage(DbError::Other(e))
    }
}

fn invalid<T>(message: impl Into<String>) -> Result<T, AdminError> {
    Err(AdminError::Invalid(message.into()))
}

/// Rebuilds the registry from the definitions and the stored settings, and puts it in use.
pub async fn reload(state: &AppState) -> Result<(), DbError> {
    let _one_at_a_time = state.registry_rebuild.lock().await;
    let rows = crate::db::run(&state.pool, store::all).await?;
    let (registry, problems) = layered(state, &rows);
    for problem in problems {
        tracing::warn!(%problem, "a provider added on /admin/providers is left out");
    }
    state.set_providers(registry);
    Ok(())
}

fn layered(state: &AppState, rows: &[Row]) -> (Registry, Vec<String>) {
    let added: Vec<String> = rows.iter().filter_map(|r| r.definition.clone()).collect();
    let settings: Vec<_> = rows
        .iter()
        .map(|r| (r.name.clone(), r.settings(&state.vault)))
        .collect();
    state.config.providers.with_stored(&added, &settings)
}

/// Whether a provider can be connected now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Configured,
    MissingCredentials,
    Disabled,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Configured => "configured",
            Status::MissingCredentials => "missing credentials",
            Status::Disabled => "disabled",
        }
    }
}

/// Where the client secret in use comes from; the secret itself is never shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Environment,
    Stored,
    /// The built-in sandbox's app (demo and tests).
    Default,
    NotSet,
}

/// One provider as the page shows it.
#[derive(Debug, Clone)]
pub struct Overview {
    pub name: String,
    pub display_name: String,
    pub origin: &'static str,
    /// Added on this page, so it can be removed here (`removal`).
    pub removable: bool,
    pub auth_type: &'static str,
    pub status: Status,
    pub enabled: bool,
    pub redirect_uri: String,
    pub client_id: String,
    pub secret: SecretSource,
    pub scopes: String,
    /// One `name=value` per line.
    pub authorize_params: String,
    /// The environment variables that set a value here (shown, not editable).
    pub env_enabled: Option<String>,
    pub env_client_id: Option<String>,
    pub env_client_secret: Option<String>,
    pub env_scopes: Option<String>,
}

fn overview(listed: &Listed, row: Option<&Row>) -> Overview {
    let provider = &listed.provider;
    let prefix = Provider::env_prefix(&provider.name);
    let env = &listed.env;
    let stored_id = row.and_then(|r| r.client_id.clone());
    let client_id = env
        .client_id
        .clone()
        .or(stored_id)
        .or_else(|| provider.app.as_ref().map(|a| a.client_id.clone()))
        .unwrap_or_default();
    let secret = if env.client_secret.is_some() {
        SecretSource::Environment
    } else if row.is_some_and(|r| r.client_secret.is_some()) {
        SecretSource::Stored
    } else if provider.app.is_some() {
        SecretSource::Default
    } else {
        SecretSource::NotSet
    };
    let status = match (provider.enabled, provider.is_configured()) {
        (false, _) => Status::Disabled,
        (true, true) => Status::Configured,
        (true, false) => Status::MissingCredentials,
    };
    let set_by = |yes: bool, name: String| yes.then_some(name);
    Overview {
        name: provider.name.clone(),
        display_name: provider.display_name.clone(),
        origin: listed.origin.label(),
        removable: listed.origin == crate::providers::Origin::Added,
        auth_type: provider.auth_type.as_str(),
        status,
        enabled: provider.enabled,
        redirect_uri: listed.redirect_uri.clone(),
        client_id,
        secret,
        scopes: provider.scopes.join(" "),
        authorize_params: provider
            .authorize_params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        env_enabled: set_by(env.enabled, format!("FEATURE_{prefix}_OAUTH")),
        env_client_id: set_by(env.client_id.is_some(), format!("{prefix}_OAUTH_CLIENT_ID")),
        env_client_secret: set_by(
            env.client_secret.is_some(),
            format!("{prefix}_OAUTH_CLIENT_SECRET"),
        ),
        env_scopes: set_by(env.scopes, format!("{prefix}_OAUTH_SCOPES")),
    }
}

/// Every provider, disabled ones too, built-ins first.
pub async fn list(state: &AppState) -> Result<Vec<Overview>, AdminError> {
    let rows = crate::db::run(&state.pool, store::all).await?;
    let registry = state.providers();
    Ok(registry
        .listed()
        .iter()
        .map(|l| overview(l, rows.iter().find(|r| r.name == l.provider.name)))
        .collect())
}

/// One provider by name (any name: unknown ones are not found, never looked up in SQL).
pub async fn details(state: &AppState, name: &str) -> Result<Overview, AdminError> {
    let registry = state.providers();
    let listed = registry.find(name).ok_or(AdminError::NotFound)?.clone();
    let key = listed.provider.name.clone();
    let row = crate::db::run(&state.pool, move |conn| store::find(conn, &key)).await?;
    Ok(overview(&listed, row.as_ref()))
}

/// The settings form as submitted; a field is None when the form did not carry it (the
/// page leaves out the ones the environment sets).
#[derive(Debug, Default)]
pub struct Draft {
    pub client_id: Option<String>,
    /// Blank keeps the stored secret.
    pub client_secret: Option<String>,
    pub scopes: Option<String>,
    pub authorize_params: Option<String>,
}

/// The checked settings: for each field, None when it stays as it is.
struct Checked {
    client_id: Option<Option<String>>,
    client_secret: Option<SecretString>,
    scopes: Option<Vec<String>>,
    authorize_params: Option<Vec<(String, String)>>,
}

fn env_refusal(variable: &Option<String>, what: &str) -> Result<(), AdminError> {
    match variable {
        Some(variable) => invalid(format!(
            "The {what} is set by {variable} in the environment, which wins: change it there."
        )),
        None => Ok(()),
    }
}

fn check_draft(draft: &Draft, current: &Overview) -> Result<Checked, AdminError> {
    let client_id = match &draft.client_id {
        Some(raw) if raw.trim() != current.client_id => {
            env_refusal(&current.env_client_id, "client id")?;
            let id = SingleLine::<CLIENT_ID_MAX_CHARS>::parse(raw)
                .map_err(|e| AdminError::Invalid(format!("The client id {e}.")))?
                .into_string();
            Some(Some(id).filter(|id| !id.is_empty()))
        }
        _ => None,
    };
    let client_secret = match draft.client_secret.as_deref().map(str::trim) {
        Some(raw) if !raw.is_empty() => {
            env_refusal(&current.env_client_secret, "client secret")?;
            let secret = SingleLine::<CLIENT_SECRET_MAX_CHARS>::parse(raw)
                .map_err(|e| AdminError::Invalid(format!("The client secret {e}.")))?;
            Some(SecretString::from(secret.into_string()))
        }
        _ => None,
    };
    let scopes = match &draft.scopes {
        Some(raw) => {
            let scopes = parse_scopes(raw)?;
            if scopes.join(" ") == current.scopes {
                None
            } else {
                env_refusal(&current.env_scopes, "scope list")?;
                Some(scopes)
            }
        }
        None => None,
    };
    let authorize_params = match &draft.authorize_params {
        Some(raw) => {
            let params = parse_params(raw)?;
            let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (shown.join("\n") != current.authorize_params).then_some(params)
        }
        None => None,
    };
    Ok(Checked {
        client_id,
        client_secret,
        scopes,
        authorize_params,
    })
}

/// Scopes separated by spaces or commas; each an RFC 6749 scope-token (printable ASCII
/// but `"` and `\`).
pub fn parse_scopes(raw: &str) -> Result<Vec<String>, AdminError> {
    let scopes: Vec<String> = raw
        .split([' ', ',', '\n', '\r', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if scopes.len() > SCOPES_MAX {
        return invalid(format!("At most {SCOPES_MAX} scopes."));
    }
    for scope in &scopes {
        let token = scope
            .chars()
            .all(|c| matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e'));
        if !token || scope.chars().count() > SCOPE_MAX_CHARS {
            return invalid(format!(
                "The scope {:?} is not valid: a scope is at most {SCOPE_MAX_CHARS} printable ASCII characters, without quotes or backslashes.",
                crate::provider_http::sanitize(scope, 40)
            ));
        }
    }
    Ok(scopes)
}

/// One `name=value` per line; blank lines are ignored.
pub fn parse_params(raw: &str) -> Result<Vec<(String, String)>, AdminError> {
    let mut params = Vec::new();
    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once('=') else {
            return invalid(format!(
                "Write each authorize parameter as name=value, not {:?}.",
                crate::provider_http::sanitize(line, 40)
            ));
        };
        let (name, value) = (name.trim(), value.trim());
        let good_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !good_name {
            return invalid(format!(
                "The authorize parameter name {:?} must be 1-64 letters, digits, _, - or .",
                crate::provider_http::sanitize(name, 40)
            ));
        }
        if crate::providers::OWN_AUTHORIZE_PARAMS.contains(&name) {
            return invalid(format!(
                "The authorize parameter {name} is set by connecthub itself."
            ));
        }
        if value.chars().any(char::is_control) || value.chars().count() > PARAM_VALUE_MAX_CHARS {
            return invalid(format!(
                "The value of {name} must be one line of at most {PARAM_VALUE_MAX_CHARS} characters."
            ));
        }
        params.push((name.to_string(), value.to_string()));
    }
    if params.len() > PARAMS_MAX {
        return invalid(format!("At most {PARAMS_MAX} authorize parameters."));
    }
    Ok(params)
}

fn event(actor: &Actor, action: &'static str, name: &str) -> Event {
    Event::new(actor.clone(), action).target("provider", name.to_string())
}

/// Saves the settings form; answers whether anything changed. Audited with the names of
/// the changed fields (and the client id, which is not a secret).
pub async fn save(
    state: &AppState,
    actor: &Actor,
    name: &str,
    draft: &Draft,
) -> Result<bool, AdminError> {
    let current = details(state, name).await?;
    let checked = check_draft(draft, &current)?;
    let sealed = match &checked.client_secret {
        Some(secret) => Some(
            store::seal_secret(&state.vault, &current.name, secret)
                .map_err(|e| DbError::Other(e.into()))?,
        ),
        None => None,
    };
    let mut changed = Vec::new();
    for (field, is_changed) in [
        ("client_id", checked.client_id.is_some()),
        ("client_secret", sealed.is_some()),
        ("scopes", checked.scopes.is_some()),
        ("authorize_params", checked.authorize_params.is_some()),
    ] {
        if is_changed {
            changed.push(field);
        }
    }
    if changed.is_empty() {
        return Ok(false);
    }
    let (name, actor) = (current.name.clone(), actor.clone());
    let client_id_shown = checked.client_id.clone();
    crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let mut row = store::find(conn, &name)?.unwrap_or_else(|| Row {
                name: name.clone(),
                ..Row::default()
            });
            if let Some(id) = checked.client_id {
                row.client_id = id;
            }
            if sealed.is_some() {
                row.client_secret = sealed;
            }
            if let Some(scopes) = checked.scopes {
                row.scopes = Some(json!(scopes).to_string());
            }
            if let Some(params) = checked.authorize_params {
                row.authorize_params = Some(json!(params).to_string());
            }
            store::save(conn, &row)?;
            let mut details = json!({"changed": changed});
            if let Some(id) = client_id_shown {
                details["client_id"] = json!(id);
            }
            audit::append(
                conn,
                event(&actor, "provider_settings_changed", &name).details(details),
            )
        })
    })
    .await?;
    reload(state).await?;
    Ok(true)
}

/// Enables or disables a provider (a disabled one is hidden everywhere and cannot be
/// connected; its connections stay).
pub async fn set_enabled(
    state: &AppState,
    actor: &Actor,
    name: &str,
    enabled: bool,
) -> Result<(), AdminError> {
    let current = details(state, name).await?;
    if let Some(variable) = &current.env_enabled {
        return invalid(format!(
            "{} is enabled or disabled by {variable} in the environment, which wins: change it there.",
            current.display_name
        ));
    }
    let (name, actor) = (current.name.clone(), actor.clone());
    crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let mut row = store::find(conn, &name)?.unwrap_or_else(|| Row {
                name: name.clone(),
                ..Row::default()
            });
            row.enabled = Some(enabled);
            store::save(conn, &row)?;
            let action = if enabled {
                "provider_enabled"
            } else {
                "provider_disabled"
            };
            audit::append(conn, event(&actor, action, &name))
        })
    })
    .await?;
    reload(state).await?;
    Ok(())
}

/// Adds a provider from one `[[provider]]` table in the `PROVIDERS_FILE` format (pasted on
/// the page, or a catalogue entry's text); answers its name. Nothing is stored unless the
/// whole definition reads, and its name is new.
pub async fn add_from_toml(
    state: &AppState,
    actor: &Actor,
    text: &str,
) -> Result<String, AdminError> {
    let text = text.trim();
    if text.is_empty() {
        return invalid("Paste a [[provider]] table.");
    }
    if text.len() > DEFINITION_MAX_BYTES {
        return invalid(format!(
            "The definition can be at most {DEFINITION_MAX_BYTES} bytes."
        ));
    }
    if crate::input::has_stray_control(text) {
        return invalid("The definition cannot contain control characters.");
    }
    let provider = state.providers().parse_added(text).map_err(|e| {
        let what = if e.expected.starts_with("provider ") {
            e.expected
        } else {
            format!("the definition {}", e.expected)
        };
        AdminError::Invalid(format!("Not added: {what}."))
    })?;
    let (name, definition, actor) = (provider.name.clone(), text.to_string(), actor.clone());
    let details = json!({
        "display_name": provider.display_name,
        "auth_type": provider.auth_type.as_str(),
    });
    let added = crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| {
            let mut row = store::find(conn, &name)?.unwrap_or_else(|| Row {
                name: name.clone(),
                ..Row::default()
            });
            if row.definition.is_some() {
                return Ok(None);
            }
            row.definition = Some(definition);
            store::save(conn, &row)?;
            audit::append(
                conn,
                event(&actor, "provider_added", &name).details(details),
            )?;
            Ok::<_, diesel::result::Error>(Some(name))
        })
    })
    .await?;
    let Some(name) = added else {
        return invalid(format!(
            "Not added: provider {:?} exists already.",
            provider.name
        ));
    };
    reload(state).await?;
    Ok(name)
}

/// Runs "Check configuration" against the provider as it is configured now.
pub async fn check(state: &AppState, name: &str) -> Result<check::Report, AdminError> {
    let registry = state.providers();
    let listed = registry.find(name).ok_or(AdminError::NotFound)?;
    Ok(check::run(state.http(), &state.retry, &listed.provider).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_scope_tokens() {
        assert_eq!(
            parse_scopes("accounts:read, lists:read\nx").unwrap(),
            ["accounts:read", "lists:read", "x"]
        );
        for bad in ["a\"b", "a\\b", "é", "a\0b", &"x".repeat(201)] {
            assert!(parse_scopes(bad).is_err(), "{bad:?}");
        }
        assert!(parse_scopes(&"a ".repeat(101)).is_err());
    }

    #[test]
    fn params_are_name_value_lines() {
        assert_eq!(
            parse_params("prompt=consent\n\n access_type = offline ").unwrap(),
            [
                ("prompt".to_string(), "consent".to_string()),
                ("access_type".to_string(), "offline".to_string())
            ]
        );
        for bad in ["prompt", "=x", "state=abc", "a b=c", "x=\u{1b}[31m"] {
            assert!(parse_params(bad).is_err(), "{bad:?}");
        }
    }
}
