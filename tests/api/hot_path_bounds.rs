//! The hot paths' in-memory state is bounded (`TOKEN_CACHE_CAPACITY`) and stays correct
//! past its bound: evicted clients are read again and get their own token, a proxied call
//! after an eviction works and is metered, and hand-outs gathered into fewer audit entries
//! are all counted.

use crate::helpers::{spawn_app_with, Backend, ACME_CONNECT_CALLS, TEST_KEY};
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::config::EncryptionKey;
use connecthub::vault::Vault;
use secrecy::ExposeSecret;
use std::time::Duration;

with_each_backend!(
    a_cache_past_its_bound_still_hands_out_each_clients_own_token,
    a_proxied_call_after_eviction_works_and_is_metered,
    repeated_hand_outs_are_gathered_into_fewer_audit_entries_and_all_counted,
);

fn vault() -> Vault {
    Vault::new(&EncryptionKey::parse(TEST_KEY).unwrap(), None)
}

/// Seeds `count` connected clients; their ids and access tokens as stored.
async fn seeded(app: &crate::helpers::TestApp, count: usize) -> Vec<(String, String)> {
    app.db(move |conn| {
        let vault = vault();
        connecthub::seed::connected(conn, &vault, count, chrono::TimeDelta::hours(2))
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
        let ids: Vec<String> = {
            use connecthub::db::schema::credentials;
            use diesel::prelude::*;
            credentials::table
                .select(credentials::client_id)
                .load(conn)?
        };
        Ok(ids
            .into_iter()
            .map(|id| {
                let opened = connecthub::clients::credentials::open(conn, &vault, &id)
                    .unwrap()
                    .unwrap();
                let token = opened.access_token.unwrap().expose_secret().to_string();
                (id, token)
            })
            .collect())
    })
    .await
}

async fn a_cache_past_its_bound_still_hands_out_each_clients_own_token(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CACHE_CAPACITY", "5")]).await;
    let clients = seeded(&app, 40).await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    for round in 0..2 {
        for (id, token) in &clients {
            let response = app.service_token(&key, id).await;
            assert_eq!(response.status(), 200, "round {round}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["client_id"], id.as_str());
            assert_eq!(body["access_token"], token.as_str(), "round {round}");
        }
    }
}

async fn a_proxied_call_after_eviction_works_and_is_metered(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CACHE_CAPACITY", "2")]).await;
    app.login_as(Role::Admin).await;
    app.connect("klaviyo", Some("AcmeK1")).await;
    let connected = app.clients().await.remove(0);
    let key = app.api_key(&Scope::ALL).await;
    let first = app.proxy_get(&key, &connected.id, "api/accounts").await;
    assert_eq!(first.status(), 200);
    for (id, _) in seeded(&app, 10).await {
        assert_eq!(app.service_token(&key, &id).await.status(), 200);
    }
    let again = app.proxy_get(&key, &connected.id, "api/accounts").await;
    assert_eq!(again.status(), 200, "the evicted client is read again");
    // Both proxied calls metered, beside the calls connecting made (`usage_after` waits
    // for exactly that many).
    app.usage_after(&key, ACME_CONNECT_CALLS + 2, "days=1")
        .await;
}

async fn repeated_hand_outs_are_gathered_into_fewer_audit_entries_and_all_counted(
    backend: Backend,
) {
    let app = spawn_app_with(backend, &[("AUDIT_HANDOUT_WINDOW_SECS", "2")]).await;
    let (id, _) = seeded(&app, 1).await.remove(0);
    let key = app.api_key(&[Scope::TokensRead]).await;
    assert_eq!(app.service_token(&key, &id).await.status(), 200);
    let first = counts_once(&app, |counts| !counts.is_empty()).await;
    assert_eq!(
        first,
        [1],
        "the first is written on its own, within a second or so"
    );
    for _ in 0..5 {
        assert_eq!(app.service_token(&key, &id).await.status(), 200);
    }
    let counts = counts_once(&app, |counts| counts.iter().sum::<u64>() == 6).await;
    assert_eq!(
        counts.iter().sum::<u64>(),
        6,
        "every hand-out counted: {counts:?}"
    );
    assert!(
        counts.len() <= 3,
        "gathered, not one entry each: {counts:?}"
    );
}

/// The hand-out counts once `done` holds for them, or after 10 s.
async fn counts_once(app: &crate::helpers::TestApp, done: impl Fn(&[u64]) -> bool) -> Vec<u64> {
    let mut counts = Vec::new();
    for _ in 0..100 {
        counts = hand_out_counts(app).await;
        if done(&counts) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    counts
}

/// The counts of the `token_handed_out` entries, oldest first.
async fn hand_out_counts(app: &crate::helpers::TestApp) -> Vec<u64> {
    use connecthub::db::schema::audit_log;
    use diesel::prelude::*;
    let details: Vec<String> = app
        .db(|conn| {
            audit_log::table
                .filter(audit_log::action.eq("token_handed_out"))
                .order(audit_log::id.asc())
                .select(audit_log::details)
                .load(conn)
        })
        .await;
    details
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|d| d["count"].as_u64())
        .collect()
}
