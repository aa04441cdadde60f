//! Demo data for trying the app at volume: `connecthub seed --clients 10000` for the
//! Clients list, `--usage-rows 1000000` for the usage page. Seeded clients have no
//! credentials (no token, real or fake), carry the tag `seed`, and belong to a handful of
//! seed members; seeded usage is spread over existing clients and written like real calls
//! (raw rows plus daily roll-ups).

use crate::auth::users::{self, Email, Role};
use crate::clients::ClientStatus;
use crate::db::schema::clients;
use crate::db::DbConnection;
use crate::providers::AuthType;
use diesel::prelude::*;
use serde_json::json;

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

/// Creates the seed owners (if missing) and `count` clients; returns how many were added.
pub fn seed(conn: &mut DbConnection, count: usize) -> anyhow::Result<usize> {
    let owners = seed_owners(conn)?;
    let now = crate::db::now();
    let mut added = 0;
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        crate::db::transaction(conn, |conn| {
            for &n in chunk {
                insert_one(conn, n, &owners[n % owners.len()], now)?;
                added += 1;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
    }
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

fn insert_one(
    conn: &mut DbConnection,
    n: usize,
    owner: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
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
    let tags = json!(["seed", TAGS[n % TAGS.len()]]);
    let changed = now - chrono::TimeDelta::minutes(n as i64);
    diesel::insert_into(clients::table)
        .values((
            clients::id.eq(uuid::Uuid::new_v4().to_string()),
            clients::owner_user_id.eq(owner),
            clients::provider.eq(provider),
            clients::provider_account_id.eq(&account_id),
            clients::display_name.eq(&name),
            clients::status.eq(STATUSES[n % STATUSES.len()].as_str()),
            clients::auth_type.eq(AuthType::Oauth2.as_str()),
            clients::tags.eq(tags.to_string()),
            clients::profile.eq(profile.to_string()),
            clients::scopes.eq(""),
            clients::is_default.eq(false),
            clients::connected_at.eq(changed),
            clients::created_at.eq(changed),
            clients::updated_at.eq(changed),
            clients::search_text.eq(format!("{name} {account_id} {domain}").to_lowercase()),
        ))
        .execute(conn)
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
        method: if roll.is_multiple_of(4) {
            "POST"
        } else {
            "GET"
        }
        .to_string(),
        status,
        duration_ms: 20 + (rand::random::<u32>() % 400) as i32,
        rate_limited,
        at,
    }
}
