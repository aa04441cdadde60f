//! How a browser action ends: JSON for API callers, a toast for htmx, a redirect with the
//! toast for a plain form.

use super::layout::{Flash, FlashKind};
use super::local_path::LocalPath;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

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
        self.flash.store(session);
        super::redirect(redirect_path.as_str())
    }
}
