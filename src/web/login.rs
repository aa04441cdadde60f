//! Sign in and sign out.

use super::layout::Layout;
use super::local_path::LocalPath;
use super::{redirect, render, HOME};
use crate::audit;
use crate::auth::accounts::{self, SignIn};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::current_user::{is_oauth_callback, start_session, CurrentUser};
use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;

const BAD_CREDENTIALS: &str = "Incorrect email or password.";
const CONNECT_AGAIN: &str = "You were signed out before the connection was finished. \
    Sign in and connect the account again.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

pub async fn show(
    session: Session,
    query: web::Query<LoginQuery>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    let mut next = LocalPath::or(query.next.as_deref(), HOME);
    let mut notice = query.signed_out.as_ref().map(|_| "You have signed out.");
    // A provider's callback reached while signed out: its code is lost, so after sign-in
    // the user starts the connection again from the home page.
    if is_oauth_callback(next.as_str()) {
        next = LocalPath::or(None, HOME);
        notice = Some(CONNECT_AGAIN);
    }
    if user.is_some() {
        return Ok(redirect(next.as_str()));
    }
    let page = LoginPage {
        layout: Layout::new(&session, None, "login"),
        next: next.as_str().to_string(),
        email: String::new(),
        error: None,
        notice,
    };
    render(page, StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    email: String,
    password: SecretString,
    next: Option<String>,
}

pub async fn submit(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let LoginForm {
        email,
        password,
        next,
    } = form.into_inner();
    let next = LocalPath::or(next.as_deref(), HOME);
    let origin = super::origin(&req);
    let retry = |error: String, status| {
        render(
            LoginPage {
                layout: Layout::new(&session, None, "login"),
                next: next.as_str().to_string(),
                email: accounts::typed_email(&email),
                error: Some(error),
                notice: None,
            },
            status,
        )
    };
    let limiter = &state.login_limiter;
    match accounts::sign_in(&state.pool, limiter, &email, password, &origin).await? {
        SignIn::Welcome(user) => {
            start_session(&session, &user)?;
            Ok(redirect(next.as_str()))
        }
        SignIn::Refused => retry(BAD_CREDENTIALS.to_string(), StatusCode::UNAUTHORIZED),
        SignIn::Wait(wait) => {
            let secs = wait.as_secs().max(1);
            let mut response = retry(
                format!("Too many sign-in attempts. Try again in {secs} seconds."),
                StatusCode::TOO_MANY_REQUESTS,
            )?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
            Ok(response)
        }
    }
}

pub async fn logout(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    if let Some(CurrentUser(user)) = user {
        let event = user.event("logout").origin(&super::origin(&req));
        crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
    }
    session.purge();
    Ok(redirect("/login?signed_out=1"))
}

pub async fn home() -> HttpResponse {
    redirect(HOME)
}
