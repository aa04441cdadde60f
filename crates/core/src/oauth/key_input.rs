//! What a person enters to connect without OAuth: an API key, or a Basic user and password
//! (or token). Checked for the provider's mode before anything is sent or stored.

use super::credential::join_basic;
use crate::providers::{KeyPlacement, Provider};
use secrecy::{ExposeSecret, SecretString};

/// Longer than any provider's key or password.
const MAX_SECRET_LEN: usize = 512;
const MAX_USERNAME_LEN: usize = 256;

pub struct KeyInput {
    /// Only for Basic.
    pub username: Option<String>,
    pub secret: SecretString,
}

impl KeyInput {
    /// The secret to check and seal (`user:password` for Basic), or what is wrong with it.
    pub fn check(self, provider: &Provider) -> Result<SecretString, String> {
        let username = self.username.filter(|u| !u.is_empty());
        if provider.key_placement != KeyPlacement::Basic {
            if username.is_some() {
                return Err(format!(
                    "{} takes an API key, not a user name",
                    provider.display_name
                ));
            }
            let key = self.secret.expose_secret().trim();
            let clean = !key.is_empty()
                && key.len() <= MAX_SECRET_LEN
                && !key.chars().any(|c| c.is_whitespace() || c.is_control());
            return match clean {
                true => Ok(SecretString::from(key.to_string())),
                false => Err("enter the API key exactly as the provider shows it".into()),
            };
        }
        let labels = &provider.basic_labels;
        let Some(username) = username else {
            return Err(format!("enter the {}", labels.username_label));
        };
        if username.len() > MAX_USERNAME_LEN
            || username.contains(':')
            || username.chars().any(char::is_control)
        {
            return Err(format!(
                "the {} must be one line without ':', at most {MAX_USERNAME_LEN} characters",
                labels.username_label
            ));
        }
        let password = self.secret.expose_secret();
        if password.is_empty() {
            return Err(format!("enter the {}", labels.password_label));
        }
        if password.len() > MAX_SECRET_LEN || password.chars().any(char::is_control) {
            return Err(format!(
                "the {} must be one line, at most {MAX_SECRET_LEN} characters",
                labels.password_label
            ));
        }
        Ok(join_basic(&username, password))
    }
}
