//! The database: one connection type for SQLite and PostgreSQL, its pool and migrations.
//!
//! The backend is chosen from the URL scheme (never by trial and error, which would hide
//! the real connection error), and every query runs on a blocking thread because diesel
//! is synchronous.

pub mod outage;
pub mod params;
pub mod plan;
pub mod schema;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Settings applied to every SQLite connection when it is opened. `journal_size_limit`
/// makes SQLite cut the WAL file back to 64 MiB whenever it starts over after a checkpoint
/// (without it the file keeps its largest size for good).
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
     PRAGMA journal_size_limit = 67108864;";

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Which database a `DATABASE_URL` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    /// A file path (`sqlite://` or `sqlite:` prefixes removed).
    Sqlite(String),
}

impl DatabaseUrl {
    /// Reads a `DATABASE_URL`: a `postgres://` URL or a SQLite path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        if raw.contains("://") && !raw.starts_with("sqlite://") {
            return Err("must be a SQLite file path or a postgres:// URL".into());
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        Ok(Self::Sqlite(path.to_string()))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// Opens connections of the backend the URL names and prepares SQLite ones.
pub struct ConnectionManager {
    url: DatabaseUrl,
    reachability: outage::Reachability,
}

impl ConnectionManager {
    fn open(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn =
                    PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                // PostgreSQL compiles a query whose estimated cost passes jit_above_cost.
                // Ours are bounded reads (LIMIT 1,001 counts, pages of 25) over big tables,
                // costed as if read whole: the compiling took longer than the reading (an
                // audit actor filter at ten million entries, 61 ms with JIT, 20 without).
                conn.batch_execute("SET jit = off")
                    .map_err(r2d2::Error::QueryError)?;
                conn.set_instrumentation(count_statements);
                Ok(DbConnection::Postgresql(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn =
                    SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(r2d2::Error::QueryError)?;
                conn.set_instrumentation(count_statements);
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// Statements this process sent to its database (transaction control included), for
/// `/metrics`: benchmarks divide it by the work done (queries per refresh, say).
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_statements(event: diesel::connection::InstrumentationEvent<'_>) {
    if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
        STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How many statements pooled connections have sent since the process started.
pub fn statements_sent() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        let opened = self.open();
        self.reachability.record(opened.is_ok());
        opened
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        r2d2::R2D2Connection::is_broken(conn) || outage::socket_closed(conn)
    }
}

/// Builds the pool; fails with the real reason when the database cannot be reached.
pub fn connect(url: &DatabaseUrl, max_size: u32) -> anyhow::Result<DbPool> {
    if let DatabaseUrl::Sqlite(path) = url {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            }
        }
        outage::check_sqlite_writable(path)?;
    }
    let manager = ConnectionManager {
        url: url.clone(),
        reachability: Default::default(),
    };
    // Open one connection first so a wrong URL reports its own error, not a pool timeout.
    manager
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        .test_on_check_out(false)
        .build(manager)?;
    Ok(pool)
}

/// Copies the SQLite WAL into the database and empties it; run periodically. SQLite's own
/// checkpoints on commit never finish while readers keep arriving, and the WAL then grows
/// without bound; this one waits (up to the busy timeout) for them. No-op on PostgreSQL.
pub fn checkpoint(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(sqlite) => sqlite.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)"),
        DbConnection::Postgresql(_) => Ok(()),
    }
}

/// Serialises migrations of instances starting together on one PostgreSQL (a rolling
/// upgrade): the second waits, then finds nothing left to run.
const MIGRATION_LOCK_ID: i64 = 0x0063_6f6e_6e6d_6967;

/// Applies the migrations of the connection's backend that have not run yet.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<()> {
    let result = match conn {
        DbConnection::Postgresql(c) => {
            let lock = format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})");
            c.batch_execute(&lock)
                .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
            let ran = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
            let unlock = format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})");
            let _ = c.batch_execute(&unlock);
            ran
        }
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    refresh_statistics(conn).map_err(|e| anyhow::anyhow!("ANALYZE failed: {e}"))
}

/// SQLite's planner needs table statistics to tell a selective index from one that is
/// not (without them it takes an owner's 50,000 clients for ten): `PRAGMA optimize`
/// gathers them for tables that changed much, sampling (analysis_limit) so a start-up
/// over a million rows stays short. PostgreSQL's autovacuum keeps its own.
fn refresh_statistics(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            c.batch_execute("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002")
        }
        DbConnection::Postgresql(_) => Ok(()),
    }
}

/// Gathers the planner's statistics now, after a bulk load (`connecthub seed`). On
/// PostgreSQL also VACUUM, which marks the new rows' pages all-visible as autovacuum
/// would in time: until then every index-only scan reads the table too (the tag filter's
/// scan over a million fresh clients took 224 ms, fetching 50,294 rows from the heap).
pub fn analyze(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => c.batch_execute("PRAGMA analysis_limit = 1000; ANALYZE"),
        DbConnection::Postgresql(c) => c.batch_execute("VACUUM (ANALYZE)"),
    }
}

/// Runs `work` in a transaction. On SQLite the transaction starts with `BEGIN IMMEDIATE`:
/// a deferred one that reads first could not upgrade to a writer once another connection
/// has committed (SQLITE_BUSY_SNAPSHOT), whereas an immediate one waits its turn. Nested
/// calls become savepoints on both backends.
pub fn transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let outermost_sqlite = match conn {
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::transaction_manager_status_mut(inner)
                .transaction_depth()?
                .is_none()
        }
        DbConnection::Postgresql(_) => false,
    };
    if !outermost_sqlite {
        return conn.transaction(work);
    }
    if let DbConnection::Sqlite(inner) = &mut *conn {
        AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    }
    let result = work(conn);
    let DbConnection::Sqlite(inner) = conn else {
        unreachable!("checked above")
    };
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(inner)?;
            Ok(value)
        }
        Err(error) => {
            let _ = AnsiTransactionManager::rollback_transaction(inner);
            Err(error)
        }
    }
}

