//! The admin pages of webhooks and jobs: endpoints added, tested, rotated and replayed
//! from the browser side, the job counts with retry and cancel, bad forms, members kept
//! out; screenshots of both pages.

use crate::helpers::receiver::Receiver;
use crate::helpers::{csrf_from, unescape, Backend, TestApp};
use crate::webhooks::webhook_app;
use crate::with_each_backend;
use connecthub::auth::users::Role;
use connecthub::db::schema::{jobs, webhook_endpoints};
use diesel::prelude::*;
use std::time::Duration;

with_each_backend!(
    an_admin_adds_an_endpoint_sees_its_secret_once_and_tests_it,
    bad_endpoint_forms_are_refused_and_members_are_kept_out,
    the_jobs_page_counts_jobs_and_retries_and_cancels_them,
);

async fn endpoint_count(app: &TestApp) -> i64 {
    app.db(|conn| webhook_endpoints::table.count().get_result(conn))
        .await
}

async fn endpoint_id(app: &TestApp) -> String {
    app.db(|conn| {
        webhook_endpoints::table
            .select(webhook_endpoints::id)
            .first(conn)
    })
    .await
}

fn secret_in(html: &str) -> Option<String> {
    let at = html.find("whsec_")?;
    let end = html[at..].find('<')?;
    Some(html[at..at + end].to_string())
}

async fn an_admin_adds_an_endpoint_sees_its_secret_once_and_tests_it(backend: Backend) {
    let app = webhook_app(backend).await;
    let receiver = Receiver::start().await;
    app.login_as(Role::Admin).await;
    assert!(app
        .get_html("/admin/webhooks")
        .await
        .contains("No endpoints yet"));
    let created = app
        .post_form(
            "/admin/webhooks",
            &[
                ("url", &receiver.url),
                ("description", "billing"),
                ("event_type", "connection.created"),
                ("enabled", "true"),
            ],
        )
        .await;
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    let secret = secret_in(&html).expect("the secret is shown");
    let list = app.get_html("/admin/webhooks").await;
    assert!(list.contains(&receiver.url) && list.contains("billing"));
    assert!(!list.contains("whsec_"), "the secret is shown once only");

    let id = endpoint_id(&app).await;
    let page = format!("/admin/webhooks/{id}");
    assert_eq!(
        app.post_form(&format!("{page}/test"), &[]).await.status(),
        303
    );
    let delivery = receiver.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(delivery.event_type(), "webhook.test");
    assert!(delivery.verifies_with(&secret));
    // The log shows the attempt once it is recorded.
    let mut html = String::new();
    for _ in 0..50 {
        html = app.get_html(&page).await;
        if html.contains("webhook.test</code>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        html.contains("webhook.test</code>") && html.contains(">200</span>"),
        "{html}"
    );

    // Replay that event: the same webhook-id again.
    let replayed = app
        .post_form(&format!("{page}/replay"), &[("event_id", &delivery.id)])
        .await;
    assert_eq!(replayed.status(), 303);
    let again = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(again[1].id, delivery.id);

    let rotated = app.post_form(&format!("{page}/rotate"), &[]).await;
    assert_eq!(rotated.status(), 200);
    let new_secret = secret_in(&rotated.text().await.unwrap()).expect("the new secret is shown");
    assert_ne!(new_secret, secret);
    assert!(!app.get_html(&page).await.contains("whsec_"));
    let actions = app.audit_actions().await;
    for action in [
        "webhook_endpoint_created",
        "webhook_test_sent",
        "webhook_replayed",
        "webhook_secret_rotated",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} audited");
    }
}

