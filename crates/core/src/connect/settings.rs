//! The hosted connect page's branding (product name, logo URL, accent colour) and the
//! secret that signs its return URLs: one row, created with defaults and a random secret
//! the first time it is read. The secret is sealed by the vault like every other secret.

use crate::db::schema::connect_settings;
use crate::db::{DbConnection, DbError};
use crate::vault::{Binding, Vault};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};

const ROW: i32 = 1;
const BINDING: Binding<'static> = Binding {
    table: "connect_settings",
    row: "1",
    field: "signing_secret",
};
pub const DEFAULT_PRODUCT_NAME: &str = "connecthub";
pub const DEFAULT_ACCENT: &str = "#2563eb";

/// The branding as the hosted page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    pub product_name: String,
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    pub accent_color: String,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            product_name: DEFAULT_PRODUCT_NAME.into(),
            logo_url: None,
            accent_color: DEFAULT_ACCENT.into(),
        }
    }
}

/// Branding and the signing secret.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    pub branding: Branding,
    pub signing_secret: SecretString,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = connect_settings)]
struct Row {
    product_name: String,
    logo_url: Option<String>,
    accent_color: String,
    signing_secret: String,
}

fn new_secret() -> SecretString {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    SecretString::from(format!("chs_{}", hex::encode(bytes)))
}

fn seal(vault: &Vault, secret: &SecretString) -> Result<String, DbError> {
    vault
        .seal(secret, &BINDING)
        .map_err(|e| DbError::Other(e.into()))
}

/// The settings, created with the defaults and a new secret when there are none yet.
pub fn load(conn: &mut DbConnection, vault: &Vault) -> Result<ConnectSettings, DbError> {
    let row: Option<Row> = connect_settings::table
        .find(ROW)
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    let row = match row {
        Some(row) => row,
        None => {
            let defaults = Branding::default();
            let sealed = seal(vault, &new_secret())?;
            // Two first readers may race: the loser's insert is ignored and both read
            // the winner's row.
            let _ = diesel::insert_into(connect_settings::table)
                .values((
                    connect_settings::id.eq(ROW),
                    connect_settings::product_name.eq(&defaults.product_name),
                    connect_settings::logo_url.eq(None::<String>),
                    connect_settings::accent_color.eq(&defaults.accent_color),
                    connect_settings::signing_secret.eq(sealed),
                    connect_settings::updated_at.eq(crate::db::now()),
                ))
                .execute(conn);
            connect_settings::table
                .find(ROW)
                .select(Row::as_select())
                .first(conn)?
        }
    };
    let signing_secret = vault
        .open(&row.signing_secret, &BINDING)
        .map_err(|e| DbError::Other(e.into()))?;
    Ok(ConnectSettings {
        branding: Branding {
            product_name: row.product_name,
            logo_url: row.logo_url,
            accent_color: row.accent_color,
        },
        signing_secret,
    })
}

/// Stores new branding (already validated).
pub fn save_branding(
    conn: &mut DbConnection,
    vault: &Vault,
    branding: &Branding,
) -> Result<(), DbError> {
    load(conn, vault)?;
    diesel::update(connect_settings::table.find(ROW))
        .set((
            connect_settings::product_name.eq(&branding.product_name),
            connect_settings::logo_url.eq(&branding.logo_url),
            connect_settings::accent_color.eq(&branding.accent_color),
            connect_settings::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Replaces the signing secret with a new random one; returns it.
pub fn rotate_secret(conn: &mut DbConnection, vault: &Vault) -> Result<SecretString, DbError> {
    load(conn, vault)?;
    let secret = new_secret();
    diesel::update(connect_settings::table.find(ROW))
        .set((
            connect_settings::signing_secret.eq(seal(vault, &secret)?),
            connect_settings::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(secret)
}

/// Re-seals the signing secret under the vault's current key (`connecthub key rotate`);
/// false when there are no settings yet.
pub fn reseal(conn: &mut DbConnection, vault: &Vault) -> Result<bool, DbError> {
    let sealed: Option<String> = connect_settings::table
        .find(ROW)
        .select(connect_settings::signing_secret)
        .first(conn)
        .optional()?;
    let Some(sealed) = sealed else {
        return Ok(false);
    };
    let secret = vault
        .open(&sealed, &BINDING)
        .map_err(|e| DbError::Other(e.into()))?;
    diesel::update(connect_settings::table.find(ROW))
        .set(connect_settings::signing_secret.eq(seal(vault, &secret)?))
        .execute(conn)?;
    Ok(true)
}

/// Reads the admin form: a product name (1–60 characters), an https logo URL or none, and
/// a `#rrggbb` colour.
pub fn parse_branding(name: &str, logo_url: &str, accent: &str) -> Result<Branding, String> {
    let name = crate::input::SingleLine::<60>::parse(name)
        .map_err(|p| format!("The product name {p}."))?;
    if name.as_str().is_empty() {
        return Err("Enter a product name.".into());
    }
    let logo_url = logo_url.trim();
    let logo_url = if logo_url.is_empty() {
        None
    } else {
        let url = url::Url::parse(logo_url)
            .ok()
            .filter(|u| u.scheme() == "https" && u.host().is_some() && logo_url.len() <= 500)
            .ok_or("The logo URL must be an https:// address (at most 500 characters).")?;
        Some(url.to_string())
    };
    let accent = accent.trim().to_lowercase();
    let is_colour = accent.len() == 7
        && accent.starts_with('#')
        && accent[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !is_colour {
        return Err("The accent colour must look like #2563eb.".into());
    }
    Ok(Branding {
        product_name: name.into_string(),
        logo_url,
        accent_color: accent,
    })
}

/// The secret as the admin page shows it.
pub fn reveal(settings: &ConnectSettings) -> &str {
    settings.signing_secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branding_is_checked() {
        let ok = parse_branding(" Acme ", "https://acme.example/logo.png", "#AABBCC").unwrap();
        assert_eq!(ok.product_name, "Acme");
        assert_eq!(ok.accent_color, "#aabbcc");
        assert!(parse_branding("", "", "#aabbcc").is_err());
        assert!(parse_branding("A", "http://x/logo.png", "#aabbcc").is_err());
        assert!(parse_branding("A", "javascript:alert(1)", "#aabbcc").is_err());
        assert!(parse_branding("A", "", "red").is_err());
        assert!(parse_branding("A\u{0}", "", "#aabbcc").is_err());
    }
}
