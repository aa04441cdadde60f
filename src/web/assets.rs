//! Static files, compiled into the binary so a deployment is one file. URLs carry a
//! content hash (`?v=`), so browsers may cache them for a year.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const FILES: [(&str, &str, &str); 3] = [
    (
        "htmx-2.0.4.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/htmx-2.0.4.min.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    ),
];

/// A short hash of every asset, appended to their URLs by the layout.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hasher = Sha256::new();
        for (_, _, body) in FILES {
            hasher.update(body.as_bytes());
        }
        hex::encode(&hasher.finalize()[..6])
    })
}

pub async fn serve(name: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(file, _, _)| *file == name.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header(CacheControl(vec![
                CacheDirective::Public,
                CacheDirective::MaxAge(31_536_000),
                CacheDirective::Extension("immutable".into(), None),
            ]))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}
