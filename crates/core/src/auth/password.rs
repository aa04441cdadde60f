//! Password hashing with argon2id (OWASP parameters: m=19456 KiB, t=2, p=1).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::distributions::{Alphanumeric, DistString};
use secrecy::{ExposeSecret, SecretString};
use std::sync::OnceLock;

/// The shortest password `user add` and the users page accept.
pub const MIN_LENGTH: usize = 12;

pub fn hash(password: &SecretString) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// Checks a password; a malformed stored hash counts as a mismatch.
pub fn verify(password: &SecretString, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as a real check, for unknown accounts, so timing does not
/// reveal which emails exist.
pub fn verify_against_dummy(password: &SecretString) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash(&SecretString::from(generate())).expect("argon2 with default parameters works")
    });
    let _ = verify(password, dummy);
}

/// A random 20-character password for new accounts.
pub fn generate() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let password = SecretString::from("correct horse battery");
        let stored = hash(&password).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(&password, &stored));
        assert!(!verify(&SecretString::from("wrong"), &stored));
        assert!(!verify(&password, "not a hash"));
    }
}
