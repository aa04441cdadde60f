//! Seals every secret (tokens, API keys, PKCE verifiers) with XChaCha20-Poly1305.
//!
//! A sealed value reads `ch1.<key id>.<base64url(nonce ‖ ciphertext)>`. The associated
//! data names the row and field the value belongs to, so a ciphertext copied to another
//! row or column fails to open. During a key rotation the previous key still opens old
//! values; new values are always sealed under the current key.

use crate::config::{Config, EncryptionKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orion::hazardous::aead::xchacha20poly1305;
use orion::hazardous::stream::chacha20::SecretKey;
use orion::hazardous::stream::xchacha20::{Nonce, XCHACHA_NONCESIZE};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const FORMAT: &str = "ch1";
const TAG_SIZE: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed under key {0}, which is neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS")]
    UnknownKey(String),
    #[error("sealed value does not open (wrong key, or it belongs to another row or field)")]
    Tampered,
    #[error("encryption failed")]
    Seal,
}

/// Names the place a secret belongs to: `table`, `row id`, `field`.
pub struct Binding<'a> {
    pub table: &'a str,
    pub row: &'a str,
    pub field: &'a str,
}

impl Binding<'_> {
    fn associated_data(&self) -> Vec<u8> {
        format!("connecthub|{}|{}|{}", self.table, self.row, self.field).into_bytes()
    }
}

struct VaultKey {
    id: String,
    key: SecretKey,
}

impl VaultKey {
    fn new(key: &EncryptionKey) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"connecthub key id");
        hasher.update(key.bytes());
        Self {
            id: hex::encode(&hasher.finalize()[..4]),
            key: SecretKey::from_slice(key.bytes())
                .expect("a 32-byte key is a valid XChaCha20 key"),
        }
    }
}

pub struct Vault {
    current: VaultKey,
    previous: Option<VaultKey>,
}

impl Vault {
    pub fn new(current: &EncryptionKey, previous: Option<&EncryptionKey>) -> Self {
        Self {
            current: VaultKey::new(current),
            previous: previous.map(VaultKey::new),
        }
    }

    pub fn from_config(config: &Config) -> Self {
        Self::new(
            &config.encryption_key,
            config.encryption_key_previous.as_ref(),
        )
    }

    /// The id of the key new values are sealed under.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    pub fn seal(&self, secret: &SecretString, binding: &Binding) -> Result<String, VaultError> {
        let plaintext = secret.expose_secret().as_bytes();
        let nonce = Nonce::generate();
        let mut out = vec![0u8; plaintext.len() + TAG_SIZE];
        xchacha20poly1305::seal(
            &self.current.key,
            &nonce,
            plaintext,
            Some(&binding.associated_data()),
            &mut out,
        )
        .map_err(|_| VaultError::Seal)?;
        let mut blob = nonce.as_ref().to_vec();
        blob.extend_from_slice(&out);
        Ok(format!(
            "{FORMAT}.{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    pub fn open(&self, sealed: &str, binding: &Binding) -> Result<SecretString, VaultError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(FORMAT), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(VaultError::Malformed);
        };
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_string()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| VaultError::Malformed)?;
        if blob.len() < XCHACHA_NONCESIZE + TAG_SIZE {
            return Err(VaultError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(XCHACHA_NONCESIZE);
        let nonce = Nonce::from_slice(nonce).map_err(|_| VaultError::Malformed)?;
        let mut out = vec![0u8; ciphertext.len() - TAG_SIZE];
        xchacha20poly1305::open(
            &key.key,
            &nonce,
            ciphertext,
            Some(&binding.associated_data()),
            &mut out,
        )
        .map_err(|_| VaultError::Tampered)?;
        String::from_utf8(out)
            .map(SecretString::from)
            .map_err(|_| VaultError::Malformed)
    }

    /// Re-seals a value under the current key (key rotation); values already under it are
    /// returned unchanged.
    pub fn reseal(&self, sealed: &str, binding: &Binding) -> Result<String, VaultError> {
        if sealed.starts_with(&format!("{FORMAT}.{}.", self.current.id)) {
            return Ok(sealed.to_string());
        }
        self.seal(&self.open(sealed, binding)?, binding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(row: &str) -> Binding<'_> {
        Binding {
            table: "credentials",
            row,
            field: "access_token",
        }
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_plaintext() {
        let vault = Vault::new(&EncryptionKey::generate(), None);
        let sealed = vault
            .seal(&SecretString::from("tok_123"), &binding("a"))
            .unwrap();
        assert!(!sealed.contains("tok_123"));
        assert!(sealed.starts_with(&format!("ch1.{}.", vault.current_key_id())));
        assert_eq!(
            vault.open(&sealed, &binding("a")).unwrap().expose_secret(),
            "tok_123"
        );
        let again = vault
            .seal(&SecretString::from("tok_123"), &binding("a"))
            .unwrap();
        assert_ne!(sealed, again, "fresh nonce per seal");
    }

    #[test]
    fn another_row_or_field_cannot_open_it() {
        let vault = Vault::new(&EncryptionKey::generate(), None);
        let sealed = vault
            .seal(&SecretString::from("tok"), &binding("a"))
            .unwrap();
        assert_eq!(
            vault.open(&sealed, &binding("b")).unwrap_err(),
            VaultError::Tampered
        );
        let other_field = Binding {
            table: "credentials",
            row: "a",
            field: "refresh_token",
        };
        assert_eq!(
            vault.open(&sealed, &other_field).unwrap_err(),
            VaultError::Tampered
        );
        let mut flipped = sealed.clone();
        flipped.pop();
        flipped.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(vault.open(&flipped, &binding("a")).is_err());
        assert_eq!(
            vault.open("garbage", &binding("a")).unwrap_err(),
            VaultError::Malformed
        );
    }

    #[test]
    fn rotation_opens_old_values_and_reseals_under_the_new_key() {
        let (old, new) = (EncryptionKey::generate(), EncryptionKey::generate());
        let before = Vault::new(&old, None);
        let sealed = before
            .seal(&SecretString::from("tok"), &binding("a"))
            .unwrap();
        let during = Vault::new(&new, Some(&old));
        assert_eq!(
            during.open(&sealed, &binding("a")).unwrap().expose_secret(),
            "tok"
        );
        let resealed = during.reseal(&sealed, &binding("a")).unwrap();
        assert!(resealed.starts_with(&format!("ch1.{}.", during.current_key_id())));
        let after = Vault::new(&new, None);
        assert_eq!(
            after
                .open(&resealed, &binding("a"))
                .unwrap()
                .expose_secret(),
            "tok"
        );
        assert!(matches!(
            after.open(&sealed, &binding("a")),
            Err(VaultError::UnknownKey(_))
        ));
    }
}
