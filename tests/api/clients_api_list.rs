//! The service API's client list (`GET /api/v1/clients`) on the Clients list's code: pages
//! by `next_cursor` that neither skip nor repeat, search, filters, sorts and the bounded
//! total; a tampered cursor is a clear 400 that changes nothing. Also the two keys the list
//! keeps beside each client (tags and token expiry) following the changes they mirror.

use crate::helpers::TestApp;
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::audit::{Actor, Event};
use connecthub::db::schema::{audit_log, clients, credentials};
use diesel::prelude::*;
use serde_json::Value;
use std::collections::HashSet;

on_both_backends!(
    api_pages_by_cursor_neither_skip_nor_repeat_in_any_sort,
    the_api_searches_filters_and_bounds_its_total_as_the_page_does,
    a_tampered_cursor_is_refused_and_changes_nothing,
    tags_and_token_expiry_are_kept_in_step_for_the_list,
);

async fn seeded(app: &TestApp, count: usize) {
    app.db(move |conn| Ok(connecthub::seed::seed(conn, count).unwrap()))
        .await;
}

async fn api_get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

fn ids(page: &Value) -> Vec<String> {
    page["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// Follows `next_cursor` from `first` to the end; the ids in the order given.
async fn walk(app: &TestApp, key: &str, first: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut path = first.to_string();
    for _ in 0..50 {
        let (status, page) = api_get(app, key, &path).await;
        assert_eq!(status, 200, "{path}: {page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{first}&cursor={cursor}"),
            None => return seen,
        }
    }
    panic!("{first}: the pages never end")
}

async fn api_pages_by_cursor_neither_skip_nor_repeat_in_any_sort(app: TestApp) {
    seeded(&app, 40).await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    // Two clients with tokens, so the expires sort has real keys before the rest.
    let with_tokens = app
        .db(|conn| {
            let ids: Vec<String> = clients::table
                .select(clients::id)
                .order(clients::id.asc())
                .limit(2)
                .load(conn)?;
            let now = connecthub::db::now();
            for (n, id) in ids.iter().enumerate() {
                store_expiry(
                    conn,
                    id,
                    Some(now + chrono::TimeDelta::minutes(60 - n as i64)),
                )?;
            }
            Ok(ids)
        })
        .await;
    for sort in ["updated", "name", "expires"] {
        let seen = walk(&app, &key, &format!("/api/v1/clients?sort={sort}&limit=7")).await;
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(seen.len(), 40, "{sort}: every client once");
        assert_eq!(unique.len(), 40, "{sort}: none twice");
        if sort == "expires" {
            // Soonest expiry first: the second stored expires a minute before the first.
            assert_eq!(seen[..2], [with_tokens[1].clone(), with_tokens[0].clone()]);
        }
    }
    // A filtered walk keeps its filter: kustomer is every third seeded client.
    let kustomer = walk(&app, &key, "/api/v1/clients?provider=kustomer&limit=5").await;
    assert_eq!(kustomer.len(), 14);
}

async fn the_api_searches_filters_and_bounds_its_total_as_the_page_does(app: TestApp) {
    seeded(&app, 120).await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    let total = |page: &Value| (page["total"].as_i64().unwrap(), page["total_exact"] == true);
    let (_, all) = api_get(&app, &key, "/api/v1/clients").await;
    assert_eq!(ids(&all).len(), 100, "100 a page unless asked");
    assert_eq!(total(&all), (120, true));
    assert!(all["next_cursor"].is_string());
    assert!(!all.to_string().contains("access_token"), "never a token");
    for (query, expected) in [
        ("q=globex", 10),
        ("q=GLOBEX&provider=klaviyo", 10),
        ("q=seed-owner-3%40example.com", 6),
        ("owner=seed-owner-3%40example.com", 6),
        ("owner=nobody%40example.com", 0),
        ("status=error", 30),
        ("tag=vip", 24),
        ("tag=VIP&status=active", 12),
        ("q=zzzqqq", 0),
    ] {
        let (status, page) = api_get(&app, &key, &format!("/api/v1/clients?{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(total(&page), (expected, true), "{query}");
        assert_eq!(ids(&page).len() as i64, expected, "{query}");
    }
    let (_, named) = api_get(&app, &key, "/api/v1/clients?sort=name&limit=3").await;
    let names: Vec<&str> = named["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["account_name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

async fn a_tampered_cursor_is_refused_and_changes_nothing(app: TestApp) {
    seeded(&app, 12).await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    let (_, first) = api_get(&app, &key, "/api/v1/clients?limit=5").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let audit_before: i64 = app
        .db(|conn| audit_log::table.count().get_result(conn))
        .await;
    for (query, why) in [
        (format!("cursor={cursor}&sort=name"), "another sort's"),
        ("cursor=bm9uc2Vuc2U".into(), "base64 of nonsense"),
        ("cursor=%00".into(), "a NUL"),
        (format!("cursor={}", "A".repeat(601)), "too long"),
        ("limit=0".into(), "limit"),
        ("limit=x".into(), "limit"),
        ("sort=size".into(), "sort"),
        ("status=gone".into(), "status"),
        ("q=a%01".into(), "a control character"),
    ] {
        let (status, body) = api_get(&app, &key, &format!("/api/v1/clients?{query}")).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["error"], "invalid_request", "{why}");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{why}");
    }
    let (_, again) = api_get(
        &app,
        &key,
        &format!("/api/v1/clients?limit=5&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&again).len(), 5, "the good cursor still works");
    let audit_after: i64 = app
        .db(|conn| audit_log::table.count().get_result(conn))
        .await;
    assert_eq!(audit_after, audit_before);
}

/// Writes (or clears) a client's credentials row with only an expiry, as a refresh would.
fn store_expiry(
    conn: &mut connecthub::db::DbConnection,
    id: &str,
    expires_at: Option<chrono::NaiveDateTime>,
) -> QueryResult<usize> {
    let updated = diesel::update(credentials::table.find(id))
        .set(credentials::expires_at.eq(expires_at))
        .execute(conn)?;
    if updated > 0 {
        return Ok(updated);
    }
    diesel::insert_into(credentials::table)
        .values((
            credentials::client_id.eq(id),
            credentials::key_id.eq("test"),
            credentials::token_type.eq("Bearer"),
            credentials::expires_at.eq(expires_at),
            credentials::refresh_failures.eq(0),
            credentials::updated_at.eq(connecthub::db::now()),
        ))
        .execute(conn)
}

async fn tags_and_token_expiry_are_kept_in_step_for_the_list(app: TestApp) {
    seeded(&app, 10).await;
    let key = app.api_key(&[Scope::ClientsRead]).await;
    let count = |query: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let (status, page) = api_get(app, key, &format!("/api/v1/clients?{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            page["total"].as_i64().unwrap()
        }
    };
    assert_eq!(count("tag=seed").await, 10);
    let id: String = app
        .db(|conn| clients::table.select(clients::id).first(conn))
        .await;
    let event = || Event::new(Actor::system(), "client_tagged");
    let tagged = id.clone();
    app.db(move |conn| {
        connecthub::clients::tags::add_tag(conn, &tagged, "gold", event())?.unwrap();
        Ok(())
    })
    .await;
    assert_eq!(count("tag=gold").await, 1);
    let cleared = id.clone();
    app.db(move |conn| {
        connecthub::clients::tags::replace_tags(conn, &cleared, vec!["silver".into()], event())?
            .unwrap();
        Ok(())
    })
    .await;
    assert_eq!(count("tag=gold").await, 0);
    assert_eq!(count("tag=silver").await, 1);
    assert_eq!(count("tag=seed").await, 9);
    // The expiry key follows the credentials: stored, changed, cleared, deleted.
    let expiry = |id: String| {
        let app = &app;
        async move {
            app.db(move |conn| {
                clients::table
                    .find(id)
                    .select(clients::expiry_order)
                    .first::<chrono::NaiveDateTime>(conn)
            })
            .await
        }
    };
    let never = expiry(id.clone()).await;
    assert_eq!(
        never.format("%Y").to_string(),
        "9999",
        "no credentials: last"
    );
    let soon = connecthub::db::now() + chrono::TimeDelta::minutes(5);
    let stored = id.clone();
    app.db(move |conn| store_expiry(conn, &stored, Some(soon)))
        .await;
    assert_eq!(expiry(id.clone()).await, soon);
    let later = soon + chrono::TimeDelta::hours(1);
    let changed = id.clone();
    app.db(move |conn| store_expiry(conn, &changed, Some(later)))
        .await;
    assert_eq!(expiry(id.clone()).await, later);
    let (_, first) = api_get(&app, &key, "/api/v1/clients?sort=expires&limit=1").await;
    assert_eq!(ids(&first), std::slice::from_ref(&id));
    let removed = id.clone();
    app.db(move |conn| connecthub::clients::credentials::destroy(conn, &removed))
        .await;
    assert_eq!(expiry(id.clone()).await, never);
}
