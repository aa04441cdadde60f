//! The clients repository: one row per connected provider account per owner. Connecting
//! the same account again updates its row; it never creates a second one.

pub mod credentials;
pub mod default_client;
mod listing;
pub mod refresh_queue;
pub mod service_list;
mod status;
pub mod tags;
pub mod upgrade;

use crate::db::schema::{clients, users};
use crate::db::DbConnection;
use crate::providers::AuthType;
use diesel::prelude::*;
use diesel::Connection as _;
pub use listing::{search, version, Cursor, Filter, Page, Sort, Total, COUNT_BOUND};
use serde_json::Value;
pub use status::ClientStatus;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = clients)]
pub struct Client {
    pub id: String,
    pub owner_user_id: String,
    pub provider: String,
    pub provider_account_id: String,
    pub display_name: String,
    #[diesel(deserialize_as = String)]
    pub status: ClientStatus,
    #[diesel(deserialize_as = String)]
    pub auth_type: AuthType,
    pub tags: String,
    pub profile: String,
    pub scopes: String,
    pub is_default: bool,
    pub connected_at: chrono::NaiveDateTime,
    pub last_refreshed_at: Option<chrono::NaiveDateTime>,
    pub last_used_at: Option<chrono::NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    /// Set for a connection made through a connect session: the team's end user it
    /// belongs to (`end_users.id`); `owner_user_id` is then the session's key owner.
    pub end_user_id: Option<String>,
    /// The connection's settings (`${connection.<name>}` values), as sorted JSON.
    pub connection_config: String,
}

impl Client {
    pub fn connection_values(&self) -> crate::providers::ConnectionValues {
        crate::providers::ConnectionValues::from_json(&self.connection_config)
    }

    pub fn tag_list(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }

    pub fn profile_value(&self) -> Value {
        serde_json::from_str(&self.profile).unwrap_or(Value::Null)
    }

    pub fn scope_list(&self) -> Vec<&str> {
        self.scopes.split_whitespace().collect()
    }

    /// The status as people read it.
    pub fn status_label(&self) -> &'static str {
        self.status.label()
    }
}

/// A connection just made, before it is stored.
pub struct Connection<'a> {
    pub owner_user_id: &'a str,
    /// The end user a connect session made it for, if any.
    pub end_user_id: Option<&'a str>,
    pub provider: &'a str,
    pub provider_account_id: &'a str,
    pub display_name: &'a str,
    pub auth_type: AuthType,
    pub profile: &'a Value,
    pub scopes: &'a str,
    /// Its settings as sorted JSON: part of its identity.
    pub connection_config: &'a str,
}

/// What the search box matches: name, account id and email domain, lowercased.
fn search_text(display_name: &str, account_id: &str, profile: &Value) -> String {
    let domain = profile
        .get("email_domain")
        .or_else(|| profile.get("domain"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!("{display_name} {account_id} {domain}").to_lowercase()
}

pub(crate) fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// The rows of one (provider, owner, end user): one default among them.
fn same_owner<'a>(
    new: &'a Connection,
) -> clients::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend> {
    let query = clients::table
        .filter(clients::owner_user_id.eq(new.owner_user_id))
        .filter(clients::provider.eq(new.provider))
        .into_boxed();
    match new.end_user_id {
        Some(end_user) => query.filter(clients::end_user_id.eq(end_user)),
        None => query.filter(clients::end_user_id.is_null()),
    }
}

/// The row of one (provider, account, owner, end user, settings): at most one, by the
/// unique index.
fn same_account<'a>(
    new: &'a Connection,
) -> clients::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend> {
    same_owner(new)
        .filter(clients::provider_account_id.eq(new.provider_account_id))
        .filter(clients::connection_config.eq(new.connection_config))
}

/// A connection stored before connection settings existed (`{}`) takes the settings of
/// its first reconnect, instead of a second row appearing beside it.
fn adopt_legacy(conn: &mut DbConnection, new: &Connection) -> QueryResult<()> {
    if new.connection_config == "{}" {
        return Ok(());
    }
    let exists: i64 = same_account(new).count().get_result(conn)?;
    let legacy: Option<String> = same_owner(new)
        .filter(clients::provider_account_id.eq(new.provider_account_id))
        .filter(clients::connection_config.eq("{}"))
        .select(clients::id)
        .first(conn)
        .optional()?;
    if let (0, Some(id)) = (exists, legacy) {
        diesel::update(clients::table.find(id))
            .set(clients::connection_config.eq(new.connection_config))
            .execute(conn)?;
    }
    Ok(())
}

