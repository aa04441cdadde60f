//! What a team's backend asks for in `POST /api/v1/connect-sessions`, read into checked
//! values: an end user id of 1–255 characters, known providers, tags by the UI's rules,
//! success/error URLs and popup origins only on the `CONNECT_ALLOWED_REDIRECTS` list.

use super::end_users::EndUserInfo;
use crate::config::{exact_origin, ConnectPolicy};
use crate::input::{RecordId, SingleLine};
use crate::providers::Registry;
use std::collections::BTreeMap;

pub const END_USER_ID_MAX: usize = 255;

/// The JSON body as sent.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// Required; an Option so that its absence gets a clear message, not serde's.
    #[schema(required = true, nullable = false)]
    pub end_user: Option<EndUserBody>,
    #[serde(default)]
    pub allowed_providers: Vec<String>,
    /// Key → value; each becomes the client tag `key-value` (a-z, 0-9, - and _).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub success_url: Option<String>,
    pub error_url: Option<String>,
    /// Origins the popup may report its result to (`postMessage`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Re-authorise this connection of the same end user (e.g. one in `needs_reauth`).
    pub reconnect_client_id: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndUserBody {
    /// The team's own id for the end user (1–255 characters).
    pub id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// A checked request.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub end_user: EndUserInfo,
    pub allowed_providers: Vec<String>,
    pub tags: Vec<String>,
    pub success_url: Option<String>,
    pub error_url: Option<String>,
    pub allowed_origins: Vec<String>,
    pub reconnect_client_id: Option<String>,
}

/// Why a request was refused: the field and what it needs, for a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        field,
        message: message.into(),
    }
}

fn end_user(body: Option<EndUserBody>) -> Result<EndUserInfo, Refusal> {
    let body = body.ok_or_else(|| refuse("end_user", "end_user with an id is required"))?;
    let id = SingleLine::<END_USER_ID_MAX>::parse(&body.id)
        .map_err(|p| refuse("end_user.id", format!("end_user.id {p}")))?;
    if id.as_str().is_empty() || id.as_str() != body.id {
        return Err(refuse(
            "end_user.id",
            "end_user.id must be 1 to 255 characters without leading or trailing spaces",
        ));
    }
    let email = match body.email.filter(|e| !e.trim().is_empty()) {
        None => None,
        Some(raw) => Some(
            crate::auth::users::Email::parse(&raw)
                .map_err(|_| refuse("end_user.email", "end_user.email is not an email address"))?
                .as_str()
                .to_string(),
        ),
    };
    let display_name = match body.display_name {
        None => None,
        Some(raw) => Some(
            SingleLine::<100>::parse(&raw)
                .map_err(|p| {
                    refuse(
                        "end_user.display_name",
                        format!("end_user.display_name {p}"),
                    )
                })?
                .into_string(),
        )
        .filter(|n| !n.is_empty()),
    };
    Ok(EndUserInfo {
        external_id: id.into_string(),
        email,
        display_name,
    })
}

fn providers(raw: Vec<String>, registry: &Registry) -> Result<Vec<String>, Refusal> {
    let mut names = Vec::new();
    for name in raw {
        let known = registry.get(&name).filter(|p| p.enabled);
        let Some(provider) = known else {
            return Err(refuse(
                "allowed_providers",
                format!(
                    "{:?} is not an enabled provider",
                    name.chars().take(40).collect::<String>()
                ),
            ));
        };
        if !names.contains(&provider.name) {
            names.push(provider.name.clone());
        }
    }
    Ok(names)
}

fn tags(raw: BTreeMap<String, String>) -> Result<Vec<String>, Refusal> {
    let joined: Vec<String> = raw
        .iter()
        .map(|(key, value)| format!("{}-{}", key.trim(), value.trim()))
        .collect();
    let tags = crate::clients::tags::parse_tags(&joined.join(","))
        .map_err(|why| refuse("tags", format!("tags: {why}")))?;
    Ok(tags)
}

/// An allowed success or error URL: absolute http(s) on a listed origin.
fn return_url(
    field: &'static str,
    raw: Option<String>,
    policy: &ConnectPolicy,
) -> Result<Option<String>, Refusal> {
    let Some(raw) = raw.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let url = url::Url::parse(&raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && raw.len() <= 2000)
        .filter(|u| u.username().is_empty() && u.password().is_none())
        .ok_or_else(|| refuse(field, format!("{field} must be an absolute http(s) URL")))?;
    let origin = url.origin().ascii_serialization();
    if !policy.allowed_redirects.contains(&origin) {
        return Err(refuse(
            field,
            format!("{field} is not on CONNECT_ALLOWED_REDIRECTS ({origin} is not listed)"),
        ));
    }
    Ok(Some(url.to_string()))
}

fn origins(raw: Vec<String>, policy: &ConnectPolicy) -> Result<Vec<String>, Refusal> {
    let mut origins = Vec::new();
    for value in raw {
        let origin = exact_origin(&value).ok_or_else(|| {
            refuse(
                "allowed_origins",
                "allowed_origins holds origins such as https://app.example.com",
            )
        })?;
        if !policy.allowed_redirects.contains(&origin) {
            return Err(refuse(
                "allowed_origins",
                format!("allowed_origins: {origin} is not on CONNECT_ALLOWED_REDIRECTS"),
            ));
        }
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

impl SessionRequest {
    pub fn parse(
        body: SessionBody,
        registry: &Registry,
        policy: &ConnectPolicy,
    ) -> Result<Self, Refusal> {
        let reconnect_client_id = match body.reconnect_client_id {
            None => None,
            Some(raw) => Some(
                RecordId::parse(&raw)
                    .map_err(|_| {
                        refuse(
                            "reconnect_client_id",
                            "reconnect_client_id is not a client id",
                        )
                    })?
                    .as_str()
                    .to_string(),
            ),
        };
        Ok(Self {
            end_user: end_user(body.end_user)?,
            allowed_providers: providers(body.allowed_providers, registry)?,
            tags: tags(body.tags)?,
            success_url: return_url("success_url", body.success_url, policy)?,
            error_url: return_url("error_url", body.error_url, policy)?,
            allowed_origins: origins(body.allowed_origins, policy)?,
            reconnect_client_id,
        })
    }
}
