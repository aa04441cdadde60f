//! Who a flow connects for: a connecthub user connecting their own account, or a team's end
//! user connecting through a connect session. The engine (state, PKCE, callback checks,
//! storage) is the same for both; only who owns the result and who the audit names differ.

use crate::audit::{Actor, Event};
use crate::auth::users::User;
use serde_json::{json, Value};

/// The end user a connect session connects for. The connection is held by the session's
/// key owner (`owner_user_id`) on the end user's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUserHolder {
    pub owner_user_id: String,
    /// `end_users.id`.
    pub end_user_id: String,
    /// The team's own id for the end user (what the audit log shows).
    pub external_id: String,
    pub session_id: String,
}

#[derive(Debug, Clone)]
pub enum Holder {
    User(User),
    EndUser(EndUserHolder),
}

impl Holder {
    pub fn of(user: &User) -> Self {
        Self::User(user.clone())
    }

    /// The connecthub user the client row names as owner.
    pub fn owner_user_id(&self) -> &str {
        match self {
            Self::User(user) => &user.id,
            Self::EndUser(end_user) => &end_user.owner_user_id,
        }
    }

    pub fn end_user_id(&self) -> Option<&str> {
        match self {
            Self::User(_) => None,
            Self::EndUser(end_user) => Some(&end_user.end_user_id),
        }
    }

    pub fn end_user(&self) -> Option<&EndUserHolder> {
        match self {
            Self::User(_) => None,
            Self::EndUser(end_user) => Some(end_user),
        }
    }

    pub fn actor(&self) -> Actor {
        match self {
            Self::User(user) => user.actor(),
            Self::EndUser(end_user) => Actor {
                kind: "end_user",
                id: Some(end_user.end_user_id.clone()),
                label: end_user.external_id.clone(),
            },
        }
    }

    /// An audit entry about something done for this holder.
    pub fn event(&self, action: &'static str) -> Event {
        Event::new(self.actor(), action)
    }

    /// What the pending authorization keeps in `params` to rebuild the holder later.
    pub fn params(&self) -> Value {
        match self {
            Self::User(_) => json!({}),
            Self::EndUser(e) => json!({
                "connect_session_id": e.session_id,
                "end_user_id": e.end_user_id,
                "end_user_external_id": e.external_id,
            }),
        }
    }

    /// The end-user holder a pending authorization was started for, if it was one.
    pub fn end_user_from_params(owner_user_id: &str, params: &str) -> Option<EndUserHolder> {
        let value: Value = serde_json::from_str(params).ok()?;
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        Some(EndUserHolder {
            owner_user_id: owner_user_id.to_string(),
            end_user_id: field("end_user_id")?,
            external_id: field("end_user_external_id")?,
            session_id: field("connect_session_id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_user_holder_survives_the_pending_params() {
        let holder = EndUserHolder {
            owner_user_id: "u1".into(),
            end_user_id: "e1".into(),
            external_id: "42".into(),
            session_id: "s1".into(),
        };
        let params = Holder::EndUser(holder.clone()).params().to_string();
        assert_eq!(Holder::end_user_from_params("u1", &params), Some(holder));
        assert_eq!(Holder::end_user_from_params("u1", "{}"), None);
    }
}
