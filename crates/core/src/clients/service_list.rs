//! The service API's client list (`GET /api/v1/clients`) on the Clients list's own code:
//! the same search, filters, sorts, keyset pages and bounded count. What it adds: an owner
//! given by email as well as by id, and each row's end user as the team knows them.

use super::{search, Cursor, Filter, ListedClient, Total};
use crate::auth::users::{self, Email};
use crate::db::DbConnection;
use diesel::QueryResult;

/// A page of the list for a service.
pub struct ServicePage {
    /// Each client with the team's id of its end user (None for an admin's connection).
    pub rows: Vec<(ListedClient, Option<String>)>,
    /// Where the next page starts; None on the last page.
    pub next: Option<Cursor>,
    pub total: Total,
}

/// The page `filter` describes; `owner` is a user id or an email (an unknown one matches
/// nothing). Pages go forward only (`Page::After`), as an API client walks a list.
pub fn page(
    conn: &mut DbConnection,
    mut filter: Filter,
    owner: Option<&str>,
) -> QueryResult<ServicePage> {
    if let Some(owner) = owner {
        let Some(id) = owner_id(conn, owner)? else {
            return Ok(ServicePage {
                rows: Vec::new(),
                next: None,
                total: Total {
                    count: 0,
                    more: false,
                },
            });
        };
        filter.owner = Some(id);
    }
    let (listed, more, total) = search(conn, None, &filter)?;
    let next = more
        .then(|| listed.last().map(|last| Cursor::of(filter.sort, last)))
        .flatten();
    let end_user_ids: Vec<String> = listed
        .iter()
        .filter_map(|l| l.client.end_user_id.clone())
        .collect();
    let end_users = crate::connect::end_users::find_many(conn, end_user_ids)?;
    let rows = listed
        .into_iter()
        .map(|listed| {
            let external_id = listed.client.end_user_id.as_ref().and_then(|id| {
                end_users
                    .iter()
                    .find(|e| &e.id == id)
                    .map(|e| e.external_id.clone())
            });
            (listed, external_id)
        })
        .collect();
    Ok(ServicePage { rows, next, total })
}

/// The id of the owner named by id or (with an @) by email, if there is one.
fn owner_id(conn: &mut DbConnection, owner: &str) -> QueryResult<Option<String>> {
    if !owner.contains('@') {
        return Ok(Some(owner.to_string()));
    }
    let Ok(email) = Email::parse(owner) else {
        return Ok(None);
    };
    Ok(users::find_by_email(conn, &email)?.map(|user| user.id))
}
