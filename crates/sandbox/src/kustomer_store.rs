//! The records written through the sandbox's Kustomer API: customers, conversations,
//! messages and notes, each belonging to one org.

use super::data::KUSTOMER_ORGS;
use super::http::random_hex_id;
use chrono::{SecondsFormat, Utc};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Kustomer's documented limits on notes.
pub const MAX_NOTE_CHARS: usize = 10_240;
const NOTES_PER_MINUTE_PER_CUSTOMER: u32 = 120;
const NOTE_WINDOW: Duration = Duration::from_secs(60);

pub const CONVERSATION_STATUSES: [&str; 3] = ["open", "snoozed", "done"];

pub struct Customer {
    pub id: String,
    pub org: String,
    pub name: String,
    pub emails: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub struct Conversation {
    pub id: String,
    pub org: String,
    pub customer: String,
    pub name: Option<String>,
    pub channels: Vec<String>,
    pub status: String,
    pub assigned_teams: Vec<String>,
    pub message_count: u32,
    pub note_count: u32,
    pub created_at: String,
    pub updated_at: String,
}

pub struct Message {
    pub id: String,
    pub conversation: String,
    pub customer: String,
    pub body: String,
    pub direction: String,
    pub channel: String,
    pub created_at: String,
}

pub struct Note {
    pub id: String,
    pub org: String,
    pub conversation: String,
    pub customer: String,
    pub body: String,
    pub created_at: String,
}

/// Why a write was refused; the API maps each to Kustomer's error shape.
#[derive(Debug, PartialEq)]
pub enum StoreError {
    BadRequest(String),
    NotFound,
    Conflict(String),
    TooManyRequests { retry_after_secs: u64 },
}

/// The changes PATCH /v1/conversations/{id} may make.
#[derive(Default)]
pub struct ConversationPatch {
    pub assigned_teams: Option<Vec<String>>,
    pub name: Option<String>,
    pub status: Option<String>,
}

pub struct Store {
    customers: Vec<Customer>,
    conversations: Vec<Conversation>,
    messages: Vec<Message>,
    notes: Vec<Note>,
    /// customer id → (window start, notes in window)
    note_windows: HashMap<String, (Instant, u32)>,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Store {
    /// A store holding each org's seed customer.
    pub fn new() -> Self {
        let created = "2023-03-14T10:00:00.000Z".to_string();
        let customers = KUSTOMER_ORGS
            .iter()
            .map(|org| Customer {
                id: org.customer.id.to_string(),
                org: org.id.to_string(),
                name: org.customer.name.to_string(),
                emails: vec![org.customer.email.to_string()],
                created_at: created.clone(),
                updated_at: created.clone(),
            })
            .collect();
        Self {
            customers,
            conversations: Vec::new(),
            messages: Vec::new(),
            notes: Vec::new(),
            note_windows: HashMap::new(),
        }
    }

    pub fn customer(&self, org: &str, id: &str) -> Option<&Customer> {
        self.customers.iter().find(|c| c.org == org && c.id == id)
    }

    pub fn customer_by_email(&self, org: &str, email: &str) -> Option<&Customer> {
        self.customers
            .iter()
            .find(|c| c.org == org && c.emails.iter().any(|e| e.eq_ignore_ascii_case(email)))
    }

    /// The org's customers having any of `emails`; all of them when `emails` is empty.
    pub fn search(&self, org: &str, emails: &[String]) -> Vec<&Customer> {
        self.customers
            .iter()
            .filter(|c| c.org == org)
            .filter(|c| {
                emails.is_empty()
                    || c.emails
                        .iter()
                        .any(|e| emails.iter().any(|wanted| e.eq_ignore_ascii_case(wanted)))
            })
            .collect()
    }

    pub fn create_customer(
        &mut self,
        org: &str,
        name: Option<String>,
        emails: Vec<String>,
    ) -> Result<&Customer, StoreError> {
        if name.as_deref().is_none_or(|n| n.trim().is_empty()) && emails.is_empty() {
            return Err(StoreError::BadRequest(
                "a name or an email is required".into(),
            ));
        }
        if let Some(bad) = emails.iter().find(|e| !looks_like_email(e)) {
            return Err(StoreError::BadRequest(format!(
                "'{bad}' is not a valid email address"
            )));
        }
        if let Some(taken) = emails
            .iter()
            .find(|e| self.customer_by_email(org, e).is_some())
        {
            return Err(StoreError::Conflict(format!(
                "A customer with email {taken} already exists"
            )));
        }
        let stamp = now();
        let name = name.or_else(|| emails.first().cloned()).unwrap_or_default();
        self.customers.push(Customer {
            id: random_hex_id(),
            org: org.to_string(),
            name,
            emails,
            created_at: stamp.clone(),
            updated_at: stamp,
        });
        self.customers
            .last()
            .ok_or_else(|| StoreError::BadRequest("customer not stored".into()))
    }

    pub fn conversation(&self, org: &str, id: &str) -> Option<&Conversation> {
        self.conversations
            .iter()
            .find(|c| c.org == org && c.id == id)
    }

    fn conversation_mut(&mut self, org: &str, id: &str) -> Option<&mut Conversation> {
        self.conversations
            .iter_mut()
            .find(|c| c.org == org && c.id == id)
    }

    pub fn create_conversation(
        &mut self,
        org: &str,
        customer: &str,
        name: Option<String>,
        channel: Option<String>,
    ) -> Result<&Conversation, StoreError> {
        if self.customer(org, customer).is_none() {
            return Err(StoreError::BadRequest(format!(
                "customer {customer} does not exist"
            )));
        }
        let stamp = now();
        self.conversations.push(Conversation {
            id: random_hex_id(),
            org: org.to_string(),
            customer: customer.to_string(),
            name,
            channels: vec![channel.unwrap_or_else(|| "email".to_string())],
            status: "open".to_string(),
            assigned_teams: Vec::new(),
            message_count: 0,
            note_count: 0,
            created_at: stamp.clone(),
            updated_at: stamp,
        });
        self.conversations
            .last()
            .ok_or_else(|| StoreError::BadRequest("conversation not stored".into()))
    }

    /// Applies a patch; `valid_teams` are the org's team ids.
    pub fn update_conversation(
        &mut self,
        org: &str,
        id: &str,
        patch: ConversationPatch,
        valid_teams: &[&str],
    ) -> Result<&Conversation, StoreError> {
        if let Some(unknown) = patch
            .assigned_teams
            .iter()
            .flatten()
            .find(|t| !valid_teams.contains(&t.as_str()))
        {
            return Err(StoreError::BadRequest(format!(
                "team {unknown} does not exist"
            )));
        }
        if let Some(status) = patch.status.as_deref() {
            if !CONVERSATION_STATUSES.contains(&status) {
                return Err(StoreError::BadRequest(format!(
                    "status must be one of {}",
                    CONVERSATION_STATUSES.join(", ")
                )));
            }
        }
        let conversation = self.conversation_mut(org, id).ok_or(StoreError::NotFound)?;
        if let Some(teams) = patch.assigned_teams {
            conversation.assigned_teams = teams;
        }
        if let Some(name) = patch.name {
            conversation.name = Some(name);
        }
        if let Some(status) = patch.status {
            conversation.status = status;
        }
        conversation.updated_at = now();
        Ok(conversation)
    }

    pub fn add_message(
        &mut self,
        org: &str,
        conversation_id: &str,
        body: String,
        direction: String,
        channel: Option<String>,
    ) -> Result<&Message, StoreError> {
        let conversation = self
            .conversation_mut(org, conversation_id)
            .ok_or(StoreError::NotFound)?;
        if body.trim().is_empty() {
            return Err(StoreError::BadRequest("body is required".into()));
        }
        if !matches!(direction.as_str(), "in" | "out") {
            return Err(StoreError::BadRequest(
                "direction must be \"in\" or \"out\"".into(),
            ));
        }
        let channel = channel
            .or_else(|| conversation.channels.first().cloned())
            .unwrap_or_else(|| "email".to_string());
        if !conversation.channels.contains(&channel) {
            conversation.channels.push(channel.clone());
        }
        conversation.message_count += 1;
        let stamp = now();
        conversation.updated_at = stamp.clone();
        let customer = conversation.customer.clone();
        self.messages.push(Message {
            id: random_hex_id(),
            conversation: conversation_id.to_string(),
            customer,
            body,
            direction,
            channel,
            created_at: stamp,
        });
        self.messages
            .last()
            .ok_or_else(|| StoreError::BadRequest("message not stored".into()))
    }

    pub fn add_note(
        &mut self,
        org: &str,
        conversation_id: &str,
        body: String,
    ) -> Result<&Note, StoreError> {
        if body.trim().is_empty() {
            return Err(StoreError::BadRequest("body is required".into()));
        }
        if body.chars().count() > MAX_NOTE_CHARS {
            return Err(StoreError::BadRequest(format!(
                "body must be at most {MAX_NOTE_CHARS} characters"
            )));
        }
        let customer = self
            .conversation(org, conversation_id)
            .map(|c| c.customer.clone())
            .ok_or_else(|| {
                StoreError::BadRequest(format!("conversation {conversation_id} does not exist"))
            })?;
        self.count_note(&customer)?;
        let stamp = now();
        if let Some(conversation) = self.conversation_mut(org, conversation_id) {
            conversation.note_count += 1;
            conversation.updated_at = stamp.clone();
        }
        self.notes.push(Note {
            id: random_hex_id(),
            org: org.to_string(),
            conversation: conversation_id.to_string(),
            customer,
            body,
            created_at: stamp,
        });
        self.notes
            .last()
            .ok_or_else(|| StoreError::BadRequest("note not stored".into()))
    }

    /// Kustomer allows 120 notes per minute per customer.
    fn count_note(&mut self, customer: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        let window = self
            .note_windows
            .entry(customer.to_string())
            .or_insert((now, 0));
        let elapsed = now.duration_since(window.0);
        if elapsed >= NOTE_WINDOW {
            *window = (now, 0);
        }
        if window.1 >= NOTES_PER_MINUTE_PER_CUSTOMER {
            let retry_after_secs = NOTE_WINDOW.saturating_sub(elapsed).as_secs().max(1);
            return Err(StoreError::TooManyRequests { retry_after_secs });
        }
        window.1 += 1;
        Ok(())
    }

    /// A customer's notes, oldest first; `None` when the customer does not exist.
    pub fn notes_of(&self, org: &str, customer: &str) -> Option<Vec<&Note>> {
        self.customer(org, customer)?;
        Some(
            self.notes
                .iter()
                .filter(|n| n.org == org && n.customer == customer)
                .collect(),
        )
    }

    pub fn clear_note_windows(&mut self) {
        self.note_windows.clear();
    }
}

/// A plausibility check, not RFC 5322: one `@` with text on both sides.
fn looks_like_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "5f3a1c9e8b2d4a0017c6e101";
    const OTHER_ORG: &str = "5f3a1c9e8b2d4a0017c6e202";

