//! Every bad input around connect sessions: malformed requests, unknown, forged, expired
//! and used links, providers a session does not offer, another end user's client. Each
//! gets a clear 4xx (JSON or page) and changes nothing, on both databases.

use crate::connect_sessions::{
    api_get, create_session, end_user_connects, finish_callback, path_of, rows, session_for,
    team_key,
};
use crate::helpers::{location, unescape, TestApp};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::db::schema::connect_sessions;
use diesel::prelude::*;
use serde_json::{json, Value};

on_both_backends!(
    bad_session_requests_are_refused_and_change_nothing,
    bad_end_user_lookups_get_clear_json_errors,
    unknown_and_forged_links_get_a_clear_404,
    a_provider_the_session_does_not_offer_is_refused,
    expired_and_used_links_get_a_clear_410,
    reconnecting_another_end_users_client_is_refused,
    expired_sessions_are_marked_and_audited_by_the_housekeeping,
    a_callback_in_another_browser_or_replayed_is_refused_without_a_sign_in_page,
);

async fn expire_session(app: &TestApp, id: &str) {
    let id = id.to_string();
    app.db(move |conn| {
        diesel::update(connect_sessions::table.find(id))
            .set(
                connect_sessions::expires_at
                    .eq(connecthub::db::now() - chrono::TimeDelta::seconds(1)),
            )
            .execute(conn)
    })
    .await;
}

async fn assert_page(app: &TestApp, path: &str, status: u16, text: &str) {
    let response = app.get(path).await;
    assert_eq!(response.status(), status, "{path}");
    let page = unescape(&response.text().await.unwrap());
    assert!(page.contains(text), "{path}: {page}");
}

async fn unknown_and_forged_links_get_a_clear_404(app: TestApp) {
    let browser = app.new_browser();
    let not_valid = "This connect link is not valid";
    assert_page(
        &browser,
        "/connect/chc_forgedforgedforgedforgedforgedforgedforged1",
        404,
        not_valid,
    )
    .await;
    assert_page(&browser, "/connect/nothing-like-a-token", 404, not_valid).await;
    assert_page(
        &browser,
        &format!("/connect/chc_{}", "a".repeat(200)),
        404,
        not_valid,
    )
    .await;
    assert_page(
        &browser,
        "/connect/chc_forged/start/klaviyo",
        404,
        not_valid,
    )
    .await;
    assert_eq!(rows(&app).await, (0, 0, 0));
}

async fn a_provider_the_session_does_not_offer_is_refused(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"]}),
    )
    .await;
    let link = path_of(session["connect_url"].as_str().unwrap());
    let browser = app.new_browser();
    for provider in ["kustomer", "nope"] {
        assert_page(
            &browser,
            &format!("{link}/start/{provider}"),
            403,
            "not offered by this link",
        )
        .await;
    }
    let post = browser
        .client
        .post(browser.url(&format!("{link}/api-key/kustomer")))
        .form(&[
            ("api_key", "sandbox-kustomer-key-acme-support"),
            ("csrf_token", &browser.csrf_token().await),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 403, "not by API key either");
    assert!(app.clients().await.is_empty());
}

async fn expired_and_used_links_get_a_clear_410(app: TestApp) {
    let key = team_key(&app).await;
    let browser = app.new_browser();
    let expired = session_for(&app, &key, json!({"end_user": {"id": "44"}})).await;
    expire_session(&app, expired["session_id"].as_str().unwrap()).await;
    let expired_link = path_of(expired["connect_url"].as_str().unwrap());
    for path in [
        expired_link.clone(),
        format!("{expired_link}/start/klaviyo"),
    ] {
        assert_page(&browser, &path, 410, "This connect link has expired").await;
    }
    assert!(app
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "connect_session_expired"));

    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"]}),
    )
    .await;
    let url = session["connect_url"].as_str().unwrap();
    assert_eq!(
        end_user_connects(&browser, url, "klaviyo", None, "allow")
            .await
            .status(),
        200
    );
    let link = path_of(url);
    for path in [link.clone(), format!("{link}/start/klaviyo")] {
        assert_page(&browser, &path, 410, "already used").await;
    }
    assert_eq!(
        app.clients().await.len(),
        1,
        "only the one completed connection"
    );
}

