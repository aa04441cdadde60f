use super::super::test_support::*;
use super::*;
use actix_web::test::{read_body, TestRequest};

async fn arm(app: &TestApp, body: serde_json::Value) -> (u16, serde_json::Value) {
    app.json(post_json("/sandbox/_control/faults", body)).await
}

async fn stats_of(app: &TestApp, provider: &str) -> serde_json::Value {
    let req = TestRequest::get().uri(&format!("/sandbox/_control/stats?provider={provider}"));
    app.json(req).await.1
}

#[test]
fn armed_faults_run_out() {
    let mut faults = Faults {
        api: Some(Armed {
            remaining: 2,
            fault: 503,
        }),
        ..Faults::default()
    };
    assert_eq!(faults.take_api_fault(), Some(ApiFault::Status(503)));
    assert_eq!(faults.take_api_fault(), Some(ApiFault::Status(503)));
    assert_eq!(faults.take_api_fault(), None);
}

#[test]
fn rate_limit_covers_token_calls_only_when_asked() {
    let mut faults = Faults {
        rate_limit: Some(RateLimitFault {
            remaining: 2,
            retry_after_secs: 7,
            token_calls: false,
        }),
        ..Faults::default()
    };
    assert_eq!(faults.take_token_rate_limit(), None);
    assert_eq!(
        faults.take_api_fault(),
        Some(ApiFault::RateLimited {
            retry_after_secs: 7
        })
    );
    if let Some(limit) = faults.rate_limit.as_mut() {
        limit.token_calls = true;
    }
    assert_eq!(faults.take_token_rate_limit(), Some(7));
    assert_eq!(faults.take_api_fault(), None);
}

#[actix_web::test]
async fn malformed_fault_requests_are_refused() {
    let app = app(sandbox()).await;
    let cases = [
        json!({"provider": "mailchimp"}),
        json!({"provider": "klaviyo", "token_failures": 1}),
        json!({"provider": "klaviyo", "token_failures": 1, "token_fault": {"kind": "explode"}}),
        json!({"provider": "klaviyo", "token_fault": {"kind": "status", "status": 200}}),
        json!({"provider": "klaviyo", "api_status": 302}),
        json!({"provider": "klaviyo", "authorize_error": "Server Error!"}),
        json!({"provider": "klaviyo", "tokn_failures": 1}),
    ];
    for body in cases {
        let (status, answer) = arm(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["ok"], false);
    }
    let req = TestRequest::post()
        .uri("/sandbox/_control/faults")
        .set_payload("{not json");
    assert_eq!(app.json(req).await.0, 400);
    let req = TestRequest::get().uri("/sandbox/_control/stats");
    assert_eq!(app.json(req).await.0, 400);
}

#[actix_web::test]
async fn token_status_fault_then_normal() {
    let app = app(sandbox()).await;
    let (status, body) = arm(
        &app,
        json!({"provider": "kustomer", "token_failures": 2,
               "token_fault": {"kind": "status", "status": 503}}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"ok": true})));
    let req = || token_request(Provider::Kustomer, &[("grant_type", "client_credentials")]);
    for _ in 0..2 {
        let (status, body) = app.json(req()).await;
        assert_eq!(status, 503);
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    let (status, body) = app.json(req()).await;
    assert_eq!(status, 200);
    assert!(str_of(&body, "access_token").starts_with("skus_at_"));
    let stats = stats_of(&app, "kustomer").await;
    assert_eq!(stats["token_calls"]["client_credentials"], 3);
    assert_eq!(stats["token_calls"]["failed"], 2);
}

#[actix_web::test]
async fn token_status_fault_with_custom_error() {
    let app = app(sandbox()).await;
    arm(
        &app,
        json!({"provider": "klaviyo", "token_failures": 1,
               "token_fault": {"kind": "status", "status": 400, "error": "invalid_grant"}}),
    )
    .await;
    let req = token_request(Provider::Klaviyo, &[("grant_type", "client_credentials")]);
    let (status, body) = app.json(req).await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (400, "invalid_grant")
    );
}

#[actix_web::test]
async fn token_body_faults() {
    let app = app(sandbox()).await;
    let req = || token_request(Provider::Klaviyo, &[("grant_type", "client_credentials")]);

    arm(
        &app,
        json!({"provider": "klaviyo", "token_fault": {"kind": "invalid_json"}}),
    )
    .await;
    let resp = app.send(req()).await;
    assert_eq!(resp.status(), 200);
    let body = read_body(resp).await;
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());

    arm(
        &app,
        json!({"provider": "klaviyo", "token_fault": {"kind": "missing_access_token"}}),
    )
    .await;
    let (status, body) = app.json(req()).await;
    assert_eq!(status, 200);
    assert!(body.get("access_token").is_none());

    arm(
        &app,
        json!({"provider": "klaviyo", "token_fault": {"kind": "token_type", "value": "mac"}}),
    )
    .await;
    let (status, body) = app.json(req()).await;
    assert_eq!((status, str_of(&body, "token_type").as_str()), (200, "mac"));

    // None of the faulted answers issued a real token.
    let stats = stats_of(&app, "klaviyo").await;
    assert_eq!(stats["live_access_tokens"], 0);
    assert_eq!(stats["token_calls"]["failed"], 3);

    let (status, body) = app.json(req()).await;
    assert_eq!(
        (status, str_of(&body, "token_type").as_str()),
        (200, "Bearer")
    );
}

