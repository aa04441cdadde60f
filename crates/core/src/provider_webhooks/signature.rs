//! How each provider signs its webhooks, from its public documentation (see the README,
//! "Incoming provider webhooks"):
//! - Klaviyo (system webhooks): `Klaviyo-Signature` = hex HMAC-SHA256 of the raw body
//!   followed by the `Klaviyo-Timestamp` header value, keyed with the webhook's secret.
//! - Kustomer: `X-Kustomer-Signature` = hex HMAC-SHA256 of the raw body, keyed with the
//!   outbound webhook's secret.
//!
//! Comparison is constant-time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A Klaviyo timestamp (Unix seconds) further than this from now is refused (replays).
pub const TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the signature does not match")]
    Mismatch,
    #[error("the timestamp is too old or in the future")]
    Stale,
}

/// The signing scheme of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Klaviyo,
    Kustomer,
}

impl Scheme {
    pub fn of(provider: &str) -> Option<Self> {
        match provider {
            "klaviyo" => Some(Self::Klaviyo),
            "kustomer" => Some(Self::Kustomer),
            _ => None,
        }
    }

    pub const KLAVIYO_SIGNATURE: &'static str = "klaviyo-signature";
    pub const KLAVIYO_TIMESTAMP: &'static str = "klaviyo-timestamp";
    pub const KUSTOMER_SIGNATURE: &'static str = "x-kustomer-signature";

    /// Checks the request; `header` looks a header up by its lowercase name.
    pub fn verify<'a>(
        self,
        secret: &[u8],
        body: &[u8],
        header: impl Fn(&str) -> Option<&'a str>,
        now: i64,
    ) -> Result<(), SignatureError> {
        match self {
            Scheme::Klaviyo => {
                let signature = header(Self::KLAVIYO_SIGNATURE)
                    .ok_or(SignatureError::Missing("Klaviyo-Signature"))?;
                let timestamp = header(Self::KLAVIYO_TIMESTAMP)
                    .ok_or(SignatureError::Missing("Klaviyo-Timestamp"))?;
                if let Ok(at) = timestamp.trim().parse::<i64>() {
                    if (now - at).abs() > TOLERANCE_SECS {
                        return Err(SignatureError::Stale);
                    }
                }
                check(secret, &[body, timestamp.as_bytes()], signature)
            }
            Scheme::Kustomer => {
                let signature = header(Self::KUSTOMER_SIGNATURE)
                    .ok_or(SignatureError::Missing("X-Kustomer-Signature"))?;
                check(secret, &[body], signature)
            }
        }
    }
}

fn check(secret: &[u8], parts: &[&[u8]], signature: &str) -> Result<(), SignatureError> {
    let expected = hex::decode(signature.trim()).map_err(|_| SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn klaviyo_signs_body_then_timestamp_and_kustomer_the_body() {
        let (secret, body, now) = (
            b"s3cret-s3cret-s3cret".as_slice(),
            br#"{"a":1}"#.as_slice(),
            1_800_000_000,
        );
        let ts = now.to_string();
        let good = sign(secret, &[body, ts.as_bytes()]);
        let headers = [
            (Scheme::KLAVIYO_SIGNATURE, good.as_str()),
            (Scheme::KLAVIYO_TIMESTAMP, ts.as_str()),
        ];
        let find = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        assert_eq!(Scheme::Klaviyo.verify(secret, body, find, now), Ok(()));
        assert_eq!(
            Scheme::Klaviyo.verify(secret, b"{}", find, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            Scheme::Klaviyo.verify(secret, body, find, now + 600),
            Err(SignatureError::Stale)
        );
        let kustomer = sign(secret, &[body]);
        let find = |name: &str| (name == Scheme::KUSTOMER_SIGNATURE).then_some(kustomer.as_str());
        assert_eq!(Scheme::Kustomer.verify(secret, body, find, now), Ok(()));
        assert_eq!(
            Scheme::Kustomer.verify(b"other", body, find, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            Scheme::Kustomer.verify(secret, body, |_| None, now),
            Err(SignatureError::Missing("X-Kustomer-Signature"))
        );
    }
}
