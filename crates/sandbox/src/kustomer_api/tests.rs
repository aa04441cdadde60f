use super::super::test_support::*;
use super::super::KUSTOMER_API_KEYS;
use super::*;
use actix_web::test;

const ACME_KEY: &str = KUSTOMER_API_KEYS[0].1;
const INITECH_KEY: &str = KUSTOMER_API_KEYS[1].1;

fn post(path: &str, key: &str, body: Value) -> test::TestRequest {
    post_json(path, body).insert_header(("authorization", format!("Bearer {key}")))
}

#[actix_web::test]
async fn api_key_identifies_the_org() {
    let app = app(sandbox()).await;
    let resp = app
        .send(get_bearer(
            "/sandbox/kustomer/v1/auth/tokens/current",
            ACME_KEY,
        ))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-ratelimit-limit"), "1000");
    assert_eq!(header(&resp, "x-ratelimit-remaining"), "999");
    assert!(resp.headers().contains_key("x-ratelimit-reset"));
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["data"]["type"], "token");
    assert_eq!(body["data"]["attributes"]["orgName"], "acme-support");
    assert_eq!(
        body["data"]["attributes"]["org"],
        "5f3a1c9e8b2d4a0017c6e101"
    );
    assert!(body["data"]["attributes"]["roles"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));

    let (_, org) = app
        .json(get_bearer("/sandbox/kustomer/v1/orgs/current", INITECH_KEY))
        .await;
    assert_eq!(org["data"]["attributes"]["name"], "initech");
    assert_eq!(org["data"]["attributes"]["displayName"], "Initech Helpdesk");
    assert_eq!(
        org["data"]["attributes"]["domain"],
        "initech.kustomerapp.com"
    );

    let (_, teams) = app
        .json(get_bearer("/sandbox/kustomer/v1/teams", ACME_KEY))
        .await;
    let names: Vec<&str> = teams["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["attributes"]["name"].as_str())
        .collect();
    assert_eq!(names, ["Tier 1", "Billing", "Escalations"]);

    let (_, user) = app
        .json(get_bearer("/sandbox/kustomer/v1/users/current", ACME_KEY))
        .await;
    assert_eq!(user["data"]["attributes"]["userType"], "machine");
}

