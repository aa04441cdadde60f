use super::super::test_support::*;
use super::super::{
    KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET, KUSTOMER_CLIENT_ID, KUSTOMER_CLIENT_SECRET,
};
use super::*;
use crate::authorize::parse_scopes;

const ACME_ORG: &str = "5f3a1c9e8b2d4a0017c6e101";

fn exchange(provider: Provider, code: &str, verifier: &str) -> actix_web::test::TestRequest {
    token_request(
        provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
}

async fn introspect_active(app: &TestApp, provider: Provider, token: &str) -> serde_json::Value {
    let path = format!("/sandbox/{}/oauth/introspect", provider.name());
    app.json(post_form(&path, &[("token", token)])).await.1
}

#[actix_web::test]
async fn code_exchange_with_correct_verifier() {
    let app = app(sandbox()).await;
    let body = tokens(&app, Provider::Klaviyo, "GlobexK2").await;
    assert!(str_of(&body, "access_token").starts_with("skla_at_"));
    assert!(str_of(&body, "refresh_token").starts_with("skla_rt_"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["scope"], "accounts:read lists:read segments:read");
    let info = introspect_active(&app, Provider::Klaviyo, &str_of(&body, "access_token")).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["account_id"], "GlobexK2");
}

#[actix_web::test]
async fn wrong_verifier_is_refused() {
    let app = app(sandbox()).await;
    let code = authorize_code(&app, Provider::Klaviyo, "AcmeK1").await;
    let wrong = "x".repeat(43);
    let (status, body) = app.json(exchange(Provider::Klaviyo, &code, &wrong)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Invalid code verifier"})
    );
}

#[actix_web::test]
async fn code_reuse_is_refused_and_revokes_tokens() {
    let app = app(sandbox()).await;
    let code = authorize_code(&app, Provider::Kustomer, ACME_ORG).await;
    let (status, first) = app
        .json(exchange(Provider::Kustomer, &code, VERIFIER))
        .await;
    assert_eq!(status, 200);
    let (status, again) = app
        .json(exchange(Provider::Kustomer, &code, VERIFIER))
        .await;
    assert_eq!(
        (status, str_of(&again, "error").as_str()),
        (400, "invalid_grant")
    );
    let info = introspect_active(&app, Provider::Kustomer, &str_of(&first, "access_token")).await;
    assert_eq!(info, json!({"active": false}));
}

#[actix_web::test]
async fn mismatched_redirect_uri_is_refused() {
    let app = app(sandbox()).await;
    let code = authorize_code(&app, Provider::Klaviyo, "AcmeK1").await;
    let req = token_request(
        Provider::Klaviyo,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://app.test/callback"),
            ("code_verifier", VERIFIER),
        ],
    );
    let (status, body) = app.json(req).await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (400, "invalid_grant")
    );
}

#[actix_web::test]
async fn klaviyo_requires_basic_auth() {
    let app = app(sandbox()).await;
    let body_auth = post_form(
        "/sandbox/klaviyo/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", KLAVIYO_CLIENT_ID),
            ("client_secret", KLAVIYO_CLIENT_SECRET),
        ],
    );
    let resp = app.send(body_auth).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let wrong_secret = post_form(
        "/sandbox/klaviyo/oauth/token",
        &[("grant_type", "client_credentials")],
    )
    .insert_header(("authorization", basic(KLAVIYO_CLIENT_ID, "nope")));
    let (status, body) = app.json(wrong_secret).await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (401, "invalid_client")
    );
    assert!(!body.to_string().contains("nope"));
    let missing = post_form(
        "/sandbox/klaviyo/oauth/token",
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(app.send(missing).await.status(), 401);
}

