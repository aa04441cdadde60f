//! `POST /webhooks/{provider}` as it lands: any body and signature headers are either
//! verified or refused, never a panic; a body signed with the secret always verifies, and
//! the account lookup reads any JSON without panicking.
#![no_main]
use connecthub::provider_webhooks::{account_id, signature::Scheme};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &[u8] = b"fuzz-webhook-secret";

fn sign(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

fuzz_target!(|input: (&str, &str, &[u8])| {
    let (signature, timestamp, body) = input;
    let now = 1_800_000_000;
    for (provider, scheme) in [("klaviyo", Scheme::Klaviyo), ("kustomer", Scheme::Kustomer)] {
        // Whatever headers arrive.
        let header = |name: &str| match name {
            Scheme::KLAVIYO_TIMESTAMP => Some(timestamp),
            _ => Some(signature),
        };
        let _ = scheme.verify(SECRET, body, header, now);
        // The provider's own signature over the same body.
        let stamp = now.to_string();
        let good = match scheme {
            Scheme::Klaviyo => sign(&[body, stamp.as_bytes()]),
            Scheme::Kustomer => sign(&[body]),
        };
        let header = |name: &str| match name {
            Scheme::KLAVIYO_TIMESTAMP => Some(stamp.as_str()),
            _ => Some(good.as_str()),
        };
        assert!(scheme.verify(SECRET, body, header, now).is_ok(), "{body:?}");
        if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(body) {
            let _ = account_id(provider, &payload);
        }
    }
});
