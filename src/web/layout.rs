//! What every page's layout needs: the signed-in user, the CSRF token, the one-time
//! flash message, and which navigation entry is active.

use crate::auth::{csrf, users::User};
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

    pub fn take(session: &Session) -> Option<Self> {
        session.remove_as::<Flash>(FLASH_KEY).and_then(Result::ok)
    }

    /// Shows the message at once on an htmx response (app.js listens for `toast`).
    pub fn trigger(self, response: &mut HttpResponseBuilder) {
        let event = serde_json::json!({ "toast": self });
        if let Ok(value) = HeaderValue::from_str(&event.to_string()) {
            response.insert_header(("HX-Trigger", value));
        }
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
