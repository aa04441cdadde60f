//! Providers from a TOML file, end to end against the sandbox; disabled and unconfigured
//! providers; the client-credentials flow.

use crate::helpers::{location, spawn_app_with, Backend, TestApp};
use connecthub::auth::users::Role;

const PROVIDERS: &str = r#"
[[provider]]
name = "acme"
display_name = "Acme CRM"
authorize_url = "{address}/sandbox/klaviyo/oauth/authorize"
token_url = "{address}/sandbox/klaviyo/oauth/token"
revoke_url = "{address}/sandbox/klaviyo/oauth/revoke"
profile_url = "{address}/sandbox/klaviyo/api/accounts"
account_id_field = "data.0.id"
account_name_field = "data.0.attributes.contact_information.organization_name"
scopes = ["accounts:read"]
client_auth = "basic"
api_base_url = "{address}/sandbox/klaviyo"
[provider.authorize_params]
prompt = "consent"
[provider.headers]
revision = "2024-10-15"

[[provider]]
name = "machine"
display_name = "Machine API"
auth_type = "client_credentials"
token_url = "{address}/sandbox/kustomer/oauth/token"
profile_url = "{address}/sandbox/kustomer/v1/orgs/current"
account_id_field = "data.id"
account_name_field = "data.attributes.displayName"
client_auth = "post"
api_base_url = "{address}/sandbox/kustomer"

[[provider]]
name = "unset"
display_name = "Unset CRM"
authorize_url = "https://auth.unset.example/authorize"
token_url = "https://auth.unset.example/token"
api_base_url = "https://api.unset.example"
"#;

async fn app_with_file(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        &[
            ("PROVIDERS_TOML", PROVIDERS),
            (
                "ACME_OAUTH_CLIENT_ID",
                connecthub_sandbox::KLAVIYO_CLIENT_ID,
            ),
            (
                "ACME_OAUTH_CLIENT_SECRET",
                connecthub_sandbox::KLAVIYO_CLIENT_SECRET,
            ),
            (
                "MACHINE_OAUTH_CLIENT_ID",
                connecthub_sandbox::KUSTOMER_CLIENT_ID,
            ),
            (
                "MACHINE_OAUTH_CLIENT_SECRET",
                connecthub_sandbox::KUSTOMER_CLIENT_SECRET,
            ),
            ("FEATURE_KUSTOMER_OAUTH", "false"),
        ],
    )
    .await
}

async fn generic_providers_work_end_to_end(backend: Backend) {
    let app = app_with_file(backend).await;
    app.login_as(Role::Admin).await;
    let html = app.get_html("/admin/clients").await;
    assert!(html.contains(r#"id="connect-acme""#) && html.contains("Connect Acme CRM"));
    assert!(html.contains(r#"id="connect-machine""#) && html.contains(r#"id="connect-unset""#));
    assert!(
        !html.contains(r#"id="connect-kustomer""#),
        "a disabled provider is hidden"
    );
    assert_eq!(
        app.start_connect("kustomer", "/admin/clients")
            .await
            .status(),
        404
    );

    // OAuth with PKCE through a provider defined only in the file.
    let start = app.start_connect("acme", "/admin/clients").await;
    let authorize = location(&start);
    assert!(
        authorize.contains("prompt=consent") && authorize.contains("scope=accounts%3Aread"),
        "{authorize}"
    );
    let callback = app.consent(&authorize, "allow", Some("GlobexK2")).await;
    assert_eq!(location(&app.callback(&callback).await), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: Connected Acme CRM account Globex Retail"
    );

    // Client credentials: no consent page, a POST from the Connect button.
    let machine = app
        .post_form(
            "/api/integrations/machine/connect",
            &[("redirect_path", "/admin/clients")],
        )
        .await;
    assert_eq!(location(&machine), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "success: Connected Machine API account Acme Support"
    );

    // Enabled without credentials: a toast, no redirect to the provider.
    let unset = app.start_connect("unset", "/admin/clients").await;
    assert_eq!(unset.status(), 303);
    assert_eq!(location(&unset), "/admin/clients");
    assert_eq!(
        app.toast_on("/admin/clients").await,
        "error: Unset CRM OAuth not configured"
    );

    let clients = app.clients().await;
    let summary: Vec<(&str, &str, &str)> = clients
        .iter()
        .map(|c| {
            (
                c.provider.as_str(),
                c.provider_account_id.as_str(),
                c.auth_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("acme", "GlobexK2", "oauth2"),
            ("machine", "5f3a1c9e8b2d4a0017c6e101", "client_credentials")
        ]
    );
    let stats = app.sandbox_stats("kustomer").await;
    assert_eq!(stats["token_calls"]["client_credentials"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_providers_work_end_to_end_on_sqlite() {
    generic_providers_work_end_to_end(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_providers_work_end_to_end_on_postgres() {
    if crate::helpers::postgres_available() {
        generic_providers_work_end_to_end(Backend::Postgres).await;
    }
}

#[test]
fn a_broken_provider_file_stops_start_up_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("providers.toml");
    std::fs::write(&file, "[[provider]]\nname = \"Bad Name\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"))
        .arg("serve")
        .env("DATABASE_URL", dir.path().join("x.db"))
        .env("PUBLIC_URL", "http://localhost:1")
        .env("ENCRYPTION_KEY", crate::helpers::TEST_KEY)
        .env("PROVIDERS_FILE", &file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.starts_with("error: PROVIDERS_FILE is not a valid provider file"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1);
}
