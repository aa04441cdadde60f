//! The query a provider sends to the OAuth callback: any bytes parse into the callback's
//! fields or fail cleanly, and the size check holds: no value over MAX_PARAM_LEN, no more
//! than MAX_EXTRA_PARAMS other parameters, none with a name over MAX_EXTRA_NAME_LEN.
#![no_main]
use connecthub::oauth::flow::{
    CallbackParams, MAX_EXTRA_NAME_LEN, MAX_EXTRA_PARAMS, MAX_PARAM_LEN,
};
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
    .chain(params.extra.values())
    .map(String::len)
    .max()
    .unwrap_or(0);
    let too_many = params.extra.len() > MAX_EXTRA_PARAMS
        || params
            .extra
            .keys()
            .any(|name| name.len() > MAX_EXTRA_NAME_LEN);
    assert_eq!(params.oversized(), longest > MAX_PARAM_LEN || too_many);
});
