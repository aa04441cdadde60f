//! The append-only audit log. Each entry stores the hash of the one before it, so an
//! edited or deleted row breaks the chain and `verify` finds it. The types of an entry live
//! here; `chain` writes and checks, `buffer` batches frequent events, `search` reads.

mod buffer;
mod chain;
mod head;
mod search;

pub use buffer::Buffer;
pub use chain::{append, append_dated, append_many, verify, verify_against, Verdict};
pub use head::{current as current_head, publish as publish_head, Head};
pub use search::{
    actions, count_since, find_visible, for_target, page_before, recent, scope_for, search, Filter,
    Scope, Start,
};

use crate::db::schema::audit_log;
use diesel::prelude::*;
use serde_json::Value;

/// Who did it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: &'static str,
    pub id: Option<String>,
    pub label: String,
}

impl Actor {
    pub fn user(id: &str, email: &str) -> Self {
        Self {
            kind: "user",
            id: Some(id.to_string()),
            label: email.to_string(),
        }
    }

    pub fn anonymous(label: &str) -> Self {
        Self {
            kind: "anonymous",
            id: None,
            label: label.to_string(),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: "system",
            id: None,
            label: "connecthub".to_string(),
        }
    }
}

/// Where the request came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One thing that happened, before it is chained and stored.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Actor,
    pub action: &'static str,
    pub target: Option<(&'static str, String)>,
    pub success: bool,
    pub origin: Origin,
    pub details: Value,
}

impl Event {
    pub fn new(actor: Actor, action: &'static str) -> Self {
        Self {
            actor,
            action,
            target: None,
            success: true,
            origin: Origin::default(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, kind: &'static str, id: impl Into<String>) -> Self {
        self.target = Some((kind, id.into()));
        self
    }

    pub fn failed(mut self) -> Self {
        self.success = false;
        self
    }

    pub fn origin(mut self, origin: &Origin) -> Self {
        self.origin = origin.clone();
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct Entry {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub at: chrono::NaiveDateTime,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_label: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}