/// Inserts the client, or updates the existing row for the same (provider, account, owner,
/// end user).
/// The UNIQUE constraint decides between racing callbacks: the loser's insert fails and it
/// updates the winner's row instead. Returns the row and whether it was created.
pub fn upsert(conn: &mut DbConnection, new: &Connection) -> QueryResult<(Client, bool)> {
    crate::db::transaction(conn, |conn| {
        let now = crate::db::now();
        let defaults: i64 = same_owner(new)
            .filter(clients::is_default.eq(true))
            .count()
            .get_result(conn)?;
        let has_default = defaults > 0;
        adopt_legacy(conn, new)?;
        let id = uuid::Uuid::new_v4().to_string();
        let kind = match new.auth_type {
            AuthType::ApiKey => "api_key",
            AuthType::Basic => "basic",
            AuthType::Oauth2 | AuthType::ClientCredentials => "oauth",
        };
        let tags = serde_json::json!(["new", kind]);
        let profile = new.profile.to_string();
        let search_text = search_text(new.display_name, new.provider_account_id, new.profile);
        // A savepoint, so a failed insert leaves the outer transaction usable (PostgreSQL).
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(clients::table)
                .values((
                    clients::id.eq(&id),
                    clients::owner_user_id.eq(new.owner_user_id),
                    clients::end_user_id.eq(new.end_user_id),
                    clients::provider.eq(new.provider),
                    clients::provider_account_id.eq(new.provider_account_id),
                    clients::display_name.eq(new.display_name),
                    clients::status.eq(ClientStatus::Active.as_str()),
                    clients::auth_type.eq(new.auth_type.as_str()),
                    clients::tags.eq(tags.to_string()),
                    clients::profile.eq(&profile),
                    clients::scopes.eq(new.scopes),
                    clients::is_default.eq(!has_default),
                    clients::connected_at.eq(now),
                    clients::created_at.eq(now),
                    clients::updated_at.eq(now),
                    clients::search_text.eq(&search_text),
                    clients::connection_config.eq(new.connection_config),
                ))
                .execute(conn)
        });
        let created = match inserted {
            Ok(_) => true,
            Err(e) if is_unique_violation(&e) => false,
            Err(e) => return Err(e),
        };
        if !created {
            let id: String = same_account(new).select(clients::id).first(conn)?;
            diesel::update(clients::table.find(id))
                .set((
                    clients::display_name.eq(new.display_name),
                    clients::status.eq(ClientStatus::Active.as_str()),
                    clients::auth_type.eq(new.auth_type.as_str()),
                    clients::profile.eq(&profile),
                    clients::scopes.eq(new.scopes),
                    clients::connected_at.eq(now),
                    clients::last_error.eq(None::<String>),
                    clients::updated_at.eq(now),
                    clients::search_text.eq(&search_text),
                ))
                .execute(conn)?;
        }
        let client = same_account(new).select(Client::as_select()).first(conn)?;
        Ok((client, created))
    })
}

/// Client ids are UUIDs: a longer one (from a URL or a service) names no client and is
/// not looked up.
pub(crate) const MAX_ID_LEN: usize = 64;

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Client>> {
    if id.len() > MAX_ID_LEN {
        return Ok(None);
    }
    clients::table
        .find(id)
        .select(Client::as_select())
        .first(conn)
        .optional()
}

/// The clients with these ids (those that exist), in no particular order.
pub fn find_many(conn: &mut DbConnection, ids: Vec<String>) -> QueryResult<Vec<Client>> {
    clients::table
        .filter(clients::id.eq_any(ids))
        .select(Client::as_select())
        .load(conn)
}

/// A client with its owner's email and token expiry, as lists show it.
pub struct ListedClient {
    pub client: Client,
    pub owner_email: String,
    pub expires_at: Option<chrono::NaiveDateTime>,
}

/// Clients newest first: every client for admins (`owner` None), else the owner's own.
pub fn list(conn: &mut DbConnection, owner: Option<&str>) -> QueryResult<Vec<ListedClient>> {
    use crate::db::schema::credentials;
    let mut query = clients::table
        .inner_join(users::table)
        .left_join(credentials::table)
        .select((
            Client::as_select(),
            users::email,
            credentials::expires_at.nullable(),
        ))
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(clients::owner_user_id.eq(owner.to_string()));
    }
    let rows: Vec<(Client, String, Option<chrono::NaiveDateTime>)> = query
        .order(clients::updated_at.desc())
        .limit(500)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(client, owner_email, expires_at)| ListedClient {
            client,
            owner_email,
            expires_at,
        })
        .collect())
}

