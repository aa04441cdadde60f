//! "My connections" (`/connections`): each user's own accounts by provider, connecting from
//! there and coming back, switching the default; and the service API's default token
//! (`GET /api/v1/providers/{provider}/token?owner=`).

use crate::client_details::{client_of, connect_as, defaults_of};
use crate::helpers::{location, TestApp};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;

on_both_backends!(
    each_user_sees_only_their_own_connections,
    oauth_started_here_comes_back_here,
    make_default_from_my_connections,
    the_default_token_follows_the_default,
    default_token_errors,
);

/// The HTML of one connection's card.
fn card<'a>(html: &'a str, client_id: &str) -> &'a str {
    let start = html
        .find(&format!(r#"id="connection-{client_id}""#))
        .expect("the card is shown");
    let rest = &html[start..];
    &rest[..rest.find("</article>").unwrap()]
}

async fn each_user_sees_only_their_own_connections(app: TestApp) {
    let member = app.login_as(Role::Member).await;
    let acme = connect_as(&app, &member, "AcmeK1").await;
    let globex = connect_as(&app, &member, "GlobexK2").await;
    let other = app.new_browser();
    let someone = other.login_as(Role::Member).await;
    let hooli = connect_as(&other, &someone, "HooliK3").await;

    let response = app.get("/connections").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<a href="/connections" aria-current="page">My connections</a>"#));
    for expected in [
        "Acme Store",
        "<code>AcmeK1</code>",
        "Globex Retail",
        "<code>GlobexK2</code>",
        "No Kustomer account connected yet.",
        r#"href="/api/integrations/klaviyo/oauth/start?redirect_path=/connections""#,
        r#"action="/api/integrations/kustomer/test-connection""#,
        r#"<input type="hidden" name="redirect_path" value="/connections">"#,
    ] {
        assert!(html.contains(expected), "the page shows {expected:?}");
    }
    assert!(!html.contains("Hooli Outlet") && !html.contains(&hooli.id));
    assert!(!html.contains("No Klaviyo account connected yet."));
    let acme_card = card(&html, &acme.id);
    assert!(acme_card.contains("default-badge") && !acme_card.contains("Make default"));
    assert!(acme_card.contains("badge status-active") && acme_card.contains("expires <time"));
    let globex_card = card(&html, &globex.id);
    assert!(!globex_card.contains("default-badge") && globex_card.contains("Make default"));
    assert!(globex_card.contains(&format!(r#"href="/admin/clients/{}""#, globex.id)));
    assert!(globex_card.contains("data-confirm"));

    // Admins see their own here too (everyone's are on the Clients page).
    let admin = app.new_browser();
    admin.login_as(Role::Admin).await;
    let html = admin.get_html("/connections").await;
    assert!(html.contains("No Klaviyo account connected yet."));
    assert!(!html.contains("Acme Store") && !html.contains("Hooli Outlet"));

    // A disconnected account leaves the cards, not the history.
    let gone = app
        .post_form(
            &format!("/api/integrations/klaviyo/disconnect/{}", globex.id),
            &[("redirect_path", "/connections")],
        )
        .await;
    assert_eq!(location(&gone), "/connections");
    let html = app.get_html("/connections").await;
    assert!(!html.contains(&format!(r#"id="connection-{}""#, globex.id)));
    assert!(html.contains("1 earlier Klaviyo connection disconnected."));

    // Anonymous visitors sign in first.
    let anonymous = app.new_browser();
    let response = anonymous.get("/connections").await;
    assert_eq!(location(&response), "/login?next=%2Fconnections");
}

async fn oauth_started_here_comes_back_here(app: TestApp) {
    app.login_as(Role::Member).await;
    let start = app.start_connect("klaviyo", "/connections").await;
    assert_eq!(start.status(), 302);
    let callback = app
        .consent(&location(&start), "allow", Some("GlobexK2"))
        .await;
    let done = app.callback(&callback).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/connections");
    assert_eq!(
        app.toast_on("/connections").await,
        "success: Connected Klaviyo account Globex Retail"
    );
    assert!(app.get_html("/connections").await.contains("Globex Retail"));

    // The API-key form comes back here as well.
    let added = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[
                ("api_key", "sandbox-kustomer-key-acme-support"),
                ("redirect_path", "/connections"),
            ],
        )
        .await;
    assert_eq!(location(&added), "/connections");
    let html = app.get_html("/connections").await;
    assert!(html.contains("Acme Support") && html.contains("API key; does not expire"));
    assert!(!html.contains("No Kustomer account connected yet."));
}

async fn make_default_from_my_connections(app: TestApp) {
    let member = app.login_as(Role::Member).await;
    let acme = connect_as(&app, &member, "AcmeK1").await;
    let globex = connect_as(&app, &member, "GlobexK2").await;
    let made = app
        .post_form(
            &format!("/admin/clients/{}/default", globex.id),
            &[("redirect_path", "/connections")],
        )
        .await;
    assert_eq!(made.status(), 303);
    assert_eq!(location(&made), "/connections");
    assert_eq!(
        app.toast_on("/connections").await,
        "success: Globex Retail is now the default Klaviyo connection"
    );
    assert_eq!(
        defaults_of(&app, &member, "klaviyo").await,
        vec![globex.id.clone()]
    );
    let html = app.get_html("/connections").await;
    assert!(card(&html, &globex.id).contains("default-badge"));
    assert!(card(&html, &acme.id).contains("Make default"));
    assert!(!client_of(&app, &member, "AcmeK1").await.is_default);
}

async fn token_of(app: &TestApp, key: &str, path: &str) -> serde_json::Value {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(
        crate::helpers::header(response.headers(), "cache-control"),
        "no-store"
    );
    response.json().await.unwrap()
}

async fn the_default_token_follows_the_default(app: TestApp) {
    let member = app.login_as(Role::Member).await;
    let acme = connect_as(&app, &member, "AcmeK1").await;
    let globex = connect_as(&app, &member, "GlobexK2").await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let by_id = format!("/api/v1/providers/klaviyo/token?owner={}", member.id);
    let by_email = format!(
        "/api/v1/providers/klaviyo/token?owner={}",
        connecthub::web::urlencode(&member.email.to_uppercase())
    );

    let default = token_of(&app, &key, &by_id).await;
    let direct = token_of(&app, &key, &format!("/api/v1/clients/{}/token", acme.id)).await;
    assert_eq!(default["client_id"], acme.id.as_str());
    assert_eq!(default, direct, "the same answer as naming the client");
    assert_eq!(token_of(&app, &key, &by_email).await, direct);
    assert!(
        app.sandbox_token_active("klaviyo", default["access_token"].as_str().unwrap())
            .await
    );

    // A switch shows at once, though both tokens are cached.
    token_of(&app, &key, &format!("/api/v1/clients/{}/token", globex.id)).await;
    let made = app
        .post_form(&format!("/admin/clients/{}/default", globex.id), &[])
        .await;
    assert_eq!(made.status(), 303);
    let switched = token_of(&app, &key, &by_id).await;
    assert_eq!(switched["client_id"], globex.id.as_str());
    assert_eq!(
        switched,
        token_of(&app, &key, &format!("/api/v1/clients/{}/token", globex.id)).await
    );
    assert_ne!(switched["access_token"], default["access_token"]);
}

async fn default_token_errors(app: TestApp) {
    let member = app.login_as(Role::Member).await;
    let acme = connect_as(&app, &member, "AcmeK1").await;
    let key = app.api_key(&[Scope::TokensRead]).await;
    let get = |path: String, key: Option<String>| {
        let mut request = app.client.get(app.url(&path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                body["error"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    let path = |query: &str| format!("/api/v1/providers/klaviyo/token{query}");
    let nobody = app.create_user(Role::Member).await;
    let long = "a".repeat(65);
    let cases: Vec<(String, u16, &str)> = vec![
        (path(&format!("?owner={}", nobody.id)), 404, "not_found"),
        (path("?owner=nobody%40example.com"), 404, "not_found"),
        (
            path(&format!("?owner={}", uuid::Uuid::new_v4())),
            404,
            "not_found",
        ),
        (
            format!("/api/v1/providers/nope/token?owner={}", member.id),
            404,
            "not_found",
        ),
        (path(""), 400, "invalid_request"),
        (path("?owner="), 400, "invalid_request"),
        (path("?owner=bad%20owner"), 400, "invalid_request"),
        (path("?owner=x%40"), 400, "invalid_request"),
        (path(&format!("?owner={long}")), 400, "invalid_request"),
        (path("?owner=%27%3B--"), 400, "invalid_request"),
    ];
    for (path, status, code) in cases {
        assert_eq!(
            get(path.clone(), Some(key.clone())).await,
            (status, code.to_string()),
            "{path}"
        );
    }
    let owner = format!("?owner={}", member.id);
    let list_only = app.api_key(&[Scope::ClientsRead]).await;
    assert_eq!(
        get(path(&owner), Some(list_only)).await,
        (403, "insufficient_scope".to_string())
    );
    assert_eq!(
        get(path(&owner), None).await,
        (401, "invalid_api_key".to_string())
    );
    assert_eq!(get(path(&owner), Some(key.clone())).await.0, 200);

    // Disconnecting the default leaves the owner without one.
    let gone = app
        .post_form(
            &format!("/api/integrations/klaviyo/disconnect/{}", acme.id),
            &[],
        )
        .await;
    assert_eq!(gone.status(), 303);
    assert_eq!(
        get(path(&owner), Some(key.clone())).await,
        (404, "not_found".to_string())
    );

    // The OpenAPI document describes the endpoint.
    let document: serde_json::Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert!(document["paths"]["/api/v1/providers/{provider}/token"]["get"].is_object());
}

mod in_the_browser {
    use crate::browser::Browser;
    use crate::client_details::{connect_as, defaults_of};
    use crate::helpers::{spawn_app, Backend};
    use connecthub::auth::users::Role;

    /// A member switches their default Klaviyo account on My connections.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn switch_the_default_connection() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let member = app.login_as(Role::Member).await;
        connect_as(&app, &member, "AcmeK1").await;
        let globex = connect_as(&app, &member, "GlobexK2").await;
        app.post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", "sandbox-kustomer-key-acme-support")],
        )
        .await;
        browser.goto(&app.url("/login")).await;
        browser.fill("#email", &member.email).await;
        browser.fill("#password", &member.password).await;
        browser.click("button[type=submit]").await;
        browser.wait_for_text("h1", "Clients").await;

        browser.click(r#".nav a[href="/connections"]"#).await;
        browser.wait_for_text("h1", "My connections").await;
        browser
            .click(&format!("#connection-{} .make-default", globex.id))
            .await;
        browser
            .wait_for_text(
                "#toasts .toast",
                "Globex Retail is now the default Klaviyo connection",
            )
            .await;
        assert_eq!(browser.path().await, "/connections");
        browser
            .wait_for_text(
                &format!("#connection-{} .default-badge", globex.id),
                "default",
            )
            .await;
        assert_eq!(
            defaults_of(&app, &member, "klaviyo").await,
            vec![globex.id.clone()]
        );
        browser.screenshot("connections").await;
        browser.close().await;
    }
}
