//! The provider settings repository: one row per provider changed on `/admin/providers`.
//! The client secret is sealed with the vault, bound to the provider's name and the field.

use crate::db::schema::provider_settings;
use crate::db::DbConnection;
use crate::providers::StoredSettings;
use crate::vault::{Binding, Vault, VaultError};
use diesel::prelude::*;
use secrecy::SecretString;

#[derive(Debug, Clone, Default, Queryable, Selectable)]
#[diesel(table_name = provider_settings)]
pub struct Row {
    pub name: String,
    pub enabled: Option<bool>,
    pub client_id: Option<String>,
    /// Sealed.
    pub client_secret: Option<String>,
    /// A JSON array of scopes.
    pub scopes: Option<String>,
    /// A JSON array of `[name, value]` pairs, in order.
    pub authorize_params: Option<String>,
    /// The `[[provider]]` table of a provider added on the page.
    pub definition: Option<String>,
    pub updated_at: chrono::NaiveDateTime,
}

fn binding(name: &str) -> Binding<'_> {
    Binding {
        table: "provider_settings",
        row: name,
        field: "client_secret",
    }
}

pub fn seal_secret(vault: &Vault, name: &str, secret: &SecretString) -> Result<String, VaultError> {
    vault.seal(secret, &binding(name))
}

impl Row {
    /// What the registry lays over the provider's definition. A secret that no longer
    /// opens (its key was rotated away) counts as not set, with a warning.
    pub fn settings(&self, vault: &Vault) -> StoredSettings {
        let client_secret = self.client_secret.as_ref().and_then(|sealed| {
            vault
                .open(sealed, &binding(&self.name))
                .map_err(|e| {
                    tracing::warn!(provider = %self.name, error = %e, "the stored client secret does not open; set it again on /admin/providers");
                })
                .ok()
        });
        StoredSettings {
            enabled: self.enabled,
            client_id: self.client_id.clone(),
            client_secret,
            scopes: self
                .scopes
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            authorize_params: self
                .authorize_params
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        }
    }
}

pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<Row>> {
    provider_settings::table
        .order(provider_settings::name)
        .select(Row::as_select())
        .load(conn)
}

pub fn find(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Row>> {
    provider_settings::table
        .find(name)
        .select(Row::as_select())
        .first(conn)
        .optional()
}

/// Writes the row whole (inserted the first time).
pub fn save(conn: &mut DbConnection, row: &Row) -> QueryResult<()> {
    let values = (
        provider_settings::enabled.eq(row.enabled),
        provider_settings::client_id.eq(&row.client_id),
        provider_settings::client_secret.eq(&row.client_secret),
        provider_settings::scopes.eq(&row.scopes),
        provider_settings::authorize_params.eq(&row.authorize_params),
        provider_settings::definition.eq(&row.definition),
        provider_settings::updated_at.eq(crate::db::now()),
    );
    let updated = diesel::update(provider_settings::table.find(&row.name))
        .set(values)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(provider_settings::table)
            .values((provider_settings::name.eq(&row.name), values))
            .execute(conn)?;
    }
    Ok(())
}

pub fn delete(conn: &mut DbConnection, name: &str) -> QueryResult<usize> {
    diesel::delete(provider_settings::table.find(name)).execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EncryptionKey;
    use secrecy::ExposeSecret;

    #[test]
    fn a_secret_opens_only_for_its_provider() {
        let vault = Vault::new(&EncryptionKey::generate(), None);
        let sealed = seal_secret(&vault, "acme", &SecretString::from("s3cret")).unwrap();
        assert!(!sealed.contains("s3cret"));
        let row = |name: &str| Row {
            name: name.into(),
            client_secret: Some(sealed.clone()),
            ..Row::default()
        };
        let opened = row("acme").settings(&vault).client_secret.unwrap();
        assert_eq!(opened.expose_secret(), "s3cret");
        assert!(
            row("globex").settings(&vault).client_secret.is_none(),
            "copied to another provider's row, it does not open"
        );
    }
}