#[actix_web::test]
async fn delay_fault_slows_then_succeeds() {
    let app = app(sandbox()).await;
    arm(
        &app,
        json!({"provider": "klaviyo", "token_fault": {"kind": "delay", "ms": 300}}),
    )
    .await;
    let started = std::time::Instant::now();
    let req = token_request(Provider::Klaviyo, &[("grant_type", "client_credentials")]);
    let (status, _) = app.json(req).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[actix_web::test]
async fn rate_limit_fault_for_api_and_token_calls() {
    let app = app(sandbox()).await;
    let token = str_of(
        &tokens(&app, Provider::Klaviyo, "AcmeK1").await,
        "access_token",
    );
    arm(
        &app,
        json!({"provider": "klaviyo", "rate_limit_next": 2, "retry_after_secs": 9, "rate_limit_token": true}),
    )
    .await;
    let api = get_bearer("/sandbox/klaviyo/api/accounts", &token)
        .insert_header(("revision", "2024-07-15"));
    let resp = app.send(api).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), "9");
    let resp = app
        .send(token_request(
            Provider::Klaviyo,
            &[("grant_type", "client_credentials")],
        ))
        .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), "9");
    let api = get_bearer("/sandbox/klaviyo/api/accounts", &token)
        .insert_header(("revision", "2024-07-15"));
    assert_eq!(app.send(api).await.status(), 200);
    let stats = stats_of(&app, "klaviyo").await;
    assert_eq!(stats["rate_limited"], 2);
    assert_eq!(stats["api_calls"], 2);
}

#[actix_web::test]
async fn api_status_fault_hits_both_apis_per_provider() {
    let app = app(sandbox()).await;
    arm(
        &app,
        json!({"provider": "kustomer", "api_failures": 1, "api_status": 502}),
    )
    .await;
    let key = crate::KUSTOMER_API_KEYS[0].1;
    let (status, body) = app
        .json(get_bearer("/sandbox/kustomer/v1/teams", key))
        .await;
    assert_eq!(status, 502);
    assert_eq!(body["errors"][0]["status"], 502);
    let (status, _) = app
        .json(get_bearer("/sandbox/kustomer/v1/teams", key))
        .await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn authorize_error_fault_redirects_with_error() {
    let app = app(sandbox()).await;
    arm(
        &app,
        json!({"provider": "klaviyo", "authorize_error": "temporarily_unavailable"}),
    )
    .await;
    let location = consent(&app, Provider::Klaviyo, "AcmeK1", "allow").await;
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("temporarily_unavailable")
    );
    assert_eq!(query_param(&location, "code"), None);
    assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    // Only the next decision fails.
    let location = consent(&app, Provider::Klaviyo, "AcmeK1", "allow").await;
    assert!(query_param(&location, "code").is_some());
}

#[actix_web::test]
async fn expire_and_revoke_all() {
    let app = app(sandbox()).await;
    let issued = tokens(&app, Provider::Klaviyo, "AcmeK1").await;
    arm(
        &app,
        json!({"provider": "klaviyo", "expire_access_tokens": true}),
    )
    .await;
    let stats = stats_of(&app, "klaviyo").await;
    assert_eq!(
        (
            stats["live_access_tokens"].clone(),
            stats["live_refresh_tokens"].clone()
        ),
        (json!(0), json!(1))
    );
    let api = get_bearer(
        "/sandbox/klaviyo/api/accounts",
        &str_of(&issued, "access_token"),
    )
    .insert_header(("revision", "2024-07-15"));
    assert_eq!(app.send(api).await.status(), 401);

    arm(&app, json!({"provider": "klaviyo", "revoke_all": true})).await;
    let refresh = token_request(
        Provider::Klaviyo,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &str_of(&issued, "refresh_token")),
        ],
    );
    let (status, body) = app.json(refresh).await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (400, "invalid_grant")
    );
    assert_eq!(stats_of(&app, "klaviyo").await["live_refresh_tokens"], 0);
}

#[actix_web::test]
async fn reset_clears_faults_and_counters_but_keeps_tokens() {
    let app = app(sandbox()).await;
    let issued = tokens(&app, Provider::Kustomer, crate::data::KUSTOMER_ORGS[0].id).await;
    arm(&app, json!({"provider": "kustomer", "api_failures": 5})).await;
    let resp = app
        .send(TestRequest::post().uri("/sandbox/_control/reset"))
        .await;
    assert_eq!(resp.status(), 200);
    let stats = stats_of(&app, "kustomer").await;
    assert_eq!(stats["token_calls"]["authorization_code"], 0);
    assert_eq!(stats["live_access_tokens"], 1);
    let req = get_bearer(
        "/sandbox/kustomer/v1/teams",
        &str_of(&issued, "access_token"),
    );
    assert_eq!(app.send(req).await.status(), 200);
}

#[actix_web::test]
async fn counters_are_exact_under_concurrency() {
    let app = std::rc::Rc::new(app(sandbox()).await);
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let app = app.clone();
            actix_web::rt::spawn(async move {
                let req =
                    token_request(Provider::Kustomer, &[("grant_type", "client_credentials")]);
                app.send(req).await.status().as_u16()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.ok(), Some(200));
    }
    let stats = stats_of(&app, "kustomer").await;
    assert_eq!(stats["token_calls"]["client_credentials"], 200);
    assert_eq!(stats["token_calls"]["total"], 200);
    assert_eq!(stats["live_access_tokens"], 200);
}
