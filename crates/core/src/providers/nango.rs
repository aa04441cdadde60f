//! Providers from a file in Nango's `providers.yaml` format (`PROVIDERS_FILE=….yaml`), for
//! teams moving from Nango. Each OAUTH2, OAUTH2_CC, API_KEY and BASIC entry is translated
//! into a `[[provider]]` table of our own format and checked by `file::parse_table`, so
//! both formats mean the same. An entry that needs something connecthub does not do is
//! skipped with one warning line naming the entry and the reason (logged once logging is up:
//! `Registry::skipped`); the rest still load.

use super::file::{self, Loaded};
use crate::env::{ConfigError, Source};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use toml::{Table, Value};

/// Top-level keys whose meaning connecthub cannot honour. Keys for Nango's own machinery
/// (categories, docs, scripts, pagination and retry hints, webhooks) are ignored instead.
const UNSUPPORTED_KEYS: [&str; 12] = [
    "authorization_url_replacements",
    "authorization_url_fragment",
    "authorization_url_skip_encode",
    "token_url_skip_encode",
    "authorization_code_param_in_callback",
    "require_client_certificate",
    "expires_in_unit",
    "installation",
    "client_registration",
    "credentials_verification_script",
    "assertion_option",
    "integration_config",
];

const VARIABLE: &str = "PROVIDERS_FILE";

pub(super) fn parse(
    text: &str,
    source: &dyn Source,
    public_url: &str,
) -> Result<Loaded, ConfigError> {
    let entries: BTreeMap<String, Json> = serde_saphyr::from_str(text).map_err(|e| {
        let first_line = e.to_string().lines().next().unwrap_or_default().to_string();
        ConfigError::new(
            VARIABLE,
            format!("is not a valid Nango providers.yaml: {first_line}"),
        )
    })?;
    let mut providers = Vec::new();
    let mut skipped = Vec::new();
    for name in entries.keys() {
        let loaded = resolve(name, &entries)
            .and_then(|entry| translate(name, &entry))
            .and_then(|table| file::parse_table(table, source, public_url).map_err(short));
        match loaded {
            Ok(provider) => providers.push(provider),
            Err(reason) => skipped.push(format!(
                "PROVIDERS_FILE: Nango entry {name} skipped: {reason}"
            )),
        }
    }
    Ok(Loaded { providers, skipped })
}

/// The parser's complaint without its list of the keys it knows, which would drown the line.
fn short(error: ConfigError) -> String {
    let reason = error.expected;
    reason
        .split(", expected")
        .next()
        .unwrap_or(&reason)
        .to_string()
}

/// The entry with its `alias` applied: the aliased entry's keys, overridden by its own
/// (Nango merges the top level only).
fn resolve(name: &str, entries: &BTreeMap<String, Json>) -> Result<Map<String, Json>, String> {
    if super::builtin::NAMES.contains(&name) {
        return Err("connecthub has it built in".into());
    }
    let Some(Json::Object(entry)) = entries.get(name) else {
        return Err("it is not a mapping".into());
    };
    let Some(alias) = entry.get("alias") else {
        return Ok(entry.clone());
    };
    let Some(Json::Object(base)) = alias.as_str().and_then(|a| entries.get(a)) else {
        return Err(format!("its alias {alias} is not an entry of the file"));
    };
    let mut merged = base.clone();
    merged.extend(entry.clone());
    merged.remove("alias");
    Ok(merged)
}