async fn bad_session_requests_are_refused_and_change_nothing(app: TestApp) {
    let key = team_key(&app).await;
    let long_id = "x".repeat(256);
    let cases = [
        (json!({}), "end_user"),
        (json!({"end_user": {"id": ""}}), "end_user.id"),
        (json!({"end_user": {"id": long_id}}), "end_user.id"),
        (json!({"end_user": {"id": "4\u{0}2"}}), "end_user.id"),
        (
            json!({"end_user": {"id": "42", "email": "not-an-email"}}),
            "end_user.email",
        ),
        (
            json!({"end_user": {"id": "42"}, "allowed_providers": ["nope"]}),
            "allowed_providers",
        ),
        (
            json!({"end_user": {"id": "42"}, "tags": {"Bad Tag": "x y"}}),
            "tags",
        ),
        (
            json!({"end_user": {"id": "42"}, "success_url": "https://evil.example/x"}),
            "success_url",
        ),
        (
            json!({"end_user": {"id": "42"}, "success_url": "https://app.example.com.evil.example/"}),
            "success_url",
        ),
        (
            json!({"end_user": {"id": "42"}, "error_url": "javascript:alert(1)"}),
            "error_url",
        ),
        (
            json!({"end_user": {"id": "42"}, "allowed_origins": ["https://evil.example"]}),
            "allowed_origins",
        ),
        (
            json!({"end_user": {"id": "42"}, "allowed_origins": ["https://app.example.com/path"]}),
            "allowed_origins",
        ),
        (
            json!({"end_user": {"id": "42"}, "reconnect_client_id": "not-a-uuid"}),
            "reconnect_client_id",
        ),
    ];
    for (body, field) in cases {
        let response = create_session(&app, &key, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_request", "{body}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let not_json = app
        .client
        .post(app.url("/api/v1/connect-sessions"))
        .bearer_auth(&key)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let unknown_field = create_session(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "sucess_url": "x"}),
    )
    .await;
    assert_eq!(unknown_field.status(), 400);
    let reader = app.api_key(&[Scope::ClientsRead]).await;
    let no_scope = create_session(&app, &reader, json!({"end_user": {"id": "42"}})).await;
    assert_eq!(no_scope.status(), 403);
    let no_key = create_session(&app, "chk_wrong", json!({"end_user": {"id": "42"}})).await;
    assert_eq!(no_key.status(), 401);
    assert_eq!(rows(&app).await, (0, 0, 0), "nothing was stored");
}

async fn reconnecting_another_end_users_client_is_refused(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(&app, &key, json!({"end_user": {"id": "42"}})).await;
    let browser = app.new_browser();
    let done = end_user_connects(
        &browser,
        session["connect_url"].as_str().unwrap(),
        "klaviyo",
        None,
        "allow",
    )
    .await;
    assert_eq!(done.status(), 200);
    let client = app.clients().await.remove(0);
    session_for(&app, &key, json!({"end_user": {"id": "43"}})).await;
    let before = rows(&app).await;
    for end_user in ["43", "99"] {
        let refused = create_session(
            &app,
            &key,
            json!({"end_user": {"id": end_user}, "reconnect_client_id": client.id}),
        )
        .await;
        assert_eq!(refused.status(), 404, "{end_user}");
        let answer: Value = refused.json().await.unwrap();
        assert_eq!(answer["field"], "reconnect_client_id");
        assert_eq!(answer["error"], "not_found");
    }
    assert_eq!(rows(&app).await, before, "nothing changed");
    let own = create_session(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "reconnect_client_id": client.id}),
    )
    .await;
    assert_eq!(
        own.status(),
        201,
        "the end user's own client may be reconnected"
    );
    let own: Value = own.json().await.unwrap();
    let page = app
        .new_browser()
        .get_html(&path_of(own["connect_url"].as_str().unwrap()))
        .await;
    assert!(
        page.contains("Connect Klaviyo") && !page.contains("Connect Kustomer"),
        "only the client's provider"
    );
}

