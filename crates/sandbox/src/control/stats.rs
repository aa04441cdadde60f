//! What the sandbox counts, for tests that check which calls were made.

use serde::Serialize;

#[derive(Default, Clone, Serialize)]
pub struct TokenCalls {
    pub authorization_code: u64,
    pub refresh_token: u64,
    pub client_credentials: u64,
    /// Token calls that did not end in a usable token (refused, faulted or throttled).
    pub failed: u64,
    pub total: u64,
}

/// Counters since start or the last reset. Each token call counts under its grant type
/// whatever its outcome, and also under `failed` when it failed.
#[derive(Default, Clone, Serialize)]
pub struct Stats {
    pub token_calls: TokenCalls,
    pub revocations: u64,
    pub api_calls: u64,
    pub rate_limited: u64,
    /// Calls (OAuth and API) per Kustomer org, by the subdomain in their URL.
    pub org_calls: std::collections::BTreeMap<String, u64>,
}

impl Stats {
    pub fn count_token_call(&mut self, grant_type: Option<&str>) {
        let calls = &mut self.token_calls;
        calls.total += 1;
        match grant_type {
            Some("authorization_code") => calls.authorization_code += 1,
            Some("refresh_token") => calls.refresh_token += 1,
            Some("client_credentials") => calls.client_credentials += 1,
            _ => {}
        }
    }
}
