//! What every page's layout needs: the signed-in user, the CSRF token, the one-time
//! flash message, and which navigation entry is active.

use crate::auth::users::User;
use crate::web::csrf;
use actix_session::Session;
use actix_web::http::header::HeaderValue;
use actix_web::HttpResponseBuilder;
use serde::{Deserialize, Serialize};

const FLASH_KEY: &str = "flash";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashKind {
    Success,
    Error,
    Info,
}

/// A message shown once, as a toast, on the next page or htmx response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Success,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Error,
            message: message.into(),
        }
    }

    /// A success or an error message, as the action went.
    pub fn outcome(succeeded: bool, message: impl Into<String>) -> Self {
        if succeeded {
            Self::success(message)
        } else {
            Self::error(message)
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            FlashKind::Success => "success",
            FlashKind::Error => "error",
            FlashKind::Info => "info",
        }
    }

    /// Keeps the message for the next page the browser loads (after a redirect).
    pub fn store(self, session: &Session) {
        let _ = session.insert(FLASH_KEY, self);
    }

    /// Keeps the message for the next page and sends the browser there (303).
    pub fn redirect(self, session: &Session, location: &str) -> actix_web::HttpResponse {
        self.store(session);
        crate::http_util::redirect(location)
    }

    pub fn take(session: &Session) -> Option<Self> {
        // Removing marks the session changed even when the key is absent, and a changed
        // session is written whole: look first, so a page without a message writes nothing.
        if let Ok(None) = session.get::<Flash>(FLASH_KEY) {
            return None;
        }
        session.remove_as::<Flash>(FLASH_KEY).and_then(Result::ok)
    }

    /// Shows the message at once on an htmx response (app.js listens for `toast`).
    pub fn trigger(self, response: &mut HttpResponseBuilder) {
        hx_trigger(response, &serde_json::json!({ "toast": self }));
    }
}

/// Sets `HX-Trigger` to these events. The JSON is kept to ASCII (`\u00e9`): a header
/// carries bytes that browsers read as Latin-1, so "Müller" would otherwise arrive garbled.
pub fn hx_trigger(response: &mut HttpResponseBuilder, events: &serde_json::Value) {
    let json = events.to_string();
    let mut ascii = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                ascii.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&ascii) {
        response.insert_header(("HX-Trigger", value));
    }
}

/// The signed-in user as the layout shows them.
pub struct NavUser {
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
}

pub struct Layout {
    pub user: Option<NavUser>,
    pub csrf_token: String,
    pub flash: Option<Flash>,
    pub active: &'static str,
    pub asset_version: &'static str,
}

impl Layout {
    pub fn new(session: &Session, user: Option<&User>, active: &'static str) -> Self {
        Self {
            user: user.map(|u| NavUser {
                email: u.email.clone(),
                display_name: u.display_name.clone(),
                is_admin: u.is_admin(),
            }),
            csrf_token: csrf::token(session),
            flash: Flash::take(session),
            active,
            asset_version: super::assets::version(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toasts_travel_as_ascii() {
        let mut response = actix_web::HttpResponse::Ok();
        Flash::success("Müller 😀 \"ok\"").trigger(&mut response);
        let response = response.finish();
        let header = response
            .headers()
            .get("HX-Trigger")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(header.is_ascii());
        let parsed: serde_json::Value = serde_json::from_str(header).unwrap();
        assert_eq!(parsed["toast"]["message"], "Müller 😀 \"ok\"");
        assert_eq!(parsed["toast"]["kind"], "success");
    }
}
