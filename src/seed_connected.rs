//! Connections at volume whose tokens are real at the sandbox: `connecthub seed
//! --connected 100000 --expiring-within 1h` asks a running sandbox to mint that many grants
//! (`POST /sandbox/_control/grants`) with expiries spread evenly over the window, and
//! stores each as a connected OAuth client with its tokens sealed as a real connection's
//! are — so the background refresher can be measured at scale (scripts/bench-refresher.sh).
//! Multi-row INSERTs, a few thousand rows per transaction.

use crate::clients::ClientStatus;
use crate::db::schema::{clients, credentials};
use crate::db::{DbConnection, DbPool};
use crate::oauth::schedule;
use crate::providers::AuthType;
use crate::vault::{Binding, Vault};
use diesel::prelude::*;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// Grants minted and rows written per round (the sandbox mints at most 10,000 per call).
const ROUND: usize = 5000;
/// Rows per INSERT statement (15 bound values per client row: under both databases' limits).
const ROWS_PER_INSERT: usize = 1000;

/// What to seed.
pub struct Plan {
    pub count: usize,
    /// `klaviyo` or `kustomer`: whose sandbox mints the grants.
    pub provider: String,
    /// The server the sandbox is mounted on (`http://127.0.0.1:8080`).
    pub sandbox_url: String,
    /// Tokens expire evenly spread between `now + expiring_after` and `now + expiring_within`.
    pub expiring_after: Duration,
    pub expiring_within: Duration,
    /// The server's `TOKEN_REFRESH_MARGIN_SECS`, to store the refresh_at it would compute.
    pub margin: chrono::TimeDelta,
}

#[derive(Deserialize)]
struct Minted {
    grants: Vec<MintedGrant>,
}

#[derive(Deserialize)]
struct MintedGrant {
    access_token: String,
    refresh_token: String,
    expires_in: i64,
}

/// Seeds `plan.count` connections; returns how many were added.
pub async fn seed(
    pool: &DbPool,
    vault: &std::sync::Arc<Vault>,
    plan: &Plan,
) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let owner = crate::db::run(pool, owner)
        .await
        .map_err(crate::db::DbError::from)?;
    let mut added = 0;
    while added < plan.count {
        let end = plan.count.min(added + ROUND);
        let lifetimes: Vec<u64> = (added..end).map(|n| lifetime(plan, n).as_secs()).collect();
        let minted = mint(&http, plan, lifetimes).await?;
        let rows = rows(vault, plan, &run, &owner, added, minted)?;
        crate::db::run(pool, move |conn| write(conn, &rows))
            .await
            .map_err(crate::db::DbError::from)?;
        added = end;
    }
    Ok(added)
}

/// Grant `n`'s access-token lifetime: evenly spread over the window.
fn lifetime(plan: &Plan, n: usize) -> Duration {
    let span = plan.expiring_within.saturating_sub(plan.expiring_after);
    let at = plan.expiring_after + span.mul_f64((n + 1) as f64 / plan.count as f64);
    at.max(Duration::from_secs(1))
}

async fn mint(
    http: &reqwest::Client,
    plan: &Plan,
    lifetimes: Vec<u64>,
) -> anyhow::Result<Vec<MintedGrant>> {
    let url = format!(
        "{}/sandbox/_control/grants",
        plan.sandbox_url.trim_end_matches('/')
    );
    let body =
        json!({"provider": plan.provider, "account": "seed-connected", "expires_in": lifetimes});
    let response = http.post(&url).json(&body).send().await?;
    if !response.status().is_success() {
        anyhow::bail!(
            "the sandbox at {url} refused to mint grants: {}",
            response.status()
        );
    }
    Ok(response.json::<Minted>().await?.grants)
}

/// The seed owner (created if missing; "!" is no password hash, so it cannot sign in).
fn owner(conn: &mut DbConnection) -> anyhow::Result<String> {
    use crate::auth::users::{self, Email, Role};
    let email = Email::parse("seed-connections@example.com").map_err(anyhow::Error::msg)?;
    Ok(match users::find_by_email(conn, &email)? {
        Some(user) => user.id,
        None => users::create(conn, &email, "Seed connections", "!", Role::Member)?.id,
    })
}

