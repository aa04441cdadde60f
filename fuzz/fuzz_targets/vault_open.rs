//! Opening a sealed secret: arbitrary text never opens (and never panics); only what
//! this key sealed for this place does.
#![no_main]
use connecthub::config::EncryptionKey;
use connecthub::vault::{Binding, Vault};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fuzz_target!(|sealed: &str| {
    let key = EncryptionKey::parse(KEY).unwrap();
    let vault = Vault::new(&key, None);
    let binding = Binding {
        table: "credentials",
        row: "r1",
        field: "access_token",
    };
    assert!(vault.open(sealed, &binding).is_err(), "{sealed:?} opened");
});
