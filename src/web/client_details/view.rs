//! What the client's page shows: the view models and the page's templates (whole, and
//! the tags and profile cards alone for htmx). Never a token.

use super::profile_fields::{FieldValue, ProfileField};
use crate::audit::Entry;
use crate::clients::upgrade::SwitchToOAuth;
use crate::clients::ClientStatus;
use crate::operations::klaviyo;
use crate::providers::AuthType;
use crate::web::layout::Layout;
use crate::web::moment::Moment;
use askama::Template;

pub struct ScopeRow {
    pub name: String,
    pub requested: bool,
    pub granted: bool,
}

/// The provider's requested scopes, each marked granted or not, then any granted extra.
pub fn scope_rows(requested: &[String], granted: &[&str]) -> Vec<ScopeRow> {
    let mut rows: Vec<ScopeRow> = requested
        .iter()
        .map(|name| ScopeRow {
            granted: granted.contains(&name.as_str()),
            requested: true,
            name: name.clone(),
        })
        .collect();
    rows.extend(
        granted
            .iter()
            .filter(|g| !requested.iter().any(|r| r == *g))
            .map(|g| ScopeRow {
                name: g.to_string(),
                requested: false,
                granted: true,
            }),
    );
    rows
}

/// The read-only tags with their Edit button.
pub struct TagsView {
    pub client_id: String,
    pub tags: Vec<String>,
}

/// The tags form, with what was typed and why it was refused.
pub struct TagsForm {
    pub client_id: String,
    pub value: String,
    pub error: Option<String>,
    pub csrf_token: String,
}

/// The client as the page shows it; never a token.
pub struct ClientView {
    pub id: String,
    pub provider: String,
    pub provider_name: String,
    pub display_name: String,
    pub account_id: String,
    pub auth_type: AuthType,
    pub status: ClientStatus,
    pub status_label: &'static str,
    pub last_error: Option<String>,
    pub is_default: bool,
    pub owner_email: String,
    /// The end user (team's id, email) of a connection made through a connect session.
    pub end_user: Option<(String, Option<String>)>,
    pub expires: Moment,
    pub connected: Moment,
    pub last_refreshed: Moment,
    pub last_used: Moment,
    /// The connection's settings (label, value): a Kustomer org, a captured instance URL.
    pub settings: Vec<(String, String)>,
    /// Whether the page offers "Switch to OAuth" (API-key clients).
    pub switch_to_oauth: SwitchToOAuth,
}

impl ClientView {
    pub fn offers_switch_to_oauth(&self) -> bool {
        self.switch_to_oauth == SwitchToOAuth::Offered
    }

    pub fn switch_is_owner_only(&self) -> bool {
        self.switch_to_oauth == SwitchToOAuth::OwnerOnly
    }

    pub fn can_refresh(&self) -> bool {
        !self.auth_type.is_api_key() && self.status.has_grant()
    }

    pub fn is_connected(&self) -> bool {
        !self.status.is_disconnected()
    }

    pub fn is_api_key(&self) -> bool {
        self.auth_type.is_api_key()
    }

    /// What kind of stored secret an API-key or Basic client has.
    pub fn secret_kind(&self) -> &'static str {
        match self.auth_type {
            crate::providers::AuthType::Basic => "User and password",
            _ => "API key",
        }
    }

    /// Klaviyo has no count fields: "Refresh counts" pages through its lists and segments.
    pub fn can_refresh_counts(&self) -> bool {
        self.provider == klaviyo::PROVIDER && self.status.has_grant()
    }
}

#[derive(Template)]
#[template(path = "client_details.html")]
pub(super) struct DetailsPage {
    pub(super) layout: Layout,
    pub(super) client: ClientView,
    pub(super) tags: TagsView,
    /// Some while the tags are being edited without JavaScript.
    pub(super) tags_form: Option<TagsForm>,
    pub(super) profile: Vec<ProfileField>,
    pub(super) scopes: Vec<ScopeRow>,
    pub(super) history: Vec<Entry>,
    /// The last refresh attempts, newest first.
    pub(super) refreshes: Vec<crate::oauth::refresh_history::Attempt>,
    /// The client's provider calls over the last 30 days.
    pub(super) usage: crate::usage::Stats,
    /// Where the page's forms come back to.
    pub(super) here: String,
    pub(super) syncs_card: super::syncs::SyncsCard,
}

/// The tags card's content alone, for htmx: read-only, or the form when `tags_form` is set.
#[derive(Template)]
#[template(path = "client_details.html", block = "tags")]
pub(super) struct TagsFragment {
    pub(super) tags: TagsView,
    pub(super) tags_form: Option<TagsForm>,
}

impl TagsFragment {
    pub(super) fn view(client_id: String, tags: Vec<String>) -> Self {
        Self {
            tags: TagsView { client_id, tags },
            tags_form: None,
        }
    }

    pub(super) fn form(form: TagsForm) -> Self {
        Self {
            tags: TagsView {
                client_id: form.client_id.clone(),
                tags: Vec::new(),
            },
            tags_form: Some(form),
        }
    }
}

/// The profile facts alone, for htmx after "Refresh counts".
#[derive(Template)]
#[template(path = "client_details.html", block = "profile")]
pub(super) struct ProfileFragment {
    pub(super) profile: Vec<ProfileField>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_not_granted_are_marked() {
        let requested = vec!["a:read".to_string(), "b:read".to_string()];
        let rows = scope_rows(&requested, &["a:read", "c:read"]);
        let summary: Vec<(&str, bool, bool)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.requested, r.granted))
            .collect();
        assert_eq!(
            summary,
            [
                ("a:read", true, true),
                ("b:read", true, false),
                ("c:read", false, true)
            ]
        );
    }
}