/// The owner's clients for one provider with their token expiry, default first.
pub fn connections_of(
    conn: &mut DbConnection,
    owner: &str,
    provider: &str,
) -> QueryResult<Vec<(Client, Option<chrono::NaiveDateTime>)>> {
    use crate::db::schema::credentials;
    clients::table
        .left_join(credentials::table)
        .filter(clients::owner_user_id.eq(owner))
        .filter(clients::provider.eq(provider))
        .order((clients::is_default.desc(), clients::created_at.asc()))
        .select((Client::as_select(), credentials::expires_at.nullable()))
        .load(conn)
}

/// Sets a client's status and last error (None clears it).
pub fn set_status(
    conn: &mut DbConnection,
    id: &str,
    status: ClientStatus,
    last_error: Option<&str>,
) -> QueryResult<usize> {
    diesel::update(clients::table.find(id))
        .set((
            clients::status.eq(status.as_str()),
            clients::last_error.eq(last_error),
            clients::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

/// Keeps a message for the client's page and the service API without changing its status.
pub fn note_error(conn: &mut DbConnection, id: &str, message: &str) -> QueryResult<usize> {
    diesel::update(clients::table.find(id))
        .set((
            clients::last_error.eq(Some(message)),
            clients::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

/// Replaces the client's profile (provider metadata read again), keeping the search box in
/// step with it.
pub fn update_profile(
    conn: &mut DbConnection,
    client: &Client,
    profile: &Value,
) -> QueryResult<usize> {
    diesel::update(clients::table.find(&client.id))
        .set((
            clients::profile.eq(profile.to_string()),
            clients::search_text.eq(search_text(
                &client.display_name,
                &client.provider_account_id,
                profile,
            )),
            clients::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

/// Records a successful refresh.
/// The scopes a refresh answer granted (space-separated), replacing those stored.
pub fn set_scopes(conn: &mut DbConnection, id: &str, scopes: &str) -> QueryResult<usize> {
    diesel::update(clients::table.find(id))
        .set(clients::scopes.eq(scopes))
        .execute(conn)
}

pub fn mark_refreshed(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    let now = crate::db::now();
    diesel::update(clients::table.find(id))
        .set((
            clients::status.eq(ClientStatus::Active.as_str()),
            clients::last_error.eq(None::<String>),
            clients::last_refreshed_at.eq(Some(now)),
            clients::updated_at.eq(now),
        ))
        .execute(conn)
}

/// A disconnected client stays listed (with its history) but is no one's default.
pub fn mark_disconnected(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::update(clients::table.find(id))
        .set((
            clients::status.eq(ClientStatus::Disconnected.as_str()),
            clients::is_default.eq(false),
            clients::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

/// Connections of `provider` that are not disconnected (those are kept for their history).
pub fn count_connected(conn: &mut DbConnection, provider: &str) -> QueryResult<i64> {
    clients::table
        .filter(clients::provider.eq(provider))
        .filter(clients::status.ne(ClientStatus::Disconnected.as_str()))
        .count()
        .get_result(conn)
}

/// (provider, status, count) for the metrics.
pub fn count_by_status(conn: &mut DbConnection) -> QueryResult<Vec<(String, String, i64)>> {
    clients::table
        .group_by((clients::provider, clients::status))
        .select((
            clients::provider,
            clients::status,
            diesel::dsl::count_star(),
        ))
        .load(conn)
}

/// Why `find_for` has no client to give.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Unknown, or another owner's: the caller cannot tell which.
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// The client with this id if `user` may act on it: admins on every client, members on
/// their own. Checked here, in the domain, not only by hiding buttons. Another owner's
/// client is "not found" like an unknown one, so a member cannot tell which ids exist.
pub fn find_for(
    conn: &mut DbConnection,
    user: &crate::auth::users::User,
    id: &crate::input::RecordId,
) -> Result<Client, LookupError> {
    find(conn, id.as_str())?
        .filter(|client| user.is_admin() || client.owner_user_id == user.id)
        .ok_or(LookupError::NotFound)
}

/// Records when a service last used the client. `updated_at` stays: using a client does
/// not change it (and the list would otherwise re-render every second).
pub fn set_last_used(
    conn: &mut DbConnection,
    id: &str,
    at: chrono::NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(clients::table.find(id))
        .set(clients::last_used_at.eq(Some(at)))
        .execute(conn)
        .map(|_| ())
}

/// The email of the client's owner.
pub fn owner_email(conn: &mut DbConnection, client: &Client) -> QueryResult<String> {
    users::table
        .find(&client.owner_user_id)
        .select(users::email)
        .first(conn)
}