async fn bad_endpoint_forms_are_refused_and_members_are_kept_out(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, &[("WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    app.login_as(Role::Admin).await;
    for (url, message) in [
        (
            "http://127.0.0.1:9/hooks",
            "private, loopback or link-local",
        ),
        ("javascript:alert(1)", "http:// or https://"),
        ("", "the URL is required"),
    ] {
        let response = app.post_form("/admin/webhooks", &[("url", url)]).await;
        assert_eq!(response.status(), 400, "{url}");
        assert!(
            unescape(&response.text().await.unwrap()).contains(message),
            "{url}"
        );
    }
    let unknown = app
        .post_form(
            "/admin/webhooks",
            &[
                ("url", "https://hooks.example.com/"),
                ("event_type", "nope"),
            ],
        )
        .await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(endpoint_count(&app).await, 0, "nothing was stored");
    let no_csrf = app
        .client
        .post(app.url("/admin/webhooks"))
        .form(&[("url", "https://hooks.example.com/")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    assert_eq!(
        app.get("/admin/webhooks/not-an-endpoint").await.status(),
        404
    );
    assert_eq!(app.get("/admin/jobs?state=nonsense").await.status(), 400);
    assert_eq!(endpoint_count(&app).await, 0);

    let member = app.new_browser();
    member.login_as(Role::Member).await;
    assert_eq!(member.get("/admin/webhooks").await.status(), 403);
    assert_eq!(member.get("/admin/jobs").await.status(), 403);
    let html = member.get_html("/connections").await;
    let refused = member
        .client
        .post(member.url("/admin/webhooks"))
        .form(&[
            ("url", "https://hooks.example.com/"),
            ("csrf_token", &csrf_from(&html)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(endpoint_count(&app).await, 0);
}

async fn job_state(app: &TestApp, id: i64) -> (String, Option<String>) {
    app.db(move |conn| {
        jobs::table
            .find(id)
            .select((jobs::state, jobs::last_error))
            .first(conn)
    })
    .await
}

async fn the_jobs_page_counts_jobs_and_retries_and_cancels_them(backend: Backend) {
    // The first retry waits an hour, so a failed delivery stays failed while the test looks.
    let app = crate::helpers::spawn_app_with(backend, &[("WEBHOOK_RETRY_SCHEDULE", "1h")]).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(400, None), (503, None)]);
    app.login_as(Role::Admin).await;
    app.post_form(
        "/admin/webhooks",
        &[("url", &receiver.url), ("enabled", "true")],
    )
    .await;
    let page = format!("/admin/webhooks/{}", endpoint_id(&app).await);
    app.post_form(&format!("{page}/test"), &[]).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    app.post_form(&format!("{page}/test"), &[]).await;
    receiver.wait_for(2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ids: Vec<i64> = app
        .db(|conn| {
            jobs::table
                .order(jobs::id.asc())
                .select(jobs::id)
                .load(conn)
        })
        .await;
    let (dead, failed) = (ids[0], ids[1]);
    assert_eq!(job_state(&app, dead).await.0, "dead");
    assert_eq!(job_state(&app, failed).await.0, "failed");

    let html = unescape(&app.get_html("/admin/jobs").await);
    assert!(
        html.contains(r#"id="count-dead">1<"#) && html.contains(r#"id="count-failed">1<"#),
        "{html}"
    );
    assert!(
        html.contains("the receiver answered 400") && html.contains("the receiver answered 503")
    );
    let only_dead = app.get_html("/admin/jobs?state=dead").await;
    assert!(
        only_dead.contains(&format!("job-{dead}"))
            && !only_dead.contains(&format!("job-{failed}\""))
    );

    // Retry the dead one (htmx): it runs again and succeeds.
    let token = app.csrf_token().await;
    let retried = app
        .client
        .post(app.url(&format!("/admin/jobs/{dead}/retry")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    assert!(retried.headers()["hx-trigger"]
        .to_str()
        .unwrap()
        .contains("queued again"));
    receiver.wait_for(3, Duration::from_secs(5)).await;
    // Cancel the failed one: it becomes dead and never runs.
    assert_eq!(
        app.post_form(&format!("/admin/jobs/{failed}/cancel"), &[])
            .await
            .status(),
        303
    );
    let (state, error) = job_state(&app, failed).await;
    assert_eq!(state, "dead");
    assert!(error.unwrap().starts_with("cancelled by"));
    // A job in the wrong state is refused and unchanged.
    assert_eq!(
        app.post_form(&format!("/admin/jobs/{failed}/cancel"), &[])
            .await
            .status(),
        400
    );
    for _ in 0..50 {
        if job_state(&app, dead).await.0 == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job_state(&app, dead).await.0, "done");
    assert_eq!(
        app.post_form(&format!("/admin/jobs/{dead}/cancel"), &[])
            .await
            .status(),
        400
    );
    assert_eq!(
        app.post_form(&format!("/admin/jobs/{dead}/retry"), &[])
            .await
            .status(),
        400
    );
    let actions = app.audit_actions().await;
    assert!(
        actions.iter().any(|a| a == "job_retried") && actions.iter().any(|a| a == "job_cancelled")
    );
}

mod screenshots {
    use crate::browser::Browser;
    use crate::helpers::receiver::Receiver;
    use crate::helpers::Backend;
    use connecthub::auth::users::Role;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_webhooks_and_jobs_pages_in_a_browser() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let app = crate::webhooks::webhook_app(Backend::Sqlite).await;
        let receiver = Receiver::start().await;
        receiver.answer(&[(500, None), (500, None), (500, None), (500, None)]);
        let admin = app.create_user(Role::Admin).await;
        browser.sign_in(&app, &admin).await;
        browser.goto(&app.url("/admin/webhooks")).await;
        browser.fill("#webhook-url", &receiver.url).await;
        browser
            .fill("#webhook-description", "billing-service production")
            .await;
        browser
            .click("#create-title ~ form button[type=submit]")
            .await;
        browser
            .wait_for_text(
                "#new-secret-title",
                &format!("Signing secret for {}", receiver.url),
            )
            .await;
        save(&browser, "webhooks").await;
        browser.click("#webhooks-table a").await;
        browser.click("form[action$='/test'] button").await;
        receiver.wait_for(5, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        browser
            .goto(browser.client.current_url().await.unwrap().as_ref())
            .await;
        save(&browser, "webhook-endpoint").await;
        browser
            .client
            .execute(
                "document.getElementById('log-title').scrollIntoView()",
                vec![],
            )
            .await
            .unwrap();
        save(&browser, "webhook-log").await;
        browser.goto(&app.url("/admin/jobs")).await;
        browser.wait_for_text("#count-dead", "1").await;
        save(&browser, "jobs").await;
        assert!(
            browser.console_errors().await.is_empty(),
            "{:?}",
            browser.console_errors().await
        );
        browser.close().await;
    }

    async fn save(browser: &Browser, name: &str) {
        let path = browser.screenshot(&format!("webhooks-{name}")).await;
        let _ = std::fs::create_dir_all("/tmp/shots-webhooks");
        let _ = std::fs::copy(&path, format!("/tmp/shots-webhooks/{name}.png"));
    }
}
