//! `GET /healthz`: the process is up and the database answers.

use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let database = crate::db::run(&state.pool, |conn| conn.batch_execute("SELECT 1")).await;
    match database {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "ok"})),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "database": "unreachable"}))
        }
    }
}
