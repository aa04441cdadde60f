//! How a provider's token endpoint wants to be asked and how it answers, where it departs
//! from RFC 6749: JSON request bodies (Notion), extra parameters (an `audience`), tokens
//! nested in the answer (Slack's `authed_user`) and token types other than Bearer.

use serde::Deserialize;

/// The body of token requests (`token_request_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestFormat {
    /// `application/x-www-form-urlencoded`, as RFC 6749 §4.1.3 asks.
    #[default]
    Form,
    /// A JSON object of the same parameters.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFormat {
    pub request: RequestFormat,
    /// Added to the code exchange and every refresh (`[provider.token_params]`).
    pub params: Vec<(String, String)>,
    /// Dotted path of the object holding `access_token`, `refresh_token`, `expires_in` and
    /// `scope` (`token_path`); the answer's top level when `None`.
    pub path: Option<String>,
    /// The `token_type` the provider answers, compared case-insensitively (`token_type`).
    pub token_type: String,
}

impl Default for TokenFormat {
    fn default() -> Self {
        Self {
            request: RequestFormat::Form,
            params: Vec::new(),
            path: None,
            token_type: "Bearer".into(),
        }
    }
}

/// OAuth parameters connecthub sets itself; `token_params` may not replace them.
const RESERVED: [&str; 8] = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "client_id",
    "client_secret",
    "scope",
];

impl TokenFormat {
    /// Checks the file's values; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if let Some((name, _)) = self
            .params
            .iter()
            .find(|(n, _)| RESERVED.contains(&n.as_str()))
        {
            return Err(format!(
                "token_params may not set {name:?}: connecthub sends it itself"
            ));
        }
        let path_ok = self.path.as_deref().is_none_or(|path| {
            !path.is_empty()
                && path
                    .split('.')
                    .all(|part| !part.is_empty() && part.chars().all(is_name_char))
        });
        if !path_ok {
            return Err("token_path must be dotted names such as authed_user".into());
        }
        if self.token_type.is_empty() || !self.token_type.chars().all(is_name_char) {
            return Err("token_type must be a word such as bearer".into());
        }
        Ok(())
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_parameters_and_odd_paths_are_refused() {
        let mut format = TokenFormat {
            params: vec![("grant_type".into(), "x".into())],
            ..TokenFormat::default()
        };
        assert!(format.check().unwrap_err().contains("\"grant_type\""));
        format.params = vec![("audience".into(), "api".into())];
        assert!(format.check().is_ok());
        for bad in ["", "a..b", "a/b", ".a"] {
            format.path = Some(bad.into());
            assert!(format.check().is_err(), "{bad}");
        }
        format.path = Some("authed_user".into());
        format.token_type = "Bearer token".into();
        assert!(format.check().is_err());
    }
}
