//! Where a stored API key (or HTTP Basic pair) goes on each call to the provider's API, and
//! what the connect forms ask for. Read from `[provider.api_key]` and `[provider.basic]`;
//! `[provider.access_token]` places an OAuth access token the same way (Shopify's
//! `X-Shopify-Access-Token`), `Authorization: Bearer` without it.

use serde::Deserialize;

/// The placeholder `template` replaces with the key.
pub const KEY_PLACEHOLDER: &str = "${key}";
/// The placeholder of `[provider.access_token] template`, stored as `KEY_PLACEHOLDER`.
pub const TOKEN_PLACEHOLDER: &str = "${token}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlacement {
    /// `Authorization: Bearer <key>` (Kustomer).
    Bearer,
    /// A named header holding the template with the key in it
    /// (`Authorization: Klaviyo-API-Key ${key}`).
    Header { name: String, template: String },
    /// A query parameter (`?api_key=<key>`).
    Query { name: String },
    /// HTTP Basic (RFC 7617) with the user and the password or token.
    Basic,
}

/// `[provider.api_key]`: `header` (+ `template`, default `${key}`) or `query_param`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    header: Option<String>,
    template: Option<String>,
    query_param: Option<String>,
}

/// `[provider.access_token]`: the header an OAuth access token goes in, with `template`
/// (default `${token}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessTokenEntry {
    header: String,
    template: Option<String>,
}

impl AccessTokenEntry {
    pub fn placement(self) -> Result<KeyPlacement, String> {
        let template = self.template.unwrap_or_else(|| TOKEN_PLACEHOLDER.into());
        if template.contains(KEY_PLACEHOLDER) {
            return Err(format!(
                "access_token.template takes {TOKEN_PLACEHOLDER}, not {KEY_PLACEHOLDER}"
            ));
        }
        let template = template.replace(TOKEN_PLACEHOLDER, KEY_PLACEHOLDER);
        header_placement("access_token", self.header, template)
            .map_err(|e| e.replace(KEY_PLACEHOLDER, TOKEN_PLACEHOLDER))
    }
}

/// `[provider.basic]`: the labels of the two fields of the connect forms.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicLabels {
    #[serde(default = "default_username_label")]
    pub username_label: String,
    #[serde(default = "default_password_label")]
    pub password_label: String,
}

impl Default for BasicLabels {
    fn default() -> Self {
        Self {
            username_label: default_username_label(),
            password_label: default_password_label(),
        }
    }
}

fn default_username_label() -> String {
    "Username".into()
}
fn default_password_label() -> String {
    "Password".into()
}

/// Headers the key may not go in: they would break the request or leak it to a cache.
const FORBIDDEN_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "content-type",
    "cookie",
    "transfer-encoding",
    "connection",
];

impl ApiKeyEntry {
    /// The placement the table describes; the message names the key at fault.
    pub fn placement(self) -> Result<KeyPlacement, String> {
        match (self.header, self.query_param) {
            (Some(_), Some(_)) => Err("api_key takes header or query_param, not both".into()),
            (Some(name), None) => header_placement(
                "api_key",
                name,
                self.template.unwrap_or_else(|| KEY_PLACEHOLDER.into()),
            ),
            (None, Some(name)) => {
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
                if !valid || self.template.is_some() {
                    return Err(format!(
                        "api_key.query_param {name:?} must be a plain name (and has no template)"
                    ));
                }
                Ok(KeyPlacement::Query { name })
            }
            (None, None) => Err("api_key needs header or query_param".into()),
        }
    }
}

/// `name: template` with the credential in place of `KEY_PLACEHOLDER`; `table` names the
/// table at fault.
fn header_placement(table: &str, name: String, template: String) -> Result<KeyPlacement, String> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name || FORBIDDEN_HEADERS.contains(&name.to_lowercase().as_str()) {
        return Err(format!(
            "{table}.header {name:?} is not a usable header name"
        ));
    }
    if template.matches(KEY_PLACEHOLDER).count() != 1 || template.chars().any(|c| c.is_control()) {
        return Err(format!(
            "{table}.template must hold {KEY_PLACEHOLDER} once, on one line"
        ));
    }
    Ok(KeyPlacement::Header {
        name: name.to_lowercase(),
        template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(header: Option<&str>, template: Option<&str>, query: Option<&str>) -> ApiKeyEntry {
        ApiKeyEntry {
            header: header.map(str::to_string),
            template: template.map(str::to_string),
            query_param: query.map(str::to_string),
        }
    }

    #[test]
    fn placements_are_checked() {
        assert_eq!(
            entry(Some("Authorization"), Some("Klaviyo-API-Key ${key}"), None).placement(),
            Ok(KeyPlacement::Header {
                name: "authorization".into(),
                template: "Klaviyo-API-Key ${key}".into()
            })
        );
        assert_eq!(
            entry(None, None, Some("api_key")).placement(),
            Ok(KeyPlacement::Query {
                name: "api_key".into()
            })
        );
        for bad in [
            entry(Some("Host"), None, None),
            entry(Some("X Key"), None, None),
            entry(Some("X-Key"), Some("no placeholder"), None),
            entry(Some("X-Key"), Some("${key}${key}"), None),
            entry(Some("X-Key"), None, Some("k")),
            entry(None, Some("${key}"), Some("k")),
            entry(None, None, Some("a=b")),
            entry(None, None, None),
        ] {
            assert!(bad.placement().is_err());
        }
    }

    #[test]
    fn access_token_headers_are_checked() {
        let token = |header: &str, template: Option<&str>| {
            AccessTokenEntry {
                header: header.into(),
                template: template.map(str::to_string),
            }
            .placement()
        };
        assert_eq!(
            token("X-Shopify-Access-Token", None),
            Ok(KeyPlacement::Header {
                name: "x-shopify-access-token".into(),
                template: KEY_PLACEHOLDER.into()
            })
        );
        assert_eq!(
            token("Authorization", Some("OAuth ${token}")),
            Ok(KeyPlacement::Header {
                name: "authorization".into(),
                template: "OAuth ${key}".into()
            })
        );
        assert_eq!(
            token("X-Token", Some("none")),
            Err("access_token.template must hold ${token} once, on one line".into())
        );
        assert_eq!(
            token("X-Token", Some("${key}")),
            Err("access_token.template takes ${token}, not ${key}".into())
        );
        assert!(token("Cookie", None).is_err());
    }
}
