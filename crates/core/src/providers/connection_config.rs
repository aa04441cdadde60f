//! Per-connection settings (`[[provider.connection_config]]`): the values each connection
//! of a provider needs in its URLs (`${connection.subdomain}`), asked for before the
//! consent page or captured from the provider's answer (`[provider.capture]`). Every value
//! is checked here before it is stored or put in a URL, so no value can send a token to
//! another host.

use serde::Deserialize;
use std::collections::BTreeMap;

/// How a value is written in a provider's URLs: `${connection.<name>}`.
const PLACEHOLDER_START: &str = "${connection.";

/// Longest text value (a QuickBooks realm id has 19 digits).
const MAX_TEXT_LEN: usize = 128;
/// Longest captured URL.
const MAX_URL_LEN: usize = 255;

/// What a value is, which decides how strictly it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingKind {
    /// One DNS label: 1–63 of `a-z0-9-`, no leading or trailing `-` (lowercased first).
    Subdomain,
    /// 1–128 of `A-Za-z0-9_-`: safe anywhere in a URL (a shop, an account or realm id).
    Text,
    /// An https origin whose host ends with one of the provider's `capture_hosts`.
    Url,
}

/// Where a captured value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    /// A field of the token response (Salesforce's `instance_url`).
    Token(String),
    /// A parameter of the callback query (QuickBooks' `realmId`).
    Callback(String),
    /// A dotted path in the profile answer (Mailchimp's metadata `dc`), read before the
    /// other URLs are filled: the profile URL itself cannot use it.
    Profile(String),
}

impl CaptureSource {
    /// Reads `token.<field>`, `callback.<param>` or `profile.<dotted.path>`.
    fn parse(raw: &str) -> Result<Self, String> {
        let (source, field) = raw.split_once('.').unwrap_or((raw, ""));
        let plain = |part: &str| {
            !part.is_empty()
                && part.len() <= 64
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let valid_field = match source {
            "profile" => field.len() <= 128 && field.split('.').all(plain),
            _ => plain(field),
        };
        match source {
            _ if !valid_field => Err(format!(
                "capture {raw:?} must be token.<field>, callback.<param> or profile.<path>"
            )),
            "token" => Ok(Self::Token(field.to_string())),
            "callback" => Ok(Self::Callback(field.to_string())),
            "profile" => Ok(Self::Profile(field.to_string())),
            _ => Err(format!(
                "capture {raw:?} must start with token., callback. or profile."
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Token(field) => format!("token response field {field}"),
            Self::Callback(param) => format!("callback parameter {param}"),
            Self::Profile(path) => format!("profile field {path}"),
        }
    }
}

/// What the provider answered so far, for `SettingDefs::capture`: a source that is `None`
/// has not been read yet, and its captures wait for a later call.
#[derive(Default)]
pub struct Answers<'a> {
    pub token: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub callback: Option<&'a BTreeMap<String, String>>,
    pub profile: Option<&'a serde_json::Value>,
}

impl Answers<'_> {
    /// The value at `source`; `None` inside when the answer lacks it, `None` outside when
    /// that answer is not part of this call.
    fn read(&self, source: &CaptureSource) -> Option<Option<String>> {
        let scalar = |value: Option<&serde_json::Value>| match value {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match source {
            CaptureSource::Token(field) => self.token.map(|t| scalar(t.get(field))),
            CaptureSource::Callback(param) => self.callback.map(|c| c.get(param).cloned()),
            CaptureSource::Profile(path) => self.profile.map(|p| {
                let found = path.split('.').try_fold(p, |at, part| match part.parse() {
                    Ok(index) => at.get::<usize>(index),
                    Err(_) => at.get(part),
                });
                scalar(found)
            }),
        }
    }
}

/// One declared setting.
#[derive(Debug, Clone)]
pub struct SettingDef {
    pub name: String,
    pub label: String,
    pub help: String,
    pub kind: SettingKind,
    /// A regex the value must match in full, besides its kind's rules.
    pattern: Option<regex_lite::Regex>,
    /// The deployment-wide value (`KUSTOMER_SUBDOMAIN`): pre-filled, and used when a
    /// connection has none.
    pub default: Option<String>,
    /// Set when the value comes from the provider instead of the person connecting.
    pub captured_from: Option<CaptureSource>,
}

impl SettingDef {
    pub fn new(name: &str, label: &str, help: &str, kind: SettingKind) -> Self {
        Self {
            name: name.into(),
            label: label.into(),
            help: help.into(),
            kind,
            pattern: None,
            default: None,
            captured_from: None,
        }
    }

    /// The longest value the form field takes.
    pub fn max_len(&self) -> usize {
        match self.kind {
            SettingKind::Subdomain => 63,
            SettingKind::Text => MAX_TEXT_LEN,
            SettingKind::Url => MAX_URL_LEN,
        }
    }
}

/// `[[provider.connection_config]]` as written in a provider file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingEntry {
    name: String,
    label: String,
    #[serde(default)]
    help: String,
    #[serde(default = "default_kind")]
    kind: SettingKind,
    pattern: Option<String>,
}

fn default_kind() -> SettingKind {
    SettingKind::Text
}

/// A provider's settings and the hosts its captured URLs may point at.
#[derive(Debug, Clone, Default)]
pub struct SettingDefs {
    pub fields: Vec<SettingDef>,
    /// Domains a captured URL's host must end with (`salesforce.com`).
    pub capture_hosts: Vec<String>,
}

/// A provider file's declarations, checked: names, patterns, captures and hosts.
pub fn build(
    entries: Vec<SettingEntry>,
    capture: BTreeMap<String, String>,
    capture_hosts: Vec<String>,
) -> Result<SettingDefs, String> {
    let mut fields: Vec<SettingDef> = Vec::new();
    for entry in entries {
        check_name(&entry.name)?;
        if fields.iter().any(|f| f.name == entry.name) {
            return Err(format!(
                "connection_config {:?} is declared twice",
                entry.name
            ));
        }
        let pattern = entry
            .pattern
            .map(|p| {
                regex_lite::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| format!("connection_config {:?}: bad pattern: {e}", entry.name))
            })
            .transpose()?;
        fields.push(SettingDef {
            pattern,
            ..SettingDef::new(&entry.name, &entry.label, &entry.help, entry.kind)
        });
    }
    for (name, raw) in capture {
        let source = CaptureSource::parse(&raw)?;
        match fields.iter_mut().find(|f| f.name == name) {
            Some(field) => field.captured_from = Some(source),
            None => {
                check_name(&name)?;
                let kind = if name.ends_with("_url") {
                    SettingKind::Url
                } else {
                    SettingKind::Text
                };
                let mut field = SettingDef::new(&name, &name, "", kind);
                field.captured_from = Some(source);
                fields.push(field);
            }
        }
    }
    for host in &capture_hosts {
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| check_label(label).is_ok());
        if !valid || !host.contains('.') {
            return Err(format!(
                "capture_hosts entry {host:?} must be a domain like example.com"
            ));
        }
    }
    let defs = SettingDefs {
        fields,
        capture_hosts,
    };
    if defs.fields.iter().any(|f| f.kind == SettingKind::Url) && defs.capture_hosts.is_empty() {
        return Err("a url setting needs capture_hosts (the domains it may point at)".into());
    }
    if defs
        .fields
        .iter()
        .any(|f| f.kind == SettingKind::Url && f.captured_from.is_none())
    {
        return Err("url settings can only be captured, never typed in".into());
    }
    Ok(defs)
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid || name == "redirect_path" || name == "api_key" || name == "csrf_token" {
        return Err(format!(
            "connection_config name {name:?} must be 1-40 of a-z, 0-9, _ (starting with a letter), and not a form field of ours"
        ));
    }
    Ok(())
}

