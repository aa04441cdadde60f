//! Demo data for trying the app at volume: `connecthub seed --clients 10000` for the
//! Clients list, `--usage-rows 1000000` for the usage page. Seeded clients have no
//! credentials (no token, real or fake), carry the tag `seed`, and belong to a handful of
//! seed members; seeded usage is spread over existing clients and written like real calls
//! (into the hourly and daily roll-ups).

use crate::auth::users::{self, Email, Role};
use crate::clients::ClientStatus;
use crate::db::schema::clients;
use crate::db::DbConnection;
use crate::providers::AuthType;
use diesel::prelude::*;
use serde_json::json;

mod connected;
pub use connected::connected;

const OWNERS: usize = 20;
/// Half active, a quarter needing reconnection, a quarter in error.
const STATUSES: [ClientStatus; 4] = [
    ClientStatus::Active,
    ClientStatus::Active,
    ClientStatus::NeedsReauth,
    ClientStatus::Error,
];
const TAGS: [&str; 5] = ["vip", "trial", "eu", "us", "agency"];
const WORDS: [&str; 12] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Soylent",
    "Cyberdyne",
    "Vandelay",
];
const KINDS: [&str; 6] = ["Store", "Retail", "Outlet", "Labs", "Support", "Shop"];

/// Rows per INSERT statement (15 bound values each: well under both databases' limits).
const CLIENT_ROWS_PER_INSERT: usize = 1000;
/// Rows per transaction: few commits, short enough locks.
const CLIENT_ROWS_PER_TRANSACTION: usize = 5000;

/// Creates the seed owners (if missing) and `count` clients; returns how many were added.
/// Multi-row INSERTs in transactions of a few thousand rows: 1,000,000 clients take minutes.
pub fn seed(conn: &mut DbConnection, count: usize) -> anyhow::Result<usize> {
    let owners = seed_owners(conn)?;
    let now = crate::db::now();
    let mut added = 0;
    while added < count {
        let end = count.min(added + CLIENT_ROWS_PER_TRANSACTION);
        crate::db::transaction(conn, |conn| {
            let mut start = added;
            while start < end {
                let stop = end.min(start + CLIENT_ROWS_PER_INSERT);
                let rows: Vec<_> = (start..stop)
                    .map(|n| seed_row(n, &owners[n % owners.len()], now))
                    .collect();
                insert_rows(conn, &rows)?;
                start = stop;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        added = end;
    }
    crate::db::analyze(conn)?;
    Ok(added)
}
fn seed_owners(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for n in 0..OWNERS {
        let email =
            Email::parse(&format!("seed-owner-{n}@example.com")).map_err(anyhow::Error::msg)?;
        let id = match users::find_by_email(conn, &email)? {
            Some(user) => user.id,
            // "!" is no argon2 hash: seed owners cannot sign in.
            None => users::create(conn, &email, &format!("Seed owner {n}"), "!", Role::Member)?.id,
        };
        ids.push(id);
    }
    Ok(ids)
}

/// One seeded client's values, as `insert_rows` writes them.
struct SeedRow {
    id: String,
    owner: String,
    provider: &'static str,
    account_id: String,
    name: String,
    status: &'static str,
    tags: String,
    profile: String,
    changed: chrono::NaiveDateTime,
    search_text: String,
}

fn seed_row(n: usize, owner: &str, now: chrono::NaiveDateTime) -> SeedRow {
    let provider = if n.is_multiple_of(3) {
        "kustomer"
    } else {
        "klaviyo"
    };
    let name = format!(
        "{} {} {n}",
        WORDS[n % WORDS.len()],
        KINDS[(n / 7) % KINDS.len()]
    );
    let account_id = format!("seed-{provider}-{n:06}");
    let domain = format!("{}{n}.example", WORDS[n % WORDS.len()].to_lowercase());
    let profile = json!({"account_id": account_id, "account_name": name, "email_domain": domain, "seed": true});
    SeedRow {
        id: uuid::Uuid::new_v4().to_string(),
        owner: owner.to_string(),
        provider,
        search_text: format!("{name} {account_id} {domain}").to_lowercase(),
        account_id,
        name,
        status: STATUSES[n % STATUSES.len()].as_str(),
        tags: json!(["seed", TAGS[n % TAGS.len()]]).to_string(),
        profile: profile.to_string(),
        changed: now - chrono::TimeDelta::minutes(n as i64),
    }
}

fn insert_rows(conn: &mut DbConnection, rows: &[SeedRow]) -> QueryResult<()> {
    let values: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                clients::id.eq(&row.id),
                clients::owner_user_id.eq(&row.owner),
                clients::provider.eq(row.provider),
                clients::provider_account_id.eq(&row.account_id),
                clients::display_name.eq(&row.name),
                clients::status.eq(row.status),
                clients::auth_type.eq(AuthType::Oauth2.as_str()),
                clients::tags.eq(&row.tags),
                clients::profile.eq(&row.profile),
                clients::scopes.eq(""),
                clients::is_default.eq(false),
                clients::connected_at.eq(row.changed),
                clients::created_at.eq(row.changed),
                clients::updated_at.eq(row.changed),
                clients::search_text.eq(&row.search_text),
            )
        })
        .collect();
    // Multi-row INSERTs are written per backend: diesel's multi-backend connection has none.
    let insert = diesel::insert_into(clients::table).values(values);
    match conn {
        DbConnection::Postgresql(conn) => insert.execute(conn),
        DbConnection::Sqlite(conn) => insert.execute(conn),
    }
    .map(|_| ())
}

