//! A connection that needs reauthorisation pauses its syncs; connecting the account again
//! resumes them (the scheduler is on here, as in production).

use crate::helpers::{spawn_app_with, Backend};
use crate::operations::{client_of, klaviyo_client};
use crate::syncs::{api, counts, model_state, sync_key, KLAVIYO_ACCOUNT};
use diesel::prelude::*;
use serde_json::json;
use std::time::Duration;

/// With the scheduler on: a connection that needs reauthorisation pauses its syncs, and
/// connecting the account again resumes them.
async fn needs_reauth_pauses_and_reconnecting_resumes(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("SYNC_SCHEDULE", "true"),
            ("SYNC_SCHEDULER_INTERVAL", "200ms"),
        ],
    )
    .await;
    let client = klaviyo_client(&app).await;
    let key = app.api_key(&sync_key()).await;
    let wait_for = |model: &'static str, wanted: &'static str| {
        let (app, key, client) = (&app, key.clone(), client.clone());
        async move {
            for _ in 0..300 {
                let state = model_state(app, &key, &client, model).await;
                if state["status"] == wanted {
                    return state;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{model} never became {wanted}");
        }
    };
    // The scheduler runs new connections at once.
    let lists = wait_for("lists", "idle").await;
    assert_eq!(counts(&lists), (23, 0, 0));
    app.sandbox_faults(
        json!({"provider": "klaviyo", "revoke_all": true, "expire_access_tokens": true}),
    )
    .await;
    let path = format!("/api/v1/clients/{client}/syncs/segments/run");
    assert_eq!(api(&app, &key, reqwest::Method::POST, &path).await.0, 202);
    let paused = wait_for("segments", "paused").await;
    wait_for("lists", "paused").await;
    let status: String = app
        .db(|conn| {
            use connecthub::db::schema::clients;
            clients::table.select(clients::status).first(conn)
        })
        .await;
    assert_eq!(status, "needs_reauth");
    // Nothing runs while paused.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let still = model_state(&app, &key, &client, "segments").await;
    assert_eq!(
        (still["status"].clone(), still["last_finished_at"].clone()),
        (json!("paused"), paused["last_finished_at"].clone())
    );
    // Reconnecting resumes: the models run again.
    app.connect("klaviyo", Some(KLAVIYO_ACCOUNT)).await;
    assert_eq!(client_of(&app, "klaviyo").await, client);
    let segments = wait_for("segments", "idle").await;
    assert_eq!(segments["last_outcome"], "succeeded", "{segments}");
    assert_ne!(segments["last_finished_at"], paused["last_finished_at"]);
}

crate::with_each_backend!(needs_reauth_pauses_and_reconnecting_resumes);
