//! The signed-in user of a page request: the `CurrentUser` and `AdminUser` extractors, and
//! starting a session at sign-in.

use super::csrf;
use crate::auth::session_store::{self, LOGIN_AT_KEY};
use crate::auth::users::{self, User};
use crate::error::AppError;
use crate::state::AppState;
use actix_session::{Session, SessionExt};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

/// Marks the session as signed in as `user`, under a fresh session id.
pub fn start_session(session: &Session, user: &User) -> Result<(), AppError> {
    session.renew();
    session.clear();
    let insert = |key: &str, value: serde_json::Value| {
        session
            .insert(key, value)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("session: {e}")))
    };
    insert(session_store::USER_ID_KEY, user.id.clone().into())?;
    insert(LOGIN_AT_KEY, chrono::Utc::now().timestamp().into())?;
    csrf::rotate(session);
    Ok(())
}

/// The signed-in user; anonymous requests are sent to the login page.
pub struct CurrentUser(pub User);

/// A signed-in admin; members get 403.
pub struct AdminUser(pub User);

/// Whether `path` is where a provider sends the browser back (`…/oauth/callback`).
pub fn is_oauth_callback(path: &str) -> bool {
    path.starts_with("/api/integrations/") && path.ends_with("/oauth/callback")
}

/// Where to return after sign-in. An OAuth callback keeps only its path: its code and
/// state must not end up in the login URL and the browser history, and the flow cannot
/// be resumed after sign-in anyway (the login page asks to connect again).
fn resume_path(req: &HttpRequest) -> String {
    let path = req.uri().path();
    if is_oauth_callback(path) {
        return path.to_string();
    }
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

async fn current_user(req: HttpRequest) -> Result<User, AppError> {
    let next = resume_path(&req);
    let unauthenticated = || AppError::Unauthenticated { next: next.clone() };
    let session = req.get_session();
    let user_id: Option<String> = session.get(session_store::USER_ID_KEY).unwrap_or(None);
    let login_at: Option<i64> = session.get(LOGIN_AT_KEY).unwrap_or(None);
    let (Some(user_id), Some(login_at)) = (user_id, login_at) else {
        return Err(unauthenticated());
    };
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("app state missing")))?;
    let age = chrono::Utc::now().timestamp() - login_at;
    if age < 0 || age as u64 > state.config.session.absolute_timeout.as_secs() {
        session.purge();
        return Err(unauthenticated());
    }
    let user = crate::db::run(&state.pool, move |conn| users::find(conn, &user_id)).await?;
    match user {
        Some(user) if user.is_active() => Ok(user),
        _ => {
            session.purge();
            Err(unauthenticated())
        }
    }
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { current_user(req).await.map(CurrentUser) })
    }
}

impl FromRequest for AdminUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = current_user(req).await?;
            if user.is_admin() {
                Ok(AdminUser(user))
            } else {
                Err(AppError::Forbidden)
            }
        })
    }
}
