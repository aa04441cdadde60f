//! A client's page, `/admin/clients/{id}`: what it shows (never a secret), who may see it,
//! tags edited in place with htmx (and without JavaScript), and "Make default".

use crate::helpers::{header, location, TestApp, TestUser};
use crate::on_both_backends;
use connecthub::auth::users::Role;
use connecthub::clients::Client;
use connecthub::db::schema::clients;
use diesel::prelude::*;

on_both_backends!(
    the_page_shows_the_profile_scopes_times_and_history,
    api_key_clients_show_their_profile_but_not_the_key,
    owners_and_admins_only,
    tags_are_edited_inline_with_htmx,
    bad_tags_and_missing_csrf_change_nothing,
    tags_can_be_edited_without_javascript,
    make_default_switches_the_default,
    members_cannot_make_other_peoples_clients_default,
    a_disconnected_client_cannot_become_the_default,
);

/// Connects a Klaviyo sandbox account as the signed-in user; returns their client row.
pub async fn connect_as(app: &TestApp, owner: &TestUser, account: &str) -> Client {
    let done = app.connect("klaviyo", Some(account)).await;
    assert_eq!(done.status(), 303, "the callback redirects");
    client_of(app, owner, account).await
}

/// The owner's client for a Klaviyo account, as stored now.
pub async fn client_of(app: &TestApp, owner: &TestUser, account: &str) -> Client {
    app.clients()
        .await
        .into_iter()
        .find(|c| c.owner_user_id == owner.id && c.provider_account_id == account)
        .expect("client exists")
}

pub async fn reload(app: &TestApp, client: &Client) -> Client {
    app.clients()
        .await
        .into_iter()
        .find(|c| c.id == client.id)
        .expect("client exists")
}

/// The ids of the owner's default clients for a provider (there must be at most one).
pub async fn defaults_of(app: &TestApp, owner: &TestUser, provider: &str) -> Vec<String> {
    app.clients()
        .await
        .into_iter()
        .filter(|c| c.owner_user_id == owner.id && c.provider == provider && c.is_default)
        .map(|c| c.id)
        .collect()
}

/// A request as htmx sends it: `HX-Request`, and the CSRF header unless `csrf` is false.
async fn htmx(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    fields: &[(&str, &str)],
    csrf: bool,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header("HX-Request", "true");
    if csrf {
        request = request.header("X-CSRF-Token", app.csrf_token().await);
    }
    if !fields.is_empty() {
        request = request.form(fields);
    }
    request.send().await.unwrap()
}

