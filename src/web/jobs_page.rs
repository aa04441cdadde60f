//! `/admin/jobs` (admins only): how many jobs wait, run, failed or died, the latest jobs
//! with their errors, and retry / cancel (audited). The list refreshes itself with htmx.

use super::layout::{Flash, Layout};
use crate::error::AppError;
use crate::jobs::{admin, Job, JobState};
use crate::state::AppState;
use crate::web::current_user::AdminUser;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

const PAGE: &str = "/admin/jobs";
const LATEST: i64 = 50;

#[derive(serde::Deserialize)]
pub struct Query {
    state: Option<String>,
}

/// The list part, also rendered alone for htmx.
#[derive(Template)]
#[template(path = "_jobs_list.html")]
struct JobsList {
    counts: Vec<(&'static str, i64)>,
    jobs: Vec<Job>,
    state: String,
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    layout: Layout,
    list: JobsList,
}

async fn list(
    state: &AppState,
    filter: Option<JobState>,
    csrf_token: String,
) -> Result<JobsList, AppError> {
    let (counts, jobs) = crate::db::run(&state.pool, move |conn| {
        Ok::<_, diesel::result::Error>((admin::counts(conn)?, admin::latest(conn, filter, LATEST)?))
    })
    .await?;
    Ok(JobsList {
        counts: counts.into_iter().map(|(s, n)| (s.as_str(), n)).collect(),
        jobs,
        state: filter.map(|s| s.as_str().to_string()).unwrap_or_default(),
        csrf_token,
    })
}

/// `GET /admin/jobs?state=`: the page, or only the list for htmx.
pub async fn index(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    query: web::Query<Query>,
) -> Result<HttpResponse, AppError> {
    let filter = match query.state.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            JobState::parse(raw)
                .ok_or_else(|| AppError::BadRequest("Unknown job state.".into()))?,
        ),
    };
    let layout = Layout::new(&session, Some(&admin), "jobs");
    let list = list(&state, filter, layout.csrf_token.clone()).await?;
    if super::wants_fragment(&req) {
        return super::render(list, StatusCode::OK);
    }
    super::render(JobsPage { layout, list }, StatusCode::OK)
}

/// `POST /admin/jobs/{id}/retry`
pub async fn retry(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let (id, actor) = (id.into_inner(), admin.actor());
    let done = crate::db::run(&state.pool, move |conn| {
        admin::retry_audited(conn, id, actor)
    })
    .await?;
    act(
        &req,
        &session,
        &state,
        &admin,
        done,
        format!("Job {id} queued again"),
        "Only failed or dead jobs can be retried.",
    )
    .await
}

/// `POST /admin/jobs/{id}/cancel`
pub async fn cancel(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let (id, actor) = (id.into_inner(), admin.actor());
    let done = crate::db::run(&state.pool, move |conn| {
        admin::cancel_audited(conn, id, actor)
    })
    .await?;
    act(
        &req,
        &session,
        &state,
        &admin,
        done,
        format!("Job {id} cancelled"),
        "Only queued or failed jobs can be cancelled.",
    )
    .await
}

/// After retry or cancel: the list again with a toast (htmx), or back to the page. A job
/// in the wrong state is a 409 and nothing changed.
async fn act(
    req: &HttpRequest,
    session: &Session,
    state: &AppState,
    admin: &crate::auth::users::User,
    done: bool,
    success: String,
    refused: &str,
) -> Result<HttpResponse, AppError> {
    let flash = if done {
        Flash::success(success)
    } else {
        Flash::error(refused)
    };
    let status = if done {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    if super::is_htmx(req) {
        let layout = Layout::new(session, Some(admin), "jobs");
        let list = list(state, None, layout.csrf_token).await?;
        let mut response = HttpResponse::build(status);
        flash.trigger(&mut response);
        return Ok(response
            .content_type("text/html; charset=utf-8")
            .body(list.render()?));
    }
    if !done {
        return Err(AppError::BadRequest(refused.to_string()));
    }
    flash.store(session);
    Ok(super::redirect(PAGE))
}
