//! The baseline for the bench scripts: the smallest actix-web server, on the same machine
//! and settings as connecthub, so the benchmark can report a ratio instead of raw numbers.
//! It answers every path, so a load script that asks for many paths can be aimed at it.

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8089".into());
    HttpServer::new(|| {
        App::new().default_service(
            web::get()
                .to(|| async { HttpResponse::Ok().json(serde_json::json!({"hello": "world"})) }),
        )
    })
    .bind(bind)?
    .run()
    .await
}
