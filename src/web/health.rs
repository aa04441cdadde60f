//! `GET /healthz`: the process is up and the database answers.

use crate::state::AppState;
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

/// `GET /metrics`: Prometheus text format. With METRICS_TOKEN set, scrapers must send it
/// as a Bearer token.
pub async fn metrics(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(expected) = &state.config.metrics_token {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if orion::util::secure_cmp(
            given.as_bytes(),
            secrecy::ExposeSecret::expose_secret(expected).as_bytes(),
        )
        .is_err()
        {
            return HttpResponse::Unauthorized().finish();
        }
    }
    let counts = crate::db::run(&state.pool, crate::clients::count_by_status).await;
    state.metrics.set_breakers(&state.breakers.snapshot());
    match counts {
        Ok(counts) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(state.metrics.render(&counts)),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}