/// The text of the `<dd>` after `<dt>{label}</dt>`.
fn fact(html: &str, label: &str) -> String {
    let after = html
        .split(&format!("<dt>{label}</dt>"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {label} on the page"));
    let dd = after.split("<dd>").nth(1).unwrap();
    dd.split("</dd>").next().unwrap().trim().to_string()
}

fn page(client: &Client) -> String {
    format!("/admin/clients/{}", client.id)
}

async fn the_page_shows_the_profile_scopes_times_and_history(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let client = connect_as(&app, &admin, "AcmeK1").await;
    let response = app.get(&page(&client)).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    for expected in [
        "Acme Store",
        "<code>AcmeK1</code>",
        "hello@acme-store.example",
        "acme-store.example",
        "https://acme-store.example",
        "America/New_York",
        "<dd>USD</dd>",
        "<dd>en-US</dd>",
        "Retail / Apparel",
        "<code>accounts:read</code>",
        "<code>profiles:read</code>",
        "badge status-active",
        "badge badge-info",
        admin.email.as_str(),
        "<code>oauth_completed</code>",
        // The usage card is there; whether the connect's own profile call is counted yet
        // depends on when the usage batch was flushed.
        r#"id="usage-title""#,
        r#"id="edit-tags""#,
        r#"id="refresh-now""#,
        r#"id="disconnect""#,
    ] {
        assert!(html.contains(expected), "the page shows {expected:?}");
    }
    assert_eq!(fact(&html, "Lists count"), "23");
    assert_eq!(fact(&html, "Segments count"), "7");
    assert_eq!(fact(&html, "Test account"), "No");
    assert_eq!(fact(&html, "Account ID"), "AcmeK1");
    assert!(!html.contains("requested, not granted"));
    assert!(
        !html.contains(r#"id="make-default""#),
        "it is the default already"
    );
    // The expiry is relative, with the exact time in the title.
    let expiry = html.split(r#"id="token-expiry" title=""#).nth(1).unwrap();
    assert!(expiry.contains(" UTC\">in "), "{}", &expiry[..60]);

    // Never a secret: neither the tokens nor their sealed form.
    let (access, refresh) = crate::lifecycle::stored_tokens(&app, &client.id).await;
    for secret in [
        access.unwrap(),
        refresh.unwrap(),
        "ch1.".into(),
        "skla_".into(),
    ] {
        assert!(!html.contains(&secret), "the page leaks {secret}");
    }

    // Scopes the provider did not grant are marked.
    let id = client.id.clone();
    app.db(move |conn| {
        diesel::update(clients::table.find(id))
            .set(clients::scopes.eq("accounts:read lists:read"))
            .execute(conn)
    })
    .await;
    let html = app.get_html(&page(&client)).await;
    assert_eq!(html.matches("requested, not granted").count(), 2);
}

async fn api_key_clients_show_their_profile_but_not_the_key(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let key = "sandbox-kustomer-key-acme-support";
    let done = app
        .post_form(
            "/api/integrations/kustomer/test-connection",
            &[("api_key", key)],
        )
        .await;
    assert_eq!(done.status(), 303);
    let client = app
        .clients()
        .await
        .into_iter()
        .find(|c| c.owner_user_id == admin.id && c.provider == "kustomer")
        .unwrap();
    let html = app.get_html(&page(&client)).await;
    for expected in [
        "Acme Support",
        "<dt>Org ID</dt>",
        "<dt>Teams</dt>",
        r#"<span class="tag">Tier 1</span><span class="tag">Billing</span><span class="tag">Escalations</span>"#,
        "API key; does not expire",
        "<code>api_key_connected</code>",
    ] {
        assert!(html.contains(expected), "the page shows {expected:?}");
    }
    assert!(!html.contains(key), "the API key never reaches the page");
    assert!(!html.contains("ch1."));
    assert!(
        !html.contains(r#"id="refresh-now""#),
        "API keys are not refreshed"
    );
}

async fn owners_and_admins_only(app: TestApp) {
    let owner = app.login_as(Role::Member).await;
    let client = connect_as(&app, &owner, "AcmeK1").await;
    assert_eq!(app.get(&page(&client)).await.status(), 200, "the owner");

    let other = app.new_browser();
    other.login_as(Role::Member).await;
    // Another owner's client answers exactly as an unknown id does: no existence oracle.
    let unknown = "/admin/clients/00000000-0000-4000-8000-000000000000";
    for (path, unknown_path) in [
        (page(&client), unknown.to_string()),
        (
            format!("{}/tags/edit", page(&client)),
            format!("{unknown}/tags/edit"),
        ),
        (format!("{}/tags", page(&client)), format!("{unknown}/tags")),
    ] {
        let response = other.get(&path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("<html"), "an error page");
        let for_unknown = other.get(&unknown_path).await;
        assert_eq!(for_unknown.status(), 404, "{unknown_path}");
        assert_eq!(body, for_unknown.text().await.unwrap(), "{path}");
    }
    let refused = other
        .post_form(&format!("{}/tags", page(&client)), &[("tags", "mine")])
        .await;
    assert_eq!(refused.status(), 404);
    assert_eq!(reload(&app, &client).await.tag_list(), ["new", "oauth"]);

    let admin = app.new_browser();
    admin.login_as(Role::Admin).await;
    let html = admin.get_html(&page(&client)).await;
    assert!(html.contains("Acme Store") && html.contains(&owner.email));

    for path in [
        format!("/admin/clients/{}", uuid::Uuid::new_v4()),
        format!("/admin/clients/{}", "a".repeat(5000)),
        "/admin/clients/%27%3B--".to_string(),
        format!("/admin/clients/{}/tags/edit", "a".repeat(5000)),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 404, "{}", &path[..40.min(path.len())]);
        assert!(response.text().await.unwrap().contains("<html"));
    }
}

async fn tags_are_edited_inline_with_htmx(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let client = connect_as(&app, &admin, "AcmeK1").await;
    let tags = format!("{}/tags", page(&client));

    let form = htmx(
        &app,
        reqwest::Method::GET,
        &format!("{tags}/edit"),
        &[],
        false,
    )
    .await;
    assert_eq!(form.status(), 200);
    let form = form.text().await.unwrap();
    assert!(form.contains(r#"<form id="tags-block""#), "{form}");
    assert!(form.contains(r#"value="new, oauth""#));
    assert!(
        !form.contains("<html") && !form.contains("<nav"),
        "a fragment only"
    );

    let saved = htmx(
        &app,
        reqwest::Method::POST,
        &tags,
        &[("tags", " VIP, eu,vip , Trial_1,")],
        true,
    )
    .await;
    assert_eq!(saved.status(), 200);
    let trigger: serde_json::Value =
        serde_json::from_str(&header(saved.headers(), "hx-trigger")).unwrap();
    assert_eq!(trigger["toast"]["kind"], "success");
    assert_eq!(trigger["toast"]["message"], "Saved the tags of Acme Store");
    let block = saved.text().await.unwrap();
    assert!(block.contains(r#"<div id="tags-block""#), "{block}");
    assert!(block.contains(
        r#"<span class="tag">vip</span><span class="tag">eu</span><span class="tag">trial_1</span>"#
    ));
    assert!(!block.contains("<html"));
    assert_eq!(
        reload(&app, &client).await.tag_list(),
        ["vip", "eu", "trial_1"]
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"client_tags_changed".to_string()));

    // Cancel brings the read-only block back; without htmx it is the page.
    let view = htmx(&app, reqwest::Method::GET, &tags, &[], false).await;
    assert!(view.text().await.unwrap().contains(r#"id="edit-tags""#));
    assert_eq!(location(&app.get(&tags).await), page(&client));

    // An empty field clears the tags.
    let cleared = htmx(&app, reqwest::Method::POST, &tags, &[("tags", "")], true).await;
    assert_eq!(cleared.status(), 200);
    assert!(reload(&app, &client).await.tag_list().is_empty());
}

async fn bad_tags_and_missing_csrf_change_nothing(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let client = connect_as(&app, &admin, "AcmeK1").await;
    let tags = format!("{}/tags", page(&client));
    let too_many: Vec<String> = (0..21).map(|n| format!("t{n}")).collect();
    let too_many = too_many.join(",");
    let long = "a".repeat(33);
    for bad in [
        "ok, not ok",
        "café",
        long.as_str(),
        too_many.as_str(),
        "<b>x</b>",
    ] {
        let response = htmx(&app, reqwest::Method::POST, &tags, &[("tags", bad)], true).await;
        assert_eq!(response.status(), 422, "{bad}");
        let trigger = header(response.headers(), "hx-trigger");
        assert!(trigger.contains(r#""kind":"error""#), "{trigger}");
        let form = response.text().await.unwrap();
        assert!(form.contains(r#"<form id="tags-block""#));
        assert!(form.contains(r#"aria-invalid="true""#));
        assert!(form.contains(r#"role="alert""#));
        assert!(!form.contains("<b>x</b>"), "what was typed is escaped");
    }
    assert_eq!(reload(&app, &client).await.tag_list(), ["new", "oauth"]);

    let forged = htmx(
        &app,
        reqwest::Method::POST,
        &tags,
        &[("tags", "forged")],
        false,
    )
    .await;
    assert_eq!(forged.status(), 403);
    let forged = app
        .client
        .post(app.url(&tags))
        .form(&[("tags", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(reload(&app, &client).await.tag_list(), ["new", "oauth"]);
    assert!(!app
        .audit_actions()
        .await
        .contains(&"client_tags_changed".to_string()));
}

async fn tags_can_be_edited_without_javascript(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let client = connect_as(&app, &admin, "AcmeK1").await;
    let tags = format!("{}/tags", page(&client));

    // The Edit link opens the page with the form in place.
    let html = app.get_html(&format!("{tags}/edit")).await;
    assert!(html.contains("<html") && html.contains(r#"<form id="tags-block""#));

    let refused = app.post_form(&tags, &[("tags", "no spaces please")]).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("<html") && html.contains(r#"id="tags-error""#));
    assert!(
        html.contains(r#"value="no spaces please""#),
        "what was typed stays"
    );

    let saved = app.post_form(&tags, &[("tags", "Agency, eu")]).await;
    assert_eq!(saved.status(), 303);
    assert_eq!(location(&saved), page(&client));
    assert_eq!(
        app.toast_on(&page(&client)).await,
        "success: Saved the tags of Acme Store"
    );
    assert_eq!(reload(&app, &client).await.tag_list(), ["agency", "eu"]);
}

async fn make_default_switches_the_default(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let acme = connect_as(&app, &admin, "AcmeK1").await;
    let globex = connect_as(&app, &admin, "GlobexK2").await;
    assert_eq!(
        defaults_of(&app, &admin, "klaviyo").await,
        vec![acme.id.clone()]
    );
    let html = app.get_html(&page(&globex)).await;
    assert!(html.contains(r#"id="make-default""#));

    let made = app
        .post_form(
            &format!("{}/default", page(&globex)),
            &[("redirect_path", "//evil.example")],
        )
        .await;
    assert_eq!(made.status(), 303);
    assert_eq!(
        location(&made),
        page(&globex),
        "only local paths are followed"
    );
    assert_eq!(
        app.toast_on(&page(&globex)).await,
        "success: Globex Retail is now the default Klaviyo connection"
    );
    assert_eq!(
        defaults_of(&app, &admin, "klaviyo").await,
        vec![globex.id.clone()]
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"client_default_changed".to_string()));

    // And back, as a JSON caller.
    let token = app.csrf_token().await;
    let back = app
        .client
        .post(app.url(&format!("{}/default", page(&acme))))
        .header("X-CSRF-Token", token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    let body: serde_json::Value = back.json().await.unwrap();
    assert_eq!(body["ok"], true);
    assert_eq!(
        defaults_of(&app, &admin, "klaviyo").await,
        vec![acme.id.clone()]
    );

    // Another owner's defaults are their own business.
    let member = app.new_browser();
    let user = member.login_as(Role::Member).await;
    let theirs = connect_as(&member, &user, "GlobexK2").await;
    assert!(theirs.is_default);
    assert_eq!(
        defaults_of(&app, &admin, "klaviyo").await,
        vec![acme.id.clone()]
    );
}

async fn members_cannot_make_other_peoples_clients_default(app: TestApp) {
    let owner = app.login_as(Role::Member).await;
    let acme = connect_as(&app, &owner, "AcmeK1").await;
    let globex = connect_as(&app, &owner, "GlobexK2").await;
    let other = app.new_browser();
    other.login_as(Role::Member).await;
    let refused = other
        .post_form(&format!("{}/default", page(&globex)), &[])
        .await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        defaults_of(&app, &owner, "klaviyo").await,
        vec![acme.id.clone()]
    );
    let unknown = other
        .post_form(
            &format!("/admin/clients/{}/default", uuid::Uuid::new_v4()),
            &[],
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

async fn a_disconnected_client_cannot_become_the_default(app: TestApp) {
    let admin = app.login_as(Role::Admin).await;
    let acme = connect_as(&app, &admin, "AcmeK1").await;
    let globex = connect_as(&app, &admin, "GlobexK2").await;
    let gone = app
        .post_form(
            &format!("/api/integrations/klaviyo/disconnect/{}", globex.id),
            &[],
        )
        .await;
    assert_eq!(gone.status(), 303);
    let html = app.get_html(&page(&globex)).await;
    assert!(!html.contains(r#"id="make-default""#), "not offered");

    let refused = app
        .post_form(&format!("{}/default", page(&globex)), &[])
        .await;
    assert_eq!(location(&refused), page(&globex));
    assert_eq!(
        app.toast_on(&page(&globex)).await,
        "error: Globex Retail is disconnected; reconnect it before making it the default"
    );
    let token = app.csrf_token().await;
    let json = app
        .client
        .post(app.url(&format!("{}/default", page(&globex))))
        .header("X-CSRF-Token", token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 409);
    assert_eq!(
        defaults_of(&app, &admin, "klaviyo").await,
        vec![acme.id.clone()]
    );
    assert!(!reload(&app, &globex).await.is_default);
}

mod in_the_browser {
    use crate::browser::Browser;
    use crate::helpers::{spawn_app, Backend};
    use connecthub::auth::users::Role;

    /// Edit the tags in place: the form swaps in, the saved tags swap back, no reload.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn edit_tags_inline_on_the_details_page() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = spawn_app(Backend::Sqlite).await;
        let admin = app.login_as(Role::Admin).await;
        let client = super::connect_as(&app, &admin, "AcmeK1").await;
        browser.goto(&app.url("/login")).await;
        browser.fill("#email", &admin.email).await;
        browser.fill("#password", &admin.password).await;
        browser.click("button[type=submit]").await;
        browser.wait_for_text("h1", "Clients").await;

        browser.goto(&app.url(&super::page(&client))).await;
        browser.wait_for_text("#client-name", "Acme Store").await;
        let marker = browser
            .client
            .execute("window.sameDocument = true; return true;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, serde_json::json!(true));
        browser.click("#edit-tags").await;
        browser.fill("#tags-input", "VIP, eu").await;
        browser.screenshot("client-details-tags-form").await;
        browser.click("#save-tags").await;
        browser
            .wait_for_text("#toasts .toast", "Saved the tags of Acme Store")
            .await;
        browser.wait_for_text("#tag-list .tag", "vip").await;
        browser.wait_for_text("#tag-list .tag", "eu").await;
        let same = browser
            .client
            .execute("return window.sameDocument === true;", vec![])
            .await
            .unwrap();
        assert_eq!(same, serde_json::json!(true), "without a page reload");
        assert_eq!(super::reload(&app, &client).await.tag_list(), ["vip", "eu"]);
        browser
            .client
            .execute(
                "window.scrollTo(0, 0); document.activeElement.blur(); return true;",
                vec![],
            )
            .await
            .unwrap();
        browser.screenshot("client-details").await;
        browser.close().await;
    }
}
