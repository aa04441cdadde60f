//! The service API against its own OpenAPI document, checked by schemathesis (from PyPI,
//! pinned in .ci/run), a tool nobody here wrote: no 5xx, every status code and body as
//! documented, no schema-valid request refused, 405 for undeclared methods. A Klaviyo
//! and a Kustomer client are connected first and their ids handed to schemathesis, so
//! its calls reach real work at the sandbox and not only 404s.

use crate::helpers::{location, TestApp};
use crate::on_both_backends;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use std::path::Path;

on_both_backends!(
    the_service_api_answers_as_its_openapi_document_says,
    an_undeclared_method_is_a_405_that_lists_the_methods_and_changes_nothing,
);

/// How many cases schemathesis tries per operation and phase: a bounded run (about a
/// minute) that still covers every operation with valid and invalid input.
const EXAMPLES_PER_OPERATION: &str = "25";

/// A schema-valid call may still be refused for what the schema cannot know: an id of no
/// record at the provider (404), the provider's own refusal, e.g. a customer that exists
/// already (422 `provider_rejected`), a state conflict (409) or a limit (429).
/// Four operations may refuse a schema-valid call with a 400 too: the client list a
/// `cursor` it did not give out (any base64url text fits the schema), a default token needs
/// `owner` or `end_user_id` and a replay `event_id` or `failed_since` (one of two, which
/// the document does not express), and a connect session's providers, URLs and origins
/// are checked against this deployment's providers and CONNECT_ALLOWED_REDIRECTS, which
/// no static schema lists.
const CHECKS: &str = "[checks.positive_data_acceptance]\n\
    expected-statuses = [\"2xx\", \"3xx\", 401, 403, 404, 409, 422, 429]\n\n\
    [[operations]]\n\
    include-path-regex = \"^/api/v1/(clients|providers/[^/]+/token|connect-sessions|webhook-endpoints/[^/]+/replay)$\"\n\
    checks.positive_data_acceptance.expected-statuses = \
    [\"2xx\", \"3xx\", 400, 401, 403, 404, 409, 422, 429]\n\n";

/// The schemathesis command (`st`): `SCHEMATHESIS`, else `st` on the PATH.
fn schemathesis() -> Option<String> {
    let command = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "st".into());
    let found = std::process::Command::new(&command)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return Some(command);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but schemathesis ({command}) is missing: pip install schemathesis");
    }
    crate::helpers::skipped::record(
        "schemathesis",
        format!("no {command}; pip install schemathesis, or set SCHEMATHESIS"),
    );
    None
}

async fn the_service_api_answers_as_its_openapi_document_says(app: TestApp) {
    let Some(st) = schemathesis() else { return };
    app.login_as(Role::Admin).await;
    for (provider, account) in [("kustomer", None), ("klaviyo", Some("AcmeK1"))] {
        assert_eq!(
            location(&app.connect(provider, account).await),
            "/admin/clients"
        );
    }
    let clients = app.clients().await;
    let key = app.api_key(&Scope::ALL).await;
    let dir = tempfile::tempdir().unwrap();
    // The Kustomer client for a client's `id` (its operations are the most), the Klaviyo
    // one for the proxy; other ids (end users, endpoints) schemathesis finds or makes up.
    let config = format!(
        "[parameters]\n\"path.client_id\" = \"{}\"\n\n\
         [[operations]]\ninclude-path-regex = \"^/api/v1/clients/\"\n\
         parameters = {{ \"path.id\" = \"{}\" }}\n\n{CHECKS}",
        clients[1].id, clients[0].id
    );
    std::fs::write(dir.path().join("schemathesis.toml"), config).unwrap();
    let output = run(&st, dir.path(), &app.url("/api/v1/openapi.json"), &key).await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(!report.contains(&key), "the key must not be in the report");
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{}\n{}",
        report,
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn an_undeclared_method_is_a_405_that_lists_the_methods_and_changes_nothing(app: TestApp) {
    let key = app.api_key(&Scope::ALL).await;
    let audit_before = app.audit_actions().await;
    let client = reqwest::Client::new();
    for method in ["TRACE", "DELETE", "PUT", "OPTIONS"] {
        let answer = client
            .request(method.parse().unwrap(), app.url("/api/v1/clients"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 405, "{method}");
        assert_eq!(crate::helpers::header(answer.headers(), "allow"), "GET");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed");
        assert_eq!(body["message"], "this endpoint takes GET");
    }
    let unknown = client
        .get(app.url("/api/v1/nothing"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(app.audit_actions().await, audit_before);
}

async fn run(st: &str, dir: &Path, schema: &str, key: &str) -> std::process::Output {
    let mut command = std::process::Command::new(st);
    command
        .current_dir(dir)
        .args(["run", schema, "--checks", "all", "--no-color"])
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--seed", "20261201", "--request-timeout", "20"])
        .args(["--header", &format!("Authorization: Bearer {key}")]);
    // The server runs on this test's runtime: wait for schemathesis off it.
    tokio::task::spawn_blocking(move || command.output().expect("run schemathesis"))
        .await
        .unwrap()
}
