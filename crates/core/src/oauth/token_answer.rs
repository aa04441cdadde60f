//! Reading a token endpoint's answer: the fields where the provider puts them
//! (`token_path`), its token type, `expires_in` as a number or a string, and the granted
//! scopes in whatever separator the provider uses.

use crate::provider_http::CallError;
use crate::providers::TokenFormat;
use secrecy::SecretString;
use serde_json::Value;

/// What a successful token response holds.
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<i64>,
    /// The granted scopes when the provider says; otherwise the requested ones.
    pub scope: Option<String>,
    /// The answer's other top-level fields (no token), for `token.<field>` captures.
    pub fields: serde_json::Map<String, Value>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[REDACTED]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("fields", &self.fields)
            .finish()
    }
}

/// Fields of a token answer that hold secrets, never kept beside the sealed tokens.
const SECRET_FIELDS: [&str; 3] = ["access_token", "refresh_token", "id_token"];

/// The token set in `body`, read as `format` says.
pub fn parse(body: &[u8], format: &TokenFormat) -> Result<TokenSet, CallError> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|_| CallError::InvalidResponse("the token response is not valid JSON".into()))?;
    let fields = match &format.path {
        Some(path) => path
            .split('.')
            .try_fold(&answer, |value, part| value.get(part))
            .ok_or_else(|| {
                CallError::InvalidResponse(format!("the token response has no {path}"))
            })?,
        None => &answer,
    };
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let access_token = text("access_token").ok_or_else(|| {
        CallError::InvalidResponse("the token response has no access_token".into())
    })?;
    match text("token_type") {
        Some(kind) if kind.eq_ignore_ascii_case(&format.token_type) => {}
        Some(kind) => {
            return Err(CallError::InvalidResponse(format!(
                "the token type {:?} is not supported (only {})",
                crate::provider_http::sanitize(&kind, 20),
                format.token_type
            )))
        }
        None => {
            return Err(CallError::InvalidResponse(
                "the token response has no token_type".into(),
            ))
        }
    }
    // Some providers send expires_in as a string; 0 or absent means it never expires.
    let expires_in = match fields.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(TokenSet {
        access_token: SecretString::from(access_token),
        refresh_token: text("refresh_token").map(SecretString::from),
        expires_in,
        scope: fields
            .get("scope")
            .and_then(Value::as_str)
            .map(str::to_string),
        fields: match &answer {
            Value::Object(top) => top
                .iter()
                .filter(|(name, _)| !SECRET_FIELDS.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            _ => serde_json::Map::new(),
        },
    })
}

/// Granted scopes as stored (space-separated): split on the provider's separator, and on
/// spaces and commas too, since providers answer in either whatever they were asked in.
pub fn granted_scopes(raw: &str, separator: &str) -> String {
    let separator = separator.trim();
    raw.split([' ', ','])
        .flat_map(|part| {
            if separator.is_empty() {
                vec![part]
            } else {
                part.split(separator).collect()
            }
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_are_checked() {
        let format = TokenFormat::default();
        let ok = parse(br#"{"access_token":"a","token_type":"bearer","expires_in":"3600","refresh_token":"r","scope":"x y"}"#, &format).unwrap();
        assert_eq!(ok.expires_in, Some(3600));
        assert_eq!(ok.scope.as_deref(), Some("x y"));
        assert!(!format!("{ok:?}").contains("\"a\""));
        for (body, message) in [
            (&b"<html>"[..], "not valid JSON"),
            (br#"{"token_type":"Bearer"}"#, "no access_token"),
            (
                br#"{"access_token":"a","token_type":"mac"}"#,
                "\"mac\" is not supported",
            ),
            (br#"{"access_token":"a"}"#, "no token_type"),
        ] {
            let err = parse(body, &format).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
    }

    #[test]
    fn nested_tokens_are_read_where_the_provider_puts_them() {
        let format = TokenFormat {
            path: Some("authed_user".into()),
            token_type: "user".into(),
            ..TokenFormat::default()
        };
        let body = br#"{"ok":true,"access_token":"bot","token_type":"bot","authed_user":{"access_token":"u","token_type":"user","scope":"chat:write,users:read","refresh_token":"r","expires_in":43200}}"#;
        let set = parse(body, &format).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&set.access_token), "u");
        assert_eq!(set.expires_in, Some(43200));
        let err = parse(br#"{"ok":true}"#, &format).unwrap_err();
        assert!(err.to_string().contains("no authed_user"), "{err}");
    }

    #[test]
    fn granted_scopes_take_any_separator() {
        assert_eq!(granted_scopes("a,b c", " "), "a b c");
        assert_eq!(granted_scopes("a+b", "+"), "a b");
        assert_eq!(granted_scopes("", " "), "");
    }
}