/// The values of one connection, by setting name (sorted, so the stored JSON text is the
/// same for the same values: the text is part of a connection's identity).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionValues(BTreeMap<String, String>);

impl ConnectionValues {
    /// Reads the stored JSON (`clients.connection_config`); anything unreadable is empty.
    pub fn from_json(text: &str) -> Self {
        Self(serde_json::from_str(text).unwrap_or_default())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Values as a form or JSON body gives them, by name, before they are checked.
pub type Entered = BTreeMap<String, String>;

/// Why a value was refused, in words for the person connecting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{label}: {problem}")]
pub struct SettingError {
    pub label: String,
    pub problem: String,
}

impl SettingDefs {
    /// The settings a person enters (not those the provider sends back).
    pub fn asked(&self) -> impl Iterator<Item = &SettingDef> {
        self.fields.iter().filter(|f| f.captured_from.is_none())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The entered values, each checked; an empty or missing one takes the default.
    /// `given` looks a setting's value up by name (form fields, JSON).
    pub fn parse_entered<'a>(
        &self,
        given: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<ConnectionValues, SettingError> {
        let mut values = BTreeMap::new();
        for def in self.asked() {
            let raw = given(&def.name).filter(|v| !v.is_empty());
            let Some(raw) = raw.or(def.default.as_deref()) else {
                return Err(refusal(def, "enter a value".into()));
            };
            values.insert(def.name.clone(), self.check(def, raw)?);
        }
        Ok(ConnectionValues(values))
    }

    /// `parse_entered` on form fields or JSON members by name.
    pub fn parse_map(&self, given: &Entered) -> Result<ConnectionValues, SettingError> {
        self.parse_entered(|name| given.get(name).map(String::as_str))
    }

    /// Adds the values captured from `answers`; a value that is missing or fails its
    /// checks refuses the connection.
    pub fn capture(
        &self,
        values: &mut ConnectionValues,
        answers: &Answers,
    ) -> Result<(), SettingError> {
        for def in &self.fields {
            let Some(source) = &def.captured_from else {
                continue;
            };
            let Some(found) = answers.read(source) else {
                continue;
            };
            let raw = found.ok_or_else(|| {
                refusal(
                    def,
                    format!("the provider's answer had no {}", source.describe()),
                )
            })?;
            let value = self.check(def, &raw).map_err(|e| SettingError {
                problem: format!("the provider sent a value that is refused ({})", e.problem),
                ..e
            })?;
            values.0.insert(def.name.clone(), value);
        }
        Ok(())
    }

    /// One value, checked by its kind and pattern; returns it normalised.
    pub fn check(&self, def: &SettingDef, raw: &str) -> Result<String, SettingError> {
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(refusal(
                def,
                "must not contain spaces, line breaks or control characters".into(),
            ));
        }
        let value = match def.kind {
            SettingKind::Subdomain => {
                let lowered = raw.to_ascii_lowercase();
                check_label(&lowered).map_err(|p| refusal(def, p))?;
                lowered
            }
            SettingKind::Text => {
                let valid = raw.len() <= MAX_TEXT_LEN
                    && raw
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(refusal(
                        def,
                        format!("use 1-{MAX_TEXT_LEN} letters, digits, _ or - only"),
                    ));
                }
                raw.to_string()
            }
            SettingKind::Url => {
                check_captured_url(raw, &self.capture_hosts).map_err(|p| refusal(def, p))?
            }
        };
        if let Some(pattern) = &def.pattern {
            if !pattern.is_match(&value) {
                return Err(refusal(def, "does not have the expected form".into()));
            }
        }
        Ok(value)
    }
}

fn refusal(def: &SettingDef, problem: String) -> SettingError {
    SettingError {
        label: def.label.clone(),
        problem,
    }
}

/// One DNS label (RFC 1035, RFC 5891 §4.2.3.1): never a host, a path, an IP or a URL.
/// Expects lowercase.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 63 {
        return Err("must be 1-63 characters".into());
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("use only letters a-z, digits and - (one label: no dots, slashes, @, % or other characters)".into());
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("must not start or end with -".into());
    }
    if label.get(2..4) == Some("--") {
        // Reserved for punycode: an xn-- label must decode.
        let decodes = label.starts_with("xn--")
            && url::Url::parse(&format!("https://{label}.invalid/"))
                .is_ok_and(|u| u.host_str() == Some(&format!("{label}.invalid")));
        if !decodes {
            return Err(
                "-- in the third and fourth place is only allowed in a valid xn-- (punycode) label"
                    .into(),
            );
        }
    }
    Ok(())
}

