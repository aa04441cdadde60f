//! Reading `PROVIDERS_FILE`: our TOML format (`file`), or Nango's `providers.yaml` when the
//! name ends in `.yaml`/`.yml` (`nango`).

use super::file::{self, Loaded, VARIABLE};
use super::nango;
use crate::env::{ConfigError, Source};

pub(super) fn load(
    path: &str,
    source: &dyn Source,
    public_url: &str,
) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(VARIABLE, format!("cannot be read ({path}: {e})")))?;
    if path.ends_with(".yaml") || path.ends_with(".yml") {
        return nango::parse(&text, source, public_url);
    }
    Ok(Loaded {
        providers: file::parse(&text, source, public_url)?,
        skipped: Vec::new(),
    })
}
