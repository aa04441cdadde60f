//! The proxy's path and query (`/api/v1/proxy/{client}/{path}?{query}`): whatever the
//! caller sends, the URL called is under the provider's API base.
#![no_main]
use connecthub::providers::{Endpoints, Registry};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

fuzz_target!(|input: &str| {
    let (tail, query) = input.split_once('?').unwrap_or((input, ""));
    // The built-ins at their real hosts and at the sandbox of a hub with a path prefix.
    static REGISTRIES: OnceLock<Vec<Registry>> = OnceLock::new();
    let registries = REGISTRIES.get_or_init(|| {
        let env: HashMap<String, String> = HashMap::new();
        let sandbox = Endpoints::Sandbox {
            base: "https://hub.example/base".into(),
        };
        [Endpoints::Real, sandbox]
            .iter()
            .map(|endpoints| Registry::load(&env, "https://hub.example", endpoints).unwrap())
            .collect()
    });
    for provider in registries.iter().flat_map(Registry::enabled) {
        if let Ok(url) = connecthub::proxy::target_url(provider, tail, query) {
            let base = url::Url::parse(&provider.api_base_url).unwrap();
            assert_eq!(url.scheme(), base.scheme(), "{input:?}");
            assert_eq!(url.host_str(), base.host_str(), "{input:?}");
            assert_eq!(
                url.port_or_known_default(),
                base.port_or_known_default(),
                "{input:?}"
            );
            let prefix = format!("{}/", provider.api_base_url.trim_end_matches('/'));
            assert!(url.as_str().starts_with(&prefix), "{input:?} -> {url}");
        }
    }
});
