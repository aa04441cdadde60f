//! The connection settings a connect form asks for before the consent page (a Kustomer
//! org's subdomain), and the values a Reconnect link carries again.

use crate::clients::Client;
use crate::error::AppError;
use crate::providers::connection_config::Entered;
use crate::providers::Provider;

/// One setting as a form field.
pub struct SettingField {
    pub provider: String,
    pub name: String,
    pub label: String,
    pub help: String,
    /// The deployment-wide default, pre-filled.
    pub value: String,
    pub max_len: usize,
}

/// The fields a provider's connect forms ask for (none for most providers).
pub fn fields(provider: &Provider) -> Vec<SettingField> {
    provider
        .connection_config
        .asked()
        .map(|def| SettingField {
            provider: provider.name.clone(),
            name: def.name.clone(),
            label: def.label.clone(),
            help: def.help.clone(),
            value: def.default.clone().unwrap_or_default(),
            max_len: def.max_len(),
        })
        .collect()
}

/// A connection's settings as (label, value), entered and captured; a value the
/// provider no longer declares is shown under its name.
pub fn shown(provider: Option<&Provider>, client: &Client) -> Vec<(String, String)> {
    client
        .connection_values()
        .iter()
        .map(|(name, value)| {
            let label = provider
                .and_then(|p| p.connection_config.fields.iter().find(|f| f.name == name))
                .map_or_else(|| name.to_string(), |f| f.label.clone());
            (label, value.to_string())
        })
        .collect()
}

/// `&name=value…` of a connection's entered settings, for its Reconnect link.
pub fn reconnect_query(provider: &Provider, client: &Client) -> String {
    let values = client.connection_values();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for def in provider.connection_config.asked() {
        if let Some(value) = values.get(&def.name) {
            query.append_pair(&def.name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        query
    } else {
        format!("&{query}")
    }
}

/// The settings in a query string or form body, by name (checked later, by the flow).
pub fn entered(encoded: &[u8]) -> Result<Entered, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(encoded)
        .map_err(|_| AppError::BadRequest("the connection settings could not be read".into()))?;
    Ok(pairs.into_iter().collect())
}
