//! Demo data for trying the Clients list at volume: `connecthub seed --clients 10000`.
//! Seeded clients have no credentials (no token, real or fake), carry the tag `seed`, and
//! belong to a handful of seed members.

use crate::auth::users::{self, Email, Role};
use crate::db::schema::clients;
use crate::db::DbConnection;
use diesel::prelude::*;
use serde_json::json;

const OWNERS: usize = 20;
const STATUSES: [&str; 4] = ["active", "active", "needs_reauth", "error"];
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
            clients::status.eq(STATUSES[n % STATUSES.len()]),
            clients::auth_type.eq("oauth2"),
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
