//! What a provider sends back to the callback, and the words for what went wrong with it.

use super::states::StateProblem;

/// Longest value accepted in any callback parameter.
pub const MAX_PARAM_LEN: usize = 2048;

/// The RFC 6749 §4.1.2.1 error codes, with what they mean to a person.
const PROVIDER_ERRORS: [(&str, &str); 7] = [
    ("access_denied", "access was denied on the consent page"),
    ("invalid_request", "the authorization request was invalid"),
    (
        "unauthorized_client",
        "this app is not allowed to ask for authorization",
    ),
    (
        "unsupported_response_type",
        "the provider does not support this kind of request",
    ),
    ("invalid_scope", "the requested permissions were refused"),
    ("server_error", "the provider had an internal error"),
    (
        "temporarily_unavailable",
        "the provider is temporarily unavailable",
    ),
];

/// What the provider sent back to the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
    /// Any other parameter (QuickBooks' `realmId`), for `callback.<param>` captures.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, String>,
}

/// More parameters than any provider sends.
pub const MAX_EXTRA_PARAMS: usize = 16;
/// Longest name accepted for a parameter beyond OAuth's own.
pub const MAX_EXTRA_NAME_LEN: usize = 64;

impl CallbackParams {
    /// The parameters that were sent, as (name, value), to carry them on in a form.
    pub fn fields(&self) -> Vec<(String, String)> {
        [
            ("code", &self.code),
            ("state", &self.state),
            ("error", &self.error),
            ("error_description", &self.error_description),
            ("iss", &self.iss),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name.to_string(), v)))
        .chain(self.extra.clone())
        .collect()
    }

    pub fn oversized(&self) -> bool {
        [
            &self.code,
            &self.state,
            &self.error,
            &self.error_description,
            &self.iss,
        ]
        .into_iter()
        .flatten()
        .chain(self.extra.values())
        .any(|v| v.len() > MAX_PARAM_LEN)
            || self.extra.len() > MAX_EXTRA_PARAMS
            || self.extra.keys().any(|k| k.len() > MAX_EXTRA_NAME_LEN)
    }
}

/// The RFC 6749 error code in words; unknown codes get a general sentence.
pub fn provider_error_meaning(code: &str) -> &'static str {
    PROVIDER_ERRORS
        .iter()
        .find(|(known, _)| *known == code)
        .map_or("the provider reported an unknown error", |(_, meaning)| {
            meaning
        })
}

pub fn problem_text(problem: StateProblem) -> &'static str {
    match problem {
        StateProblem::Oversized => "the provider's answer was too large",
        StateProblem::Missing => "the answer had no state; start again",
        StateProblem::Unknown => "the authorization is unknown; start again",
        StateProblem::AlreadyUsed => "this authorization was already used; start again",
        StateProblem::Expired => "the authorization expired after 10 minutes; start again",
        StateProblem::NotTheCallers => {
            "the authorization was started in another session; start again"
        }
    }
}
