//! The sandbox over real HTTP, as `connecthub demo` and the integration tests use it.

use super::test_support::{challenge, VERIFIER};
use super::*;
use actix_web::{App, HttpServer};
use serde_json::Value;

/// Starts the sandbox on a free port with several workers; returns its base URL.
fn serve() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let sandbox = Sandbox::new(SandboxSettings {
        base_url: base.clone(),
        access_token_ttl: Duration::from_secs(2),
    });
    let server = HttpServer::new(move || {
        let sandbox = sandbox.clone();
        App::new().configure(move |c| routes(c, sandbox))
    })
    .workers(4)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    base
}

#[actix_web::test]
async fn full_flow_over_http() {
    let base = serve();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let authorize = format!("{base}/sandbox/kustomer/oauth/authorize");
    let query = [
        ("response_type", "code"),
        ("client_id", KUSTOMER_CLIENT_ID),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        ("state", "s1"),
        ("code_challenge", &challenge(VERIFIER)),
        ("code_challenge_method", "S256"),
    ];
    let page = http
        .get(&authorize)
        .query(&query)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let mut form = query.to_vec();
    form.push(("account", "5f3a1c9e8b2d4a0017c6e202"));
    form.push(("decision", "allow"));
    let decision = http
        .post(&authorize)
        .form(&form)
        .send()
        .await
        .expect("decide");
    assert_eq!(decision.status(), 303);
    let location = decision.headers()["location"].to_str().expect("location");
    let code = url::Url::parse(location)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");

    let token_url = format!("{base}/sandbox/kustomer/oauth/token");
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        ("code_verifier", VERIFIER),
        ("client_id", KUSTOMER_CLIENT_ID),
        ("client_secret", KUSTOMER_CLIENT_SECRET),
    ];
    let tokens: Value = http
        .post(&token_url)
        .form(&exchange)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(tokens["expires_in"], 2);
    let access = tokens["access_token"].as_str().unwrap_or_default();
    let customer = http
        .get(format!(
            "{base}/sandbox/kustomer/v1/customers/email=peter%40initech.example"
        ))
        .bearer_auth(access)
        .send()
        .await
        .expect("customer");
    assert_eq!(customer.status(), 200);

    // The access token lapses after its short lifetime.
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    let expired = http
        .get(format!("{base}/sandbox/kustomer/v1/orgs/current"))
        .bearer_auth(access)
        .send()
        .await
        .expect("expired");
    assert_eq!(expired.status(), 401);
}

#[actix_web::test]
async fn refresh_counts_are_exact_under_concurrent_http() {
    let base = serve();
    let http = reqwest::Client::new();
    let token_url = format!("{base}/sandbox/klaviyo/oauth/token");
    let issued: Value = http
        .post(&token_url)
        .basic_auth(KLAVIYO_CLIENT_ID, Some(KLAVIYO_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert!(issued["access_token"].is_string());
    // 500 concurrent refreshes of one (unknown) refresh token: all counted, all refused.
    let calls: Vec<_> = (0..500)
        .map(|_| {
            http.post(&token_url)
                .basic_auth(KLAVIYO_CLIENT_ID, Some(KLAVIYO_CLIENT_SECRET))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "skla_rt_x"),
                ])
                .send()
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("refresh").status(), 400);
    }
    let stats: Value = http
        .get(format!("{base}/sandbox/_control/stats?provider=klaviyo"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["token_calls"]["refresh_token"], 500);
    assert_eq!(stats["token_calls"]["failed"], 500);
    assert_eq!(stats["token_calls"]["client_credentials"], 1);
}
