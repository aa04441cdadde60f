//! When the database is gone or cannot be written: telling those errors apart from bugs
//! (pages and the API answer them 503, not 500), evicting dead connections from the pool,
//! and not making every request wait the whole pool timeout while the server is down.

use super::DbConnection;
use diesel::result::{DatabaseErrorKind, Error};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a page or an API caller is told while the database is gone or cannot be written.
pub const UNAVAILABLE_MESSAGE: &str = "the database is unavailable; try again later";

/// An error that says only that: the session store returns it, so the middleware outside
/// the session layer (which sees nothing but the error's text) can answer 503.
#[derive(Debug, thiserror::Error)]
#[error("{UNAVAILABLE_MESSAGE}")]
pub struct Unavailable;

/// `Unavailable` for an outage, else the error itself.
pub fn classify<E: Into<anyhow::Error>>(error: super::RunError<E>) -> anyhow::Error {
    match error {
        super::RunError::Pool(_) => Unavailable.into(),
        super::RunError::Work(e) => {
            let e = e.into();
            match e.downcast_ref::<Error>() {
                Some(query) if is_unavailable(query) => Unavailable.into(),
                _ => e,
            }
        }
        super::RunError::Task(e) => anyhow::anyhow!("background task failed: {e}"),
    }
}

/// How long a request waits for a connection while the last attempt to open one failed:
/// the database is down, and an answer in a second beats one after the full timeout.
pub const WAIT_WHILE_DOWN: Duration = Duration::from_secs(1);

/// What the server's error messages say when it is away (PostgreSQL stopped, restarted,
/// unreachable) or cannot store anything (SQLite: disk full, read-only file or folder).
const UNAVAILABLE: [&str; 11] = [
    "server closed the connection",
    "no connection to the server",
    "terminating connection",
    "the database system is",
    "could not connect to server",
    "connection to server",
    "database or disk is full",
    "attempt to write a readonly database",
    "unable to open database file",
    "disk i/o error",
    "readonly database",
];

/// Whether a query failed because the database is unavailable, not because of the query.
pub fn is_unavailable(error: &Error) -> bool {
    match error {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            UNAVAILABLE.iter().any(|m| message.contains(m))
        }
        _ => false,
    }
}

/// Whether a PostgreSQL connection's socket is closed. A connection whose server went
/// away is not "broken" for diesel while no transaction is open, so the pool would keep
/// handing it out after the server is back; PQconsumeInput (behind
/// `notifications_iter`) is one non-blocking read and fails on a closed socket. Pool
/// connections never LISTEN, so no notification is consumed.
pub fn socket_closed(conn: &mut DbConnection) -> bool {
    match conn {
        DbConnection::Postgresql(pg) => pg.notifications_iter().next().is_some_and(|r| r.is_err()),
        DbConnection::Sqlite(_) => false,
    }
}

/// Whether the last attempt to open a connection failed, to log the moments the database
/// goes away and comes back once each (not once per attempt).
#[derive(Default)]
pub struct Reachability {
    down: AtomicBool,
}

impl Reachability {
    pub fn record(&self, opened: bool) {
        let was_down = self.down.swap(!opened, Ordering::SeqCst);
        match (was_down, opened) {
            (false, false) => tracing::error!("the database cannot be reached"),
            (true, true) => tracing::info!("the database is reachable again"),
            _ => {}
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

/// Refuses to start on a SQLite file, or a folder for its WAL files, that cannot be
/// written, naming the file: otherwise the first write of the first request would fail.
pub fn check_sqlite_writable(path: &str) -> anyhow::Result<()> {
    if path == ":memory:" {
        return Ok(());
    }
    let file = std::path::Path::new(path);
    let read_only = |what: &str, e: std::io::Error| {
        anyhow::anyhow!(
            "DATABASE_URL: the SQLite {what} of {path} is read-only ({e}); connecthub writes \
             the database file and, beside it, its -wal and -shm files"
        )
    };
    if file.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(file)
            .map_err(|e| read_only("file", e))?;
    }
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let probe = dir.join(format!(".connecthub-write-check-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| read_only("folder", e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_string()))
    }

    #[test]
    fn outages_are_told_apart_from_bad_queries() {
        for message in [
            "server closed the connection unexpectedly",
            "terminating connection due to administrator command",
            "database or disk is full",
            "attempt to write a readonly database",
        ] {
            assert!(is_unavailable(&database_error(
                DatabaseErrorKind::Unknown,
                message
            )));
        }
        assert!(is_unavailable(&database_error(
            DatabaseErrorKind::ClosedConnection,
            "x"
        )));
        assert!(!is_unavailable(&database_error(
            DatabaseErrorKind::UniqueViolation,
            "duplicate key value"
        )));
        assert!(!is_unavailable(&database_error(
            DatabaseErrorKind::Unknown,
            "syntax error at or near"
        )));
        assert!(!is_unavailable(&Error::NotFound));
    }

    #[test]
    fn reachability_follows_the_last_attempt() {
        let reachability = Reachability::default();
        assert!(!reachability.is_down());
        reachability.record(false);
        assert!(reachability.is_down());
        reachability.record(true);
        assert!(!reachability.is_down());
    }
}
