//! Putting a client's credential on a call to the provider's API: an OAuth token and a
//! stored key each where the provider definition says (`KeyPlacement`; Bearer by default). Used by the profile
//! reads, the key check, the proxy and the typed operations alike.

use super::token_cache::FreshToken;
use crate::providers::key_placement::KEY_PLACEHOLDER;
use crate::providers::{KeyPlacement, Provider};
use secrecy::{ExposeSecret, SecretString};

/// A credential (token, key or Basic pair) and where it goes.
pub struct Credential<'a>(pub &'a KeyPlacement, pub &'a SecretString);

impl<'a> Credential<'a> {
    /// The credential of a handed-out token, placed as the provider says.
    pub fn of(provider: &'a Provider, token: &'a FreshToken) -> Self {
        match token {
            FreshToken::Bearer { token, .. } => Credential(&provider.token_placement, token),
            FreshToken::ApiKey(key) => Credential(&provider.key_placement, key),
        }
    }

    /// The header the credential takes, so a caller's own header of that name is dropped.
    pub fn header_name(&self) -> &str {
        match self.0 {
            KeyPlacement::Header { name, .. } => name,
            _ => "authorization",
        }
    }

    /// The URL to call: with a query-parameter key, any value of that parameter the caller
    /// sent is replaced by the key.
    pub fn url(&self, url: &url::Url) -> url::Url {
        let Credential(KeyPlacement::Query { name }, key) = self else {
            return url.clone();
        };
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(n, _)| n != name)
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        let mut placed = url.clone();
        placed
            .query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair(name, key.expose_secret());
        placed
    }

    /// The request with the credential in its header (nothing for a query-parameter key,
    /// which `url` placed).
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credential(KeyPlacement::Bearer, token) => request.bearer_auth(token.expose_secret()),
            Credential(KeyPlacement::Header { name, template }, key) => {
                let value = template.replace(KEY_PLACEHOLDER, key.expose_secret());
                match reqwest::header::HeaderValue::from_str(&value) {
                    Ok(mut value) => {
                        value.set_sensitive(true);
                        request.header(name.as_str(), value)
                    }
                    // Keys are checked to be printable when stored; nothing to send otherwise.
                    Err(_) => request,
                }
            }
            Credential(KeyPlacement::Query { .. }, _) => request,
            Credential(KeyPlacement::Basic, pair) => {
                let (user, password) = split_basic(pair.expose_secret());
                request.basic_auth(user, Some(password))
            }
        }
    }
}

/// A Basic pair is stored sealed as `user:password`; a user never holds `:` (RFC 7617).
pub fn join_basic(user: &str, password: &str) -> SecretString {
    SecretString::from(format!("{user}:{password}"))
}

fn split_basic(pair: &str) -> (&str, &str) {
    pair.split_once(':').unwrap_or((pair, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_key_replaces_the_callers_value() {
        let placement = KeyPlacement::Query {
            name: "api_key".into(),
        };
        let key = SecretString::from("k 1");
        let url = url::Url::parse("https://api.example/v1/x?api_key=theirs&a=b").unwrap();
        let placed = Credential(&placement, &key).url(&url);
        assert_eq!(placed.as_str(), "https://api.example/v1/x?a=b&api_key=k+1");
    }

    #[test]
    fn basic_pairs_split_at_the_first_colon() {
        assert_eq!(split_basic("ann:pa:ss"), ("ann", "pa:ss"));
    }
}