/// A captured URL: https, no user, port, path, query or fragment, and a host ending with
/// one of `hosts` on a label boundary. Returns the origin (`https://host`).
fn check_captured_url(raw: &str, hosts: &[String]) -> Result<String, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| "is not a URL".to_string())?;
    let host = match url.host() {
        Some(url::Host::Domain(host)) => host.to_string(),
        Some(_) => return Err("must name a host, not an IP address".into()),
        None => return Err("has no host".into()),
    };
    if url.scheme() != "https" {
        return Err("must be an https URL".into());
    }
    let bare = url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none();
    if !bare {
        return Err("must be just https://host (no user, port, path, query or fragment)".into());
    }
    let owned = hosts
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")));
    if !owned {
        return Err(format!(
            "points at {host}, which is not a host of this provider (allowed: {})",
            hosts.join(", ")
        ));
    }
    Ok(format!("https://{host}"))
}

/// Fills every `${connection.<name>}` in `template` from `values` (or a setting's
/// default); `Err` names the first setting left unfilled, so that URL is never called.
pub fn fill(
    template: &str,
    values: &ConnectionValues,
    defs: &SettingDefs,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find(PLACEHOLDER_START) {
        out.push_str(&rest[..start]);
        let after = &rest[start + PLACEHOLDER_START.len()..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {template:?}"))?;
        let name = &after[..end];
        let default = defs
            .fields
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.default.as_deref());
        let value = values
            .get(name)
            .or(default)
            .ok_or_else(|| name.to_string())?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The setting names a template uses.
pub fn placeholders(template: &str) -> Vec<&str> {
    template
        .match_indices(PLACEHOLDER_START)
        .filter_map(|(i, _)| {
            let after = &template[i + PLACEHOLDER_START.len()..];
            after.find('}').map(|end| &after[..end])
        })
        .collect()
}

/// A template with sample values, to check its shape when the provider is loaded: a
/// placeholder that starts the URL stands for a captured origin.
pub fn sample(template: &str) -> String {
    let mut out = template.to_string();
    for name in placeholders(template) {
        let placeholder = format!("{PLACEHOLDER_START}{name}}}");
        let value = if out.starts_with(&placeholder) {
            "https://sample.invalid"
        } else {
            "sample"
        };
        out = out.replace(&placeholder, value);
    }
    out
}

#[cfg(test)]
mod tests;
