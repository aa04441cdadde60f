//! Where settings come from (the process environment, or a map in tests) and the one-line
//! error for a bad one: shared by `config` and the provider registry it loads.

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
    /// Every setting, copied: providers added at run time read theirs from it later.
    fn snapshot(&self) -> Snapshot;
}

/// Settings copied at start; its Debug output never shows a value (some are secrets).
#[derive(Clone, Default)]
pub struct Snapshot(std::collections::HashMap<String, String>);

impl Source for Snapshot {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn snapshot(&self) -> Snapshot {
        self.clone()
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({} settings)", self.0.len())
    }
}

pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot(
            std::env::vars()
                .filter(|(_, v)| !v.trim().is_empty())
                .collect(),
        )
    }
}

impl<S: std::hash::BuildHasher> Source for std::collections::HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot(self.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
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

/// A secret setting, from `NAME` or from the file that `NAME_FILE` names (how container
/// orchestrators hand out secrets). The file's trailing line break is dropped. Setting both
/// is refused, since either could be the stale one; errors name the variable and the path,
/// never the content.
pub fn secret(source: &dyn Source, name: &str) -> Result<Option<String>, ConfigError> {
    let file_variable = format!("{name}_FILE");
    let direct = source.get(name);
    let Some(path) = source.get(&file_variable) else {
        return Ok(direct);
    };
    if direct.is_some() {
        return Err(ConfigError::new(
            name,
            format!("and {file_variable} are both set: set only one of them"),
        ));
    }
    let content = std::fs::read(&path).map_err(|e| {
        ConfigError::new(
            &file_variable,
            format!("names a file that cannot be read: {path} ({})", e.kind()),
        )
    })?;
    let content = String::from_utf8(content).map_err(|_| {
        ConfigError::new(
            &file_variable,
            format!("names a file that is not UTF-8 text: {path}"),
        )
    })?;
    let value = content.trim_end_matches(['\n', '\r']);
    if value.trim().is_empty() {
        return Err(ConfigError::new(
            &file_variable,
            format!("names an empty file: {path}"),
        ));
    }
    Ok(Some(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_secret_file_is_read_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret value\r\n\n").unwrap();
        let source = vars(&[("TOKEN_FILE", path.to_str().unwrap())]);
        assert_eq!(
            secret(&source, "TOKEN").unwrap().as_deref(),
            Some("s3cret value")
        );
        assert_eq!(
            secret(&vars(&[("TOKEN", "direct")]), "TOKEN")
                .unwrap()
                .as_deref(),
            Some("direct")
        );
        assert_eq!(secret(&vars(&[]), "TOKEN").unwrap(), None);
    }

    #[test]
    fn both_set_or_an_unreadable_file_is_a_clear_error_without_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "hunter2").unwrap();
        let shown = path.to_str().unwrap();
        let both = vars(&[("TOKEN", "hunter2"), ("TOKEN_FILE", shown)]);
        let err = secret(&both, "TOKEN").unwrap_err().to_string();
        assert_eq!(
            err,
            "TOKEN and TOKEN_FILE are both set: set only one of them"
        );
        let missing = dir.path().join("absent");
        let source = vars(&[("TOKEN_FILE", missing.to_str().unwrap())]);
        let err = secret(&source, "TOKEN").unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "TOKEN_FILE names a file that cannot be read: {} (entity not found)",
                missing.display()
            )
        );
        std::fs::write(&path, "\n").unwrap();
        let err = secret(&vars(&[("TOKEN_FILE", shown)]), "TOKEN").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("TOKEN_FILE names an empty file: {shown}")
        );
        std::fs::write(&path, [0xff, 0xfe, b'x']).unwrap();
        let err = secret(&vars(&[("TOKEN_FILE", shown)]), "TOKEN").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("TOKEN_FILE names a file that is not UTF-8 text: {shown}")
        );
    }
}
