//! Typed Kustomer and Klaviyo operations (`/api/v1/clients/{id}/kustomer/…`, `…/klaviyo/…`)
//! against the sandbox: round trips visible at the provider, one conversation per
//! external id (also under concurrency), input refused before anything is sent, typed
//! errors, retries, usage and the audited profile refresh.

use crate::helpers::{location, TestApp, ACME_CONNECT_CALLS, KUSTOMER_KEY_CONNECT_CALLS};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use connecthub::db::schema::{clients, synced_conversations};
use diesel::prelude::*;
use serde_json::{json, Value};

on_both_backends!(
    customers_are_found_and_created,
    conversations_notes_messages_and_teams_round_trip,
    conversations_are_created_once_per_external_id,
    concurrent_requests_create_one_conversation,
    bad_input_is_refused_before_kustomer_is_called,
    wrong_provider_unknown_client_and_missing_scope_are_refused,
    rate_limited_gets_are_retried_and_posts_are_not,
    usage_is_recorded_for_each_operation,
    klaviyo_account_lists_and_segments_are_read_in_full,
    klaviyo_profile_refresh_stores_counts_and_is_audited,
    the_details_page_refreshes_klaviyo_counts,
    a_revoked_credential_marks_the_client_for_reconnecting,
);

/// The seed customer of the sandbox's first Kustomer org (acme-support).
const JANE: &str = "5f3a1f6c8b2d4a0017c6e131";
const JANE_EMAIL: &str = "jane.doe@example.com";
const BILLING_TEAM: &str = "5f3a1d2e8b2d4a0017c6e112";
const ACME_KEY: &str = connecthub_sandbox::KUSTOMER_API_KEYS[0].1;

/// A Kustomer client connected with the acme-support API key.
async fn kustomer_client(app: &TestApp) -> String {
    app.login_as(Role::Admin).await;
    app.post_form(
        "/api/integrations/kustomer/test-connection",
        &[("api_key", ACME_KEY)],
    )
    .await;
    client_of(app, "kustomer").await
}

/// A Klaviyo client connected with OAuth to the AcmeK1 account (23 lists, 7 segments).
async fn klaviyo_client(app: &TestApp) -> String {
    app.login_as(Role::Admin).await;
    let done = app.connect("klaviyo", Some("AcmeK1")).await;
    assert_eq!(location(&done), "/admin/clients");
    client_of(app, "klaviyo").await
}

async fn client_of(app: &TestApp, provider: &str) -> String {
    app.clients()
        .await
        .into_iter()
        .find(|c| c.provider == provider)
        .expect("client connected")
        .id
}

async fn proxy_key(app: &TestApp) -> String {
    app.api_key(&[Scope::Proxy, Scope::ClientsRead]).await
}

/// Calls an operation: `path` is under `/api/v1/clients/{client}/`.
async fn op(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    client: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, app.url(&format!("/api/v1/clients/{client}/{path}")))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, key: &str, client: &str, path: &str) -> (u16, Value) {
    op(app, key, reqwest::Method::GET, client, path, None).await
}

async fn post(app: &TestApp, key: &str, client: &str, path: &str, body: Value) -> (u16, Value) {
    op(app, key, reqwest::Method::POST, client, path, Some(body)).await
}

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

async fn kustomer_api_calls(app: &TestApp) -> u64 {
    app.sandbox_stats("kustomer").await["api_calls"]
        .as_u64()
        .unwrap()
}

