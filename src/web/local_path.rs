//! Where a page sends the browser next: a form's or query's `redirect_path`, parsed into a
//! `LocalPath`, with the Clients page as the default.

pub use crate::local_path::LocalPath;

/// A query or form that may say where the browser goes next (`redirect_path`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct RedirectTarget {
    pub redirect_path: Option<String>,
}

impl RedirectTarget {
    /// The requested local path, or the Clients page.
    pub fn path(&self) -> LocalPath {
        LocalPath::or(self.redirect_path.as_deref(), super::HOME)
    }
}
