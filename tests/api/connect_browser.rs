//! The whole integration in a real browser: a tiny "team app" served by the test on its
//! own port (another origin) includes connect.js, asks its own backend (this test) for a
//! session, opens the hosted page in a popup, and receives the result by postMessage;
//! the redirect fallback when popups are blocked; screenshots of every hosted state at
//! desktop and phone width.

use crate::browser::Browser;
use crate::helpers::{spawn_app_with, Backend, TestApp};
use actix_web::{web, App, HttpResponse, HttpServer};
use connecthub::api_keys::Scope;
use fantoccini::Locator;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::time::Duration;

/// What the team's backend needs: connecthub's address and its service key.
#[derive(Clone)]
struct TeamBackend {
    hub: String,
    key: String,
    origin: String,
}

/// The team's page: a button that asks the team's backend for a session and opens it.
/// `?origins=` chooses the session's allowed_origins, `?blocked=1` makes window.open
/// fail as a popup blocker would.
async fn team_page(team: web::Data<TeamBackend>) -> HttpResponse {
    let html = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Team app</title><link rel="icon" href="data:,">
<script src="{hub}/static/connect.js?v={version}"></script></head>
<body><h1>Team app</h1><button id="connect">Connect Klaviyo</button><p id="result">idle</p>
<script>
const params = new URLSearchParams(location.search);
if (params.get('blocked') === '1') {{ window.open = function () {{ return null; }}; }}
document.getElementById('connect').addEventListener('click', async function () {{
  const answer = await fetch('/session?' + params.toString(), {{method: 'POST'}});
  const session = await answer.json();
  const out = document.getElementById('result');
  ConnectHub.open(session.connect_url, {{
    onSuccess: function (r) {{ out.textContent = 'success ' + r.provider + ' ' + r.endUserId + ' ' + r.connectionId; }},
    onError: function (r) {{ out.textContent = 'error ' + r.error; }},
    onClose: function () {{ if (!out.textContent.startsWith('success')) out.textContent = 'closed'; }}
  }});
}});
</script></body></html>"#,
        hub = team.hub,
        version = connecthub::web::assets::version(),
    );
    HttpResponse::Ok().content_type("text/html").body(html)
}

