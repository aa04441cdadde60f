//! Removing a provider added on `/admin/providers`: refused while it has connections
//! (saying how many) and for built-in ones; once its connections are disconnected it goes,
//! with its stored settings, audited; the disconnected client's page still opens; members
//! get 403. Nothing changes on a refusal.

use crate::helpers::{location, unescape, TestApp};
use crate::on_both_backends;
use crate::provider_admin::{
    acme, add, connect_acme, provider_audit, set_credentials, stored_rows,
};
use connecthub::auth::users::Role;
use connecthub_sandbox::{KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET};

on_both_backends!(
    a_provider_goes_once_its_connections_are_disconnected,
    members_and_built_in_providers_are_refused,
);

async fn remove(app: &TestApp, name: &str) -> reqwest::Response {
    app.post_form(&format!("/admin/providers/{name}/remove"), &[])
        .await
}

async fn a_provider_goes_once_its_connections_are_disconnected(app: TestApp) {
    app.login_as(Role::Admin).await;
    assert_eq!(
        location(&add(&app, &acme(&app.address)).await),
        "/admin/providers/acme"
    );
    set_credentials(&app, KLAVIYO_CLIENT_ID, KLAVIYO_CLIENT_SECRET).await;
    assert_eq!(
        connect_acme(&app).await,
        "success: Connected Acme CRM account Globex Retail"
    );
    let page = app.get_html("/admin/providers/acme").await;
    assert!(
        page.contains(r#"id="remove-provider""#),
        "offered for an added provider"
    );

    let refused = remove(&app, "acme").await;
    assert_eq!(refused.status(), 400);
    let page = unescape(&refused.text().await.unwrap());
    assert!(
        page.contains("Acme CRM still has 1 connection: disconnect it first."),
        "{page}"
    );
    assert_eq!(stored_rows(&app).await, 1);
    assert!(!provider_audit(&app)
        .await
        .contains(&"provider_removed".to_string()));

    let client = app.clients().await.remove(0);
    let disconnect = format!("/api/integrations/acme/disconnect/{}", client.id);
    assert_eq!(app.post_form(&disconnect, &[]).await.status(), 303);
    let removed = remove(&app, "acme").await;
    assert_eq!(location(&removed), "/admin/providers");
    assert_eq!(
        app.toast_on("/admin/providers").await,
        "success: Provider acme removed"
    );
    assert_eq!(stored_rows(&app).await, 0, "its settings went with it");
    assert!(provider_audit(&app)
        .await
        .contains(&"provider_removed".to_string()));
    assert_eq!(app.get("/admin/providers/acme").await.status(), 404);
    let listed = app.get_html("/admin/providers").await;
    assert!(!listed.contains(r#"id="provider-acme""#));
    // The disconnected connection stays for its history, and its page still opens.
    let history = app.get(&format!("/admin/clients/{}", client.id)).await;
    assert_eq!(history.status(), 200);
    assert_eq!(remove(&app, "acme").await.status(), 404, "gone");
}

async fn members_and_built_in_providers_are_refused(app: TestApp) {
    app.login_as(Role::Admin).await;
    add(&app, &acme(&app.address)).await;
    let page = app.get_html("/admin/providers/klaviyo").await;
    assert!(
        !page.contains(r#"id="remove-provider""#),
        "not offered for a built-in"
    );
    let built_in = remove(&app, "klaviyo").await;
    assert_eq!(built_in.status(), 400);
    let page = unescape(&built_in.text().await.unwrap());
    assert!(
        page.contains("Klaviyo was not added on this page (built-in): it cannot be removed here; disable it instead."),
        "{page}"
    );
    assert_eq!(remove(&app, "no-such").await.status(), 404);
    assert_eq!(remove(&app, "bad%00name").await.status(), 404);

    app.login_as(Role::Member).await;
    assert_eq!(remove(&app, "acme").await.status(), 403);
    assert_eq!(stored_rows(&app).await, 1, "nothing changed");
    let audit = provider_audit(&app).await;
    assert_eq!(audit, ["provider_added"], "only the add");
}
