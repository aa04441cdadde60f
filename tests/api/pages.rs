//! Layout, static files, health, headers and error pages.

use crate::helpers::{header, TestApp};
use crate::on_both_backends;
use connecthub::auth::users::Role;

on_both_backends!(
    health_reports_the_database,
    security_headers_are_on_every_response,
    layout_has_navigation_toasts_and_vendored_htmx,
    unknown_paths_get_a_clear_404,
);

async fn health_reports_the_database(app: TestApp) {
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok", "database": "ok"}));
}

async fn security_headers_are_on_every_response(app: TestApp) {
    for path in [
        "/login",
        "/healthz",
        "/static/app.css",
        "/no-such-page",
        "/admin/clients",
    ] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = header(headers, "content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(header(headers, "referrer-policy"), "no-referrer", "{path}");
        assert_eq!(
            header(headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
    }
}

async fn layout_has_navigation_toasts_and_vendored_htmx(app: TestApp) {
    app.login_as(Role::Admin).await;
    let html = app.get_html("/admin/clients").await;
    assert!(html.contains(r#"id="toasts" class="toasts" role="status""#));
    assert!(html.contains(r#"src="/static/htmx-2.0.4.min.js""#));
    assert!(
        !html.contains("<script>") && !html.contains("unpkg") && !html.contains("cdn"),
        "no inline or CDN scripts"
    );
    for link in [
        "/admin/clients",
        "/admin/usage",
        "/admin/audit",
        "/admin/users",
    ] {
        assert!(
            html.contains(&format!("href=\"{link}\"")),
            "nav lacks {link}"
        );
        assert_eq!(app.get(link).await.status(), 200, "{link}");
    }
    let htmx = app.get("/static/htmx-2.0.4.min.js").await;
    assert_eq!(htmx.status(), 200);
    assert!(header(htmx.headers(), "cache-control").contains("max-age=31536000"));
    assert!(header(htmx.headers(), "content-type").starts_with("text/javascript"));
    assert!(htmx.text().await.unwrap().contains("htmx"));
    let audit = app.get_html("/admin/audit").await;
    assert!(audit.contains("<code>login</code>"));
}

async fn unknown_paths_get_a_clear_404(app: TestApp) {
    let response = app.get("/nothing/here").await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("Not Found"));
    assert_eq!(app.get("/static/../Cargo.toml").await.status(), 404);
    assert_eq!(app.get("/static/secret.txt").await.status(), 404);
}
