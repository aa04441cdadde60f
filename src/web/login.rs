//! Sign in and sign out.

use super::layout::Layout;
use super::local_path::LocalPath;
use super::{redirect, render, HOME};
use crate::audit::{self, Actor, Event};
use crate::auth::users::{self, Email, User};
use crate::auth::{is_oauth_callback, password, start_session, CurrentUser};
use crate::error::AppError;
use crate::state::AppState;
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
    let form = form.into_inner();
    let next = LocalPath::or(form.next.as_deref(), HOME);
    let origin = super::origin(&req);
    let typed_email = as_typed(&form.email);
    let retry = |error: String, status| {
        render(
            LoginPage {
                layout: Layout::new(&session, None, "login"),
                next: next.as_str().to_string(),
                email: typed_email.clone(),
                error: Some(error),
                notice: None,
            },
            status,
        )
    };
    let ip = origin.ip.clone().unwrap_or_default();
    if let Err(wait) = state.login_limiter.check(&ip, &typed_email) {
        let secs = wait.as_secs().max(1);
        let mut response = retry(
            format!("Too many sign-in attempts. Try again in {secs} seconds."),
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
        return Ok(response);
    }
    let user = check_credentials(&state, &form.email, form.password).await?;
    match &user {
        Some(_) => state.login_limiter.succeeded(&ip, &typed_email),
        None => state.login_limiter.failed(&ip, &typed_email),
    }
    let event = match &user {
        Some(user) => Event::new(Actor::user(&user.id, &user.email), "login"),
        None => Event::new(Actor::anonymous(&typed_email), "login_failed").failed(),
    }
    .origin(&origin);
    crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
    match user {
        Some(user) => {
            start_session(&session, &user)?;
            Ok(redirect(next.as_str()))
        }
        None => retry(BAD_CREDENTIALS.to_string(), StatusCode::UNAUTHORIZED),
    }
}

/// The email as typed, for the rate limit, the audit entry and the form shown again:
/// trimmed, lowercased, at most 254 characters, control characters escaped (`\u{0}`), so a
/// malformed address is recorded like an unknown one on both databases.
fn as_typed(raw: &str) -> String {
    raw.trim()
        .to_lowercase()
        .chars()
        .take(254)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The active user with this email and password; unknown emails cost the same time as
/// wrong passwords so the answer does not reveal which accounts exist.
async fn check_credentials(
    state: &AppState,
    email: &str,
    password: SecretString,
) -> Result<Option<User>, AppError> {
    let user = match Email::parse(email) {
        Ok(email) => {
            crate::db::run(&state.pool, move |conn| users::find_by_email(conn, &email)).await?
        }
        Err(_) => None,
    };
    let checked = tokio::task::spawn_blocking(move || match user {
        Some(user) if password::verify(&password, &user.password_hash) => Some(user),
        Some(_) => None,
        None => {
            password::verify_against_dummy(&password);
            None
        }
    })
    .await?;
    Ok(checked.filter(User::is_active))
}

pub async fn logout(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    if let Some(CurrentUser(user)) = user {
        let event =
            Event::new(Actor::user(&user.id, &user.email), "logout").origin(&super::origin(&req));
        crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
    }
    session.purge();
    Ok(redirect("/login?signed_out=1"))
}

pub async fn home() -> HttpResponse {
    redirect(HOME)
}
