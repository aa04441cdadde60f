//! A redirect target that can only point inside this site.

/// A path such as `/admin/clients?page=2`; never `//host`, a scheme, or a backslash trick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPath(String);

impl LocalPath {
    pub fn parse(raw: &str) -> Option<Self> {
        let safe = raw.starts_with('/')
            && !raw.starts_with("//")
            && !raw.starts_with("/\\")
            && raw.len() <= 2048
            && !raw.chars().any(|c| c.is_control() || c == '\\');
        safe.then(|| Self(raw.to_string()))
    }

    /// Parses `raw`, falling back to `default` for anything unsafe or missing.
    pub fn or(raw: Option<&str>, default: &str) -> Self {
        raw.and_then(Self::parse)
            .unwrap_or_else(|| Self(default.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::LocalPath;

    #[test]
    fn only_local_paths_pass() {
        assert!(LocalPath::parse("/admin/clients?x=1").is_some());
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "",
            "/a\nb",
            "/a\\b",
        ] {
            assert!(LocalPath::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            LocalPath::or(Some("//evil"), "/admin/clients").as_str(),
            "/admin/clients"
        );
    }
}