/// The `[[provider]]` table for one entry, or what it needs that connecthub lacks.
fn translate(name: &str, entry: &Map<String, Json>) -> Result<Table, String> {
    let mode = text(entry, "auth_mode").ok_or("it has no auth_mode")?;
    let auth_type = match mode {
        "OAUTH2" => "oauth2",
        "OAUTH2_CC" => "client_credentials",
        "API_KEY" => "api_key",
        "BASIC" => "basic",
        other => return Err(format!("auth_mode {other} is not supported")),
    };
    if let Some(key) = UNSUPPORTED_KEYS.iter().find(|k| entry.contains_key(**k)) {
        return Err(format!("{key} is not supported"));
    }
    let mut table = Table::new();
    table.insert("name".into(), name.into());
    let display_name = text(entry, "display_name").unwrap_or(name);
    table.insert("display_name".into(), display_name.into());
    table.insert("auth_type".into(), auth_type.into());

    let no_base = "it has no proxy.base_url";
    let proxy = entry
        .get("proxy")
        .and_then(Json::as_object)
        .ok_or(no_base)?;
    let base_url = text(proxy, "base_url").ok_or(no_base)?;
    let mut urls = vec![("api_base_url", base_url)];
    if let Some(url) = text(entry, "authorization_url") {
        urls.push(("authorize_url", url));
    }
    match entry.get("token_url") {
        Some(Json::String(url)) => urls.push(("token_url", url)),
        Some(_) => return Err("a token_url per auth mode is not supported".into()),
        None => {}
    }
    if let Some(refresh_url) = text(entry, "refresh_url") {
        if entry.get("token_url").and_then(Json::as_str) != Some(refresh_url) {
            return Err("a refresh_url other than token_url is not supported".into());
        }
    }
    let mut settings = Settings::new(entry);
    for (key, url) in urls {
        table.insert(key.into(), settings.url(url)?.into());
    }
    settings.write(&mut table);
    if matches!(mode, "OAUTH2" | "OAUTH2_CC") {
        oauth(entry, mode, &mut table)?;
    }
    proxy_credentials(proxy, mode, &mut table)?;
    verification(proxy, mode, &mut table)?;
    basic_credentials(entry, mode, &mut table);
    Ok(table)
}

/// Scopes, PKCE, client authentication and the token request's quirks.
fn oauth(entry: &Map<String, Json>, mode: &str, table: &mut Table) -> Result<(), String> {
    if let Some(separator) = text(entry, "scope_separator") {
        table.insert("scope_separator".into(), separator.into());
    }
    if let Some(scopes) = entry.get("default_scopes") {
        table.insert("scopes".into(), strings(scopes, "default_scopes")?.into());
    }
    let pkce = entry.get("disable_pkce").and_then(Json::as_bool) != Some(true);
    table.insert("pkce".into(), pkce.into());
    table.insert("client_auth".into(), client_auth(entry)?.into());
    match text(entry, "body_format") {
        None | Some("form") => {}
        Some("json") => {
            table.insert("token_request_format".into(), "json".into());
        }
        Some(other) => return Err(format!("body_format {other} is not supported")),
    }
    if let Some(path) = text(entry, "alternate_access_token_response_path") {
        table.insert("token_path".into(), path.into());
    }
    authorize_params(entry, table)?;
    token_params(entry, mode, table)
}

fn text<'a>(object: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Json::as_str)
}

fn strings(value: &Json, key: &str) -> Result<Vec<String>, String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| plain(v).ok_or_else(|| format!("{key} holds a {v}")))
        .collect()
}

/// A scalar as text (`true`, `1` and `'1'` alike); a placeholder is refused.
fn plain(value: &Json) -> Option<String> {
    let text = match value {
        Json::String(s) => s.clone(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.contains("${")).then_some(text)
}

fn client_auth(entry: &Map<String, Json>) -> Result<&'static str, String> {
    match text(entry, "token_request_auth_method") {
        Some("basic") => return Ok("basic"),
        Some(other) => {
            return Err(format!(
                "token_request_auth_method {other} is not supported"
            ))
        }
        None => {}
    }
    // Nango's default is the body (`authorization_method: body`).
    match text(entry, "authorization_method") {
        Some("header") => Ok("basic"),
        None | Some("body") => Ok("post"),
        Some(other) => Err(format!("authorization_method {other} is not supported")),
    }
}

fn authorize_params(entry: &Map<String, Json>, table: &mut Table) -> Result<(), String> {
    let mut params = Table::new();
    for (key, value) in entry
        .get("authorization_params")
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
    {
        let value = plain(value).ok_or_else(|| format!("authorization_params.{key}"))?;
        match key.as_str() {
            "response_type" if value == "code" => {}
            "response_type" => return Err(format!("response_type {value} is not supported")),
            own if super::OWN_AUTHORIZE_PARAMS.contains(&own) => {
                return Err(format!("authorization_params may not set {own}"))
            }
            _ => {
                params.insert(key.clone(), value.into());
            }
        }
    }
    if !params.is_empty() {
        table.insert("authorize_params".into(), params.into());
    }
    Ok(())
}

