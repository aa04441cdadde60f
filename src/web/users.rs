//! The users page (admins): add people, change their role, disable or enable them and
//! reset their password. And the account page, where anyone changes their own password.
//! A generated password is shown once, in the response that made it; it never goes into
//! the session, which is stored in the database.

use super::layout::{Flash, FlashKind, Layout};
use crate::audit::{self, Actor, Event, Origin};
use crate::auth::users::{self, Email, Role, User};
use crate::auth::{password, session_store, start_session, AdminUser, CurrentUser};
use crate::db::DbConnection;
use crate::error::AppError;
use crate::input::{RecordId, SingleLine};
use crate::state::AppState;
use actix_session::Session;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::QueryResult;
use secrecy::{ExposeSecret, SecretString};

const PAGE: &str = "/admin/users";
const ACCOUNT: &str = "/account";
const NAME_MAX_CHARS: usize = 80;
/// As the sign-in form allows; argon2 takes any length, the limit keeps hashing cheap.
const PASSWORD_MAX_CHARS: usize = 1024;

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
    Ok(tokio::task::spawn_blocking(move || password::hash(&secret)).await??)
}

/// Long enough to resist guessing, short enough to hash cheaply.
fn check_new_password(password: &SecretString) -> Result<(), String> {
    let length = password.expose_secret().chars().count();
    if length < password::MIN_LENGTH {
        return Err(format!(
            "The password must have at least {} characters.",
            password::MIN_LENGTH
        ));
    }
    if length > PASSWORD_MAX_CHARS {
        return Err(format!(
            "The password can be at most {PASSWORD_MAX_CHARS} characters."
        ));
    }
    Ok(())
}

/// The admin who acts, and from where, for the audit log.
struct Acting {
    admin: User,
    origin: Origin,
}

impl Acting {
    fn new(req: &HttpRequest, admin: &User) -> Self {
        Self {
            admin: admin.clone(),
            origin: super::origin(req),
        }
    }

    /// An entry about `user`; its details name them by email, never a password.
    fn event(&self, action: &'static str, user: &User) -> Event {
        Event::new(Actor::user(&self.admin.id, &self.admin.email), action)
            .target("user", user.id.clone())
            .origin(&self.origin)
            .details(serde_json::json!({ "email": user.email }))
    }
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
    email: Email,
    name: String,
    role: Role,
    /// None: generate one and show it.
    password: Option<SecretString>,
}

fn validate_new_user(form: &AddForm) -> Result<NewUser, String> {
    let email = Email::parse(&form.email).map_err(|_| {
        let shown: String = form.email.trim().chars().take(60).collect();
        format!("{shown:?} is not a valid email address.")
    })?;
    let role = Role::parse(form.role.trim()).ok_or("Choose admin or member as the role.")?;
    let name = display_name(&form.name, &email)?;
    let password = match &form.password {
        Some(typed) if !typed.expose_secret().is_empty() => {
            check_new_password(typed)?;
            Some(typed.clone())
        }
        _ => None,
    };
    Ok(NewUser {
        email,
        name,
        role,
        password,
    })
}

