//! `connecthub backup --to FILE`: a consistent copy of the live database.
//!
//! SQLite: `VACUUM INTO` writes a transactionally consistent copy while the server keeps
//! running (readers and writers go on; the copy is one snapshot). PostgreSQL: `pg_dump`
//! does the same job better than anything hand-written, so the command says how to run it
//! and, when `pg_dump` is installed, runs it and checks the dump with `pg_restore --list`.
//! The connection password goes to `pg_dump` through libpq's environment (`PGPASSWORD`),
//! never on its command line, where `ps` would show it.

use crate::db::DatabaseUrl;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists: choose a new file (a backup never overwrites one)")]
    Exists(PathBuf),
    #[error("the directory of {0} does not exist")]
    NoDirectory(PathBuf),
    #[error("the backup path must be valid UTF-8 without NUL or control characters")]
    BadPath,
    #[error("there is no SQLite database at {0}")]
    NoDatabase(String),
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("the copy failed: {0}")]
    Copy(String),
    #[error("pg_dump is not installed here; run on a machine that has it:\n  {0}")]
    NoPgDump(String),
    #[error("pg_dump failed ({status}): {stderr}")]
    PgDump { status: String, stderr: String },
    #[error("the dump does not read back with pg_restore --list: {0}")]
    Unreadable(String),
}

/// What a finished backup holds.
#[derive(Debug)]
pub struct Done {
    pub path: PathBuf,
    pub bytes: u64,
    /// SQLite: the copy's `PRAGMA integrity_check`; PostgreSQL: the objects in the dump.
    pub check: String,
}

/// Backs the database up into `to`, which must not exist yet.
pub fn backup(url: &DatabaseUrl, to: &Path) -> Result<Done, BackupError> {
    let to = checked_target(to)?;
    match url {
        DatabaseUrl::Sqlite(path) => sqlite(path, &to),
        DatabaseUrl::Postgres(url) => postgres(url, &to),
    }
}

/// The command an operator runs by hand (no secret in it: the URL stays in the variable).
pub fn pg_dump_command(to: &Path) -> String {
    format!(
        "pg_dump --format=custom --no-owner --file='{}' --dbname=\"$DATABASE_URL\"",
        to.display()
    )
}

fn checked_target(to: &Path) -> Result<PathBuf, BackupError> {
    let shown = to.to_str().ok_or(BackupError::BadPath)?;
    if shown.is_empty() || shown.chars().any(char::is_control) {
        return Err(BackupError::BadPath);
    }
    if to.symlink_metadata().is_ok() {
        return Err(BackupError::Exists(to.to_path_buf()));
    }
    let dir = match to.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(BackupError::NoDirectory(to.to_path_buf()));
    }
    Ok(to.to_path_buf())
}

fn sqlite(path: &str, to: &Path) -> Result<Done, BackupError> {
    if !Path::new(path).is_file() {
        return Err(BackupError::NoDatabase(path.to_string()));
    }
    let mut conn =
        SqliteConnection::establish(path).map_err(|e| BackupError::Open(e.to_string()))?;
    conn.batch_execute("PRAGMA busy_timeout = 10000;")
        .map_err(|e| BackupError::Open(e.to_string()))?;
    // A quoted SQL string literal: the path was checked for control characters, and a
    // quote is doubled. VACUUM INTO itself also refuses a file that appeared meanwhile.
    let literal = to.to_str().ok_or(BackupError::BadPath)?.replace('\'', "''");
    conn.batch_execute(&format!("VACUUM INTO '{literal}'"))
        .map_err(|e| BackupError::Copy(e.to_string()))?;
    let check = integrity(to)?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(Done {
        path: to.to_path_buf(),
        bytes,
        check,
    })
}

#[derive(QueryableByName)]
struct IntegrityRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

/// `PRAGMA integrity_check` of the copy: "ok" when it is sound.
fn integrity(copy: &Path) -> Result<String, BackupError> {
    let copy = copy.to_str().ok_or(BackupError::BadPath)?;
    let mut conn =
        SqliteConnection::establish(copy).map_err(|e| BackupError::Copy(e.to_string()))?;
    let rows: Vec<IntegrityRow> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .map_err(|e| BackupError::Copy(e.to_string()))?;
    let verdict: Vec<String> = rows.into_iter().map(|r| r.integrity_check).collect();
    if verdict != ["ok"] {
        return Err(BackupError::Copy(format!(
            "the copy fails PRAGMA integrity_check: {}",
            verdict.join("; ")
        )));
    }
    Ok("integrity_check ok".into())
}

