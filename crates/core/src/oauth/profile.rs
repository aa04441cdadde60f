//! Reads who a token (or API key) belongs to, so the client record can be created from it.
//! The calls it makes are metered like any other and recorded in usage once the client
//! exists (they count against the account's rate limit too).

use super::credential::Credential;
use crate::provider_http::{CallError, RetryPolicy};
use crate::providers::{ProfileSource, Provider};
use crate::usage::Call;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Instant;

/// At most this many pages are read when counting Klaviyo lists or segments.
const MAX_PAGES: usize = 50;

#[derive(Debug, Clone)]
pub struct AccountProfile {
    pub account_id: String,
    pub display_name: String,
    /// Everything shown on the client's page, as stored in `clients.profile`.
    pub details: Value,
    /// The provider calls made to read it; client and user ids are filled in when the
    /// client is saved.
    pub calls: Vec<Call>,
}

/// Collects the provider calls made before there is a client to record them for.
#[derive(Default)]
struct Meter(Mutex<Vec<Call>>);

impl Meter {
    fn record(&self, provider: &Provider, endpoint: &str, status: u16, started: Instant) {
        let call = Call::ended(&provider.name, endpoint, status, status == 429, started);
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(call);
    }

    fn into_calls(self) -> Vec<Call> {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

fn api_url(provider: &Provider, path: &str) -> String {
    format!("{}{}", provider.api_base_url.trim_end_matches('/'), path)
}

/// One credential's reads of its provider's API, retried on transient failures and
/// metered: the calls come with the profile.
pub struct Reader<'a> {
    http: &'a reqwest::Client,
    retry: &'a RetryPolicy,
    provider: &'a Provider,
    credential: Credential<'a>,
    meter: Meter,
}

impl<'a> Reader<'a> {
    pub fn new(
        http: &'a reqwest::Client,
        retry: &'a RetryPolicy,
        provider: &'a Provider,
        token: &'a SecretString,
    ) -> Self {
        Self {
            http,
            retry,
            provider,
            credential: Credential(&provider.token_placement, token),
            meter: Meter::default(),
        }
    }

    /// Reads with a key the user gave, placed as the provider says (not yet stored).
    pub fn for_key(
        http: &'a reqwest::Client,
        retry: &'a RetryPolicy,
        provider: &'a Provider,
        key: &'a SecretString,
    ) -> Self {
        Self {
            credential: Credential(&provider.key_placement, key),
            ..Self::new(http, retry, provider, key)
        }
    }

    pub fn provider(&self) -> &'a Provider {
        self.provider
    }

    /// GET `path` under the provider's API base.
    pub async fn get(&self, path: &str) -> Result<Value, CallError> {
        self.get_url(&api_url(self.provider, path)).await
    }

    /// GET a URL inside the provider's API base (a provider's own `links.next`); a URL
    /// outside it is refused, so a provider's link never sends our token elsewhere.
    async fn get_url(&self, url: &str) -> Result<Value, CallError> {
        let base = self.provider.api_base_url.trim_end_matches('/');
        let Some(path) = url.strip_prefix(base) else {
            return Err(CallError::InvalidResponse(
                "the provider pointed outside its API".into(),
            ));
        };
        self.get_json(url, path).await
    }

    /// The GET with the provider's fixed headers, retried, each attempt metered under
    /// `endpoint` (a path, normalised for usage).
    async fn get_json(&self, url: &str, endpoint: &str) -> Result<Value, CallError> {
        self.retry.run(|| self.get_once(url, endpoint)).await
    }

    async fn get_once(&self, url: &str, endpoint: &str) -> Result<Value, CallError> {
        let provider = self.provider;
        let url = url::Url::parse(url)
            .map_err(|_| CallError::InvalidResponse("the API URL is not valid".into()))?;
        let mut request = self
            .credential
            .apply(self.http.get(self.credential.url(&url)))
            .header("accept", "application/json");
        for (name, value) in &provider.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let started = Instant::now();
        let body = match request.send().await {
            Ok(response) => {
                self.meter
                    .record(provider, endpoint, response.status().as_u16(), started);
                crate::provider_http::read(response).await?
            }
            Err(e) => {
                self.meter.record(provider, endpoint, 502, started);
                return Err(CallError::from_transport(&e));
            }
        };
        serde_json::from_slice(&body)
            .map_err(|_| CallError::InvalidResponse("the API answer is not valid JSON".into()))
    }

    /// The profile of the account behind the credential, with every call made so far.
    pub async fn fetch(self) -> Result<AccountProfile, CallError> {
        let mut profile = self.read_profile().await?;
        profile.calls = self.meter.into_calls();
        Ok(profile)
    }

