//! The users page (admins): add people, change their role, disable or enable them and
//! reset their password. And the account page, where anyone changes their own password.
//! A generated password is shown once, in the response that made it; it never goes into
//! the session, which is stored in the database.

use super::layout::{Flash, FlashKind, Layout};
use crate::auth::accounts::{self, Acting, Disabling, NewAccount, PasswordChange, RoleChange};
use crate::auth::password;
use crate::auth::users::{self, Email, Role, User};
use crate::error::AppError;
use crate::input::RecordId;
use crate::state::AppState;
use crate::web::current_user::{start_session, AdminUser, CurrentUser};
use actix_session::Session;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};

const PAGE: &str = "/admin/users";
const ACCOUNT: &str = "/account";

/// A password shown once, in the response that set it.
struct ShownPassword {
    heading: String,
    secret: String,
}

/// The "Add user" form's fields. The password is never written back into the page.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct AddForm {
    email: String,
    name: String,
    role: String,
    password: Option<SecretString>,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<User>,
    /// The signed-in admin's id: their own row offers neither disable nor reset.
    me: String,
    add: AddForm,
    add_error: Option<String>,
    action_error: Option<String>,
    shown: Option<ShownPassword>,
    min_length: usize,
}

async fn users_page(
    session: &Session,
    state: &AppState,
    admin: &User,
) -> Result<UsersPage, AppError> {
    let users = crate::db::run(&state.pool, users::list).await?;
    Ok(UsersPage {
        layout: Layout::new(session, Some(admin), "users"),
        users,
        me: admin.id.clone(),
        add: AddForm {
            role: Role::Member.as_str().into(),
            ..AddForm::default()
        },
        add_error: None,
        action_error: None,
        shown: None,
        min_length: password::MIN_LENGTH,
    })
}

/// Reads a form body; one that does not parse is bad input like any other.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("The form could not be read.".into()))
}

async fn hash_blocking(secret: SecretString) -> Result<String, AppError> {
    Ok(accounts::hash_password(secret).await?)
}

fn acting(req: &HttpRequest, admin: &User) -> Acting {
    Acting::user(admin, super::origin(req))
}