/// One connection to write: the client's values and its sealed tokens.
struct Row {
    id: String,
    owner: String,
    provider: String,
    account_id: String,
    name: String,
    profile: String,
    search_text: String,
    access: String,
    refresh: String,
    key_id: String,
    lifetime: schedule::Lifetime,
}

fn rows(
    vault: &Vault,
    plan: &Plan,
    run: &str,
    owner: &str,
    first: usize,
    minted: Vec<MintedGrant>,
) -> anyhow::Result<Vec<Row>> {
    let now = crate::db::now();
    minted
        .into_iter()
        .enumerate()
        .map(|(i, grant)| {
            let n = first + i;
            let id = uuid::Uuid::new_v4().to_string();
            let seal = |field: &str, token: String| {
                let binding = Binding {
                    table: "credentials",
                    row: &id,
                    field,
                };
                vault.seal(&SecretString::from(token), &binding)
            };
            let access = seal("access_token", grant.access_token)?;
            let refresh = seal("refresh_token", grant.refresh_token)?;
            let account_id = format!("conn-{run}-{n:07}");
            let name = format!("Connected {n}");
            Ok(Row {
                profile: json!({"account_id": account_id, "account_name": name, "seed": true})
                    .to_string(),
                search_text: format!("{name} {account_id}").to_lowercase(),
                lifetime: schedule::lifetime(now, Some(grant.expires_in), plan.margin),
                provider: plan.provider.clone(),
                owner: owner.to_string(),
                key_id: vault.current_key_id().to_string(),
                id,
                account_id,
                name,
                access,
                refresh,
            })
        })
        .collect()
}

fn write(conn: &mut DbConnection, rows: &[Row]) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            insert_clients(conn, chunk)?;
            insert_credentials(conn, chunk)?;
        }
        Ok(())
    })
}

fn insert_clients(conn: &mut DbConnection, rows: &[Row]) -> QueryResult<()> {
    let now = crate::db::now();
    let values: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                clients::id.eq(&row.id),
                clients::owner_user_id.eq(&row.owner),
                clients::provider.eq(&row.provider),
                clients::provider_account_id.eq(&row.account_id),
                clients::display_name.eq(&row.name),
                clients::status.eq(ClientStatus::Active.as_str()),
                clients::auth_type.eq(AuthType::Oauth2.as_str()),
                clients::tags.eq(r#"["seed","connected"]"#),
                clients::profile.eq(&row.profile),
                clients::scopes.eq("accounts:read lists:read segments:read profiles:read"),
                clients::is_default.eq(false),
                clients::connected_at.eq(now),
                clients::created_at.eq(now),
                clients::updated_at.eq(now),
                clients::search_text.eq(&row.search_text),
            )
        })
        .collect();
    // Multi-row INSERTs are written per backend: diesel's multi-backend connection has none.
    let insert = diesel::insert_into(clients::table).values(values);
    connecthub_core::on_backend!(conn, |inner| insert.execute(inner)).map(|_| ())
}

fn insert_credentials(conn: &mut DbConnection, rows: &[Row]) -> QueryResult<()> {
    let now = crate::db::now();
    let values: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                credentials::client_id.eq(&row.id),
                credentials::key_id.eq(&row.key_id),
                credentials::access_token.eq(Some(&row.access)),
                credentials::refresh_token.eq(Some(&row.refresh)),
                credentials::token_type.eq("Bearer"),
                credentials::expires_at.eq(row.lifetime.expires_at),
                credentials::refresh_at.eq(row.lifetime.refresh_at),
                credentials::refresh_failures.eq(0),
                credentials::updated_at.eq(now),
            )
        })
        .collect();
    let insert = diesel::insert_into(credentials::table).values(values);
    connecthub_core::on_backend!(conn, |inner| insert.execute(inner)).map(|_| ())
}
