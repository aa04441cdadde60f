//! How a browser action ends: JSON for API callers, a toast for htmx, a redirect with the
//! toast for a plain form; or, for an action on one card of a page, the card's new content
//! with the toast for htmx.

use super::layout::{Flash, FlashKind};
use super::local_path::LocalPath;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

/// How an action ends, for each kind of caller.
pub struct Answer {
    pub flash: Flash,
    pub status: StatusCode,
    pub json: serde_json::Value,
}

impl Answer {
    /// JSON for API callers; for htmx a toast (and, on success, a `clients-changed` event
    /// that re-renders the client list in place); for plain forms a redirect with the toast.
    pub fn send(
        self,
        req: &HttpRequest,
        session: &Session,
        redirect_path: &LocalPath,
    ) -> HttpResponse {
        if crate::http_util::wants_json(req) {
            return HttpResponse::build(self.status).json(self.json);
        }
        if super::is_htmx(req) {
            // The page stays; the toast shows and the client list re-renders itself.
            let mut response = HttpResponse::Ok();
            let success = self.flash.kind == FlashKind::Success;
            let mut events = serde_json::json!({ "toast": self.flash });
            if success {
                events["clients-changed"] = serde_json::Value::Bool(true);
            }
            super::layout::hx_trigger(&mut response, &events);
            return response.finish();
        }
        self.flash.redirect(session, redirect_path.as_str())
    }
}

/// How an action on one card of a page ends: for htmx the card's new content (none when
/// it stays as it was) with a toast; for a plain form a redirect with the toast.
pub struct CardAnswer<T: Template> {
    pub flash: Flash,
    /// The htmx answer's status; a plain form is always redirected.
    pub status: StatusCode,
    pub card: Option<T>,
}

impl<T: Template> CardAnswer<T> {
    pub fn send(
        self,
        req: &HttpRequest,
        session: &Session,
        redirect_path: &str,
    ) -> Result<HttpResponse, crate::error::AppError> {
        if !super::is_htmx(req) {
            return Ok(self.flash.redirect(session, redirect_path));
        }
        self.for_htmx()
    }

    /// The htmx answer alone: the card, if any, with the toast.
    pub fn for_htmx(self) -> Result<HttpResponse, crate::error::AppError> {
        let mut response = HttpResponse::build(self.status);
        self.flash.trigger(&mut response);
        let Some(card) = self.card else {
            return Ok(response.finish());
        };
        Ok(response
            .content_type("text/html; charset=utf-8")
            .body(card.render()?))
    }
}
