//! The hosted connect page for a team's end users (`/connect/{token}`): no connecthub
//! sign-in, the team's branding, the session's providers, and a result page that reports
//! to the opener (popup mode, `static/connect-page.js`) or returns to the team's signed
//! success/error URL (redirect mode). Every unusable link gets a clear 4xx page.

use super::origin;
use crate::connect::{self, settings::Branding, SessionProblem, SessionResult};
use crate::error::AppError;
use crate::oauth::flow::{Callback, CallbackParams, Caller};
use crate::oauth::key_input::KeyInput;
use crate::state::AppState;
use crate::web::csrf;
use crate::web::current_user::CurrentUser;
use actix_session::Session;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;

/// The cookie that remembers this browser's link, so "Try again" can find it without the
/// token ever being stored on the server or put in another URL.
const RETRY_COOKIE: &str = "connecthub_connect";

/// Pages a popup shows keep their opener (no COOP isolation) and may show a logo from
/// the team's https site; scripts still come only from connecthub, never inline.
const CONNECT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: https:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// What every hosted page shows around its content.
pub struct PageFrame {
    product_name: String,
    logo_url: Option<String>,
    accent_param: String,
    asset_version: &'static str,
}

impl PageFrame {
    fn of(branding: &Branding) -> Self {
        Self {
            product_name: branding.product_name.clone(),
            logo_url: branding.logo_url.clone(),
            accent_param: branding.accent_color.trim_start_matches('#').to_string(),
            asset_version: super::assets::version(),
        }
    }
}

struct ProviderChoice {
    name: String,
    display_name: String,
    initial: String,
    oauth: bool,
    api_key: bool,
    /// The key form's fields: a user (Basic only) and the secret.
    username_label: Option<String>,
    secret_label: String,
    /// Asked before the consent page or with the API key (a Kustomer subdomain).
    settings: Vec<super::setting_fields::SettingField>,
}

#[derive(Template)]
#[template(path = "connect/choose.html")]
struct ChoosePage {
    page: PageFrame,
    token: String,
    csrf_token: String,
    end_user_label: Option<String>,
    providers: Vec<ProviderChoice>,
    last_error: Option<String>,
}

#[derive(Template)]
#[template(path = "connect/result.html")]
struct ResultPage {
    page: PageFrame,
    success: bool,
    message: String,
    provider_display_name: String,
    result_json: String,
    origins_json: String,
    return_url: Option<String>,
}

#[derive(Template)]
#[template(path = "connect/finishing.html")]
struct FinishingPage {
    page: PageFrame,
    provider: String,
    provider_display_name: String,
    csrf_token: String,
    fields: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "connect/problem.html")]
struct ProblemPage {
    page: PageFrame,
    title: &'static str,
    message: String,
}

fn page(body: String, status: StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONNECT_CSP))
        .insert_header(("Cross-Origin-Opener-Policy", "unsafe-none"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// A clear page for a link that cannot be used, in the team's branding; storage failures
/// stay errors (5xx).
async fn problem(state: &AppState, error: SessionProblem) -> Result<HttpResponse, AppError> {
    let (status, title) = match &error {
        SessionProblem::Unknown => (StatusCode::NOT_FOUND, "Link not valid"),
        SessionProblem::Expired => (StatusCode::GONE, "Link expired"),
        SessionProblem::Used => (StatusCode::GONE, "Link already used"),
        SessionProblem::ProviderNotAllowed => (StatusCode::FORBIDDEN, "Service not offered"),
        SessionProblem::NotConfigured(_) => (StatusCode::BAD_REQUEST, "Service unavailable"),
        SessionProblem::InvalidSetting(_) => (StatusCode::BAD_REQUEST, "Check what you entered"),
        SessionProblem::Storage(_) => {
            let SessionProblem::Storage(e) = error else {
                unreachable!()
            };
            return Err(e.into());
        }
    };
    let branding = branding(state).await;
    let body = ProblemPage {
        page: PageFrame::of(&branding),
        title,
        message: error.to_string(),
    }
    .render()?;
    Ok(page(body, status))
}

/// The team's branding; the defaults when it cannot be read (a problem page still shows).
async fn branding(state: &AppState) -> Branding {
    match connect::admin::load(state).await {
        Ok(settings) => settings.branding,
        Err(_) => Branding::default(),
    }
}

/// An end user's callback that cannot go on (another browser, an expired or used
/// authorization): what happened, and that the app can start again. 400.
pub async fn refused_page(state: &AppState, reason: String) -> Result<HttpResponse, AppError> {
    let branding = branding(state).await;
    let body = ProblemPage {
        page: PageFrame::of(&branding),
        title: "Not connected",
        message: format!("{reason}. Go back to the app and start again."),
    }
    .render()?;
    Ok(page(body, StatusCode::BAD_REQUEST))
}

/// `GET /connect/{token}`: the providers to choose from.
pub async fn show(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let opened = match connect::open(&state, &token, &origin(&req)).await {
        Ok(opened) => opened,
        Err(e) => return problem(&state, e).await,
    };
    let providers = opened
        .providers
        .iter()
        .map(|p| {
            let (username_label, secret_label) = p.key_labels();
            ProviderChoice {
                name: p.name.clone(),
                display_name: p.display_name.clone(),
                initial: p.display_name.chars().next().unwrap_or('?').to_string(),
                oauth: p.auth_type == crate::providers::AuthType::Oauth2 && p.is_configured(),
                api_key: p.api_key_check_path.is_some(),
                username_label,
                secret_label,
                settings: super::setting_fields::fields(p),
            }
        })
        .collect();
    let body = ChoosePage {
        page: PageFrame::of(&opened.branding),
        token: token.into_inner(),
        csrf_token: csrf::token(&session),
        end_user_label: opened
            .end_user
            .display_name
            .clone()
            .or(opened.end_user.email.clone()),
        providers,
        last_error: opened.session.last_error.clone(),
    }
    .render()?;
    let mut response = page(body, StatusCode::OK);
    let ttl = (opened.session.expires_at - crate::db::now())
        .num_seconds()
        .max(1);
    let cookie = Cookie::build(RETRY_COOKIE, opened_token(&req))
        .path("/connect")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(ttl))
        .finish();
    response
        .add_cookie(&cookie)
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(response)
}

fn opened_token(req: &HttpRequest) -> String {
    req.match_info()
        .get("token")
        .unwrap_or_default()
        .to_string()
}

/// `chc_` and URL-safe base64: nothing else goes into the Location of `again`.
fn is_token_shaped(value: &str) -> bool {
    value.len() <= 100
        && value.starts_with("chc_")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `GET /connect/again`: back to this browser's link (the result page's Try again).
pub async fn again(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    match req.cookie(RETRY_COOKIE) {
        Some(cookie) if is_token_shaped(cookie.value()) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/connect/{}", cookie.value())))
            .finish()),
        _ => problem(&state, SessionProblem::Unknown).await,
    }
}

