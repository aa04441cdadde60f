//! Token-endpoint behaviours of real providers that depart from RFC 6749, switched on per
//! provider by the control API (`POST /sandbox/_control/quirks`), so the client side can
//! be proven against each: GitHub's tokens that never expire and have no refresh token,
//! Slack's tokens nested under `authed_user`, comma-separated or narrowed scopes, Notion's
//! JSON token requests, extra parameters a provider requires, access tokens in a header of
//! their own (Shopify), and extra callback parameters (QuickBooks' `realmId`).

use super::http::{param, Params};
use super::tokens::{Issued, TokenStore};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quirks {
    /// Tokens live forever and answers carry no `expires_in`.
    #[serde(default)]
    pub never_expires: bool,
    /// No refresh token is issued.
    #[serde(default)]
    pub no_refresh_token: bool,
    /// The token fields sit in this object of the answer (`authed_user`).
    pub nest_under: Option<String>,
    /// The `token_type` answered instead of `Bearer`.
    pub token_type: Option<String>,
    /// The separator of the answered `scope` (`,`).
    pub scope_separator: Option<String>,
    /// Only these of the asked scopes are granted (by refreshes too).
    pub grant_only: Option<Vec<String>>,
    /// Token requests must be JSON objects, not forms.
    #[serde(default)]
    pub json_requests: bool,
    /// Parameters code exchanges and refreshes must carry, with these values.
    #[serde(default)]
    pub required_params: BTreeMap<String, String>,
    /// API calls carry the bare access token in this header, and no Authorization header
    /// (Shopify's `X-Shopify-Access-Token`).
    pub token_header: Option<String>,
    /// Added to the consent redirect's query, beside `code` (QuickBooks' `realmId`).
    #[serde(default)]
    pub callback_params: BTreeMap<String, String>,
    /// Added to the top level of `GET /api/accounts` answers (Mailchimp's metadata `dc`).
    #[serde(default)]
    pub profile_fields: BTreeMap<String, String>,
}

impl Quirks {
    pub fn check(&self) -> Result<(), String> {
        let word = |s: &str| {
            !s.is_empty()
                && s.len() <= 40
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if self.nest_under.as_deref().is_some_and(|s| !word(s)) {
            return Err("nest_under must be a plain field name".into());
        }
        if self.token_type.as_deref().is_some_and(|s| !word(s)) {
            return Err("token_type must be a plain word".into());
        }
        let header = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if self.token_header.as_deref().is_some_and(|s| !header(s)) {
            return Err("token_header must be a header name".into());
        }
        // The values are free (tests send bad ones on purpose); the names are not.
        if self
            .callback_params
            .keys()
            .any(|name| !word(name) || ["code", "state", "iss", "error"].contains(&name.as_str()))
        {
            return Err("callback_params names must be plain words other than OAuth's".into());
        }
        if self
            .profile_fields
            .keys()
            .any(|name| !word(name) || ["data", "links"].contains(&name.as_str()))
        {
            return Err(
                "profile_fields names must be plain words other than data and links".into(),
            );
        }
        if self
            .scope_separator
            .as_deref()
            .is_some_and(|s| s.len() != 1)
        {
            return Err("scope_separator must be one character".into());
        }
        Ok(())
    }

    /// The scopes granted for those asked.
    pub fn granted(&self, asked: Vec<String>) -> Vec<String> {
        match &self.grant_only {
            Some(only) => asked.into_iter().filter(|s| only.contains(s)).collect(),
            None => asked,
        }
    }

    /// The first required parameter missing or wrong in a token request.
    pub fn missing_param(&self, params: &Params) -> Option<String> {
        self.required_params
            .iter()
            .find(|(name, value)| param(params, name) != Some(value.as_str()))
            .map(|(name, value)| format!("{name} must be {value:?}"))
    }

    /// Applies `never_expires` and `no_refresh_token` to what was just issued.
    pub fn adjust(&self, tokens: &mut TokenStore, mut issued: Issued) -> Issued {
        if self.never_expires {
            tokens.make_permanent(&issued.access_token);
        }
        if self.no_refresh_token {
            if let Some(refresh) = issued.refresh_token.take() {
                tokens.forget_refresh(&refresh);
            }
        }
        issued
    }

    /// The body of a successful token answer.
    pub fn answer(&self, issued: Issued) -> Value {
        let scope = match &self.scope_separator {
            Some(separator) => issued.scope.replace(' ', separator),
            None => issued.scope,
        };
        let mut fields = json!({
            "access_token": issued.access_token,
            "token_type": self.token_type.as_deref().unwrap_or("Bearer"),
            "scope": scope,
        });
        if !self.never_expires {
            fields["expires_in"] = json!(issued.expires_in);
        }
        if let Some(refresh) = issued.refresh_token {
            fields["refresh_token"] = json!(refresh);
        }
        match &self.nest_under {
            // Slack's shape: a top-level `ok` and the user's tokens in their own object.
            Some(field) => json!({"ok": true, field.as_str(): fields}),
            None => fields,
        }
    }
}

/// The parameters of a JSON token request: an object of strings.
pub fn json_params(body: &[u8]) -> Result<Params, String> {
    let object: BTreeMap<String, Value> =
        serde_json::from_slice(body).map_err(|_| "the body must be a JSON object".to_string())?;
    object
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name, text)),
            _ => Err(format!("{name} must be a string")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_take_the_configured_shape() {
        let quirks = Quirks {
            never_expires: true,
            nest_under: Some("authed_user".into()),
            token_type: Some("user".into()),
            scope_separator: Some(",".into()),
            ..Quirks::default()
        };
        let issued = Issued {
            access_token: "a".into(),
            refresh_token: None,
            expires_in: 60,
            scope: "x y".into(),
        };
        assert_eq!(
            quirks.answer(issued),
            json!({"ok": true, "authed_user": {"access_token": "a", "token_type": "user", "scope": "x,y"}})
        );
        assert_eq!(
            quirks.granted(vec!["x".into(), "y".into()]),
            vec!["x".to_string(), "y".to_string()]
        );
        assert!(json_params(br#"{"a":1}"#).is_err());
        assert_eq!(json_params(br#"{"a":"b"}"#).unwrap()["a"], "b");
    }
}
