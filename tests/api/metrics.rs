//! `/metrics` from the first scrape (every family, build and process), requests counted by
//! route pattern, and the favicon.

use crate::helpers::{header, TestApp};
use connecthub::api_keys::Scope;

crate::on_both_backends!(
    a_fresh_app_lists_every_family_and_its_build,
    requests_are_counted_by_route_pattern_without_ids_or_queries,
);

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn a_fresh_app_lists_every_family_and_its_build(app: TestApp) {
    let metrics = scrape(&app).await;
    for family in [
        "connecthub_token_refreshes_total",
        "connecthub_token_refresh_duration_seconds",
        "connecthub_oauth_flows_total",
        "connecthub_tokens_served_total",
        "connecthub_http_requests_total",
        "connecthub_http_request_duration_seconds",
        "connecthub_clients",
        "connecthub_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family} missing from a fresh app's metrics:\n{metrics}"
        );
    }
    for line in [
        format!(
            r#"connecthub_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ),
        r#"connecthub_token_refreshes_total{outcome="success",provider="klaviyo"} 0"#.into(),
        r#"connecthub_token_refreshes_total{outcome="invalid_grant",provider="kustomer"} 0"#.into(),
        r#"connecthub_clients{provider="klaviyo",status="active"} 0"#.into(),
    ] {
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
}

async fn requests_are_counted_by_route_pattern_without_ids_or_queries(app: TestApp) {
    let key = app.api_key(&[Scope::TokensRead]).await;
    let unknown_client = uuid::Uuid::new_v4().to_string();
    let response = app
        .client
        .get(app.url(&format!(
            "/api/v1/clients/{unknown_client}/token?trace=q-secret"
        )))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(app.get("/no-such-page-x7").await.status(), 404);

    let metrics = scrape(&app).await;
    for line in [
        r#"connecthub_http_requests_total{method="GET",route="/api/v1/clients/{id}/token",status="404"} 1"#,
        r#"connecthub_http_request_duration_seconds_count{method="GET",route="/api/v1/clients/{id}/token"} 1"#,
        r#"connecthub_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    for raw in [unknown_client.as_str(), "q-secret", "no-such-page-x7"] {
        assert!(!metrics.contains(raw), "{raw} became a label:\n{metrics}");
    }
}

#[tokio::test]
async fn the_favicon_is_served_and_every_page_links_it() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let ico = app.get("/favicon.ico").await;
    assert_eq!(ico.status(), 200);
    assert_eq!(header(ico.headers(), "content-type"), "image/x-icon");
    assert!(!ico.bytes().await.unwrap().is_empty());

    let login = app.get_html("/login").await;
    let link = login
        .split("<link rel=\"icon\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the layout links an icon");
    let svg = app.get(link).await;
    assert_eq!(svg.status(), 200, "{link}");
    assert_eq!(header(svg.headers(), "content-type"), "image/svg+xml");
}
