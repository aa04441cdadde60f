//! What the pages (`web`), the service API (`api`) and the error answers share about a
//! request: who sends it, which answer it wants, and how a value goes into a URL.

use crate::audit::Origin;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// The caller's address and browser, for the audit log. The peer address is used, not
/// X-Forwarded-For, which any client can forge.
pub fn origin(req: &HttpRequest) -> Origin {
    Origin {
        ip: req.peer_addr().map(|addr| addr.ip().to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Whether the request comes from htmx (it then gets a fragment, not a page).
pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("hx-request")
}

/// htmx asks for a fragment, except when it restores history and needs the whole page.
pub fn wants_fragment(req: &HttpRequest) -> bool {
    is_htmx(req) && !req.headers().contains_key("hx-history-restore-request")
}

/// Whether the caller sends or accepts JSON (it then gets JSON, errors included).
pub fn wants_json(req: &HttpRequest) -> bool {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    header(header::CONTENT_TYPE).starts_with("application/json")
        || header(header::ACCEPT).starts_with("application/json")
}

pub fn urlencode(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
