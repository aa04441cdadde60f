//! Provider definitions shipped as data: one TOML file each under
//! `crates/core/providers/catalogue/`, embedded at build time, in the `PROVIDERS_FILE`
//! format. None is active: an admin adds one (its text goes through `file::parse`, with
//! credentials from the admin page or the environment).

use serde::Deserialize;
use std::sync::LazyLock;

/// `("hubspot", <text of hubspot.toml>)`: the name is the file name by construction.
macro_rules! entry {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../providers/catalogue/", $name, ".toml")),
        )
    };
}

/// Sorted by name.
const FILES: [(&str, &str); 37] = [
    entry!("airtable"),
    entry!("asana"),
    entry!("box"),
    entry!("calendly"),
    entry!("clickup"),
    entry!("confluence"),
    entry!("dropbox"),
    entry!("freshdesk"),
    entry!("front"),
    entry!("github"),
    entry!("gmail"),
    entry!("gong"),
    entry!("google-analytics"),
    entry!("google-calendar"),
    entry!("google-drive"),
    entry!("google-workspace-admin"),
    entry!("gorgias"),
    entry!("hubspot"),
    entry!("intercom"),
    entry!("jira"),
    entry!("linear"),
    entry!("mailchimp"),
    entry!("microsoft-graph"),
    entry!("monday"),
    entry!("notion"),
    entry!("pipedrive"),
    entry!("quickbooks"),
    entry!("salesforce"),
    entry!("sendgrid"),
    entry!("shopify"),
    entry!("slack"),
    entry!("stripe"),
    entry!("typeform"),
    entry!("webflow"),
    entry!("xero"),
    entry!("zendesk"),
    entry!("zoom"),
];

/// What the catalogue shows of one definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    pub display_name: String,
    /// `oauth2`, `client_credentials`, `api_key` or `basic`.
    pub auth_type: String,
    /// The provider's documentation the definition was written from (`# docs: …`).
    pub doc_url: String,
}

/// The few keys the listing needs; every other key is left to `file::parse`.
#[derive(Deserialize)]
struct Listing {
    provider: Vec<Heading>,
}

#[derive(Deserialize)]
struct Heading {
    display_name: String,
    #[serde(default = "oauth2")]
    auth_type: String,
}

fn oauth2() -> String {
    "oauth2".into()
}

static ENTRIES: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    FILES
        .iter()
        .filter_map(|&(name, text)| match heading(name, text) {
            Ok(entry) => Some(entry),
            Err(problem) => {
                // Cannot happen with the files the tests check; never worth a panic.
                tracing::error!("catalogue entry {name} is left out: {problem}");
                None
            }
        })
        .collect()
});

fn heading(name: &'static str, text: &str) -> Result<Entry, String> {
    let listing: Listing = toml::from_str(text).map_err(|e| e.to_string())?;
    let [heading] = <[Heading; 1]>::try_from(listing.provider)
        .map_err(|_| "a catalogue file holds exactly one [[provider]]".to_string())?;
    let doc_url = text
        .lines()
        .find_map(|line| line.strip_prefix("# docs: "))
        .ok_or("no `# docs: <url>` line")?
        .trim()
        .to_string();
    Ok(Entry {
        name,
        display_name: heading.display_name,
        auth_type: heading.auth_type,
        doc_url,
    })
}

/// Every catalogue entry, by name.
pub fn list() -> &'static [Entry] {
    &ENTRIES
}

/// One entry's TOML text, as `file::parse` (and the admin page's "add provider") takes it.
pub fn text(name: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests;
