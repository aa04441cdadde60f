//! Who is calling `/api/v1`: a service presenting an API key as `Authorization: Bearer
//! chk_…`. No cookies, so no session or CSRF. The presented key is never logged.

use super::error::ApiError;
use crate::api_keys::{self, ApiKey, Scope};
use crate::audit::Actor;
use crate::startup::AppState;
use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use secrecy::{ExposeSecret, SecretString};

/// An active API key; extracting it answers 401 for anything else.
pub struct ServiceKey(pub ApiKey);

impl ServiceKey {
    /// 403 unless the key was granted `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden_scope(scope))
        }
    }

    /// Who the audit log names for what this key does.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: "api_key",
            id: Some(self.0.id.clone()),
            label: self.0.name.clone(),
        }
    }
}

/// The bearer token of the Authorization header, if it has one.
fn bearer_token(req: &HttpRequest) -> Option<SecretString> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| SecretString::from(token.to_string()))
}

async fn authenticate(
    state: Option<web::Data<AppState>>,
    presented: Option<SecretString>,
) -> Result<ServiceKey, ApiError> {
    let presented = presented.ok_or_else(ApiError::unauthorized)?;
    let state = state.ok_or_else(|| {
        tracing::error!("app state missing");
        ApiError::internal()
    })?;
    let hash = api_keys::hash(presented.expose_secret());
    if let Some(key) = state.api_key_cache.get(&hash) {
        return Ok(ServiceKey(key));
    }
    let key = crate::db::run(&state.pool, move |conn| {
        api_keys::authenticate(conn, presented.expose_secret())
    })
    .await?;
    let key = key.ok_or_else(ApiError::unauthorized)?;
    state.api_key_cache.insert(hash, key.clone());
    Ok(ServiceKey(key))
}

impl FromRequest for ServiceKey {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let presented = bearer_token(req);
        Box::pin(authenticate(state, presented))
    }
}