/// Usage rows are spread over at most this many clients (the most recently changed).
const USAGE_CLIENTS: usize = 200;
/// Calls written per transaction.
const USAGE_BATCH: usize = 5000;

/// Records `rows` made-up provider calls over the last `days` calendar days, oldest first: mostly
/// fast successes, some errors and rate-limit hits. Returns how many were written.
pub fn usage(conn: &mut DbConnection, rows: usize, days: u32) -> anyhow::Result<usize> {
    let clients: Vec<_> = crate::clients::list(conn, None)?
        .into_iter()
        .take(USAGE_CLIENTS)
        .map(|listed| listed.client)
        .collect();
    if clients.is_empty() {
        anyhow::bail!(
            "there are no clients to record usage for: add some first (seed --clients 200)"
        );
    }
    // From midnight (UTC) `days - 1` days ago until now: the page's "last N days".
    let now = crate::db::now();
    let start = (now.date() - chrono::TimeDelta::days(i64::from(days) - 1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or(now);
    let span_ms = (now - start).num_milliseconds().max(1);
    let mut written = 0;
    while written < rows {
        let batch: Vec<crate::usage::Call> = (written..rows.min(written + USAGE_BATCH))
            .map(|i| {
                let client = &clients[rand::random::<usize>() % clients.len()];
                let offset = span_ms * i as i64 / rows as i64;
                made_up_call(client, start + chrono::TimeDelta::milliseconds(offset))
            })
            .collect();
        written += batch.len();
        crate::usage::store::write(conn, &batch)?;
    }
    Ok(written)
}

fn made_up_call(client: &crate::clients::Client, at: chrono::NaiveDateTime) -> crate::usage::Call {
    let endpoints: &[&str] = if client.provider == "kustomer" {
        &["customers", "conversations", "notes", "teams", "messages"]
    } else {
        &[
            "lists",
            "segments",
            "accounts",
            "profiles",
            "events",
            "campaigns",
        ]
    };
    let roll = rand::random::<u32>() % 1000;
    let (status, rate_limited) = match roll {
        0..=9 => (429, true),
        10..=19 => (500, false),
        20..=39 => (404, false),
        _ => (200, false),
    };
    crate::usage::Call {
        client_id: client.id.clone(),
        user_id: client.owner_user_id.clone(),
        provider: client.provider.clone(),
        endpoint: endpoints[rand::random::<usize>() % endpoints.len()].to_string(),
        status,
        duration_ms: 20 + (rand::random::<u32>() % 400) as i32,
        rate_limited,
        at,
    }
}

/// Audit entries written per transaction (one chain run each).
const AUDIT_BATCH: usize = 5000;
/// What seeded entries record: mostly token traffic, some sign-ins and changes.
const AUDIT_ACTIONS: [&str; 8] = [
    "token_handed_out",
    "token_handed_out",
    "token_handed_out",
    "token_refreshed",
    "token_refreshed",
    "login",
    "client_tagged",
    "oauth_failed",
];

/// Appends `rows` made-up audit entries over the last `days` days, oldest first, chained
/// like real ones (`audit verify` passes): actions on the newest clients by the seed
/// owners or the system, one in twenty a failure. Returns how many were written.
pub fn audit(conn: &mut DbConnection, rows: usize, days: u32) -> anyhow::Result<usize> {
    use crate::audit::{Actor, Event};
    let clients: Vec<_> = clients::table
        .order(clients::updated_at.desc())
        .select((clients::id, clients::owner_user_id))
        .limit(USAGE_CLIENTS as i64)
        .load::<(String, String)>(conn)?;
    let owners = seed_owners(conn)?;
    let now = crate::db::now();
    let span_ms = chrono::TimeDelta::days(i64::from(days)).num_milliseconds();
    let start = now - chrono::TimeDelta::days(i64::from(days));
    let mut written = 0;
    while written < rows {
        let batch: Vec<(Event, chrono::NaiveDateTime)> = (written..rows.min(written + AUDIT_BATCH))
            .map(|i| {
                let action = AUDIT_ACTIONS[i % AUDIT_ACTIONS.len()];
                let owner = i % owners.len();
                let actor = if action.starts_with("token") {
                    Actor::system()
                } else {
                    Actor::user(&owners[owner], &format!("seed-owner-{owner}@example.com"))
                };
                let mut event = Event::new(actor, action);
                if let Some((id, _)) = clients.get(i % clients.len().max(1)) {
                    event = event.target("client", id.clone());
                }
                if i % 20 == 19 {
                    event = event.failed();
                }
                let at = start + chrono::TimeDelta::milliseconds(span_ms * i as i64 / rows as i64);
                (event, at)
            })
            .collect();
        written += batch.len();
        crate::audit::append_dated(conn, batch)?;
    }
    crate::db::analyze(conn)?;
    Ok(written)
}