/// The team's backend: creates the session with its service key.
async fn make_session(
    team: web::Data<TeamBackend>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    let origin = query.get("origins").cloned().unwrap_or(team.origin.clone());
    let body = json!({
        "end_user": {"id": "42", "email": "jane@acme.example"},
        "allowed_providers": ["klaviyo"],
        "allowed_origins": [origin],
        "success_url": format!("{}/done", team.origin),
        "error_url": format!("{}/failed", team.origin),
    });
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/connect-sessions", team.hub))
        .bearer_auth(&team.key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    HttpResponse::Ok().json(answer)
}

/// Where the team's backend lands in redirect mode: it checks the signature itself.
async fn done(req: actix_web::HttpRequest, team: web::Data<TeamBackend>) -> HttpResponse {
    let _ = team;
    let query = req.query_string().to_string();
    HttpResponse::Ok().content_type("text/html").body(format!(
        "<!doctype html><p id=\"landed\">{}</p>",
        query.replace('<', "")
    ))
}

/// The hub (with the team's origin allowed) and the team app on their own ports.
async fn hub_and_team_app() -> (TestApp, TeamBackend) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let allowed = format!("{origin},https://app.example.com");
    let app = spawn_app_with(Backend::Sqlite, &[("CONNECT_ALLOWED_REDIRECTS", &allowed)]).await;
    let key = app.api_key(&[Scope::ConnectWrite, Scope::TokensRead]).await;
    let team = TeamBackend {
        hub: app.address.clone(),
        key,
        origin,
    };
    let data = web::Data::new(team.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/", web::get().to(team_page))
            .route("/session", web::post().to(make_session))
            .route("/done", web::get().to(done))
            .route("/failed", web::get().to(done))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (app, team)
}

async fn wait_for_windows(browser: &Browser, count: usize) -> Vec<fantoccini::wd::WindowHandle> {
    for _ in 0..50 {
        let windows = browser.client.windows().await.unwrap();
        if windows.len() == count {
            return windows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never saw {count} windows");
}

async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until `#result` starts with `prefix`; returns its text.
async fn result_starting(browser: &Browser, prefix: &str) -> String {
    let mut seen = String::new();
    for _ in 0..60 {
        seen = text_of(browser, "#result").await;
        if seen.starts_with(prefix) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("#result never started with {prefix:?}; saw {seen:?}");
}

async fn wait_for_url(browser: &Browser, prefix: &str) -> String {
    let mut seen = String::new();
    for _ in 0..60 {
        seen = browser.client.current_url().await.unwrap().to_string();
        if seen.starts_with(prefix) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never reached {prefix}; at {seen}");
}

async fn wait_for_contains(browser: &Browser, css: &str, part: &str) {
    for _ in 0..60 {
        if let Ok(element) = browser.client.find(Locator::Css(css)).await {
            if element.text().await.unwrap_or_default().contains(part) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never contained {part:?}");
}

/// Opens the popup from the team page and returns (team window, popup window).
async fn open_popup(
    browser: &Browser,
    page: &str,
) -> (fantoccini::wd::WindowHandle, fantoccini::wd::WindowHandle) {
    browser.goto(page).await;
    let team_window = browser.client.window().await.unwrap();
    browser.click("#connect").await;
    let windows = wait_for_windows(browser, 2).await;
    let popup = windows.into_iter().find(|w| *w != team_window).unwrap();
    browser
        .client
        .switch_to_window(popup.clone())
        .await
        .unwrap();
    (team_window, popup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_app_connects_klaviyo_in_a_popup_and_gets_the_result_by_post_message() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (app, team) = hub_and_team_app().await;
    let (team_window, _) = open_popup(&browser, &format!("{}/", team.origin)).await;
    browser.wait_for_text("h1", "Connect an account").await;
    browser.screenshot("connect-choose-desktop").await;
    browser.click("a.connect-btn").await;
    browser.click("#allow").await;
    // The popup reports and closes itself; the team page shows what it received.
    browser.client.switch_to_window(team_window).await.unwrap();
    let result = result_starting(&browser, "success").await;
    let client = app.clients().await.remove(0);
    assert_eq!(result, format!("success klaviyo 42 {}", client.id));
    wait_for_windows(&browser, 1).await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");

    // A session whose only allowed origin is another site: the popup never reports here.
    let other = format!("{}/?origins=https://app.example.com", team.origin);
    let (team_window, _) = open_popup(&browser, &other).await;
    browser.click("a.connect-btn").await;
    browser.click("#allow").await;
    wait_for_contains(&browser, "#connect-result h1", "connected").await;
    let ended_on = browser.client.current_url().await.unwrap().to_string();
    assert!(
        ended_on.ends_with("/connect/finish/klaviyo"),
        "no code or state: {ended_on}"
    );
    browser
        .client
        .switch_to_window(team_window.clone())
        .await
        .unwrap();
    let result = result_starting(&browser, "closed").await;
    assert_eq!(
        result, "closed",
        "no message from a session for another origin"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_popup_falls_back_to_a_full_page_redirect_with_a_signed_result() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (app, team) = hub_and_team_app().await;
    browser.goto(&format!("{}/?blocked=1", team.origin)).await;
    browser.click("#connect").await;
    browser.wait_for_text("h1", "Connect an account").await;
    browser.click("a.connect-btn").await;
    browser.click("#allow").await;
    let landed = wait_for_url(&browser, &format!("{}/done?", team.origin)).await;
    assert!(
        landed.starts_with(&format!("{}/done?connection_id=", team.origin)),
        "{landed}"
    );
    let vault = connecthub::vault::Vault::new(
        &connecthub::config::EncryptionKey::parse(crate::helpers::TEST_KEY).unwrap(),
        None,
    );
    let secret = app
        .db(move |conn| {
            connecthub::connect::settings::load(conn, &vault)
                .map_err(|_| diesel::result::Error::NotFound)
        })
        .await
        .signing_secret;
    assert!(connecthub::connect::signature::verify(&landed, &secret));
    assert!(!landed.contains("code=") && !landed.contains("state="));
    browser.close().await;
}

/// Saves a screenshot at desktop (1280) and phone (390) width, also into
/// /tmp/shots-connect/ for people to look at.
async fn shoot(browser: &Browser, name: &str) {
    std::fs::create_dir_all("/tmp/shots-connect").unwrap();
    for (width, label) in [(1280, "desktop"), (390, "phone")] {
        browser.client.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let path = browser.screenshot(&format!("connect-{name}-{label}")).await;
        std::fs::copy(&path, format!("/tmp/shots-connect/{name}-{label}.png")).unwrap();
    }
    browser.client.set_window_size(1280, 900).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hosted_state_is_readable_at_desktop_and_phone_width() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (app, _team) = hub_and_team_app().await;
    let key = app.api_key(&[Scope::ConnectWrite]).await;
    let session = |providers: Value| {
        let (app, key) = (&app, key.clone());
        async move {
            let answer: Value = app
                .client
                .post(app.url("/api/v1/connect-sessions"))
                .bearer_auth(&key)
                .json(&json!({"end_user": {"id": "42", "display_name": "Jane Doe"}, "allowed_providers": providers}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["connect_url"].as_str().unwrap().to_string()
        }
    };
    app.db(|conn| {
        let vault = connecthub::vault::Vault::new(
            &connecthub::config::EncryptionKey::parse(crate::helpers::TEST_KEY).unwrap(),
            None,
        );
        let branding =
            connecthub::connect::settings::parse_branding("Acme Chat", "", "#aa3366").unwrap();
        connecthub::connect::settings::save_branding(conn, &vault, &branding)
            .map_err(|_| diesel::result::Error::NotFound)
    })
    .await;
    let both = session(json!(["klaviyo", "kustomer"])).await;
    browser.goto(&both).await;
    browser.wait_for_text("h1", "Connect an account").await;
    shoot(&browser, "choose").await;
    browser.click("details.connect-apikey summary").await;
    shoot(&browser, "choose-api-key").await;
    browser.goto(&both).await;
    // With the keyboard only: Tab reaches "Connect Klaviyo" first, Enter follows it.
    let body = browser.client.find(Locator::Css("body")).await.unwrap();
    body.send_keys("\u{E004}").await.unwrap();
    let focused = browser
        .client
        .execute("return document.activeElement.textContent", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("Connect Klaviyo"));
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    browser.click("#deny").await;
    wait_for_contains(&browser, "#connect-result h1", "was not connected").await;
    shoot(&browser, "error").await;
    browser.click("a.connect-btn").await;
    browser.wait_for_text("h1", "Connect an account").await;
    browser.click("a.connect-btn").await;
    browser.click("#allow").await;
    wait_for_contains(&browser, "#connect-result h1", "connected").await;
    shoot(&browser, "success").await;
    browser.goto(&both).await;
    wait_for_contains(&browser, "h1", "Link already used").await;
    shoot(&browser, "used").await;
    browser.goto(&app.url("/connect/chc_unknown")).await;
    wait_for_contains(&browser, "h1", "Link not valid").await;
    shoot(&browser, "unknown").await;
    assert!(
        browser
            .console_errors()
            .await
            .iter()
            .all(|e| e.contains("the server responded with a status of 4")),
        "only the 4xx pages' own status"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_and_end_user_pages_render_for_admins() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (app, team) = hub_and_team_app().await;
    let (team_window, _) = open_popup(&browser, &format!("{}/", team.origin)).await;
    browser.click("a.connect-btn").await;
    browser.click("#allow").await;
    browser.client.switch_to_window(team_window).await.unwrap();
    result_starting(&browser, "success").await;
    let admin = app.create_user(connecthub::auth::users::Role::Admin).await;
    browser.sign_in(&app, &admin).await;
    browser.wait_for_text("h1", "Clients").await;
    wait_for_contains(&browser, "#clients-table", "end user 42").await;
    shoot(&browser, "admin-clients").await;
    browser.goto(&app.url("/admin/end-users/42")).await;
    browser.wait_for_text("h1", "End user 42").await;
    shoot(&browser, "admin-end-user").await;
    browser.goto(&app.url("/admin/settings")).await;
    browser.wait_for_text("h1", "Settings").await;
    shoot(&browser, "admin-settings").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;
}