#[actix_web::test]
async fn bad_tokens_are_unauthorized() {
    let app = app(sandbox()).await;
    for token in ["sandbox-kustomer-key-nope", "skus_at_unknown"] {
        let (status, body) = app
            .json(get_bearer("/sandbox/kustomer/v1/orgs/current", token))
            .await;
        assert_eq!(status, 401);
        assert_eq!(
            body,
            json!({"errors": [{"status": 401, "title": "Unauthorized"}]})
        );
    }
    let (status, _) = app
        .json(test::TestRequest::get().uri("/sandbox/kustomer/v1/teams"))
        .await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn oauth_tokens_act_as_the_consenting_user() {
    let app = app(sandbox()).await;
    let issued = tokens(&app, Provider::Kustomer, "5f3a1c9e8b2d4a0017c6e202").await;
    let token = str_of(&issued, "access_token");
    let (_, current) = app
        .json(get_bearer(
            "/sandbox/kustomer/v1/auth/tokens/current",
            &token,
        ))
        .await;
    assert_eq!(current["data"]["attributes"]["orgName"], "initech");
    let (_, user) = app
        .json(get_bearer("/sandbox/kustomer/v1/users/current", &token))
        .await;
    assert_eq!(user["data"]["attributes"]["userType"], "user");
    // A Klaviyo token does not open Kustomer.
    let klaviyo = tokens(&app, Provider::Klaviyo, "AcmeK1").await;
    let (status, _) = app
        .json(get_bearer(
            "/sandbox/kustomer/v1/orgs/current",
            &str_of(&klaviyo, "access_token"),
        ))
        .await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn customer_by_email_create_and_search() {
    let app = app(sandbox()).await;
    let (status, body) = app
        .json(get_bearer(
            "/sandbox/kustomer/v1/customers/email=jane.doe%40example.com",
            ACME_KEY,
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["attributes"]["name"], "Jane Doe");
    let (status, body) = app
        .json(get_bearer(
            "/sandbox/kustomer/v1/customers/email=jane.doe%40example.com",
            INITECH_KEY,
        ))
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"errors": [{"status": 404, "title": "Not Found"}]})
        )
    );

    let create = post(
        "/sandbox/kustomer/v1/customers",
        ACME_KEY,
        json!({"name": "Max Plus", "emails": [{"email": "max+news@example.com"}]}),
    );
    let (status, created) = app.json(create).await;
    assert_eq!(status, 201);
    let id = str_of(&created["data"], "id");
    assert_eq!(id.len(), 24);
    let (status, found) = app
        .json(get_bearer(
            "/sandbox/kustomer/v1/customers/email=max%2Bnews%40example.com",
            ACME_KEY,
        ))
        .await;
    assert_eq!((status, str_of(&found["data"], "id")), (200, id.clone()));
    let (status, _) = app
        .json(get_bearer(
            "/sandbox/kustomer/v1/customers/email=max+news@example.com",
            ACME_KEY,
        ))
        .await;
    assert_eq!(status, 200);
    let duplicate = post(
        "/sandbox/kustomer/v1/customers",
        ACME_KEY,
        json!({"emails": [{"email": "MAX+news@example.com"}]}),
    );
    assert_eq!(app.json(duplicate).await.0, 409);

    let search = post(
        "/sandbox/kustomer/v1/customers/search",
        ACME_KEY,
        json!({"and": [{"customer_email": {"equals": "max+news@example.com"}}], "queryContext": "customer"}),
    );
    let (status, results) = app.json(search).await;
    assert_eq!(status, 200);
    assert_eq!(results["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(str_of(&results["data"][0], "id"), id);
    let bad = post(
        "/sandbox/kustomer/v1/customers",
        ACME_KEY,
        json!({"emails": "x"}),
    );
    assert_eq!(app.json(bad).await.0, 400);
    let not_json = test::TestRequest::post()
        .uri("/sandbox/kustomer/v1/customers")
        .insert_header(("authorization", format!("Bearer {ACME_KEY}")))
        .set_payload("{{{");
    assert_eq!(app.json(not_json).await.0, 400);
}

#[actix_web::test]
async fn conversation_message_and_note_limits() {
    let app = app(sandbox()).await;
    let jane = "5f3a1f6c8b2d4a0017c6e131";
    conversations_need_a_customer_of_the_org(&app, jane).await;
    let id = create_and_assign_a_conversation(&app, jane).await;
    messages_need_a_direction(&app, &id).await;
    notes_are_limited_and_stay_in_the_org(&app, jane, &id).await;
}

async fn conversations_need_a_customer_of_the_org(app: &TestApp, jane: &str) {
    let unknown = post(
        "/sandbox/kustomer/v1/conversations",
        ACME_KEY,
        json!({"customer": "000000000000000000000000"}),
    );
    assert_eq!(app.json(unknown).await.0, 400);
    // Another org's customer is unknown here.
    let foreign = post(
        "/sandbox/kustomer/v1/conversations",
        INITECH_KEY,
        json!({"customer": jane}),
    );
    assert_eq!(app.json(foreign).await.0, 400);
}

/// Creates a conversation for `jane` and assigns it a team; returns its id.
async fn create_and_assign_a_conversation(app: &TestApp, jane: &str) -> String {
    let create = post(
        "/sandbox/kustomer/v1/conversations",
        ACME_KEY,
        json!({"customer": jane, "name": "Order #1001", "channel": "email"}),
    );
    let (status, conversation) = app.json(create).await;
    assert_eq!(status, 201);
    let id = str_of(&conversation["data"], "id");

    let patch = test::TestRequest::patch()
        .uri(&format!("/sandbox/kustomer/v1/conversations/{id}"))
        .insert_header(("authorization", format!("Bearer {ACME_KEY}")))
        .insert_header(("content-type", "application/json"))
        .set_payload(json!({"assignedTeams": ["5f3a1d2e8b2d4a0017c6e112"]}).to_string());
    let (status, patched) = app.json(patch).await;
    assert_eq!(status, 200);
    assert_eq!(
        patched["data"]["attributes"]["assignedTeams"],
        json!(["5f3a1d2e8b2d4a0017c6e112"])
    );
    let bad_team = test::TestRequest::patch()
        .uri(&format!("/sandbox/kustomer/v1/conversations/{id}"))
        .insert_header(("authorization", format!("Bearer {ACME_KEY}")))
        .set_payload(json!({"assignedTeams": ["5f3a1d2e8b2d4a0017c6e211"]}).to_string());
    assert_eq!(app.json(bad_team).await.0, 400);
    id
}

async fn messages_need_a_direction(app: &TestApp, id: &str) {
    let message = post(
        &format!("/sandbox/kustomer/v1/conversations/{id}/messages"),
        ACME_KEY,
        json!({"body": "Hello", "direction": "out", "channel": "email"}),
    );
    let (status, message) = app.json(message).await;
    assert_eq!(status, 201);
    assert_eq!(message["data"]["attributes"]["direction"], "out");
    let sideways = post(
        &format!("/sandbox/kustomer/v1/conversations/{id}/messages"),
        ACME_KEY,
        json!({"body": "Hello", "direction": "sideways"}),
    );
    assert_eq!(app.json(sideways).await.0, 400);
}

async fn notes_are_limited_and_stay_in_the_org(app: &TestApp, jane: &str, id: &str) {
    let at_limit = "a".repeat(10_240);
    let note = post(
        "/sandbox/kustomer/v1/notes",
        ACME_KEY,
        json!({"body": at_limit, "conversation": id}),
    );
    assert_eq!(app.json(note).await.0, 201);
    let too_long = "é".repeat(10_241);
    let note = post(
        "/sandbox/kustomer/v1/notes",
        ACME_KEY,
        json!({"body": too_long, "conversation": id}),
    );
    assert_eq!(app.json(note).await.0, 400);
    let nowhere = post(
        "/sandbox/kustomer/v1/notes",
        ACME_KEY,
        json!({"body": "x", "conversation": "nope"}),
    );
    assert_eq!(app.json(nowhere).await.0, 400);
    let missing = post("/sandbox/kustomer/v1/notes", ACME_KEY, json!({"body": "x"}));
    assert_eq!(app.json(missing).await.0, 400);

    let (status, notes) = app
        .json(get_bearer(
            &format!("/sandbox/kustomer/v1/customers/{jane}/notes"),
            ACME_KEY,
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(notes["data"].as_array().map(Vec::len), Some(1));
    let (status, _) = app
        .json(get_bearer(
            &format!("/sandbox/kustomer/v1/customers/{jane}/notes"),
            INITECH_KEY,
        ))
        .await;
    assert_eq!(status, 404);
    let (_, fetched) = app
        .json(get_bearer(
            &format!("/sandbox/kustomer/v1/conversations/{id}"),
            ACME_KEY,
        ))
        .await;
    assert_eq!(fetched["data"]["attributes"]["noteCount"], 1);
    assert_eq!(fetched["data"]["attributes"]["messageCount"], 1);
}

#[actix_web::test]
async fn rate_limit_fault_answers_429_with_retry_after() {
    let app = app(sandbox()).await;
    let arm = post_json(
        "/sandbox/_control/faults",
        json!({"provider": "kustomer", "rate_limit_next": 1, "retry_after_secs": 30}),
    );
    assert_eq!(app.json(arm).await.0, 200);
    let resp = app
        .send(get_bearer("/sandbox/kustomer/v1/teams", ACME_KEY))
        .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), "30");
    let resp = app
        .send(get_bearer("/sandbox/kustomer/v1/teams", ACME_KEY))
        .await;
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn unknown_paths_answer_kustomer_404() {
    let app = app(sandbox()).await;
    let (status, body) = app
        .json(get_bearer("/sandbox/kustomer/v1/widgets", ACME_KEY))
        .await;
    assert_eq!(
        (status, body["errors"][0]["status"].clone()),
        (404, json!(404))
    );
}
