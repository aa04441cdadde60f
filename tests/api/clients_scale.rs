//! The Clients list's scale machinery, as a user sees it: search through the trigram
//! indexes (each kind, short queries, wildcards and odd characters), keyset pages that
//! neither skip nor repeat rows while clients are added, and the bounded count.

use crate::helpers::TestApp;
use crate::on_both_backends;
use connecthub::auth::users::Role;
use std::collections::HashSet;

on_both_backends!(
    every_search_kind_goes_through_the_indexes,
    odd_search_input_is_plain_text_or_refused,
    keyset_pages_neither_skip_nor_repeat_while_clients_are_added,
    the_count_stops_at_a_thousand,
    common_searches_and_tags_count_what_a_plain_query_counts,
);

async fn seeded(app: &TestApp, count: usize) {
    app.db(move |conn| Ok(connecthub::seed::seed(conn, count).unwrap()))
        .await;
}

/// The "1–50 of 120" line of the list.
async fn count_line(app: &TestApp, query: &str) -> String {
    let response = app.get(&format!("/admin/clients{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    let html = crate::helpers::unescape(&response.text().await.unwrap());
    html.split(r#"id="client-count">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default()
        .to_string()
}

/// The client ids of the rows on a page, in order.
fn row_ids(html: &str) -> Vec<String> {
    html.split(r#"<tr id="client-"#)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The path of the page's link with this `rel`, if it has one.
fn link(html: &str, rel: &str) -> Option<String> {
    let marker = format!(r#"" rel="{rel}""#);
    let before = html
        .split(&marker)
        .next()
        .filter(|b| b.len() < html.len())?;
    let href = before.rsplit(r#"href=""#).next()?;
    Some(crate::helpers::unescape(href).replace("&amp;", "&"))
}

/// A client of an end user, connected now (so it is the newest).
async fn connect_for_end_user(app: &TestApp, external_id: &str, email: &str) -> String {
    let (external_id, email) = (external_id.to_string(), email.to_string());
    app.db(move |conn| {
        let end_user = connecthub::connect::end_users::record_seen(
            conn,
            &connecthub::connect::end_users::EndUserInfo {
                external_id: external_id.clone(),
                email: Some(email),
                display_name: None,
            },
        )?;
        let owner = connecthub::auth::users::find_by_email(
            conn,
            &connecthub::auth::users::Email::parse("seed-owner-0@example.com").unwrap(),
        )?
        .unwrap();
        let profile = serde_json::json!({});
        let (client, _) = connecthub::clients::upsert(
            conn,
            &connecthub::clients::Connection {
                owner_user_id: &owner.id,
                end_user_id: Some(&end_user.id),
                provider: "klaviyo",
                provider_account_id: &format!("eu-{external_id}"),
                display_name: "End user shop",
                auth_type: connecthub::providers::AuthType::Oauth2,
                profile: &profile,
                scopes: "",
                connection_config: "{}",
            },
        )?;
        Ok(client.id)
    })
    .await
}

async fn every_search_kind_goes_through_the_indexes(app: TestApp) {
    app.login_as(Role::Admin).await;
    seeded(&app, 120).await;
    connect_for_end_user(&app, "cust-4242", "pat@shopfront.example").await;
    connect_for_end_user(&app, "77", "sam@elsewhere.example").await;
    // Names (n % 12 == 1 is Globex: 10 of 120), any case, a phrase across words.
    assert_eq!(count_line(&app, "?q=globex").await, "1–10 of 10");
    assert_eq!(count_line(&app, "?q=GLOBEX").await, "1–10 of 10");
    assert_eq!(
        count_line(&app, "?q=lobe").await,
        "1–10 of 10",
        "anywhere in the name"
    );
    assert_eq!(count_line(&app, "?q=globex+store+1").await, "1–1 of 1");
    // Account id, email domain, owner email, end user id and email.
    assert_eq!(count_line(&app, "?q=seed-klaviyo-000007").await, "1–1 of 1");
    assert_eq!(count_line(&app, "?q=wonka7.example").await, "1–1 of 1");
    assert_eq!(
        count_line(&app, "?q=seed-owner-3%40example.com").await,
        "1–6 of 6"
    );
    assert_eq!(count_line(&app, "?q=cust-4242").await, "1–1 of 1");
    assert_eq!(count_line(&app, "?q=shopfront").await, "1–1 of 1");
    // 1-2 characters match the start of the name (no trigram to look up).
    assert_eq!(count_line(&app, "?q=gl").await, "1–10 of 10");
    assert_eq!(count_line(&app, "?q=G").await, "1–10 of 10");
    assert_eq!(count_line(&app, "?q=lo").await, "No clients");
    // ...or an end user's id exactly (a short number, say).
    assert_eq!(count_line(&app, "?q=77").await, "1–1 of 1");
    assert_eq!(count_line(&app, "?q=7").await, "No clients");
    // Filters and a search together (Globex clients are all klaviyo ones).
    assert_eq!(
        count_line(&app, "?q=globex&provider=klaviyo").await,
        "1–10 of 10"
    );
    assert_eq!(
        count_line(&app, "?q=globex&provider=kustomer").await,
        "No clients"
    );
}

async fn odd_search_input_is_plain_text_or_refused(app: TestApp) {
    app.login_as(Role::Admin).await;
    seeded(&app, 120).await;
    // LIKE wildcards and FTS5 syntax are plain characters: nothing is named like that.
    for query in [
        "%25",
        "_",
        "%25%25%25",
        "glo%25ex",
        "g_obex",
        "a%5C",
        "%22globex",
        "globex%22",
        "globex+OR+acme",
        "NEAR(globex)",
        "glob*",
        "%5E",
        "%27%3B--",
    ] {
        assert_eq!(
            count_line(&app, &format!("?q={query}")).await,
            "No clients",
            "{query}"
        );
    }
    // A NUL byte or another control character is refused with a clear message.
    for query in ["%00", "glo%00bex", "a%01"] {
        let response = app.get(&format!("/admin/clients?q={query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let html = crate::helpers::unescape(&response.text().await.unwrap());
        assert!(
            html.contains("search for at most 100 characters"),
            "{query}"
        );
    }
    // A page link that was tampered with is refused, and nothing changed.
    for query in [
        "after=nonsense",
        "sort=name&after=%00~x",
        "after=a~1&before=a~1",
        "sort=expires&after=a~x",
    ] {
        let response = app.get(&format!("/admin/clients?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
    }
    assert_eq!(count_line(&app, "").await, "1–50 of 120");
}

/// Walks a sort's pages by their Next links, adding a client before every step; every
/// seeded client is seen exactly once. Then walks back by Previous links.
async fn walk(app: &TestApp, first: &str, seeded: &HashSet<String>, added: &mut usize) {
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = Some(first.to_string());
    while let Some(here) = path {
        let html = app.get_html(&here).await;
        let ids = row_ids(&html);
        assert!(ids.len() <= 50, "{here}");
        seen.extend(ids.clone());
        pages.push((here, ids));
        *added += 1;
        connect_for_end_user(app, &format!("added-{added}"), "new@example.com").await;
        path = link(&html, "next");
        assert!(pages.len() < 10, "the pages never end");
    }
    let seen_seeded: Vec<&String> = seen.iter().filter(|id| seeded.contains(*id)).collect();
    let unique: HashSet<&String> = seen_seeded.iter().copied().collect();
    assert_eq!(
        seen_seeded.len(),
        unique.len(),
        "{first}: a client was listed twice"
    );
    assert_eq!(unique.len(), seeded.len(), "{first}: a client was skipped");
    // Previous from the last page gives the page before it again (seeded rows only).
    let (last_path, _) = pages.last().unwrap();
    let previous = link(&app.get_html(last_path).await, "prev").expect("a previous link");
    let (_, before_ids) = &pages[pages.len() - 2];
    let again: Vec<String> = row_ids(&app.get_html(&previous).await)
        .into_iter()
        .filter(|id| seeded.contains(id))
        .collect();
    let expected: Vec<String> = before_ids
        .iter()
        .filter(|id| seeded.contains(*id))
        .cloned()
        .collect();
    // Clients added since may take places on that page, pushing its first rows back.
    assert!(
        !again.is_empty() && expected.ends_with(&again),
        "{previous}"
    );
}

async fn keyset_pages_neither_skip_nor_repeat_while_clients_are_added(app: TestApp) {
    app.login_as(Role::Admin).await;
    seeded(&app, 120).await;
    let seeded: HashSet<String> = app
        .db(|conn| {
            Ok(connecthub::clients::list(conn, None)?
                .into_iter()
                .map(|l| l.client.id)
                .collect())
        })
        .await;
    assert_eq!(seeded.len(), 120);
    let page_one = app.get_html("/admin/clients").await;
    let next = link(&page_one, "next").unwrap();
    assert!(
        next.contains("after="),
        "Next carries the last row's cursor: {next}"
    );
    let mut added = 0;
    walk(&app, "/admin/clients", &seeded, &mut added).await;
    walk(&app, "/admin/clients?sort=name", &seeded, &mut added).await;
    walk(&app, "/admin/clients?sort=expires", &seeded, &mut added).await;
    // A filtered view keeps its filter on every page.
    let html = app.get_html("/admin/clients?provider=klaviyo").await;
    let next = link(&html, "next").unwrap();
    assert!(
        next.contains("provider=klaviyo") && next.contains("after="),
        "{next}"
    );
    let total = 80 + added;
    assert_eq!(
        count_line(&app, &next["/admin/clients".len()..]).await,
        format!("51–{total} of {total}")
    );
}

async fn the_count_stops_at_a_thousand(app: TestApp) {
    app.login_as(Role::Admin).await;
    seeded(&app, 1_000).await;
    assert_eq!(
        count_line(&app, "").await,
        "1–50 of 1000",
        "exact up to the bound"
    );
    connect_for_end_user(&app, "one-more", "more@example.com").await;
    assert_eq!(count_line(&app, "").await, "1–50 of 1,000+");
    // Below the bound the count stays exact: kustomer is every third seeded client.
    assert_eq!(count_line(&app, "?provider=kustomer").await, "1–50 of 334");
    assert_eq!(count_line(&app, "?q=globex").await, "1–50 of 84");
    // The next page of a bounded list still works.
    let html = app.get_html("/admin/clients").await;
    let next = link(&html, "next").unwrap();
    assert_eq!(
        count_line(&app, &next["/admin/clients".len()..]).await,
        "51–100 of 1,000+"
    );
}

/// Clients matching a plain SQL condition, bounded like the list ("1,000+" above it).
async fn plain_count(app: &TestApp, condition: &'static str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n = app
        .db(move |conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query(format!(
                "SELECT COUNT(*) AS n FROM clients WHERE {condition}"
            ))
            .get_result::<Count>(conn)
        })
        .await
        .n;
    let shown = n.min(50);
    if n == 0 {
        "No clients".to_string()
    } else if n > 1000 {
        format!("1–{shown} of 1,000+")
    } else {
        format!("1–{shown} of {n}")
    }
}

/// A search or tag that more than 1,000 clients have is checked row by row instead of
/// looked up (and alone it is "1,000+" without a count): the totals and rows still agree
/// with plain SQL, with and without other filters beside it.
async fn common_searches_and_tags_count_what_a_plain_query_counts(app: TestApp) {
    app.login_as(Role::Admin).await;
    seeded(&app, 2_500).await;
    let tagged = "id IN (SELECT client_id FROM client_tags WHERE tag = 'seed')";
    let cases: [(&str, &'static str); 7] = [
        ("?q=store", "search_text LIKE '%store%'"),
        ("?tag=seed", tagged),
        (
            "?q=store&provider=kustomer",
            "search_text LIKE '%store%' AND provider = 'kustomer'",
        ),
        (
            "?q=store&status=error",
            "search_text LIKE '%store%' AND status = 'error'",
        ),
        (
            "?tag=seed&status=error&provider=kustomer",
            "id IN (SELECT client_id FROM client_tags WHERE tag = 'seed') \
             AND status = 'error' AND provider = 'kustomer'",
        ),
        (
            "?q=globex&tag=seed",
            "search_text LIKE '%globex%' \
             AND id IN (SELECT client_id FROM client_tags WHERE tag = 'seed')",
        ),
        (
            "?q=zzzqqq&tag=seed",
            "search_text LIKE '%zzzqqq%' \
             AND id IN (SELECT client_id FROM client_tags WHERE tag = 'seed')",
        ),
    ];
    assert!(
        plain_count(&app, tagged).await.ends_with("1,000+"),
        "the seed tag is common"
    );
    for (query, condition) in cases {
        assert_eq!(
            count_line(&app, query).await,
            plain_count(&app, condition).await,
            "{query}"
        );
    }
    // The rows of a checked view match it: every row of kustomer + store is kustomer.
    let html = app
        .get_html("/admin/clients?q=store&provider=kustomer")
        .await;
    let rows = row_ids(&html);
    assert_eq!(rows.len(), 50);
    let providers: Vec<String> = app
        .db(move |conn| {
            use connecthub::db::schema::clients;
            use diesel::prelude::*;
            clients::table
                .filter(clients::id.eq_any(rows))
                .select(clients::provider)
                .load(conn)
        })
        .await;
    assert!(providers.iter().all(|p| p == "kustomer"), "{providers:?}");
}
