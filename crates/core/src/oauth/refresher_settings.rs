//! How hard the background refresher works (`REFRESH_CONCURRENCY`), read with the rest of
//! the configuration; kept apart from the refresher so the configuration does not import
//! the refresher's own dependencies.

use crate::env::{ConfigError, Source};

/// Clients claimed per slot of concurrency: enough that a claim is rare next to the
/// refreshes it feeds, few enough that the last of a batch starts well within its lease.
const BATCH_PER_SLOT: usize = 8;

/// How hard the refresher works (`REFRESH_CONCURRENCY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Refreshes running at once in this instance.
    pub concurrency: usize,
}

impl Settings {
    pub const DEFAULT_CONCURRENCY: usize = 8;
    pub const MAX_CONCURRENCY: usize = 256;

    pub fn load(source: &dyn Source) -> Result<Self, ConfigError> {
        let concurrency = match source.get("REFRESH_CONCURRENCY") {
            None => Self::DEFAULT_CONCURRENCY,
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=Self::MAX_CONCURRENCY).contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        "REFRESH_CONCURRENCY",
                        "must be a whole number from 1 to 256 (refreshes at once)",
                    )
                })?,
        };
        Ok(Self { concurrency })
    }

    /// Clients claimed at once.
    pub fn batch(&self) -> usize {
        self.concurrency * BATCH_PER_SLOT
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: Self::DEFAULT_CONCURRENCY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;
    use std::collections::HashMap;

    fn load(value: Option<&str>) -> Result<Settings, String> {
        let vars: HashMap<String, String> = value
            .map(|v| ("REFRESH_CONCURRENCY".to_string(), v.to_string()))
            .into_iter()
            .collect();
        Settings::load(&vars).map_err(|e| e.to_string())
    }

    #[test]
    fn concurrency_defaults_to_eight_and_sets_the_batch() {
        let settings = load(None).unwrap();
        assert_eq!(settings.concurrency, 8);
        assert_eq!(settings.batch(), 64);
        assert_eq!(load(Some("256")).unwrap().concurrency, 256);
        assert_eq!(load(Some(" 1 ")).unwrap().batch(), 8);
    }

    #[test]
    fn concurrency_out_of_range_names_the_variable() {
        for bad in ["0", "257", "-1", "eight", ""] {
            let error = load(Some(bad)).unwrap_err();
            assert!(error.contains("REFRESH_CONCURRENCY"), "{bad}: {error}");
        }
    }
}
