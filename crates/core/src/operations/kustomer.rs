//! Kustomer operations: customers by email, new customers, conversations (once per
//! external id), notes, messages, teams and team assignment. Kustomer answers in JSON:API
//! style (`data.id`, `data.attributes`).

use super::synced::{self, Claim, SyncedConversation};
use super::{id_of, text, Caller, OpError, ProviderId};
use crate::auth::users::Email;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const PROVIDER: &str = "kustomer";
/// Kustomer refuses longer notes.
pub const MAX_NOTE_CHARS: usize = 10_240;
/// A bound of our own, so a runaway caller cannot send megabytes as one chat message.
pub const MAX_MESSAGE_CHARS: usize = 100_000;
pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;
/// How long a request waits for a racing one that is creating the same conversation.
const CLAIM_WAIT: Duration = Duration::from_secs(15);
const CLAIM_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Customer {
    pub id: String,
    pub name: Option<String>,
    pub emails: Vec<String>,
    pub created_at: Option<String>,
}

impl Customer {
    fn from_json(data: &Value) -> Result<Self, OpError> {
        let emails = data
            .pointer("/attributes/emails")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(|e| text(e, "/email")).collect())
            .unwrap_or_default();
        Ok(Self {
            id: id_of(data, "Kustomer")?,
            name: text(data, "/attributes/name"),
            emails,
            created_at: text(data, "/attributes/createdAt"),
        })
    }
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: String,
    pub customer_id: String,
    pub name: Option<String>,
    /// open, snoozed or done; absent when answered from connecthub's record.
    pub status: Option<String>,
    pub assigned_teams: Vec<String>,
    pub created_at: Option<String>,
}

impl Conversation {
    fn from_json(data: &Value) -> Result<Self, OpError> {
        let teams = data
            .pointer("/attributes/assignedTeams")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            id: id_of(data, "Kustomer")?,
            customer_id: text(data, "/relationships/customer/data/id").unwrap_or_default(),
            name: text(data, "/attributes/name"),
            status: text(data, "/attributes/status"),
            assigned_teams: teams,
            created_at: text(data, "/attributes/createdAt"),
        })
    }

    /// What connecthub recorded when it created the conversation.
    fn from_record(row: &SyncedConversation, id: String) -> Self {
        Self {
            id,
            customer_id: row.customer_id.clone(),
            name: None,
            status: None,
            assigned_teams: Vec::new(),
            created_at: Some(
                row.created_at
                    .and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        }
    }
}

/// A conversation, and whether this request created it (false: an earlier request with the
/// same external id did).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ConversationCreated {
    pub created: bool,
    pub external_id: Option<String>,
    pub conversation: Conversation,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Note {
    pub id: String,
    pub conversation_id: String,
    pub body: String,
    pub created_at: Option<String>,
}

impl Note {
    fn from_json(data: &Value) -> Result<Self, OpError> {
        Ok(Self {
            id: id_of(data, "Kustomer")?,
            conversation_id: text(data, "/relationships/conversation/data/id").unwrap_or_default(),
            body: text(data, "/attributes/body").unwrap_or_default(),
            created_at: text(data, "/attributes/createdAt"),
        })
    }
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub body: String,
    pub direction: String,
    pub channel: Option<String>,
    pub created_at: Option<String>,
}