/// `GET /connect/{token}/start/{provider}`: on to the provider's consent page.
pub async fn start(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (token, provider) = path.into_inner();
    let entered = super::setting_fields::entered(req.query_string().as_bytes())?;
    let binding = csrf::session_binding(&session);
    match connect::start(&state, &token, &provider, &entered, &binding, &origin(&req)).await {
        Ok(authorize_url) => Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, authorize_url))
            .insert_header(("Cross-Origin-Opener-Policy", "unsafe-none"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()),
        Err(e) => problem(&state, e).await,
    }
}

#[derive(serde::Deserialize)]
pub struct ApiKeyForm {
    api_key: SecretString,
    /// Only for providers connected with HTTP Basic.
    username: Option<String>,
    /// The connection settings, by name.
    #[serde(flatten)]
    settings: crate::providers::connection_config::Entered,
}

/// `POST /connect/{token}/api-key/{provider}`: connects with an API key.
pub async fn api_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<ApiKeyForm>,
) -> Result<HttpResponse, AppError> {
    let (token, provider) = path.into_inner();
    let form = form.into_inner();
    let input = KeyInput {
        username: form.username,
        secret: form.api_key,
    };
    let origin = origin(&req);
    let connected =
        connect::connect_api_key(&state, &token, &provider, &form.settings, input, &origin);
    match connected.await {
        Ok(result) => result_page(result),
        Err(e) => problem(&state, e).await,
    }
}

/// The provider's return to an end user's flow: "Finishing…", and a form (sent at once by
/// connect-page.js) that carries the parameters on to `finish` by POST.
pub async fn finishing_page(
    state: &AppState,
    session: &Session,
    provider: &crate::providers::Provider,
    params: &CallbackParams,
) -> Result<HttpResponse, AppError> {
    let body = FinishingPage {
        page: PageFrame::of(&branding(state).await),
        provider: provider.name.clone(),
        provider_display_name: provider.display_name.clone(),
        csrf_token: csrf::token(session),
        fields: params.fields(),
    }
    .render()?;
    Ok(page(body, StatusCode::OK))
}

/// `POST /connect/finish/{provider}`: the callback's checks and the code exchange (the one
/// OAuth engine), then the result; the URL it ends on has no code or state.
pub async fn finish(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CallbackParams>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    let provider = state.providers().get(&path).ok_or(AppError::NotFound)?;
    let caller = Caller {
        user: user.map(|CurrentUser(user)| user),
        session_binding: csrf::session_binding(&session),
    };
    let (answer, ended) =
        connect::callback(&state, &caller, &provider, form.into_inner(), &origin(&req)).await?;
    match (ended, answer) {
        (Some(result), _) => result_page(result),
        (None, Callback::EndUserRefused(reason)) => refused_page(&state, reason).await,
        (None, Callback::Finished(outcome)) => refused_page(&state, outcome.message).await,
        (None, Callback::NeedsSignIn) => {
            refused_page(&state, "This sign-in belongs to someone else".into()).await
        }
    }
}

/// The end of an attempt: in redirect mode (a return URL and no popup origins) straight
/// to the team's signed URL; otherwise the result page, whose script reports to the
/// opener or, with no opener, goes on to the return URL.
pub fn result_page(result: SessionResult) -> Result<HttpResponse, AppError> {
    let origins = result.session.origins();
    if let (Some(url), true) = (&result.return_url, origins.is_empty()) {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    }
    let mut posted = serde_json::to_value(&result.params).unwrap_or_default();
    posted["type"] = "connecthub:result".into();
    let body = ResultPage {
        page: PageFrame::of(&result.branding),
        success: result.success,
        message: result.message,
        provider_display_name: result.provider_display_name,
        result_json: posted.to_string(),
        origins_json: serde_json::json!(origins).to_string(),
        return_url: result.return_url,
    }
    .render()?;
    let status = if result.success {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(page(body, status))
}

/// `GET /connect/_theme.css?c=rrggbb`: the accent colour as a stylesheet (the CSP allows
/// no inline styles). Only six hex digits are ever written into it.
pub async fn theme(req: HttpRequest) -> HttpResponse {
    let raw = req.query_string().strip_prefix("c=").unwrap_or_default();
    let colour = if raw.len() == 6 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
        raw.to_string()
    } else {
        connect::settings::DEFAULT_ACCENT
            .trim_start_matches('#')
            .to_string()
    };
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(format!(":root {{ --accent: #{colour}; }}\n"))
}