async fn synced_rows(app: &TestApp) -> Vec<(String, Option<String>)> {
    app.db(|conn| {
        synced_conversations::table
            .select((
                synced_conversations::external_id,
                synced_conversations::conversation_id,
            ))
            .load(conn)
    })
    .await
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

    let (status, answer) = post(
        &app,
        &key,
        &client,
        "kustomer/conversations",
        json!({"customer_id": JANE, "name": "Order #1001", "channel": "chat"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["created"], true);
    let conversation = answer["conversation"]["id"].as_str().unwrap().to_string();
    assert_eq!(answer["conversation"]["customer_id"], JANE);
    assert_eq!(answer["conversation"]["status"], "open");

    let (status, note) = post(
        &app,
        &key,
        &client,
        &format!("kustomer/conversations/{conversation}/notes"),
        json!({"body": "Called back; refund approved."}),
    )
    .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["conversation_id"], conversation.as_str());
    let (_, notes) = at_kustomer(&app, &format!("customers/{JANE}/notes")).await;
    assert_eq!(
        notes["data"][0]["attributes"]["body"],
        "Called back; refund approved."
    );

    let (status, message) = post(
        &app,
        &key,
        &client,
        &format!("kustomer/conversations/{conversation}/messages"),
        json!({"body": "Your refund is on its way.", "direction": "out"}),
    )
    .await;
    assert_eq!(status, 201, "{message}");
    assert_eq!(message["direction"], "out");
    assert_eq!(message["channel"], "chat");

    let (status, teams) = get(&app, &key, &client, "kustomer/teams").await;
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
        &app,
        &key,
        reqwest::Method::PUT,
        &client,
        &team_path,
        Some(json!({"team_id": BILLING_TEAM})),
    )
    .await;
    assert_eq!(status, 200, "{assigned}");
    assert_eq!(assigned["assigned_teams"], json!([BILLING_TEAM]));
    let (_, at_provider) = at_kustomer(&app, &format!("conversations/{conversation}")).await;
    assert_eq!(
        at_provider["data"]["attributes"]["assignedTeams"],
        json!([BILLING_TEAM])
    );
    assert_eq!(at_provider["data"]["attributes"]["noteCount"], 1);
    assert_eq!(at_provider["data"]["attributes"]["messageCount"], 1);

    // Kustomer's own refusals, typed.
    let (status, unknown_team) = op(
        &app,
        &key,
        reqwest::Method::PUT,
        &client,
        &team_path,
        Some(json!({"team_id": "5f3a1d2e8b2d4a0017c6e999"})),
    )
    .await;
    assert_eq!(
        (status, unknown_team["error"].as_str()),
        (422, Some("provider_rejected"))
    );
    let (status, nowhere) = post(
        &app,
        &key,
        &client,
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

    let too_long = "é".repeat(10_241);
    let (status, refused) = post(&app, &key, &client, &notes, json!({"body": too_long})).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"], "invalid_request");
    assert_eq!(
        refused["message"],
        "body must be at most 10240 characters (it has 10241)"
    );
    let cases = [
        (notes.clone(), json!({"body": "  "})),
        (notes.clone(), json!({"text": "wrong field"})),
        (notes.clone(), json!("not an object")),
        (
            "kustomer/conversations/bad.id/notes".into(),
            json!({"body": "hi"}),
        ),
        (
            messages.clone(),
            json!({"body": "hi", "direction": "sideways"}),
        ),
        (messages.clone(), json!({"body": "", "direction": "in"})),
        (
            messages,
            json!({"body": "hi", "direction": "in", "channel": "Chat!"}),
        ),
        (
            "kustomer/customers".into(),
            json!({"email": "not-an-email"}),
        ),
        (
            "kustomer/customers".into(),
            json!({"email": "a@example.com", "name": " "}),
        ),
        (
            "kustomer/conversations".into(),
            json!({"customer_id": "../teams"}),
        ),
        (
            "kustomer/conversations".into(),
            json!({"customer_id": JANE, "external_id": "has space"}),
        ),
    ];
    for (path, body) in cases {
        let (status, answer) = post(&app, &key, &client, &path, body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_request")),
            "{path} {body}"
        );
    }
    let put_team = op(
        &app,
        &key,
        reqwest::Method::PUT,
        &client,
        &format!("kustomer/conversations/{conversation}/team"),
        Some(json!({"team_id": ""})),
    )
    .await;
    assert_eq!(put_team.0, 400);
    for query in ["", "?email=nobody", "?email=a%20b%40example.com"] {
        let (status, _) = get(&app, &key, &client, &format!("kustomer/customers{query}")).await;
        assert_eq!(status, 400, "{query}");
    }
    let not_json = app
        .client
        .post(app.url(&format!("/api/v1/clients/{client}/{notes}")))
        .bearer_auth(&key)
        .body("{{{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        kustomer_api_calls(&app).await,
        before,
        "nothing reached Kustomer"
    );

    // At the limit is fine.
    let (status, _) = post(
        &app,
        &key,
        &client,
        &notes,
        json!({"body": "é".repeat(10_240)}),
    )
    .await;
    assert_eq!(status, 201);
}

async fn wrong_provider_unknown_client_and_missing_scope_are_refused(app: TestApp) {
    let klaviyo = klaviyo_client(&app).await;
    let kustomer = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    let sent = (
        app.sandbox_stats("klaviyo").await["api_calls"].clone(),
        kustomer_api_calls(&app).await,
    );
    let (status, wrong) = get(&app, &key, &klaviyo, "kustomer/teams").await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (409, Some("wrong_provider"))
    );
    assert_eq!(
        wrong["message"],
        "this is a klaviyo client; the operation needs a kustomer client"
    );
    let (status, wrong) = post(&app, &key, &kustomer, "klaviyo/profile/refresh", json!({})).await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (409, Some("wrong_provider"))
    );
    let now = (
        app.sandbox_stats("klaviyo").await["api_calls"].clone(),
        kustomer_api_calls(&app).await,
    );
    assert_eq!(now, sent, "nothing was sent to either provider");

    let (status, unknown) = get(&app, &key, "no-such-client", "kustomer/teams").await;
    assert_eq!(
        (status, unknown["error"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = get(&app, &key, &"x".repeat(100), "kustomer/teams").await;
    assert_eq!(status, 404);
    let (status, no_such_op) = get(&app, &key, &kustomer, "kustomer/widgets").await;
    assert_eq!(status, 404);
    assert!(
        no_such_op["error"].is_string(),
        "JSON like every /api/v1 error"
    );

    let tokens_only = app.api_key(&[Scope::TokensRead, Scope::ClientsRead]).await;
    let (status, forbidden) = get(&app, &tokens_only, &kustomer, "kustomer/teams").await;
    assert_eq!(
        (status, forbidden["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, _) = get(&app, "chk_wrong", &kustomer, "kustomer/teams").await;
    assert_eq!(status, 401);

    // A client that must be reconnected says so, with where to do it.
    let id = klaviyo.clone();
    app.db(move |conn| {
        diesel::update(clients::table.find(id))
            .set(clients::status.eq("needs_reauth"))
            .execute(conn)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // SERVICE_CACHE_SECS=1
    let (status, reauth) = get(&app, &key, &klaviyo, "klaviyo/lists").await;
    assert_eq!(
        (status, reauth["error"].as_str()),
        (409, Some("needs_reauth"))
    );
    assert!(reauth["reconnect_url"]
        .as_str()
        .unwrap()
        .ends_with("/reconnect"));
}

async fn rate_limited_gets_are_retried_and_posts_are_not(app: TestApp) {
    let client = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    app.sandbox_faults(
        json!({"provider": "kustomer", "rate_limit_next": 1, "retry_after_secs": 1}),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, teams) = get(&app, &key, &client, "kustomer/teams").await;
    assert_eq!(status, 200, "retried after Retry-After: {teams}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(950));

    app.sandbox_faults(
        json!({"provider": "kustomer", "rate_limit_next": 1, "retry_after_secs": 7}),
    )
    .await;
    let response = app
        .client
        .post(app.url(&format!("/api/v1/clients/{client}/kustomer/conversations")))
        .bearer_auth(&key)
        .json(&json!({"customer_id": JANE, "external_id": "throttled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        crate::helpers::header(response.headers(), "retry-after"),
        "7"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), &body["retry_after"]),
        (Some("rate_limited"), &json!(7))
    );
    assert!(synced_rows(&app).await.is_empty(), "the claim was given up");
    // One call each (the GET's retry happens inside it), both throttled once.
    let usage = app
        .usage_after(&key, 2 + KUSTOMER_KEY_CONNECT_CALLS, "days=1")
        .await;
    assert_eq!(usage["stats"]["rateLimitHits"], 2);

    // A provider that keeps failing is unavailable, after the retries.
    app.sandbox_faults(json!({"provider": "kustomer", "api_failures": 10, "api_status": 503}))
        .await;
    let (status, down) = get(&app, &key, &client, "kustomer/teams").await;
    assert_eq!(
        (status, down["error"].as_str()),
        (503, Some("provider_unavailable"))
    );
}

async fn usage_is_recorded_for_each_operation(app: TestApp) {
    let kustomer = kustomer_client(&app).await;
    let klaviyo = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    let (status, _) = get(
        &app,
        &key,
        &kustomer,
        "kustomer/customers?email=jane.doe%40example.com",
    )
    .await;
    assert_eq!(status, 200);
    let (_, created) = post(
        &app,
        &key,
        &kustomer,
        "kustomer/conversations",
        json!({"customer_id": JANE}),
    )
    .await;
    let conversation = created["conversation"]["id"].as_str().unwrap();
    let (status, _) = post(
        &app,
        &key,
        &kustomer,
        &format!("kustomer/conversations/{conversation}/notes"),
        json!({"body": "metered"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(get(&app, &key, &kustomer, "kustomer/teams").await.0, 200);
    // 23 lists: three pages, three calls.
    let (status, lists) = get(&app, &key, &klaviyo, "klaviyo/lists").await;
    assert_eq!((status, &lists["count"]), (200, &json!(23)));

    // Seven calls here; connecting made the others (Kustomer: key check, org, teams;
    // Klaviyo: account, 3 pages of lists, 1 of segments).
    let usage = app
        .usage_after(
            &key,
            7 + KUSTOMER_KEY_CONNECT_CALLS + ACME_CONNECT_CALLS,
            "days=1",
        )
        .await;
    let stats = &usage["stats"];
    assert_eq!(stats["totalErrors"], 0);
    assert_eq!(
        stats["byEndpoint"],
        json!({
            "customers": {"calls": 1, "errors": 0},
            "conversations": {"calls": 1, "errors": 0},
            "notes": {"calls": 1, "errors": 0},
            "teams": {"calls": 1 + 1, "errors": 0},
            "lists": {"calls": 3 + 3, "errors": 0},
            "auth": {"calls": 1, "errors": 0},
            "orgs": {"calls": 1, "errors": 0},
            "accounts": {"calls": 1, "errors": 0},
            "segments": {"calls": 1, "errors": 0},
        })
    );
    let per_client = app
        .client
        .get(app.url(&format!("/api/v1/usage?client_id={klaviyo}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let per_client: Value = per_client.json().await.unwrap();
    assert_eq!(per_client["stats"]["totalCalls"], 3 + ACME_CONNECT_CALLS);
}

async fn klaviyo_account_lists_and_segments_are_read_in_full(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    let (status, account) = get(&app, &key, &client, "klaviyo/account").await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["account_id"], "AcmeK1");
    assert_eq!(account["account_name"], "Acme Store");
    assert_eq!(account["email_domain"], "acme-store.example");
    assert_eq!(account["timezone"], "America/New_York");

    let (_, lists) = get(&app, &key, &client, "klaviyo/lists").await;
    let list_ids: std::collections::HashSet<&str> = lists["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!((lists["count"].as_u64(), list_ids.len()), (Some(23), 23));
    assert_eq!(lists["data"][8]["name"], "Newsletter 2");
    let (_, segments) = get(&app, &key, &client, "klaviyo/segments").await;
    assert_eq!(segments["count"], 7);
    assert_eq!(segments["data"][0]["name"], "Engaged (30 days)");
}

/// As if the account had had no lists or segments when it was connected.
async fn zero_counts(app: &TestApp, client: &str) {
    let id = client.to_string();
    app.db(move |conn| {
        let profile: String = clients::table
            .find(&id)
            .select(clients::profile)
            .first(conn)?;
        let mut profile: Value = serde_json::from_str(&profile).unwrap();
        profile["lists_count"] = json!(0);
        profile["segments_count"] = json!(0);
        profile["note"] = json!("kept");
        diesel::update(clients::table.find(&id))
            .set(clients::profile.eq(profile.to_string()))
            .execute(conn)
    })
    .await;
}

async fn stored_profile(app: &TestApp, client: &str) -> Value {
    let stored = app.clients().await.into_iter().find(|c| c.id == client);
    stored.unwrap().profile_value()
}

async fn klaviyo_profile_refresh_stores_counts_and_is_audited(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    zero_counts(&app, &client).await;
    let (status, refreshed) = post(&app, &key, &client, "klaviyo/profile/refresh", json!({})).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(
        refreshed["before"],
        json!({"lists_count": 0, "segments_count": 0})
    );
    assert_eq!(
        refreshed["after"],
        json!({"lists_count": 23, "segments_count": 7})
    );

    let profile = stored_profile(&app, &client).await;
    assert_eq!(
        (
            profile["lists_count"].as_u64(),
            profile["segments_count"].as_u64()
        ),
        (Some(23), Some(7))
    );
    assert_eq!(profile["account_name"], "Acme Store");
    assert_eq!(profile["note"], "kept", "fields Klaviyo does not send stay");

    let entries = app
        .db(move |conn| connecthub::audit::for_target(conn, "client", &client, 10))
        .await;
    let entry = entries
        .iter()
        .find(|e| e.action == "client_profile_refreshed")
        .expect("the refresh is audited");
    assert_eq!(entry.actor_type, "api_key");
    assert_eq!(entry.actor_label, "test service");
    let details: Value = serde_json::from_str(&entry.details).unwrap();
    assert_eq!(details["after"]["lists_count"], 23);
    assert_eq!(details["before"]["segments_count"], 0);
    let verdict = app.db(connecthub::audit::verify).await;
    assert!(matches!(verdict, connecthub::audit::Verdict::Intact { .. }));
}

/// The OpenAPI document lists every operation, and its schemas have the fields a real
/// answer has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_the_operations() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let base = "/api/v1/clients/{id}";
    for (path, method) in [
        ("kustomer/customers", "get"),
        ("kustomer/customers", "post"),
        ("kustomer/conversations", "post"),
        ("kustomer/conversations/{conversation_id}/notes", "post"),
        ("kustomer/conversations/{conversation_id}/messages", "post"),
        ("kustomer/conversations/{conversation_id}/team", "put"),
        ("kustomer/teams", "get"),
        ("klaviyo/account", "get"),
        ("klaviyo/lists", "get"),
        ("klaviyo/segments", "get"),
        ("klaviyo/profile/refresh", "post"),
    ] {
        assert!(
            doc["paths"][format!("{base}/{path}")][method].is_object(),
            "{method} {path} is documented"
        );
    }
    let client = kustomer_client(&app).await;
    let key = proxy_key(&app).await;
    let body = json!({"customer_id": JANE, "external_id": "documented"});
    let (_, real) = post(&app, &key, &client, "kustomer/conversations", body).await;
    let schemas = &doc["components"]["schemas"];
    for (schema, answer) in [
        ("ConversationCreated", &real),
        ("Conversation", &real["conversation"]),
    ] {
        let mut documented: Vec<&String> = schemas[schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let mut actual: Vec<&String> = answer.as_object().unwrap().keys().collect();
        documented.sort();
        actual.sort();
        assert_eq!(documented, actual, "{schema}");
    }
}

async fn the_details_page_refreshes_klaviyo_counts(app: TestApp) {
    let client = klaviyo_client(&app).await;
    zero_counts(&app, &client).await;
    let page = format!("/admin/clients/{client}");
    let action = format!("{page}/profile/refresh");
    assert!(app.get_html(&page).await.contains(r#"id="refresh-counts""#));

    // Without the CSRF token nothing happens.
    let forged = app.client.post(app.url(&action)).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(stored_profile(&app, &client).await["lists_count"], 0);

    // htmx: the profile facts come back with the new counts, and a toast.
    let response = app
        .client
        .post(app.url(&action))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", app.csrf_token().await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let toast = crate::helpers::header(response.headers(), "hx-trigger");
    assert!(toast.contains("23 lists, 7 segments"), "{toast}");
    let html = response.text().await.unwrap();
    assert!(
        html.trim_start()
            .starts_with(r#"<dl class="facts" id="profile">"#),
        "{html}"
    );
    let lists = html.split("<dt>Lists count</dt>").nth(1).unwrap();
    assert!(lists.trim_start().starts_with("<dd>23</dd>"), "{html}");
    assert_eq!(stored_profile(&app, &client).await["segments_count"], 7);
    let audited = app
        .db(move |conn| connecthub::audit::for_target(conn, "client", &client, 1))
        .await;
    assert_eq!(
        (audited[0].action.as_str(), audited[0].actor_type.as_str()),
        ("client_profile_refreshed", "user")
    );

    // Without JavaScript: back to the page, which shows the toast.
    let plain = app.post_form(&action, &[]).await;
    assert_eq!(location(&plain), page);
    let toast = app.toast_on(&page).await;
    assert!(
        toast.starts_with("success: Refreshed Acme Store"),
        "{toast}"
    );

    // Kustomer clients have no such button, and the action refuses them.
    let kustomer = kustomer_client(&app).await;
    let kustomer_page = format!("/admin/clients/{kustomer}");
    assert!(!app
        .get_html(&kustomer_page)
        .await
        .contains("refresh-counts"));
    let refused = app
        .post_form(&format!("{kustomer_page}/profile/refresh"), &[])
        .await;
    assert_eq!(location(&refused), kustomer_page);
    let toast = app.toast_on(&kustomer_page).await;
    assert!(
        toast.starts_with("error: Counts of Acme Support not refreshed"),
        "{toast}"
    );
}

mod in_the_browser {
    use crate::browser::Browser;
    use crate::helpers::{spawn_app, Backend};
    use connecthub::auth::users::Role;

    /// "Refresh counts" swaps the new counts into the profile, with a toast, no reload.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refresh_counts_on_the_details_page() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let admin = app.login_as(Role::Admin).await;
        app.connect("klaviyo", Some("AcmeK1")).await;
        let client = super::client_of(&app, "klaviyo").await;
        super::zero_counts(&app, &client).await;
        browser.goto(&app.url("/login")).await;
        browser.fill("#email", &admin.email).await;
        browser.fill("#password", &admin.password).await;
        browser.click("button[type=submit]").await;
        browser.wait_for_text("h1", "Clients").await;

        browser
            .goto(&app.url(&format!("/admin/clients/{client}")))
            .await;
        browser.wait_for_text("#client-name", "Acme Store").await;
        let mark = "window.sameDocument = true; return true;";
        browser.client.execute(mark, vec![]).await.unwrap();
        browser.click("#refresh-counts").await;
        browser
            .wait_for_text(
                "#toasts .toast",
                "Refreshed Acme Store: 23 lists, 7 segments",
            )
            .await;
        browser.wait_for_text("#profile dd", "23").await;
        let same = "return window.sameDocument === true;";
        let same = browser.client.execute(same, vec![]).await.unwrap();
        assert_eq!(same, serde_json::json!(true), "without a page reload");
        browser.screenshot("client-details-refresh-counts").await;
        browser.close().await;
    }
}

/// Consent withdrawn at the provider: its API answers 401 to the stored token. The client
/// is then marked for reconnecting (list, page, audit) and later calls stop at connecthub.
async fn a_revoked_credential_marks_the_client_for_reconnecting(app: TestApp) {
    let client = klaviyo_client(&app).await;
    let key = proxy_key(&app).await;
    let (status, _) = get(&app, &key, &client, "klaviyo/lists").await;
    assert_eq!(status, 200);
    app.sandbox_faults(json!({"provider": "klaviyo", "revoke_all": true}))
        .await;

    let (status, refused) = get(&app, &key, &client, "klaviyo/lists").await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("needs_reauth"))
    );
    assert!(refused["reconnect_url"]
        .as_str()
        .unwrap()
        .ends_with("/reconnect"));
    let id = client.clone();
    let (status, last_error): (String, Option<String>) = app
        .db(move |conn| {
            clients::table
                .find(id)
                .select((clients::status, clients::last_error))
                .first(conn)
        })
        .await;
    assert_eq!(status, "needs_reauth");
    assert!(last_error.unwrap().contains("HTTP 401"));
    assert!(app
        .audit_actions()
        .await
        .contains(&"credential_rejected".to_string()));

    let calls = app.sandbox_stats("klaviyo").await["api_calls"].clone();
    let (status, _) = get(&app, &key, &client, "klaviyo/segments").await;
    assert_eq!(status, 409);
    assert_eq!(
        app.sandbox_stats("klaviyo").await["api_calls"],
        calls,
        "nothing more is sent with a refused credential"
    );
}