impl Message {
    fn from_json(data: &Value) -> Result<Self, OpError> {
        Ok(Self {
            id: id_of(data, "Kustomer")?,
            conversation_id: text(data, "/relationships/conversation/data/id").unwrap_or_default(),
            body: text(data, "/attributes/body").unwrap_or_default(),
            direction: text(data, "/attributes/direction").unwrap_or_default(),
            channel: text(data, "/attributes/channel"),
            created_at: text(data, "/attributes/createdAt"),
        })
    }
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Team {
    pub id: String,
    pub name: Option<String>,
}

/// Which way a message goes: from the customer (`in`) or to them (`out`).
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Text that must not be blank and has at most `max` characters (Unicode scalar values,
/// as Kustomer counts them).
fn required_text(name: &str, value: &str, max: usize) -> Result<(), OpError> {
    if value.trim().is_empty() {
        return Err(OpError::Invalid(format!("{name} must not be empty")));
    }
    if crate::input::has_stray_control(value) {
        return Err(OpError::Invalid(format!(
            "{name} cannot contain control characters other than line breaks and tabs"
        )));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(OpError::Invalid(format!(
            "{name} must be at most {max} characters (it has {chars})"
        )));
    }
    Ok(())
}

fn optional_text(name: &str, value: Option<&str>, max: usize) -> Result<(), OpError> {
    value.map_or(Ok(()), |v| required_text(name, v, max))
}

/// A channel name such as `email` or `chat`.
fn check_channel(channel: Option<&str>) -> Result<(), OpError> {
    let valid = channel.is_none_or(|c| {
        (1..=32).contains(&c.len()) && c.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    });
    if valid {
        Ok(())
    } else {
        Err(OpError::Invalid(
            "channel must be 1 to 32 of a-z and _ (email, chat, sms…)".into(),
        ))
    }
}

fn parse_email(raw: &str) -> Result<Email, OpError> {
    Email::parse(raw).map_err(OpError::Invalid)
}

/// The caller's id for what the conversation belongs to: 1 to 128 printable ASCII
/// characters without spaces.
fn check_external_id(external_id: &str) -> Result<(), OpError> {
    let valid = (1..=MAX_EXTERNAL_ID_CHARS).contains(&external_id.len())
        && external_id.chars().all(|c| c.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(OpError::Invalid(format!(
            "external_id must be 1 to {MAX_EXTERNAL_ID_CHARS} printable ASCII characters without spaces"
        )))
    }
}

/// `GET /v1/customers/email={email}`; None when Kustomer has no such customer.
pub async fn find_customer(caller: &Caller<'_>, email: &str) -> Result<Option<Customer>, OpError> {
    let email = parse_email(email)?;
    let encoded: String = url::form_urlencoded::byte_serialize(email.as_str().as_bytes()).collect();
    match caller
        .get(&format!("v1/customers/email={encoded}"), "customer")
        .await
    {
        Ok(body) => Customer::from_json(&body["data"]).map(Some),
        Err(OpError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `POST /v1/customers` with one email address.
pub async fn create_customer(
    caller: &Caller<'_>,
    name: Option<&str>,
    email: &str,
) -> Result<Customer, OpError> {
    let email = parse_email(email)?;
    optional_text("name", name, MAX_NAME_CHARS)?;
    let mut body = json!({"emails": [{"type": "home", "email": email.as_str()}]});
    if let Some(name) = name {
        body["name"] = json!(name.trim());
    }
    let answer = caller
        .send(Method::POST, "v1/customers", &body, "customer")
        .await?;
    Customer::from_json(&answer["data"])
}

/// What a new conversation is made of.
pub struct NewConversation<'a> {
    pub customer_id: &'a str,
    pub name: Option<&'a str>,
    pub channel: Option<&'a str>,
    /// The caller's own id for it (a chat session id): a repeat returns the first one.
    pub external_id: Option<&'a str>,
}

/// `POST /v1/conversations`, at most once per external id.
pub async fn create_conversation(
    caller: &Caller<'_>,
    new: &NewConversation<'_>,
) -> Result<ConversationCreated, OpError> {
    let customer = ProviderId::parse("customer_id", new.customer_id)?;
    optional_text("name", new.name, MAX_NAME_CHARS)?;
    check_channel(new.channel)?;
    let Some(external_id) = new.external_id else {
        let conversation = post_conversation(caller, &customer, new).await?;
        return Ok(ConversationCreated {
            created: true,
            external_id: None,
            conversation,
        });
    };
    check_external_id(external_id)?;
    let row = match claim(caller, external_id, customer.as_str()).await? {
        Some(row) => row,
        None => return create_claimed(caller, &customer, new, external_id).await,
    };
    if row.customer_id != customer.as_str() {
        return Err(OpError::Conflict(format!(
            "external_id {external_id} already belongs to a conversation of customer {}",
            row.customer_id
        )));
    }
    let id = row.conversation_id.clone().unwrap_or_default();
    Ok(ConversationCreated {
        created: false,
        external_id: Some(external_id.to_string()),
        conversation: Conversation::from_record(&row, id),
    })
}

/// Claims the external id: None when this request must create the conversation, else the
/// finished record of an earlier one (waiting while a racing request creates it).
async fn claim(
    caller: &Caller<'_>,
    external_id: &str,
    customer_id: &str,
) -> Result<Option<SyncedConversation>, OpError> {
    let started = Instant::now();
    loop {
        let (client, external, customer) = (
            caller.client().id.clone(),
            external_id.to_string(),
            customer_id.to_string(),
        );
        let claim = crate::db::run(&caller.state().pool, move |conn| {
            synced::claim(conn, &client, &external, &customer)
        })
        .await?;
        match claim {
            Claim::Mine => return Ok(None),
            Claim::Done(row) => return Ok(Some(row)),
            Claim::Pending if started.elapsed() < CLAIM_WAIT => {
                tokio::time::sleep(CLAIM_POLL).await
            }
            Claim::Pending => {
                return Err(OpError::Conflict(format!(
                    "a conversation for external_id {external_id} is still being created; try again shortly"
                )))
            }
        }
    }
}

/// Creates the conversation under this request's claim, then records it; a failure gives
/// the claim up so the caller can try again.
async fn create_claimed(
    caller: &Caller<'_>,
    customer: &ProviderId,
    new: &NewConversation<'_>,
    external_id: &str,
) -> Result<ConversationCreated, OpError> {
    let pool = &caller.state().pool;
    let (client, external) = (caller.client().id.clone(), external_id.to_string());
    let conversation = match post_conversation(caller, customer, new).await {
        Ok(conversation) => conversation,
        Err(e) => {
            crate::db::run(pool, move |conn| synced::release(conn, &client, &external)).await?;
            return Err(e);
        }
    };
    let id = conversation.id.clone();
    crate::db::run(pool, move |conn| {
        synced::complete(conn, &client, &external, &id)
    })
    .await?;
    Ok(ConversationCreated {
        created: true,
        external_id: Some(external_id.to_string()),
        conversation,
    })
}

async fn post_conversation(
    caller: &Caller<'_>,
    customer: &ProviderId,
    new: &NewConversation<'_>,
) -> Result<Conversation, OpError> {
    let mut body = json!({"customer": customer.as_str()});
    if let Some(name) = new.name {
        body["name"] = json!(name.trim());
    }
    if let Some(channel) = new.channel {
        body["channel"] = json!(channel);
    }
    let answer = caller
        .send(Method::POST, "v1/conversations", &body, "customer")
        .await?;
    Conversation::from_json(&answer["data"])
}

/// `POST /v1/notes`: an internal note on a conversation (at most 10,240 characters).
pub async fn add_note(
    caller: &Caller<'_>,
    conversation_id: &str,
    body: &str,
) -> Result<Note, OpError> {
    let conversation = ProviderId::parse("conversation_id", conversation_id)?;
    required_text("body", body, MAX_NOTE_CHARS)?;
    let request = json!({"body": body, "conversation": conversation.as_str()});
    let answer = caller
        .send(Method::POST, "v1/notes", &request, "conversation")
        .await?;
    Note::from_json(&answer["data"])
}

/// `POST /v1/conversations/{id}/messages`.
pub async fn send_message(
    caller: &Caller<'_>,
    conversation_id: &str,
    body: &str,
    direction: Direction,
    channel: Option<&str>,
) -> Result<Message, OpError> {
    let conversation = ProviderId::parse("conversation_id", conversation_id)?;
    required_text("body", body, MAX_MESSAGE_CHARS)?;
    check_channel(channel)?;
    let mut request = json!({"body": body, "direction": direction.as_str()});
    if let Some(channel) = channel {
        request["channel"] = json!(channel);
    }
    let path = format!("v1/conversations/{}/messages", conversation.as_str());
    let answer = caller
        .send(Method::POST, &path, &request, "conversation")
        .await?;
    Message::from_json(&answer["data"])
}

/// `GET /v1/teams`, every page.
pub async fn teams(caller: &Caller<'_>) -> Result<Vec<Team>, OpError> {
    let items = caller.get_all("v1/teams", "teams").await?;
    items
        .iter()
        .map(|team| {
            Ok(Team {
                id: id_of(team, "Kustomer")?,
                name: text(team, "/attributes/name"),
            })
        })
        .collect()
}

/// `PATCH /v1/conversations/{id}`: the conversation is assigned to this team (only).
pub async fn assign_team(
    caller: &Caller<'_>,
    conversation_id: &str,
    team_id: &str,
) -> Result<Conversation, OpError> {
    let conversation = ProviderId::parse("conversation_id", conversation_id)?;
    let team = ProviderId::parse("team_id", team_id)?;
    let path = format!("v1/conversations/{}", conversation.as_str());
    let request = json!({"assignedTeams": [team.as_str()]});
    let answer = caller
        .send(Method::PATCH, &path, &request, "conversation")
        .await?;
    Conversation::from_json(&answer["data"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_limited_in_characters_not_bytes() {
        assert!(required_text("body", &"é".repeat(MAX_NOTE_CHARS), MAX_NOTE_CHARS).is_ok());
        assert!(required_text("body", &"a".repeat(MAX_NOTE_CHARS + 1), MAX_NOTE_CHARS).is_err());
        assert!(required_text("body", "  \n", MAX_NOTE_CHARS).is_err());
    }

    #[test]
    fn external_ids_and_channels_are_checked() {
        assert!(check_external_id("chat-2024/11:abc").is_ok());
        assert!(check_external_id("has space").is_err());
        assert!(check_external_id("").is_err());
        assert!(check_channel(Some("chat")).is_ok());
        assert!(check_channel(Some("Chat!")).is_err());
        assert!(check_channel(None).is_ok());
    }

    #[test]
    fn conversations_are_read_from_json_api() {
        let data = json!({
            "type": "conversation", "id": "c1",
            "attributes": {"name": "Order", "status": "open", "assignedTeams": ["t1"], "createdAt": "2026-01-01T00:00:00.000Z"},
            "relationships": {"customer": {"data": {"type": "customer", "id": "u1"}}},
        });
        let conversation = Conversation::from_json(&data).unwrap();
        assert_eq!(conversation.customer_id, "u1");
        assert_eq!(conversation.assigned_teams, ["t1"]);
        assert!(Conversation::from_json(&json!({"attributes": {}})).is_err());
    }
}
