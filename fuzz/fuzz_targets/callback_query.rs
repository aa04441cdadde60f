//! The query a provider sends to the OAuth callback: any bytes parse into the callback's
//! fields or fail cleanly, and the length check holds.
#![no_main]
use connecthub::oauth::flow::CallbackParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &[u8]| {
    let Ok(params) = serde_urlencoded::from_bytes::<CallbackParams>(query) else {
        return;
    };
    let longest = [
        &params.code,
        &params.state,
        &params.error,
        &params.error_description,
        &params.iss,
    ]
    .into_iter()
    .flatten()
    .map(String::len)
    .max()
    .unwrap_or(0);
    assert_eq!(
        params.oversized(),
        longest > connecthub::oauth::flow::MAX_PARAM_LEN
    );
});
