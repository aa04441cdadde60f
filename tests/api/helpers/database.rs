//! The database a test runs on: a temp SQLite file or a fresh PostgreSQL database, and
//! whether PostgreSQL is there at all.

use super::*;

/// Where the PostgreSQL server for tests is (trust auth); override with TEST_POSTGRES_URL.
fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Local test connections skip TLS: libpq's OpenSSL clean-up at process exit can crash
/// ("double free") while servers of finished tests still hold connections.
const PG_OPTIONS: &str = "?sslmode=disable";

/// PostgreSQL tests run when the server answers, and must run when CI=true.
pub fn postgres_available() -> bool {
    let url = format!("{}/postgres{PG_OPTIONS}", postgres_server());
    match PgConnection::establish(&url) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but PostgreSQL at {} is not reachable: {e}",
                postgres_server()
            )
        }
        Err(_) => {
            skipped::record(
                "PostgreSQL",
                format!(
                    "PostgreSQL not reachable at {}; start it or set TEST_POSTGRES_URL",
                    postgres_server()
                ),
            );
            false
        }
    }
}

/// Tests that passed without running because something they need is missing. libtest
/// keeps what a test prints to show it only if the test fails, so a skip would go unseen
/// among the passes: the count and the reason are written once, after libtest's own
/// summary, by a handler that runs when the test process exits.
pub mod skipped {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::sync::Mutex;

    /// What is missing → (tests skipped, why).
    static SKIPS: Mutex<BTreeMap<&'static str, (usize, String)>> = Mutex::new(BTreeMap::new());

    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }

    /// Counts one test that returns early because `what` is missing.
    pub fn record(what: &'static str, why: String) {
        let mut skips = SKIPS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if skips.is_empty() {
            // SAFETY: `report` is a plain function that neither panics nor unwinds.
            unsafe { atexit(report) };
        }
        skips.entry(what).or_insert((0, why)).0 += 1;
    }

    /// Straight to the process's stderr: libtest has finished (and only `print!` and
    /// `eprint!` were ever captured, not writes to the handle).
    extern "C" fn report() {
        let Ok(skips) = SKIPS.try_lock() else { return };
        let mut text = String::new();
        for (what, (count, why)) in skips.iter() {
            text.push_str(&format!(
                "SKIPPED: {count} {what} test(s) passed without running: {why} \
                 (under CI=true they fail instead)\n"
            ));
        }
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// A database that exists for one test and is removed afterwards.
pub(super) enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir, String),
    Postgres(String),
    /// A database the test made elsewhere (a private cluster) and removes itself.
    Elsewhere(String),
}

impl TestDatabase {
    pub(super) fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("connecthub.db").display().to_string();
                Self::Sqlite(dir, path)
            }
            Backend::Postgres => {
                let name = format!("connecthub_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin =
                    PgConnection::establish(&format!("{}/postgres{PG_OPTIONS}", postgres_server()))
                        .expect("connect to PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create test database");
                Self::Postgres(name)
            }
        }
    }

    pub(super) fn url(&self) -> String {
        match self {
            Self::Sqlite(_, path) => path.clone(),
            Self::Postgres(name) => format!("{}/{name}{PG_OPTIONS}", postgres_server()),
            Self::Elsewhere(url) => url.clone(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres(name) = self {
            later_drops::drop_database(std::mem::take(name));
        }
    }
}

/// A test's database is dropped a few seconds after the test lets go of it, on a thread of
/// its own. Dropping it at once cut it away from under the stopping app: its last flushes
/// and the refresher then waited on the pool's 10-s connection timeout, and the test's
/// runtime waited for them — 10 s at the end of every PostgreSQL test. The process waits
/// for the pending drops when it exits, so no test database is left behind.
mod later_drops {
    use super::*;
    use std::sync::{Mutex, Once};
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// Longer than a stopped test app takes to flush and end its loops.
    const DELAY: Duration = Duration::from_secs(5);

    static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());
    static WAIT_AT_EXIT: Once = Once::new();

    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }

    pub(super) fn drop_database(name: String) {
        let drop_later = std::thread::spawn(move || {
            std::thread::sleep(DELAY);
            if let Ok(mut admin) =
                PgConnection::establish(&format!("{}/postgres{PG_OPTIONS}", postgres_server()))
            {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        });
        // SAFETY: `wait_for_all` is a plain function that does not unwind.
        WAIT_AT_EXIT.call_once(|| unsafe {
            atexit(wait_for_all);
        });
        let mut pending = PENDING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.retain(|handle| !handle.is_finished());
        pending.push(drop_later);
    }

    extern "C" fn wait_for_all() {
        let pending = match PENDING.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        for handle in pending {
            let _ = handle.join();
        }
    }
}
