//! Where settings come from (the process environment, or a map in tests) and the one-line
//! error for a bad one: shared by `config` and the provider registry it loads.

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<S: std::hash::BuildHasher> Source for std::collections::HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// A configuration problem, shown to the operator as one line.
#[derive(Debug, thiserror::Error)]
#[error("{variable} {expected}")]
pub struct ConfigError {
    pub variable: String,
    pub expected: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &str, expected: impl Into<String>) -> Self {
        Self {
            variable: variable.to_string(),
            expected: expected.into(),
        }
    }
}
