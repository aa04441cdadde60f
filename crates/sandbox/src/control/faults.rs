//! The faults a test arms at the sandbox, and how each call takes one.

use serde::Deserialize;

/// How the token endpoint misbehaves while a token fault is armed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenFault {
    /// Answer this status with an OAuth error body.
    Status {
        status: u16,
        #[serde(default)]
        error: Option<String>,
    },
    /// Answer 200 with a body that is not JSON.
    InvalidJson,
    /// Answer 200 with a JSON body lacking `access_token`.
    MissingAccessToken,
    /// Answer 200 with this `token_type` instead of Bearer.
    TokenType { value: String },
    /// Wait this long, then answer normally.
    Delay { ms: u64 },
}

/// What an API call must answer instead of its normal result.
#[derive(Debug, PartialEq)]
pub enum ApiFault {
    RateLimited { retry_after_secs: u64 },
    Status(u16),
}

/// A fault armed for the next `remaining` calls.
pub(super) struct Armed<T> {
    pub(super) remaining: u32,
    pub(super) fault: T,
}

pub(super) struct RateLimitFault {
    pub(super) remaining: u32,
    pub(super) retry_after_secs: u64,
    pub(super) token_calls: bool,
}

#[derive(Default)]
pub struct Faults {
    pub(super) token: Option<Armed<TokenFault>>,
    pub(super) api: Option<Armed<u16>>,
    pub(super) rate_limit: Option<RateLimitFault>,
    pub(super) authorize_error: Option<String>,
    pub(super) storm: super::storm::Storm,
    /// Added to every token response until reset (Salesforce's `instance_url`).
    pub token_fields: serde_json::Map<String, serde_json::Value>,
    /// Answer 429 once a rate window is spent, as the real providers do.
    pub(super) enforce_budgets: bool,
}

/// Takes one use of an armed fault, disarming it after its last use.
fn take<T: Clone>(slot: &mut Option<Armed<T>>) -> Option<T> {
    let armed = slot.as_mut()?;
    let fault = armed.fault.clone();
    armed.remaining = armed.remaining.saturating_sub(1);
    if armed.remaining == 0 {
        *slot = None;
    }
    Some(fault)
}

impl Faults {
    pub fn enforces_budgets(&self) -> bool {
        self.enforce_budgets
    }

    /// A 429 for a token call, when the rate-limit fault covers token calls.
    pub fn take_token_rate_limit(&mut self) -> Option<u64> {
        self.take_rate_limit(true)
    }

    pub fn take_token_fault(&mut self) -> Option<TokenFault> {
        take(&mut self.token)
    }

    /// Rate limiting comes first: a throttled call never reaches the failing backend.
    pub fn take_api_fault(&mut self) -> Option<ApiFault> {
        match self.take_rate_limit(false) {
            Some(retry_after_secs) => Some(ApiFault::RateLimited { retry_after_secs }),
            None => take(&mut self.api).map(ApiFault::Status),
        }
    }

    pub fn take_authorize_error(&mut self) -> Option<String> {
        self.authorize_error.take()
    }

    /// Uses one throttled call; token calls are throttled only when the fault says so.
    fn take_rate_limit(&mut self, token_call: bool) -> Option<u64> {
        let limit = self.rate_limit.as_mut()?;
        if token_call && !limit.token_calls {
            return None;
        }
        let retry_after_secs = limit.retry_after_secs;
        limit.remaining = limit.remaining.saturating_sub(1);
        if limit.remaining == 0 {
            self.rate_limit = None;
        }
        Some(retry_after_secs)
    }
}