/// `token_params` (less the grant type connecthub sends itself) go to the code exchange
/// and every refresh alike, so `refresh_params` may only repeat them.
fn token_params(entry: &Map<String, Json>, mode: &str, table: &mut Table) -> Result<(), String> {
    let own_grant = if mode == "OAUTH2_CC" {
        "client_credentials"
    } else {
        "authorization_code"
    };
    let extra = |key: &str, grant: &str| -> Result<Table, String> {
        let mut params = Table::new();
        for (name, value) in entry
            .get(key)
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let value = plain(value).ok_or_else(|| format!("{key}.{name}"))?;
            if name == "grant_type" {
                if value != grant {
                    return Err(format!("{key} grant_type {value} is not supported"));
                }
            } else {
                params.insert(name.clone(), value.into());
            }
        }
        Ok(params)
    };
    let params = extra("token_params", own_grant)?;
    let refresh = extra("refresh_params", "refresh_token")?;
    if !refresh.is_empty() && refresh != params {
        return Err("refresh_params other than token_params are not supported".into());
    }
    if !params.is_empty() {
        table.insert("token_params".into(), params.into());
    }
    Ok(())
}

/// Fixed headers, and where the token or the API key goes when it is not
/// `Authorization: Bearer …`.
fn proxy_credentials(
    proxy: &Map<String, Json>,
    mode: &str,
    table: &mut Table,
) -> Result<(), String> {
    let mut headers = Table::new();
    let mut api_key = Table::new();
    let mut access_token = Table::new();
    let mut key_placed = false;
    for (name, value) in proxy
        .get("headers")
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
    {
        let value = value
            .as_str()
            .ok_or_else(|| format!("proxy.headers.{name}"))?;
        let bearer = name.eq_ignore_ascii_case("authorization");
        if value.contains("${apiKey}") && mode == "API_KEY" {
            key_placed = true;
            if !(bearer && value == "Bearer ${apiKey}") {
                let template = value.replace("${apiKey}", "${key}");
                api_key.insert("header".into(), name.as_str().into());
                api_key.insert("template".into(), template.into());
            }
        } else if value.contains("${accessToken}") {
            if !(bearer && value == "Bearer ${accessToken}") {
                let template = value.replace("${accessToken}", "${token}");
                access_token.insert("header".into(), name.as_str().into());
                access_token.insert("template".into(), template.into());
            }
        } else if value.contains("${") {
            return Err(format!(
                "the placeholders in header {name} are not supported"
            ));
        } else {
            headers.insert(name.clone(), value.into());
        }
    }
    for (name, value) in proxy
        .get("query")
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
    {
        if mode == "API_KEY" && value.as_str() == Some("${apiKey}") {
            key_placed = true;
            api_key.insert("query_param".into(), name.as_str().into());
        } else {
            return Err(format!(
                "query parameter {name} on every call is not supported"
            ));
        }
    }
    if mode == "API_KEY" && !key_placed {
        return Err("it does not say where the API key goes".into());
    }
    if api_key.contains_key("header") && api_key.contains_key("query_param") {
        return Err("an API key in both a header and the query is not supported".into());
    }
    for (key, placed) in [("api_key", api_key), ("access_token", access_token)] {
        if !placed.is_empty() {
            table.insert(key.into(), placed.into());
        }
    }
    if !headers.is_empty() {
        table.insert("headers".into(), headers.into());
    }
    Ok(())
}

/// API keys and passwords are checked with a GET before anything is stored.
fn verification(proxy: &Map<String, Json>, mode: &str, table: &mut Table) -> Result<(), String> {
    if !matches!(mode, "API_KEY" | "BASIC") {
        return Ok(());
    }
    let check = proxy.get("verification").and_then(Json::as_object);
    let Some(check) = check else {
        return Err("it has no proxy.verification endpoint to check credentials with".into());
    };
    if text(check, "method").is_some_and(|m| !m.eq_ignore_ascii_case("GET")) {
        return Err("a verification other than GET is not supported".into());
    }
    if check.contains_key("base_url_override") {
        return Err("verification.base_url_override is not supported".into());
    }
    let path = check
        .get("endpoints")
        .and_then(Json::as_array)
        .and_then(|e| e.first())
        .and_then(Json::as_str)
        .filter(|p| p.starts_with('/') && !p.contains("${"))
        .ok_or("verification.endpoints holds no plain path")?;
    table.insert("api_key_check_path".into(), path.into());
    Ok(())
}

