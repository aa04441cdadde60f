//! The URL the browser returns to after a connect session (redirect mode): the team's
//! success or error URL with `connection_id`, `end_user_id`, `provider`, `status` and `ts`
//! appended, then `signature`: the hex HMAC-SHA256, under the signing secret, of everything
//! between `?` and `&signature=`. No code, state or token is ever part of it.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// What the team's page learns about the outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReturnParams {
    pub connection_id: Option<String>,
    /// The team's own id for the end user.
    pub end_user_id: String,
    pub provider: String,
    /// `success` or `error`.
    pub status: &'static str,
    /// Plain words, for errors.
    pub error: Option<String>,
}

fn mac(secret: &SecretString, payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `base` (an allowed success or error URL) with the outcome and its signature.
pub fn signed_url(base: &str, params: &ReturnParams, secret: &SecretString, ts: i64) -> String {
    let mut url = match url::Url::parse(base) {
        Ok(url) => url,
        Err(_) => return base.to_string(),
    };
    url.set_fragment(None);
    {
        let mut query = url.query_pairs_mut();
        if let Some(id) = &params.connection_id {
            query.append_pair("connection_id", id);
        }
        query
            .append_pair("end_user_id", &params.end_user_id)
            .append_pair("provider", &params.provider)
            .append_pair("status", params.status);
        if let Some(error) = &params.error {
            query.append_pair("error", error);
        }
        query.append_pair("ts", &ts.to_string());
    }
    let payload = url.query().unwrap_or_default().to_string();
    url.query_pairs_mut()
        .append_pair("signature", &mac(secret, &payload));
    url.to_string()
}

/// Whether a returned URL's signature is right (what the team's backend does; used by
/// the tests and documented in the README).
pub fn verify(url: &str, secret: &SecretString) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    let Some((payload, signature)) = query.rsplit_once("&signature=") else {
        return false;
    };
    let expected = mac(secret, payload);
    orion::util::secure_cmp(expected.as_bytes(), signature.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ReturnParams {
        ReturnParams {
            connection_id: Some("c1".into()),
            end_user_id: "42".into(),
            provider: "kustomer".into(),
            status: "success",
            error: None,
        }
    }

    #[test]
    fn a_signed_url_verifies_and_a_tampered_one_does_not() {
        let secret = SecretString::from("s3cret".to_string());
        let url = signed_url(
            "https://app.example/done?x=1",
            &params(),
            &secret,
            1700000000,
        );
        assert!(url.starts_with("https://app.example/done?x=1&connection_id=c1&end_user_id=42"));
        assert!(verify(&url, &secret));
        assert!(!verify(
            &url.replace("end_user_id=42", "end_user_id=43"),
            &secret
        ));
        assert!(!verify(&url, &SecretString::from("other".to_string())));
        assert!(!verify("https://app.example/done", &secret));
    }

    /// The same value Python's hmac and `openssl dgst -sha256 -hmac` give (README).
    #[test]
    fn the_signature_matches_the_readme_recipe() {
        let secret = SecretString::from("s3cret".to_string());
        let url = signed_url("https://app.example/done", &params(), &secret, 1700000000);
        assert!(url.ends_with(
            "?connection_id=c1&end_user_id=42&provider=kustomer&status=success&ts=1700000000\
             &signature=3f5fa2ba8d4c7cc263e0d0f0af0544a9ede2b8b929eee393a07d57495e6aa0ca"
        ));
    }
}