async fn expired_sessions_are_marked_and_audited_by_the_housekeeping(app: TestApp) {
    let key = team_key(&app).await;
    let due = session_for(&app, &key, json!({"end_user": {"id": "42"}})).await;
    let fresh = session_for(&app, &key, json!({"end_user": {"id": "43"}})).await;
    let due_id = due["session_id"].as_str().unwrap().to_string();
    let id = due_id.clone();
    app.db(move |conn| {
        diesel::update(connect_sessions::table.find(id))
            .set(
                connect_sessions::expires_at
                    .eq(connecthub::db::now() - chrono::TimeDelta::seconds(1)),
            )
            .execute(conn)
    })
    .await;
    assert_eq!(connecthub::connect::expire_due(&app.pool).await.unwrap(), 1);
    assert_eq!(
        connecthub::connect::expire_due(&app.pool).await.unwrap(),
        0,
        "once"
    );
    let statuses: Vec<(String, String)> = app
        .db(|conn| {
            connect_sessions::table
                .select((connect_sessions::id, connect_sessions::status))
                .load(conn)
        })
        .await;
    assert!(statuses.contains(&(due_id, "expired".into())));
    assert!(statuses.contains(&(
        fresh["session_id"].as_str().unwrap().to_string(),
        "open".into()
    )));
    let expired = app
        .audit_actions()
        .await
        .iter()
        .filter(|a| *a == "connect_session_expired")
        .count();
    assert_eq!(expired, 1);
    let page = app
        .new_browser()
        .get(&path_of(due["connect_url"].as_str().unwrap()))
        .await;
    assert_eq!(page.status(), 410);
    let other = app
        .client
        .get(app.url(&format!(
            "/api/v1/clients/{}",
            due["session_id"].as_str().unwrap()
        )))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let status = other.status();
    let body = other.text().await.unwrap();
    assert!(status == 404 || status == 405, "{status} {body}");
    assert!(
        body.starts_with('{'),
        "JSON like every /api/v1 answer: {body}"
    );
}

async fn a_callback_in_another_browser_or_replayed_is_refused_without_a_sign_in_page(app: TestApp) {
    let key = team_key(&app).await;
    let session = session_for(
        &app,
        &key,
        json!({"end_user": {"id": "42"}, "allowed_providers": ["klaviyo"]}),
    )
    .await;
    let link = path_of(session["connect_url"].as_str().unwrap());
    let browser = app.new_browser();
    assert_eq!(browser.get(&link).await.status(), 200);
    let start = browser.get(&format!("{link}/start/klaviyo")).await;
    let back = browser.consent(&location(&start), "allow", None).await;
    let elsewhere = finish_callback(&app.new_browser(), &back).await;
    assert_eq!(elsewhere.status(), 400, "not the sign-in page");
    let page = unescape(&elsewhere.text().await.unwrap());
    assert!(page.contains("started in another session"), "{page}");
    assert!(page.contains("Go back to the app and start again."));
    assert!(app.clients().await.is_empty(), "nothing stored");
    assert_eq!(
        finish_callback(&browser, &back).await.status(),
        200,
        "its own browser still finishes"
    );
    let replayed = finish_callback(&browser, &back).await;
    assert_eq!(replayed.status(), 400);
    assert!(unescape(&replayed.text().await.unwrap()).contains("already used"));
    assert_eq!(app.clients().await.len(), 1);
}

async fn bad_end_user_lookups_get_clear_json_errors(app: TestApp) {
    let key = team_key(&app).await;
    let long = "x".repeat(256);
    for (path, status, code) in [
        (
            "/api/v1/end-users/42/connections".to_string(),
            404,
            "not_found",
        ),
        (
            format!("/api/v1/end-users/{long}/connections"),
            404,
            "not_found",
        ),
        (
            "/api/v1/providers/klaviyo/token?end_user_id=".to_string(),
            400,
            "invalid_request",
        ),
        (
            format!("/api/v1/providers/klaviyo/token?end_user_id={long}"),
            400,
            "invalid_request",
        ),
        (
            "/api/v1/providers/klaviyo/token?end_user_id=4%002".to_string(),
            400,
            "invalid_request",
        ),
        (
            "/api/v1/providers/klaviyo/token?end_user_id=42".to_string(),
            404,
            "not_found",
        ),
        (
            "/api/v1/providers/nope/token?end_user_id=42".to_string(),
            404,
            "not_found",
        ),
        (
            format!("/api/v1/clients?end_user_id={long}"),
            400,
            "invalid_request",
        ),
        (
            "/api/v1/clients?end_user_id=4%0A2".to_string(),
            400,
            "invalid_request",
        ),
    ] {
        let (got, body) = api_get(&app, &key, &path).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let reader = app.api_key(&[Scope::TokensRead]).await;
    let (status, body) = api_get(&app, &reader, "/api/v1/end-users/42/connections").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    for (path, method) in [
        ("/api/v1/connect-sessions", "post"),
        ("/api/v1/end-users/{id}/connections", "get"),
        ("/api/v1/clients/{id}", "delete"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["401"].is_object(),
            "{method} {path} documented"
        );
    }
    let example = &doc["paths"]["/api/v1/connect-sessions"]["post"]["requestBody"]["content"]
        ["application/json"]["example"];
    assert_eq!(example["end_user"]["id"], "42", "with an example");
}