/// `GET /admin/users`
pub async fn index(
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, AppError> {
    let page = users_page(&session, &state, &admin).await?;
    super::render(page, StatusCode::OK)
}

/// What the "Add user" form asks for, checked.
struct NewUser {
    account: NewAccount,
    /// None: generate one and show it.
    password: Option<SecretString>,
}

fn validate_new_user(form: &AddForm) -> Result<NewUser, String> {
    let email = Email::parse(&form.email).map_err(|_| {
        let shown: String = form.email.trim().chars().take(60).collect();
        format!("{shown:?} is not a valid email address.")
    })?;
    let role = Role::parse(form.role.trim()).ok_or("Choose admin or member as the role.")?;
    let name = accounts::display_name(&form.name, &email)?;
    let password = match &form.password {
        Some(typed) if !typed.expose_secret().is_empty() => {
            accounts::check_new_password(typed)?;
            Some(typed.clone())
        }
        _ => None,
    };
    let account = NewAccount {
        email,
        name,
        role,
        generated_password: password.is_none(),
    };
    Ok(NewUser { account, password })
}

/// `POST /admin/users`: 200 with a generated password shown once, 303 back when the
/// admin typed one, or 400 with what to fix.
pub async fn create(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let form: AddForm = parse(&body)?;
    let new_user = match validate_new_user(&form) {
        Ok(new_user) => new_user,
        Err(message) => return refuse_add(&session, &state, &admin, form, message).await,
    };
    let (secret, generated) = accounts::chosen_or_generated(new_user.password);
    let hash = hash_blocking(secret).await?;
    let (acting, account) = (acting(&req, &admin), new_user.account);
    let email = account.email.as_str().to_string();
    let created = crate::db::run(&state.pool, move |conn| {
        accounts::create(conn, &account, &hash, &acting)
    })
    .await?;
    if created.is_none() {
        let message = format!("A user with email {email} already exists.");
        return refuse_add(&session, &state, &admin, form, message).await;
    }
    match generated {
        Some(secret) => {
            let heading = format!("Password for {email}");
            show_password(&session, &state, &admin, ShownPassword { heading, secret }).await
        }
        None => Ok(Flash::success(format!("Added {email}")).redirect(&session, PAGE)),
    }
}

/// Re-renders the form with the admin's input (but not the password) and the message.
async fn refuse_add(
    session: &Session,
    state: &AppState,
    admin: &User,
    form: AddForm,
    message: String,
) -> Result<HttpResponse, AppError> {
    let mut page = users_page(session, state, admin).await?;
    page.add = AddForm {
        password: None,
        ..form
    };
    page.add_error = Some(message);
    super::render(page, StatusCode::BAD_REQUEST)
}

/// The users page with a password on it: 200, and no cache may keep it.
async fn show_password(
    session: &Session,
    state: &AppState,
    admin: &User,
    shown: ShownPassword,
) -> Result<HttpResponse, AppError> {
    let mut page = users_page(session, state, admin).await?;
    page.shown = Some(shown);
    let mut response = super::render(page, StatusCode::OK)?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What a row action did: a flash for the list, or why nothing was changed.
enum Outcome {
    Done(Flash),
    Refused(String),
}

fn info(message: String) -> Outcome {
    Outcome::Done(Flash {
        kind: FlashKind::Info,
        message,
    })
}

/// 303 back with the flash, 400 with the refusal on the page, or 404 for no such user.
async fn finish(
    session: &Session,
    state: &AppState,
    admin: &User,
    outcome: Option<Outcome>,
) -> Result<HttpResponse, AppError> {
    match outcome {
        None => Err(AppError::NotFound),
        Some(Outcome::Done(flash)) => Ok(flash.redirect(session, PAGE)),
        Some(Outcome::Refused(message)) => {
            let mut page = users_page(session, state, admin).await?;
            page.action_error = Some(message);
            super::render(page, StatusCode::BAD_REQUEST)
        }
    }
}

#[derive(serde::Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /admin/users/{id}/role` with `role=admin|member`.
pub async fn set_role(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<RecordId>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let form: RoleForm = parse(&body)?;
    let role = Role::parse(form.role.trim())
        .ok_or_else(|| AppError::BadRequest("The role must be admin or member.".into()))?;
    let (id, acting) = (path.into_inner().into_string(), acting(&req, &admin));
    // An admin who stepped down may no longer see the users page.
    let stepped_down = id == admin.id && role == Role::Member;
    let change = crate::db::run(&state.pool, move |conn| {
        accounts::change_role(conn, &id, role, &acting)
    })
    .await?;
    let outcome = change.map(|change| role_outcome(change, role, &admin));
    match outcome {
        Some(Outcome::Done(flash)) if stepped_down => Ok(flash.redirect(&session, super::HOME)),
        outcome => finish(&session, &state, &admin, outcome).await,
    }
}

fn with_article(role: Role) -> &'static str {
    match role {
        Role::Admin => "an admin",
        Role::Member => "a member",
    }
}

fn last_admin_message(user: &User, admin: &User) -> String {
    let who = if user.id == admin.id {
        "You are".to_string()
    } else {
        format!("{} is", user.email)
    };
    format!("{who} the last active admin. Make another user an admin first, so someone can still manage users.")
}

fn role_outcome(change: RoleChange, role: Role, admin: &User) -> Outcome {
    match change {
        RoleChange::Changed(user) => {
            let message = format!("{} is now {}", user.email, with_article(role));
            Outcome::Done(Flash::success(message))
        }
        RoleChange::Already(user) => {
            info(format!("{} is already {}", user.email, with_article(role)))
        }
        RoleChange::LastAdmin(user) => Outcome::Refused(last_admin_message(&user, admin)),
    }
}

/// `POST /admin/users/{id}/disable`: they are signed out everywhere at once.
pub async fn disable(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<RecordId>,
) -> Result<HttpResponse, AppError> {
    let (id, acting) = (path.into_inner().into_string(), acting(&req, &admin));
    let disabling = crate::db::run(&state.pool, move |conn| {
        accounts::disable(conn, &id, &acting)
    })
    .await?;
    let outcome = disabling.map(|disabling| disable_outcome(disabling, &admin));
    finish(&session, &state, &admin, outcome).await
}

fn disable_outcome(disabling: Disabling, admin: &User) -> Outcome {
    match disabling {
        Disabling::Disabled(user) => {
            let message = format!("Disabled {}; they have been signed out", user.email);
            Outcome::Done(Flash::success(message))
        }
        Disabling::Already(user) => info(format!("{} is already disabled", user.email)),
        Disabling::OwnAccount => Outcome::Refused("You cannot disable your own account.".into()),
        Disabling::LastAdmin(user) => Outcome::Refused(last_admin_message(&user, admin)),
    }
}

/// `POST /admin/users/{id}/enable`
pub async fn enable(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<RecordId>,
) -> Result<HttpResponse, AppError> {
    let (id, acting) = (path.into_inner().into_string(), acting(&req, &admin));
    let enabling = crate::db::run(&state.pool, move |conn| {
        accounts::enable(conn, &id, &acting)
    })
    .await?;
    let outcome = enabling.map(|enabling| match enabling {
        Ok(user) => {
            let message = format!("Enabled {}; they can sign in again", user.email);
            Outcome::Done(Flash::success(message))
        }
        Err(user) => info(format!("{} is already active", user.email)),
    });
    finish(&session, &state, &admin, outcome).await
}

/// `POST /admin/users/{id}/reset-password`: 200 with the new password shown once; the
/// user's sessions end.
pub async fn reset_password(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<RecordId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner().into_string();
    if id == admin.id {
        // Changing one's own password asks for the current one, so a borrowed session
        // cannot take the account over.
        let message = "Change your own password on your account page.".to_string();
        return finish(&session, &state, &admin, Some(Outcome::Refused(message))).await;
    }
    let secret = password::generate();
    let hash = hash_blocking(SecretString::from(secret.clone())).await?;
    let acting = acting(&req, &admin);
    let user = crate::db::run(&state.pool, move |conn| {
        accounts::reset_password(conn, &id, &hash, &acting)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let heading = format!("New password for {}", user.email);
    show_password(&session, &state, &admin, ShownPassword { heading, secret }).await
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    user: User,
    error: Option<String>,
    min_length: usize,
}

impl AccountPage {
    fn new(session: &Session, user: User) -> Self {
        Self {
            layout: Layout::new(session, Some(&user), "account"),
            user,
            error: None,
            min_length: password::MIN_LENGTH,
        }
    }
}

/// `GET /account`
pub async fn account(
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    super::render(AccountPage::new(&session, user), StatusCode::OK)
}

#[derive(serde::Deserialize)]
struct PasswordForm {
    current_password: SecretString,
    new_password: SecretString,
    repeat_password: SecretString,
}

fn check_change(form: &PasswordForm) -> Result<(), String> {
    accounts::check_new_password(&form.new_password)?;
    if form.new_password.expose_secret() != form.repeat_password.expose_secret() {
        return Err("The new passwords do not match.".into());
    }
    Ok(())
}

/// `POST /account/password`: 303 back with a flash, or 400 with what to fix. Every other
/// session of the user ends; this one continues under a new id.
pub async fn change_password(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let form: PasswordForm = parse(&body)?;
    if let Err(message) = check_change(&form) {
        return refuse_change(&session, user, message);
    }
    let origin = super::origin(&req);
    let (pool, limiter) = (&state.pool, &state.login_limiter);
    let (current, new) = (form.current_password, form.new_password);
    let change = accounts::change_own_password(pool, limiter, &user, &origin, current, new);
    match change.await? {
        PasswordChange::Changed => {
            start_session(&session, &user)?;
            Ok(Flash::success("Your password was changed").redirect(&session, ACCOUNT))
        }
        PasswordChange::WrongCurrent => {
            refuse_change(&session, user, "Your current password is incorrect.".into())
        }
        PasswordChange::Wait(wait) => {
            let retry_after_secs = wait.as_secs().max(1);
            Err(AppError::TooManyRequests { retry_after_secs })
        }
    }
}

fn refuse_change(session: &Session, user: User, message: String) -> Result<HttpResponse, AppError> {
    let mut page = AccountPage::new(session, user);
    page.error = Some(message);
    super::render(page, StatusCode::BAD_REQUEST)
}
