//! What an admin changes about connect sessions on `/admin/settings`: the hosted page's
//! branding and the signing secret. Each change is audited (never the secret itself).

use super::settings::{self, Branding, ConnectSettings};
use crate::audit::{self, Actor, Event, Origin};
use crate::db::DbError;
use crate::state::AppState;
use serde_json::json;

pub async fn load(state: &AppState) -> Result<ConnectSettings, DbError> {
    let vault = state.vault.clone();
    crate::db::run(&state.pool, move |conn| settings::load(conn, &vault))
        .await
        .map_err(DbError::from)
}

pub async fn save_branding(
    state: &AppState,
    actor: Actor,
    branding: Branding,
    origin: &Origin,
) -> Result<(), DbError> {
    let vault = state.vault.clone();
    let event = Event::new(actor, "connect_settings_changed")
        .origin(origin)
        .details(json!({"product_name": branding.product_name, "logo_url": branding.logo_url, "accent_color": branding.accent_color}));
    crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| -> Result<(), DbError> {
            settings::save_branding(conn, &vault, &branding)?;
            audit::append(conn, event)?;
            Ok(())
        })
    })
    .await
    .map_err(DbError::from)
}

pub async fn rotate_secret(state: &AppState, actor: Actor, origin: &Origin) -> Result<(), DbError> {
    let vault = state.vault.clone();
    let event = Event::new(actor, "connect_signing_secret_rotated").origin(origin);
    crate::db::run(&state.pool, move |conn| {
        crate::db::transaction(conn, |conn| -> Result<(), DbError> {
            settings::rotate_secret(conn, &vault)?;
            audit::append(conn, event)?;
            Ok(())
        })
    })
    .await
    .map_err(DbError::from)
}