    #[test]
    fn seed_customers_belong_to_their_org() {
        let store = Store::new();
        assert!(store
            .customer_by_email(ORG, "JANE.DOE@example.com")
            .is_some());
        assert!(store
            .customer_by_email(OTHER_ORG, "jane.doe@example.com")
            .is_none());
    }

    #[test]
    fn duplicate_and_invalid_emails_are_refused() {
        let mut store = Store::new();
        let taken = store.create_customer(ORG, None, vec!["jane.doe@example.com".into()]);
        assert!(matches!(taken, Err(StoreError::Conflict(_))));
        let bad = store.create_customer(ORG, None, vec!["not-an-email".into()]);
        assert!(matches!(bad, Err(StoreError::BadRequest(_))));
        // The same address may exist in another org.
        assert!(store
            .create_customer(OTHER_ORG, None, vec!["jane.doe@example.com".into()])
            .is_ok());
    }

    #[test]
    fn notes_are_limited_per_customer_per_minute() {
        let mut store = Store::new();
        let customer = store
            .customer_by_email(ORG, "jane.doe@example.com")
            .map(|c| c.id.clone())
            .unwrap();
        let conversation = store
            .create_conversation(ORG, &customer, None, None)
            .unwrap()
            .id
            .clone();
        for _ in 0..NOTES_PER_MINUTE_PER_CUSTOMER {
            assert!(store.add_note(ORG, &conversation, "hi".into()).is_ok());
        }
        let refused = store.add_note(ORG, &conversation, "one too many".into());
        assert!(matches!(refused, Err(StoreError::TooManyRequests { .. })));
        store.clear_note_windows();
        assert!(store.add_note(ORG, &conversation, "again".into()).is_ok());
        assert_eq!(store.notes_of(ORG, &customer).map(|n| n.len()), Some(121));
    }

    #[test]
    fn conversations_are_scoped_to_their_org() {
        let mut store = Store::new();
        let customer = store
            .customer_by_email(ORG, "jane.doe@example.com")
            .map(|c| c.id.clone())
            .unwrap();
        let id = store
            .create_conversation(ORG, &customer, None, None)
            .unwrap()
            .id
            .clone();
        assert!(store.conversation(OTHER_ORG, &id).is_none());
        let patch = ConversationPatch {
            status: Some("done".into()),
            ..ConversationPatch::default()
        };
        assert_eq!(
            store.update_conversation(OTHER_ORG, &id, patch, &[]).err(),
            Some(StoreError::NotFound)
        );
    }
}