    async fn read_profile(&self) -> Result<AccountProfile, CallError> {
        let provider = self.provider;
        match &provider.profile {
            ProfileSource::Klaviyo => klaviyo(self).await,
            ProfileSource::Kustomer => kustomer(self).await,
            ProfileSource::Url {
                url,
                account_id_field,
                account_name_field,
            } => {
                // Configuration, not provider input, so it may sit outside the API base.
                let endpoint = url
                    .strip_prefix(provider.api_base_url.trim_end_matches('/'))
                    .filter(|path| path.starts_with('/'))
                    .unwrap_or("profile");
                let body = self.get_json(url, endpoint).await?;
                let id = text_at(&body, account_id_field).ok_or_else(|| {
                    CallError::InvalidResponse(format!("the profile has no {account_id_field}"))
                })?;
                let name = text_at(&body, account_name_field).unwrap_or_else(|| id.clone());
                Ok(AccountProfile {
                    account_id: id,
                    display_name: name,
                    details: body,
                    calls: Vec::new(),
                })
            }
            ProfileSource::None => {
                let app_id = provider
                    .app
                    .as_ref()
                    .map(|a| a.client_id.clone())
                    .unwrap_or_default();
                Ok(AccountProfile {
                    account_id: app_id.clone(),
                    display_name: format!("{} ({app_id})", provider.display_name),
                    details: json!({}),
                    calls: Vec::new(),
                })
            }
        }
    }
}

/// Reads a dotted path such as `data.0.id`; numbers index arrays.
pub fn text_at(value: &Value, path: &str) -> Option<String> {
    let mut current = value;
    for part in path.split('.') {
        current = match part.parse::<usize>() {
            Ok(index) => current.get(index)?,
            Err(_) => current.get(part)?,
        };
    }
    match current {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn klaviyo(reader: &Reader<'_>) -> Result<AccountProfile, CallError> {
    let body = reader.get("/api/accounts").await?;
    let mut profile = klaviyo_account(&body)?;
    let lists_count = count_pages(reader, "/api/lists").await?;
    let segments_count = count_pages(reader, "/api/segments").await?;
    profile.details["lists_count"] = json!(lists_count);
    profile.details["segments_count"] = json!(segments_count);
    Ok(profile)
}

/// The profile of the account in an answer of `GET /api/accounts`, without the list and
/// segment counts (they take calls of their own). Also used by the typed operations.
pub fn klaviyo_account(body: &Value) -> Result<AccountProfile, CallError> {
    let account = body
        .pointer("/data/0")
        .ok_or_else(|| CallError::InvalidResponse("Klaviyo returned no account".into()))?;
    let id = text_at(account, "id")
        .ok_or_else(|| CallError::InvalidResponse("the Klaviyo account has no id".into()))?;
    let attributes = account.get("attributes").cloned().unwrap_or(json!({}));
    let contact = attributes
        .get("contact_information")
        .cloned()
        .unwrap_or(json!({}));
    let name = text_at(&contact, "organization_name").unwrap_or_else(|| id.clone());
    let contact_email = text_at(&contact, "default_sender_email");
    let email_domain = contact_email
        .as_deref()
        .and_then(|e| e.split_once('@'))
        .map(|(_, d)| d.to_string());
    let details = json!({
        "account_id": id,
        "account_name": name,
        "email_domain": email_domain,
        "company_id": text_at(&attributes, "public_api_key"),
        "contact_email": contact_email,
        "test_account": attributes.get("test_account").and_then(Value::as_bool).unwrap_or(false),
        "timezone": text_at(&attributes, "timezone"),
        "preferred_currency": text_at(&attributes, "preferred_currency"),
        "locale": text_at(&attributes, "locale"),
        "industry": text_at(&attributes, "industry"),
        "website_url": text_at(&contact, "website_url"),
    });
    Ok(AccountProfile {
        account_id: id,
        display_name: name,
        details,
        calls: Vec::new(),
    })
}

/// Klaviyo has no total count: follow `links.next` and count the items.
async fn count_pages(reader: &Reader<'_>, path: &str) -> Result<u64, CallError> {
    let mut url = Some(api_url(reader.provider, path));
    let mut count = 0u64;
    for _ in 0..MAX_PAGES {
        let Some(current) = url.take() else { break };
        let page = reader.get_url(&current).await?;
        count += page
            .get("data")
            .and_then(Value::as_array)
            .map_or(0, |items| items.len() as u64);
        url = page
            .pointer("/links/next")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(count)
}

async fn kustomer(reader: &Reader<'_>) -> Result<AccountProfile, CallError> {
    let org = reader.get("/v1/orgs/current").await?;
    let id = text_at(&org, "data.id")
        .ok_or_else(|| CallError::InvalidResponse("Kustomer returned no organisation".into()))?;
    let org_name = text_at(&org, "data.attributes.name");
    let display = text_at(&org, "data.attributes.displayName")
        .or_else(|| org_name.clone())
        .unwrap_or_else(|| id.clone());
    let teams = reader.get("/v1/teams").await?;
    let teams: Vec<Value> = teams
        .get("data")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|t| json!({"id": text_at(t, "id"), "name": text_at(t, "attributes.name")}))
                .collect()
        })
        .unwrap_or_default();
    let details = json!({
        "org_id": id,
        "org_name": org_name,
        "display_name": display,
        "domain": text_at(&org, "data.attributes.domain"),
        "teams": teams,
    });
    Ok(AccountProfile {
        account_id: id,
        display_name: display,
        details,
        calls: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::text_at;
    use serde_json::json;

    #[test]
    fn dotted_paths_read_objects_and_arrays() {
        let value = json!({"data": [{"id": "a1", "n": 7}], "name": ""});
        assert_eq!(text_at(&value, "data.0.id").as_deref(), Some("a1"));
        assert_eq!(text_at(&value, "data.0.n").as_deref(), Some("7"));
        assert_eq!(text_at(&value, "name"), None);
        assert_eq!(text_at(&value, "data.1.id"), None);
    }
}
