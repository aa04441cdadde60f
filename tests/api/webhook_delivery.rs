//! Delivery under stress: a crash (SIGKILL of a real `connecthub demo`) between the change
//! and the delivery, and two instances sharing one database and its queue.

use crate::helpers::receiver::Receiver;
use crate::helpers::{instance_on_same_database, location, spawn_app_with, spawn_process, Backend};
use crate::webhooks::endpoint;
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::{jobs, webhook_events};
use diesel::prelude::*;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

with_each_backend!(
    a_crash_between_the_change_and_the_delivery_delivers_after_restart_with_the_same_id,
    two_instances_deliver_a_thousand_events_each_exactly_once,
);

async fn a_crash_between_the_change_and_the_delivery_delivers_after_restart_with_the_same_id(
    backend: Backend,
) {
    let host = spawn_app_with(Backend::Sqlite, &[]).await;
    let receiver = Receiver::start().await;
    // The first delivery reaches the receiver, which holds its answer: the process dies
    // while the job is leased and the delivery unconfirmed.
    receiver.hang_first(1, Duration::from_secs(30));
    let settings = [("JOB_LEASE", "1s"), ("WEBHOOK_RETRY_SCHEDULE", "50ms")];
    let mut process = spawn_process(backend, &host, &settings).await;
    let key = process.app.api_key(&[Scope::WebhooksWrite]).await;
    let (_, secret) = endpoint(&process.app, &key, &receiver.url, &["connection.created"]).await;
    process.app.login_as(Role::Admin).await;
    assert_eq!(
        location(&process.app.connect("klaviyo", Some("AcmeK1")).await),
        "/admin/clients"
    );
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1, "the delivery started");
    process.crash();

    process.restart().await;
    let received = receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(received.len(), 2, "delivered again after the restart");
    assert_eq!(received[1].id, received[0].id, "with the same webhook-id");
    assert!(received[1].verifies_with(&secret));
    assert_eq!(received[1].event_type(), "connection.created");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 2, "and not once more");
    // The demo also syncs the new connection, and each sync run is an event of its own.
    let events: i64 = process
        .app
        .db(|conn| {
            webhook_events::table
                .filter(webhook_events::event_type.eq("connection.created"))
                .count()
                .get_result(conn)
        })
        .await;
    assert_eq!(events, 1, "one event for one change");
}

async fn two_instances_deliver_a_thousand_events_each_exactly_once(backend: Backend) {
    let settings = [("JOB_LEASE", "2s")];
    let first = spawn_app_with(backend, &settings).await;
    let second = instance_on_same_database(&first, &settings).await;
    let receiver = Receiver::start().await;
    let key = first.api_key(&[Scope::WebhooksWrite]).await;
    let (id, _) = endpoint(&first, &key, &receiver.url, &[]).await;
    let apps = [&first, &second];
    let sent: Vec<u16> = futures_util::stream::iter(0..1000)
        .map(|n| {
            let app = apps[n % 2];
            let (url, key) = (
                app.url(&format!("/api/v1/webhook-endpoints/{id}/test")),
                key.clone(),
            );
            let client = app.client.clone();
            async move {
                client
                    .post(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(sent.iter().all(|s| *s == 202));
    let received = receiver.wait_for(1000, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for delivery in receiver.received() {
        *per_id.entry(delivery.id).or_default() += 1;
    }
    assert_eq!(received.len(), 1000);
    assert_eq!(per_id.len(), 1000, "every event arrived");
    assert!(per_id.values().all(|n| *n == 1), "none twice");
    let workers: Vec<(String, i32, Option<String>)> = first
        .db(|conn| {
            jobs::table
                .select((jobs::state, jobs::attempts, jobs::locked_by))
                .load(conn)
        })
        .await;
    assert!(workers
        .iter()
        .all(|(state, attempts, _)| state == "done" && *attempts == 1));
    // Which instance delivered what depends on timing: one endpoint's deliveries run one
    // at a time, so whoever holds its queue key keeps it while events keep coming.
    let holders: std::collections::HashSet<String> =
        workers.into_iter().filter_map(|(_, _, w)| w).collect();
    assert!(holders.len() <= 2 && !holders.is_empty(), "{holders:?}");
}