/// The name shown in the app; empty means the part of the email before @, as
/// `connecthub user add` does.
fn display_name(raw: &str, email: &Email) -> Result<String, String> {
    let name = SingleLine::<NAME_MAX_CHARS>::parse(raw)
        .map_err(|problem| format!("The name {problem}."))?
        .into_string();
    if name.is_empty() {
        let local = email.as_str().split('@').next().unwrap_or("user");
        return Ok(local.to_string());
    }
    Ok(name)
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
    let (secret, generated) = initial_password(new_user.password.clone());
    let hash = hash_blocking(secret).await?;
    let acting = Acting::new(&req, &admin);
    let email = new_user.email.as_str().to_string();
    let created = crate::db::run(&state.pool, move |conn| {
        create_audited(conn, &new_user, &hash, &acting)
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
        None => {
            Flash::success(format!("Added {email}")).store(&session);
            Ok(super::redirect(PAGE))
        }
    }
}

/// The typed password, or a generated one that is also returned to be shown once.
fn initial_password(typed: Option<SecretString>) -> (SecretString, Option<String>) {
    match typed {
        Some(typed) => (typed, None),
        None => {
            let generated = password::generate();
            (SecretString::from(generated.clone()), Some(generated))
        }
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

/// Stores the account and its audit entry together; None when the email is taken.
fn create_audited(
    conn: &mut DbConnection,
    new_user: &NewUser,
    hash: &str,
    acting: &Acting,
) -> QueryResult<Option<User>> {
    let created = crate::db::transaction(conn, |conn| {
        let user = users::create(conn, &new_user.email, &new_user.name, hash, new_user.role)?;
        let event = acting
            .event("user_created", &user)
            .details(serde_json::json!({
                "email": user.email,
                "role": user.role,
                "generated_password": new_user.password.is_none(),
            }));
        audit::append(conn, event)?;
        Ok(user)
    });
    match created {
        Ok(user) => Ok(Some(user)),
        // The UNIQUE constraint, not an earlier lookup, decides between racing requests.
        Err(e) if users::is_email_taken(&e) => Ok(None),
        Err(e) => Err(e),
    }
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
        Some(Outcome::Done(flash)) => {
            flash.store(session);
            Ok(super::redirect(PAGE))
        }
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
    let (id, acting) = (path.into_inner().into_string(), Acting::new(&req, &admin));
    // An admin who stepped down may no longer see the users page.
    let stepped_down = id == admin.id && role == Role::Member;
    let outcome = crate::db::run(&state.pool, move |conn| {
        change_role(conn, &id, role, &acting)
    })
    .await?;
    match outcome {
        Some(Outcome::Done(flash)) if stepped_down => {
            flash.store(&session);
            Ok(super::redirect(super::HOME))
        }
        outcome => finish(&session, &state, &admin, outcome).await,
    }
}

fn with_article(role: Role) -> &'static str {
    match role {
        Role::Admin => "an admin",
        Role::Member => "a member",
    }
}

/// Whether demoting or disabling `user` would leave no active admin to manage users.
/// Call after `users::lock_admins`.
fn is_last_admin(conn: &mut DbConnection, user: &User) -> QueryResult<bool> {
    Ok(user.is_admin() && user.is_active() && users::count_active_admins(conn)? <= 1)
}

fn last_admin_message(user: &User, acting: &Acting) -> String {
    let who = if user.id == acting.admin.id {
        "You are".to_string()
    } else {
        format!("{} is", user.email)
    };
    format!("{who} the last active admin. Make another user an admin first, so someone can still manage users.")
}

fn change_role(
    conn: &mut DbConnection,
    id: &str,
    role: Role,
    acting: &Acting,
) -> QueryResult<Option<Outcome>> {
    crate::db::transaction(conn, |conn| {
        users::lock_admins(conn)?;
        let Some(user) = users::find(conn, id)? else {
            return Ok(None);
        };
        if user.role() == role {
            let message = format!("{} is already {}", user.email, with_article(role));
            return Ok(Some(info(message)));
        }
        if role == Role::Member && is_last_admin(conn, &user)? {
            return Ok(Some(Outcome::Refused(last_admin_message(&user, acting))));
        }
        users::set_role(conn, id, role)?;
        let event = acting
            .event("user_role_changed", &user)
            .details(serde_json::json!({
                "email": user.email,
                "from": user.role,
                "to": role.as_str(),
            }));
        audit::append(conn, event)?;
        let message = format!("{} is now {}", user.email, with_article(role));
        Ok(Some(Outcome::Done(Flash::success(message))))
    })
}

/// `POST /admin/users/{id}/disable`: they are signed out everywhere at once.
pub async fn disable(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<RecordId>,
) -> Result<HttpResponse, AppError> {
    let (id, acting) = (path.into_inner().into_string(), Acting::new(&req, &admin));
    let outcome = crate::db::run(&state.pool, move |conn| disable_user(conn, &id, &acting)).await?;
    finish(&session, &state, &admin, outcome).await
}

fn disable_user(
    conn: &mut DbConnection,
    id: &str,
    acting: &Acting,
) -> QueryResult<Option<Outcome>> {
    crate::db::transaction(conn, |conn| {
        users::lock_admins(conn)?;
        let Some(user) = users::find(conn, id)? else {
            return Ok(None);
        };
        if user.id == acting.admin.id {
            let message = "You cannot disable your own account.".to_string();
            return Ok(Some(Outcome::Refused(message)));
        }
        if !user.is_active() {
            return Ok(Some(info(format!("{} is already disabled", user.email))));
        }
        // Only reachable when another admin demoted the acting one meanwhile.
        if is_last_admin(conn, &user)? {
            return Ok(Some(Outcome::Refused(last_admin_message(&user, acting))));
        }
        users::set_disabled(conn, id, Some(crate::db::now()))?;
        let ended = session_store::delete_for_user(conn, id)?;
        let event = acting
            .event("user_disabled", &user)
            .details(serde_json::json!({ "email": user.email, "sessions_ended": ended }));
        audit::append(conn, event)?;
        let message = format!("Disabled {}; they have been signed out", user.email);
        Ok(Some(Outcome::Done(Flash::success(message))))
    })
}

/// `POST /admin/users/{id}/enable`
pub async fn enable(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<RecordId>,
) -> Result<HttpResponse, AppError> {
    let (id, acting) = (path.into_inner().into_string(), Acting::new(&req, &admin));
    let outcome = crate::db::run(&state.pool, move |conn| enable_user(conn, &id, &acting)).await?;
    finish(&session, &state, &admin, outcome).await
}

fn enable_user(conn: &mut DbConnection, id: &str, acting: &Acting) -> QueryResult<Option<Outcome>> {
    crate::db::transaction(conn, |conn| {
        let Some(user) = users::find(conn, id)? else {
            return Ok(None);
        };
        if user.is_active() {
            return Ok(Some(info(format!("{} is already active", user.email))));
        }
        users::set_disabled(conn, id, None)?;
        audit::append(conn, acting.event("user_enabled", &user))?;
        let message = format!("Enabled {}; they can sign in again", user.email);
        Ok(Some(Outcome::Done(Flash::success(message))))
    })
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
    let acting = Acting::new(&req, &admin);
    let user = crate::db::run(&state.pool, move |conn| {
        reset_audited(conn, &id, &hash, &acting)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    let heading = format!("New password for {}", user.email);
    show_password(&session, &state, &admin, ShownPassword { heading, secret }).await
}

/// Sets the password, ends the user's sessions and records it; None for no such user.
fn reset_audited(
    conn: &mut DbConnection,
    id: &str,
    hash: &str,
    acting: &Acting,
) -> QueryResult<Option<User>> {
    crate::db::transaction(conn, |conn| {
        let Some(user) = users::find(conn, id)? else {
            return Ok(None);
        };
        users::set_password(conn, id, hash)?;
        let ended = session_store::delete_for_user(conn, id)?;
        let event = acting
            .event("password_reset", &user)
            .details(serde_json::json!({ "email": user.email, "sessions_ended": ended }));
        audit::append(conn, event)?;
        Ok(Some(user))
    })
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
    check_new_password(&form.new_password)?;
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
    // The same budget as sign-in: a borrowed session must not be a way to guess the
    // password faster.
    let ip = origin.ip.clone().unwrap_or_default();
    if let Err(wait) = state.login_limiter.check(&ip, &user.email) {
        let retry_after_secs = wait.as_secs().max(1);
        return Err(AppError::TooManyRequests { retry_after_secs });
    }
    let stored = user.password_hash.clone();
    let hash = verify_then_hash(stored, form.current_password, form.new_password).await?;
    match &hash {
        Some(_) => state.login_limiter.succeeded(&ip, &user.email),
        None => state.login_limiter.failed(&ip, &user.email),
    }
    let actor = Actor::user(&user.id, &user.email);
    let event = Event::new(actor, "password_changed")
        .target("user", user.id.clone())
        .origin(&origin);
    let Some(hash) = hash else {
        let event = event
            .failed()
            .details(serde_json::json!({"reason": "wrong current password"}));
        crate::db::run(&state.pool, move |conn| audit::append(conn, event)).await?;
        return refuse_change(&session, user, "Your current password is incorrect.".into());
    };
    let id = user.id.clone();
    crate::db::run(&state.pool, move |conn| {
        change_audited(conn, &id, &hash, event)
    })
    .await?;
    start_session(&session, &user)?;
    Flash::success("Your password was changed").store(&session);
    Ok(super::redirect(ACCOUNT))
}

fn refuse_change(session: &Session, user: User, message: String) -> Result<HttpResponse, AppError> {
    let mut page = AccountPage::new(session, user);
    page.error = Some(message);
    super::render(page, StatusCode::BAD_REQUEST)
}

/// The new password's hash when the current one is right; None when it is wrong.
async fn verify_then_hash(
    stored: String,
    current: SecretString,
    new: SecretString,
) -> Result<Option<String>, AppError> {
    let hashed = tokio::task::spawn_blocking(move || {
        if !password::verify(&current, &stored) {
            return Ok(None);
        }
        password::hash(&new).map(Some)
    })
    .await??;
    Ok(hashed)
}

/// Sets the password and ends every session of the user (the caller then renews its own).
fn change_audited(conn: &mut DbConnection, id: &str, hash: &str, event: Event) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        users::set_password(conn, id, hash)?;
        session_store::delete_for_user(conn, id)?;
        audit::append(conn, event)
    })
}