fn postgres(url: &str, to: &Path) -> Result<Done, BackupError> {
    let mut dump = Command::new("pg_dump");
    dump.args(["--format=custom", "--no-owner", "--file"])
        .arg(to)
        .envs(libpq_env(url)?);
    let output = match dump.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoPgDump(pg_dump_command(to)))
        }
        Err(e) => return Err(BackupError::Copy(e.to_string())),
    };
    if !output.status.success() {
        let _ = std::fs::remove_file(to);
        return Err(BackupError::PgDump {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    let listed = Command::new("pg_restore")
        .arg("--list")
        .arg(to)
        .output()
        .map_err(|e| BackupError::Unreadable(e.to_string()))?;
    let listing = String::from_utf8_lossy(&listed.stdout);
    let tables = listing
        .lines()
        .filter(|l| l.contains(" TABLE DATA "))
        .count();
    if !listed.status.success() || bytes == 0 || tables == 0 {
        return Err(BackupError::Unreadable(
            String::from_utf8_lossy(&listed.stderr).trim().to_string(),
        ));
    }
    Ok(Done {
        path: to.to_path_buf(),
        bytes,
        check: format!("pg_restore --list reads {tables} tables' data"),
    })
}

/// The URL as libpq environment variables, so the password is not on a command line.
fn libpq_env(raw: &str) -> Result<Vec<(&'static str, String)>, BackupError> {
    let url =
        url::Url::parse(raw).map_err(|_| BackupError::Open("DATABASE_URL is not a URL".into()))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut env = Vec::new();
    if let Some(host) = url.host_str() {
        env.push(("PGHOST", host.trim_matches(['[', ']']).to_string()));
    }
    if let Some(port) = url.port() {
        env.push(("PGPORT", port.to_string()));
    }
    if !url.username().is_empty() {
        env.push(("PGUSER", decode(url.username())));
    }
    if let Some(password) = url.password() {
        env.push(("PGPASSWORD", decode(password)));
    }
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() {
        env.push(("PGDATABASE", decode(database)));
    }
    for (name, value) in url.query_pairs() {
        let variable = match name.as_ref() {
            "sslmode" => "PGSSLMODE",
            "sslrootcert" => "PGSSLROOTCERT",
            "sslcert" => "PGSSLCERT",
            "sslkey" => "PGSSLKEY",
            "host" => "PGHOST",
            "port" => "PGPORT",
            "user" => "PGUSER",
            "password" => "PGPASSWORD",
            "dbname" => "PGDATABASE",
            "application_name" => "PGAPPNAME",
            "connect_timeout" => "PGCONNECT_TIMEOUT",
            _ => continue,
        };
        env.push((variable, value.into_owned()));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_goes_to_pg_dump_as_libpq_variables() {
        let env =
            libpq_env("postgres://ch%40ops:p%2Fss@db.internal:6432/hub?sslmode=require").unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGHOST"), Some("db.internal"));
        assert_eq!(get("PGPORT"), Some("6432"));
        assert_eq!(get("PGUSER"), Some("ch@ops"));
        assert_eq!(get("PGPASSWORD"), Some("p/ss"));
        assert_eq!(get("PGDATABASE"), Some("hub"));
        assert_eq!(get("PGSSLMODE"), Some("require"));
        assert!(!pg_dump_command(Path::new("/b/x.dump")).contains("p/ss"));
    }

    #[test]
    fn a_backup_never_overwrites_and_wants_a_plain_path() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("taken.db");
        std::fs::write(&existing, "keep me").unwrap();
        assert!(matches!(
            checked_target(&existing),
            Err(BackupError::Exists(_))
        ));
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
        assert!(matches!(
            checked_target(&dir.path().join("no/such/dir/x.db")),
            Err(BackupError::NoDirectory(_))
        ));
        assert!(matches!(
            checked_target(&dir.path().join("a\nb.db")),
            Err(BackupError::BadPath)
        ));
    }
}