/// The labels of the two fields; a hidden fixed password (Freshdesk's "X": the key is the
/// user name) is named in the password's label, since the user types it.
fn basic_credentials(entry: &Map<String, Json>, mode: &str, table: &mut Table) {
    if mode != "BASIC" {
        return;
    }
    let credentials = entry.get("credentials").and_then(Json::as_object);
    let field = |name: &str| {
        credentials
            .and_then(|c| c.get(name))
            .and_then(Json::as_object)
    };
    let mut labels = Table::new();
    if let Some(label) = field("username").and_then(|u| text(u, "title")) {
        labels.insert("username_label".into(), label.into());
    }
    let password = field("password");
    if password.and_then(|p| p.get("hidden")) == Some(&Json::Bool(true)) {
        let label = match password.and_then(|p| text(p, "default_value")) {
            Some(fixed) => format!("Password (any text, e.g. {fixed}: it is ignored)"),
            None => "Password (any text: it is ignored)".into(),
        };
        labels.insert("password_label".into(), label.into());
    }
    if !labels.is_empty() {
        table.insert("basic".into(), labels.into());
    }
}

/// The entry's `${connectionConfig.x}` values: asked of the user (one host label each), or
/// captured from the token answer or the callback.
struct Settings<'a> {
    declared: Option<&'a Map<String, Json>>,
    from_token: Vec<&'a str>,
    from_callback: Vec<&'a str>,
    asked: BTreeMap<String, Table>,
    captured: BTreeMap<String, String>,
}

impl<'a> Settings<'a> {
    fn new(entry: &'a Map<String, Json>) -> Self {
        let names = |key: &str| -> Vec<&'a str> {
            entry
                .get(key)
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(Json::as_str)
                .collect()
        };
        Self {
            declared: entry.get("connection_config").and_then(Json::as_object),
            from_token: names("token_response_metadata"),
            from_callback: names("redirect_uri_metadata"),
            asked: Default::default(),
            captured: Default::default(),
        }
    }

    /// The URL with `${connectionConfig.x}` as `${connection.x}`, each one checked.
    fn url(&mut self, url: &str) -> Result<String, String> {
        if url.contains("||") {
            return Err("URL alternatives (`||`) are not supported".into());
        }
        let mut ours = url.to_string();
        for name in url
            .split("${connectionConfig.")
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        {
            let placeholder = format!("${{connectionConfig.{name}}}");
            let label = url.contains(&format!("//{placeholder}."));
            self.use_setting(name, label)?;
            ours = ours.replace(&placeholder, &format!("${{connection.{name}}}"));
        }
        if ours.replace("${connection.", "").contains("${") {
            return Err(format!("the placeholders in {url} are not supported"));
        }
        Ok(ours)
    }

    fn use_setting(&mut self, name: &str, host_label: bool) -> Result<(), String> {
        let declared = self
            .declared
            .and_then(|d| d.get(name))
            .and_then(Json::as_object);
        let automated = declared.and_then(|d| d.get("automated")) == Some(&Json::Bool(true));
        if self.from_token.contains(&name) || self.from_callback.contains(&name) {
            if !host_label {
                // connecthub holds a captured URL to domains the provider names; Nango's
                // file names none.
                return Err(format!("the captured URL {name} is not supported"));
            }
            let source = if self.from_token.contains(&name) {
                "token"
            } else {
                "callback"
            };
            self.captured
                .insert(name.into(), format!("{source}.{name}"));
            return Ok(());
        }
        let (Some(declared), false) = (declared, automated) else {
            return Err(format!(
                "connection setting {name} is filled by a Nango script"
            ));
        };
        if !host_label {
            return Err(format!(
                "connection setting {name} outside one host label is not supported"
            ));
        }
        let mut setting = Table::new();
        setting.insert("name".into(), name.into());
        setting.insert("kind".into(), "subdomain".into());
        let label = text(declared, "title")
            .filter(|t| !t.is_empty())
            .unwrap_or(name);
        setting.insert("label".into(), label.into());
        setting.insert(
            "help".into(),
            text(declared, "description").unwrap_or_default().into(),
        );
        if let Some(pattern) = text(declared, "pattern") {
            setting.insert("pattern".into(), pattern.into());
        }
        self.asked.insert(name.into(), setting);
        Ok(())
    }

    fn write(self, table: &mut Table) {
        let asked: Vec<Value> = self.asked.into_values().map(Value::from).collect();
        if !asked.is_empty() {
            table.insert("connection_config".into(), asked.into());
        }
        let captured: Table = self
            .captured
            .into_iter()
            .map(|(name, source)| (name, source.into()))
            .collect();
        if !captured.is_empty() {
            table.insert("capture".into(), captured.into());
        }
    }
}

#[cfg(test)]
mod tests;
