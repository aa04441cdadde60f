//! Typed Kustomer operations (`/api/v1/clients/{id}/kustomer/…`) against the sandbox:
//! round trips visible at the provider, one conversation per external id (also under
//! concurrency), and input refused before anything is sent.

use crate::helpers::{location, TestApp};
use crate::on_both_backends;
use crate::operations::{
    client_of, get, kustomer_api_calls, kustomer_client, op, post, proxy_key, synced_rows,
    ACME_KEY, JANE,
};
use connecthub::auth::users::Role;
use serde_json::{json, Value};

on_both_backends!(
    customers_are_found_and_created,
    conversations_notes_messages_and_teams_round_trip,
    conversations_are_created_once_per_external_id,
    concurrent_requests_create_one_conversation,
    bad_input_is_refused_before_kustomer_is_called,
);

const JANE_EMAIL: &str = "jane.doe@example.com";

const BILLING_TEAM: &str = "5f3a1d2e8b2d4a0017c6e112";

/// Reads the sandbox's Kustomer API directly, as the org's API key.
async fn at_kustomer(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(&format!("/sandbox/kustomer/v1/{path}")))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn customers_are_found_and_created(app: TestApp) {
    let client = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    let (status, jane) = get(
        &app,
        &key,
        &client,
        "kustomer/customers?email=Jane.Doe%40example.com",
    )
    .await;
    assert_eq!(status, 200, "{jane}");
    assert_eq!(jane["id"], JANE);
    assert_eq!(jane["emails"], json!([JANE_EMAIL]));

    let (status, missing) = get(
        &app,
        &key,
        &client,
        "kustomer/customers?email=max%2Bnews%40example.com",
    )
    .await;
    assert_eq!(
        (status, missing["error"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(missing["message"], "customer not found");

    let new = json!({"name": "Max Plus", "email": "max+news@example.com"});
    let (status, created) = post(&app, &key, &client, "kustomer/customers", new.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "Max Plus");
    let (status, found) = get(
        &app,
        &key,
        &client,
        "kustomer/customers?email=max%2Bnews%40example.com",
    )
    .await;
    assert_eq!((status, &found["id"]), (200, &created["id"]));

    // Kustomer refuses a second customer with the address: its reason comes back.
    let (status, duplicate) = post(&app, &key, &client, "kustomer/customers", new).await;
    assert_eq!(status, 422, "{duplicate}");
    assert_eq!(duplicate["error"], "provider_rejected");
    assert_eq!(duplicate["provider_status"], 409);
    assert!(duplicate["detail"]
        .as_str()
        .unwrap()
        .contains("already exists"));
}

async fn conversations_notes_messages_and_teams_round_trip(app: TestApp) {
    // OAuth this time: the consent page's first org is acme-support.
    app.login_as(Role::Admin).await;
    assert_eq!(
        location(&app.connect("kustomer", None).await),
        "/admin/clients"
    );
    let client = client_of(&app, "kustomer").await;
    let key = proxy_key(&app).await;
    let conversation = a_conversation_is_created(&app, &key, &client).await;
    notes_and_messages_reach_kustomer(&app, &key, &client, &conversation).await;
    teams_are_listed_and_assigned(&app, &key, &client, &conversation).await;
}

async fn a_conversation_is_created(app: &TestApp, key: &str, client: &str) -> String {
    let (status, answer) = post(
        app,
        key,
        client,
        "kustomer/conversations",
        json!({"customer_id": JANE, "name": "Order #1001", "channel": "chat"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["created"], true);
    let conversation = answer["conversation"]["id"].as_str().unwrap().to_string();
    assert_eq!(answer["conversation"]["customer_id"], JANE);
    assert_eq!(answer["conversation"]["status"], "open");
    conversation
}

async fn notes_and_messages_reach_kustomer(
    app: &TestApp,
    key: &str,
    client: &str,
    conversation: &str,
) {
    let (status, note) = post(
        app,
        key,
        client,
        &format!("kustomer/conversations/{conversation}/notes"),
        json!({"body": "Called back; refund approved."}),
    )
    .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["conversation_id"], conversation);
    let (_, notes) = at_kustomer(app, &format!("customers/{JANE}/notes")).await;
    assert_eq!(
        notes["data"][0]["attributes"]["body"],
        "Called back; refund approved."
    );

    let (status, message) = post(
        app,
        key,
        client,
        &format!("kustomer/conversations/{conversation}/messages"),
        json!({"body": "Your refund is on its way.", "direction": "out"}),
    )
    .await;
    assert_eq!(status, 201, "{message}");
    assert_eq!(message["direction"], "out");
    assert_eq!(message["channel"], "chat");
}

async fn teams_are_listed_and_assigned(app: &TestApp, key: &str, client: &str, conversation: &str) {
    let (status, teams) = get(app, key, client, "kustomer/teams").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Tier 1", "Billing", "Escalations"]);

    let team_path = format!("kustomer/conversations/{conversation}/team");
    let (status, assigned) = op(
        app,
        key,
        reqwest::Method::PUT,
        client,
        &team_path,
        Some(json!({"team_id": BILLING_TEAM})),
    )
    .await;
    assert_eq!(status, 200, "{assigned}");
    assert_eq!(assigned["assigned_teams"], json!([BILLING_TEAM]));
    let (_, at_provider) = at_kustomer(app, &format!("conversations/{conversation}")).await;
    assert_eq!(
        at_provider["data"]["attributes"]["assignedTeams"],
        json!([BILLING_TEAM])
    );
    assert_eq!(at_provider["data"]["attributes"]["noteCount"], 1);
    assert_eq!(at_provider["data"]["attributes"]["messageCount"], 1);

    // Kustomer's own refusals, typed.
    let (status, unknown_team) = op(
        app,
        key,
        reqwest::Method::PUT,
        client,
        &team_path,
        Some(json!({"team_id": "5f3a1d2e8b2d4a0017c6e999"})),
    )
    .await;
    assert_eq!(
        (status, unknown_team["error"].as_str()),
        (422, Some("provider_rejected"))
    );
    let (status, nowhere) = post(
        app,
        key,
        client,
        "kustomer/conversations/000000000000000000000000/messages",
        json!({"body": "Hello?", "direction": "in"}),
    )
    .await;
    assert_eq!(
        (status, nowhere["message"].as_str()),
        (404, Some("conversation not found"))
    );
}

async fn conversations_are_created_once_per_external_id(app: TestApp) {
    let client = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    let body = json!({"customer_id": JANE, "external_id": "chat-session-42"});
    let before = kustomer_api_calls(&app).await;
    let (status, first) = post(&app, &key, &client, "kustomer/conversations", body.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["created"], true);
    assert_eq!(first["external_id"], "chat-session-42");
    let id = first["conversation"]["id"].as_str().unwrap().to_string();

    let (status, again) = post(&app, &key, &client, "kustomer/conversations", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["conversation"]["id"], id.as_str());
    assert_eq!(again["conversation"]["customer_id"], JANE);
    assert_eq!(
        kustomer_api_calls(&app).await - before,
        1,
        "the repeat did not reach Kustomer"
    );
    assert_eq!(
        at_kustomer(&app, &format!("conversations/{id}")).await.0,
        200
    );
    assert_eq!(
        synced_rows(&app).await,
        [("chat-session-42".to_string(), Some(id))]
    );

    // The external id is taken: another customer cannot reuse it.
    let other =
        json!({"customer_id": "5f3a1f6c8b2d4a0017c6e999", "external_id": "chat-session-42"});
    let (status, refused) = post(&app, &key, &client, "kustomer/conversations", other).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("conflict")));

    // A refused creation leaves no record, so the same id can be tried again.
    let unknown =
        json!({"customer_id": "5f3a1f6c8b2d4a0017c6e999", "external_id": "chat-session-43"});
    let (status, _) = post(&app, &key, &client, "kustomer/conversations", unknown).await;
    assert_eq!(status, 422);
    assert_eq!(synced_rows(&app).await.len(), 1);
    let retry = json!({"customer_id": JANE, "external_id": "chat-session-43"});
    let (status, _) = post(&app, &key, &client, "kustomer/conversations", retry).await;
    assert_eq!(status, 201);
    // Without an external id every request creates one.
    let plain = json!({"customer_id": JANE});
    let (a, _) = post(&app, &key, &client, "kustomer/conversations", plain.clone()).await;
    let (b, _) = post(&app, &key, &client, "kustomer/conversations", plain).await;
    assert_eq!((a, b), (201, 201));
}

async fn concurrent_requests_create_one_conversation(app: TestApp) {
    let client = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    let before = kustomer_api_calls(&app).await;
    let body = json!({"customer_id": JANE, "external_id": "chat-race"});
    let requests =
        (0..12).map(|_| post(&app, &key, &client, "kustomer/conversations", body.clone()));
    let answers = futures_util::future::join_all(requests).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let repeated = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!((created, repeated), (1, 11), "{answers:?}");
    let ids: std::collections::HashSet<&str> = answers
        .iter()
        .map(|(_, body)| body["conversation"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "everyone got the same conversation");
    assert_eq!(
        kustomer_api_calls(&app).await - before,
        1,
        "Kustomer was asked once"
    );
    let rows = synced_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1.as_deref(), ids.into_iter().next());
}

async fn bad_input_is_refused_before_kustomer_is_called(app: TestApp) {
    let client = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    let (_, created) = post(
        &app,
        &key,
        &client,
        "kustomer/conversations",
        json!({"customer_id": JANE}),
    )
    .await;
    let conversation = created["conversation"]["id"].as_str().unwrap().to_string();
    let notes = format!("kustomer/conversations/{conversation}/notes");
    let messages = format!("kustomer/conversations/{conversation}/messages");
    let before = kustomer_api_calls(&app).await;
    bad_bodies_are_refused(&app, &key, &client, &notes, &messages).await;
    bad_teams_queries_and_json_are_refused(&app, &key, &client, &notes, &conversation).await;
    nothing_reached_kustomer_and_the_limit_is_allowed(&app, &key, &client, &notes, before).await;
}

async fn bad_bodies_are_refused(
    app: &TestApp,
    key: &str,
    client: &str,
    notes: &str,
    messages: &str,
) {
    let too_long = "é".repeat(10_241);
    let (status, refused) = post(app, key, client, notes, json!({"body": too_long})).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"], "invalid_request");
    assert_eq!(
        refused["message"],
        "body must be at most 10240 characters (it has 10241)"
    );
    let cases = [
        (notes, json!({"body": "  "})),
        (notes, json!({"text": "wrong field"})),
        (notes, json!("not an object")),
        ("kustomer/conversations/bad.id/notes", json!({"body": "hi"})),
        (messages, json!({"body": "hi", "direction": "sideways"})),
        (messages, json!({"body": "", "direction": "in"})),
        (
            messages,
            json!({"body": "hi", "direction": "in", "channel": "Chat!"}),
        ),
        ("kustomer/customers", json!({"email": "not-an-email"})),
        (
            "kustomer/customers",
            json!({"email": "a@example.com", "name": " "}),
        ),
        ("kustomer/conversations", json!({"customer_id": "../teams"})),
        (
            "kustomer/conversations",
            json!({"customer_id": JANE, "external_id": "has space"}),
        ),
    ];
    for (path, body) in cases {
        let (status, answer) = post(app, key, client, path, body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_request")),
            "{path} {body}"
        );
    }
}

async fn bad_teams_queries_and_json_are_refused(
    app: &TestApp,
    key: &str,
    client: &str,
    notes: &str,
    conversation: &str,
) {
    let put_team = op(
        app,
        key,
        reqwest::Method::PUT,
        client,
        &format!("kustomer/conversations/{conversation}/team"),
        Some(json!({"team_id": ""})),
    )
    .await;
    assert_eq!(put_team.0, 400);
    for query in ["", "?email=nobody", "?email=a%20b%40example.com"] {
        let (status, _) = get(app, key, client, &format!("kustomer/customers{query}")).await;
        assert_eq!(status, 400, "{query}");
    }
    let not_json = app
        .client
        .post(app.url(&format!("/api/v1/clients/{client}/{notes}")))
        .bearer_auth(key)
        .body("{{{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
}

async fn nothing_reached_kustomer_and_the_limit_is_allowed(
    app: &TestApp,
    key: &str,
    client: &str,
    notes: &str,
    before: u64,
) {
    assert_eq!(
        kustomer_api_calls(app).await,
        before,
        "nothing reached Kustomer"
    );

    // At the limit is fine.
    let (status, _) = post(app, key, client, notes, json!({"body": "é".repeat(10_240)})).await;
    assert_eq!(status, 201);
}
