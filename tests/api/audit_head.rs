//! The audit chain's head, published as the `audit.head` webhook event, and `audit verify
//! --expect-head`: cutting off the newest entries passes a plain verify (what is left
//! still links up from the start) but fails against a head published before the cut.

use crate::helpers::receiver::Receiver;
use crate::helpers::{spawn_app_with, Backend};
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::audit_log;
use diesel::prelude::*;
use std::process::{Command, Output};

with_each_backend!(a_cut_off_chain_passes_verify_but_fails_against_the_published_head);

fn verify(database_url: &str, head: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_connecthub"));
    command
        .args(["audit", "verify"])
        .env_clear()
        .env("DATABASE_URL", database_url);
    if let Some(head) = head {
        command.args(["--expect-head", head]);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

async fn a_cut_off_chain_passes_verify_but_fails_against_the_published_head(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("AUDIT_HEAD_INTERVAL_SECS", "1"),
            ("WEBHOOK_RETRY_SCHEDULE", "50ms"),
        ],
    )
    .await;
    let receiver = Receiver::start().await;
    let key = app.api_key(&[Scope::WebhooksWrite]).await;
    crate::webhooks::endpoint(&app, &key, &receiver.url, &["audit.head"]).await;
    let user = app.create_user(Role::Admin).await;
    for _ in 0..3 {
        app.login(&user.email, "wrong-password").await;
    }
    let entries: i64 = app
        .db(|conn| audit_log::table.count().get_result(conn))
        .await;
    assert!(entries >= 3);
    // Wait for a head that covers the three failed sign-ins.
    let mut head = serde_json::Value::Null;
    for _ in 0..100 {
        if let Some(found) = receiver
            .received()
            .into_iter()
            .map(|d| d.json()["data"].clone())
            .find(|data| data["count"].as_i64() >= Some(entries))
        {
            head = found;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let published = head["expect_head"]
        .as_str()
        .expect("an audit.head event")
        .to_string();
    let count = head["count"].as_i64().unwrap();
    assert_eq!(
        published,
        format!("{count}:{}", head["hash"].as_str().unwrap())
    );
    // The head names the count-th entry by its hash.
    let nth: String = app
        .db(move |conn| {
            audit_log::table
                .select(audit_log::hash)
                .order(audit_log::id.asc())
                .offset(count - 1)
                .first(conn)
        })
        .await;
    assert_eq!(head["hash"], nth);
    let intact = verify(&app.database_url, Some(published.as_str()));
    assert!(intact.status.success(), "{}", text(&intact.stderr));
    assert!(
        text(&intact.stdout).ends_with(&format!("passing the published head {published}")),
        "{}",
        text(&intact.stdout)
    );

    // Someone deletes the newest two entries of the published head, and what follows.
    let cut_from: i64 = app
        .db(move |conn| {
            audit_log::table
                .select(audit_log::id)
                .order(audit_log::id.asc())
                .offset(count - 2)
                .first(conn)
        })
        .await;
    app.db(move |conn| {
        diesel::delete(audit_log::table.filter(audit_log::id.ge(cut_from))).execute(conn)
    })
    .await;
    let remaining = count - 2;
    // Without a head the cut cannot be seen: the entries left still link up from the start.
    let plain = verify(&app.database_url, None);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert_eq!(text(&plain.stdout), format!("intact: {remaining} entries"));
    // Against the published head it is found.
    let cut = verify(&app.database_url, Some(published.as_str()));
    assert_eq!(cut.status.code(), Some(1));
    assert_eq!(
        text(&cut.stderr),
        format!("error: cut off: the chain has {remaining} entries but a head with {count} was published (its newest entries were removed)")
    );
    // A head the chain never had (same count, other hash) is refused too.
    let other = format!("{remaining}:{}", "0".repeat(64));
    let differs = verify(&app.database_url, Some(other.as_str()));
    assert_eq!(differs.status.code(), Some(1));
    assert!(
        text(&differs.stderr).contains("is not the entry of the published head"),
        "{}",
        text(&differs.stderr)
    );
    // A malformed head is a usage error that says what it wants.
    let malformed = verify(&app.database_url, Some("12:xyz"));
    assert_eq!(malformed.status.code(), Some(2));
    assert!(text(&malformed.stderr).contains("must be <count>:<hash>"));
}