#[actix_web::test]
async fn kustomer_requires_body_auth() {
    let app = app(sandbox()).await;
    let basic_auth = post_form(
        "/sandbox/kustomer/oauth/token",
        &[("grant_type", "client_credentials")],
    )
    .insert_header((
        "authorization",
        basic(KUSTOMER_CLIENT_ID, KUSTOMER_CLIENT_SECRET),
    ));
    let (status, body) = app.json(basic_auth).await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (401, "invalid_client")
    );
    let (status, _) = app
        .json(token_request(
            Provider::Kustomer,
            &[("grant_type", "client_credentials")],
        ))
        .await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn refresh_rotates_and_old_token_is_refused() {
    let app = app(sandbox()).await;
    let first = tokens(&app, Provider::Klaviyo, "AcmeK1").await;
    let old = str_of(&first, "refresh_token");
    let refresh = |token: &str| {
        token_request(
            Provider::Klaviyo,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
    };
    let (status, second) = app.json(refresh(&old)).await;
    assert_eq!(status, 200);
    let new = str_of(&second, "refresh_token");
    assert_ne!(new, old);
    assert_eq!(second["scope"], first["scope"]);
    let (status, body) = app.json(refresh(&old)).await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (400, "invalid_grant")
    );
    // Reuse detection revoked the family, including the newest refresh token.
    let (status, _) = app.json(refresh(&new)).await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn revoke_then_introspect_inactive() {
    let app = app(sandbox()).await;
    for provider in Provider::ALL {
        let account = data::first_account(provider);
        let issued = tokens(&app, provider, account).await;
        let access = str_of(&issued, "access_token");
        assert_eq!(
            introspect_active(&app, provider, &access).await["active"],
            true
        );
        let refresh = str_of(&issued, "refresh_token");
        let req = client_request(
            provider,
            "revoke",
            &[("token", &refresh), ("token_type_hint", "refresh_token")],
        );
        assert_eq!(app.send(req).await.status(), 200);
        assert_eq!(
            introspect_active(&app, provider, &access).await,
            json!({"active": false})
        );
        assert_eq!(
            introspect_active(&app, provider, &refresh).await,
            json!({"active": false})
        );
        // Unknown tokens are fine too.
        let req = client_request(provider, "revoke", &[("token", "never-issued")]);
        assert_eq!(app.send(req).await.status(), 200);
    }
    let stats = app
        .json(actix_web::test::TestRequest::get().uri("/sandbox/_control/stats?provider=klaviyo"))
        .await
        .1;
    assert_eq!(stats["revocations"], 2);
}

#[actix_web::test]
async fn revoke_requires_client_auth() {
    let app = app(sandbox()).await;
    let req = post_form("/sandbox/klaviyo/oauth/revoke", &[("token", "x")]);
    assert_eq!(app.send(req).await.status(), 401);
}

#[actix_web::test]
async fn bad_token_requests() {
    let app = app(sandbox()).await;
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "invalid_request"),
        (&[("grant_type", "password")], "unsupported_grant_type"),
        (
            &[("grant_type", "authorization_code"), ("code", "x")],
            "invalid_request",
        ),
        (&[("grant_type", "refresh_token")], "invalid_request"),
        (
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "unknown"),
            ],
            "invalid_grant",
        ),
    ];
    for (pairs, error) in cases {
        let (status, body) = app.json(token_request(Provider::Klaviyo, pairs)).await;
        assert_eq!(
            (status, str_of(&body, "error").as_str()),
            (400, error),
            "{pairs:?}"
        );
    }
    let json_body = actix_web::test::TestRequest::post()
        .uri("/sandbox/klaviyo/oauth/token")
        .insert_header((
            "authorization",
            basic(KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET),
        ))
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"grant_type\":\"client_credentials\"}");
    let (status, body) = app.json(json_body).await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (400, "invalid_request")
    );
    let repeated = token_request(
        Provider::Klaviyo,
        &[("grant_type", "client_credentials"), ("grant_type", "x")],
    );
    assert_eq!(app.json(repeated).await.0, 400);
    let stats = app
        .json(actix_web::test::TestRequest::get().uri("/sandbox/_control/stats?provider=klaviyo"))
        .await
        .1;
    assert_eq!(stats["token_calls"]["failed"], 7);
}

#[actix_web::test]
async fn client_credentials_issue_no_refresh_token() {
    let app = app(sandbox()).await;
    let (status, body) = app
        .json(token_request(
            Provider::Klaviyo,
            &[("grant_type", "client_credentials")],
        ))
        .await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none());
    assert_eq!(
        body["scope"],
        "accounts:read lists:read segments:read profiles:read"
    );
    let info = introspect_active(&app, Provider::Klaviyo, &str_of(&body, "access_token")).await;
    assert_eq!(info["account_id"], "AcmeK1");
}

#[test]
fn scope_rules() {
    assert!(parse_scopes(Provider::Klaviyo, "lists:read  accounts:read").is_ok());
    assert!(parse_scopes(Provider::Klaviyo, "").is_err());
    assert!(parse_scopes(Provider::Klaviyo, "lists:delete").is_err());
    assert!(parse_scopes(Provider::Klaviyo, "Lists:read").is_err());
    assert_eq!(parse_scopes(Provider::Kustomer, ""), Ok(vec![]));
    assert_eq!(
        parse_scopes(
            Provider::Kustomer,
            "org.user.customer.read org.user.customer.read"
        ),
        Ok(vec!["org.user.customer.read".to_string()])
    );
}

#[test]
fn basic_header_parsing() {
    assert_eq!(
        parse_basic(&basic("a%20b", "s:c")),
        Some(("a b".to_string(), "s:c".to_string()))
    );
    assert_eq!(parse_basic("Bearer abc"), None);
    assert_eq!(parse_basic("Basic !!!"), None);
}
