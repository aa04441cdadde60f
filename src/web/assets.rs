//! Static files, compiled into the binary so a deployment is one file. URLs carry a
//! content hash (`?v=`), so browsers may cache them for a year. `/favicon.ico` is the one
//! fixed URL (browsers ask for it on their own), so it is cached for a day only.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const FILES: [(&str, &str, &[u8]); 8] = [
    (
        "connect.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/connect.js"),
    ),
    (
        "connect-page.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/connect-page.js"),
    ),
    (
        "connect.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/connect.css"),
    ),
    (
        "htmx-2.0.4.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/htmx-2.0.4.min.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/favicon.svg"),
    ),
    (
        "favicon.ico",
        "image/x-icon",
        include_bytes!("../../static/favicon.ico"),
    ),
];

/// A short hash of every asset, appended to their URLs by the layout.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hasher = Sha256::new();
        for (_, _, body) in FILES {
            hasher.update(body);
        }
        hex::encode(&hasher.finalize()[..6])
    })
}

pub async fn serve(name: web::Path<String>) -> HttpResponse {
    file_response(
        &name,
        vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(31_536_000),
            CacheDirective::Extension("immutable".into(), None),
        ],
    )
}

/// `GET /favicon.ico`, which browsers request without being told to.
pub async fn favicon() -> HttpResponse {
    file_response(
        "favicon.ico",
        vec![CacheDirective::Public, CacheDirective::MaxAge(86_400)],
    )
}

fn file_response(name: &str, cache: Vec<CacheDirective>) -> HttpResponse {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header(CacheControl(cache))
            .body(*body),
        // Said in words: an empty 404 tells a person nothing.
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("Not found: there is no such file."),
    }
}
