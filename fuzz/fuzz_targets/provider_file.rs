//! A provider file (`PROVIDERS_FILE`): any text loads into checked providers or fails with
//! a one-line message.
#![no_main]
use connecthub::providers::{connection_config, file};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|text: &str| {
    let env: HashMap<String, String> = HashMap::new();
    match file::parse(text, &env, "https://hub.example") {
        Ok(providers) => {
            for provider in providers {
                for url in [&provider.token_url, &provider.api_base_url] {
                    // `${connection.x}` may start a URL (a captured origin).
                    let url = connection_config::sample(url);
                    assert!(
                        url.starts_with("https://") || url.starts_with("http://"),
                        "{url}"
                    );
                }
            }
        }
        Err(error) => assert!(!error.to_string().contains('\n'), "{error}"),
    }
});