/// Runs the same diesel code on the concrete connection, for what diesel cannot express
/// over the MultiConnection backend (multi-row INSERT, ON CONFLICT DO NOTHING).
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$inner:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql($inner) => $body,
            $crate::db::DbConnection::Sqlite($inner) => $body,
        }
    };
}

/// Runs blocking database work on the blocking thread pool.
pub async fn run<T, E, F>(pool: &DbPool, work: F) -> Result<T, RunError<E>>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = checkout(&pool)?;
        let result = work(&mut conn).map_err(RunError::Work);
        run_when_done();
        result
    })
    .await
    .map_err(RunError::Task)?
}

/// A connection from the pool; while the database is down, after a short wait only. The
/// pool keeps `max_size` connections open, so none at all means none could be opened.
pub fn checkout(pool: &DbPool) -> Result<PooledConnection, r2d2::PoolError> {
    if pool.state().connections == 0 {
        pool.get_timeout(outage::WAIT_WHILE_DOWN)
    } else {
        pool.get()
    }
}

thread_local! {
    static WHEN_DONE: std::cell::RefCell<Vec<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` once the current `run` work has returned, i.e. after its transaction committed
/// (or rolled back): code inside a transaction uses it to announce what the commit makes
/// visible (a job queued) without announcing it too early.
pub fn when_done(f: impl FnOnce() + 'static) {
    WHEN_DONE.with(|hooks| hooks.borrow_mut().push(Box::new(f)));
}

fn run_when_done() {
    let hooks = WHEN_DONE.with(|hooks| std::mem::take(&mut *hooks.borrow_mut()));
    for hook in hooks {
        hook();
    }
}

/// Why `run` failed: the work's own error, or no connection, or the blocking task died.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    #[error(transparent)]
    Work(E),
    #[error("database unavailable")]
    Pool(#[from] r2d2::PoolError),
    #[error("background task failed: {0}")]
    Task(tokio::task::JoinError),
}

/// A failure of database work, for domain errors that carry one without knowing HTTP: the
/// pages answer `Pool` with 503 and the others with 500.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error")]
    Query(#[from] diesel::result::Error),
    #[error("database unavailable")]
    Pool(#[from] r2d2::PoolError),
    #[error("internal error")]
    Other(#[from] anyhow::Error),
}

impl From<tokio::task::JoinError> for DbError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Other(anyhow::anyhow!("background task failed: {error}"))
    }
}

impl<E: Into<DbError>> From<RunError<E>> for DbError {
    fn from(error: RunError<E>) -> Self {
        match error {
            RunError::Work(e) => e.into(),
            RunError::Pool(e) => Self::Pool(e),
            RunError::Task(e) => e.into(),
        }
    }
}

/// Lets a domain error with a `DbError` variant take `db::run(..).await?` in its functions.
#[macro_export]
macro_rules! from_run_error {
    ($error:ty, $variant:ident) => {
        impl<E: Into<$crate::db::DbError>> From<$crate::db::RunError<E>> for $error {
            fn from(error: $crate::db::RunError<E>) -> Self {
                Self::$variant(error.into())
            }
        }
    };
}

/// The current time in UTC, truncated to microseconds so both backends store the same value.
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::microseconds(1)).unwrap_or(now)
}

/// A LIKE pattern (with `ESCAPE '\\'`) matching values that contain `text`: the wildcards a
/// person typed stay plain characters.
pub fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn the_sqlite_wal_is_bounded_and_emptied_by_a_checkpoint() {
        use diesel::connection::SimpleConnection;
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Limit {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            journal_size_limit: i64,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db").display().to_string();
        let pool = super::connect(&DatabaseUrl::Sqlite(path.clone()), 2).unwrap();
        let mut conn = pool.get().unwrap();
        let super::DbConnection::Sqlite(sqlite) = &mut *conn else {
            unreachable!()
        };
        let limit: Limit = diesel::sql_query("PRAGMA journal_size_limit")
            .get_result(sqlite)
            .unwrap();
        assert_eq!(limit.journal_size_limit, 64 * 1024 * 1024);
        // A reader holding a snapshot keeps commit-time checkpoints from finishing.
        let mut reader = pool.get().unwrap();
        reader
            .batch_execute("CREATE TABLE t (x BLOB); BEGIN; SELECT count(*) FROM t;")
            .unwrap();
        for _ in 0..200 {
            sqlite
                .batch_execute("INSERT INTO t VALUES (randomblob(10000))")
                .unwrap();
        }
        let wal = || std::fs::metadata(format!("{path}-wal")).unwrap().len();
        assert!(wal() > 1_000_000, "{}", wal());
        reader.batch_execute("COMMIT").unwrap();
        super::checkpoint(&mut conn).unwrap();
        assert_eq!(wal(), 0);
    }

    #[test]
    fn url_scheme_picks_the_backend() {
        assert!(DatabaseUrl::parse("postgres://u@h/db")
            .unwrap()
            .is_postgres());
        assert!(DatabaseUrl::parse("postgresql://u@h/db")
            .unwrap()
            .is_postgres());
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db").unwrap(),
            DatabaseUrl::Sqlite("data/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("data/x.db").unwrap(),
            DatabaseUrl::Sqlite("data/x.db".into())
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse(" ").is_err());
    }

    #[test]
    fn contains_patterns_keep_typed_wildcards_plain() {
        assert_eq!(super::contains_pattern(r"50%_a\b"), r"%50\%\_a\\b%");
        assert_eq!(super::contains_pattern("Ann"), "%Ann%");
    }
}
