//! A real `connecthub demo` process, for tests that send it signals.

use super::*;

/// A real `connecthub demo` process on a fresh database of `backend`, for tests that send
/// it signals; `app` drives it over HTTP and reads its database. Killed when dropped.
pub struct TestProcess {
    pub child: std::process::Child,
    pub app: TestApp,
    _dir: tempfile::TempDir,
    /// How the process was started, to start it again on the same database and port.
    command: Vec<(String, String)>,
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestProcess {
    /// Sends SIGTERM, as a service manager stopping the server would.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Kills the process with SIGKILL (a crash: nothing runs on the way out) and waits.
    pub fn crash(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// Starts the process again, same settings, database and port, and waits until it
    /// answers.
    pub async fn restart(&mut self) {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"));
        command
            .arg("demo")
            .current_dir(self._dir.path())
            .env_clear();
        for (k, v) in &self.command {
            command.env(k, v);
        }
        self.child = with_output_to(&mut command, self._dir.path())
            .spawn()
            .expect("start connecthub demo");
        wait_until_up(
            &self.app.client,
            &self.app.address,
            self._dir.path(),
            &mut self.child,
        )
        .await;
    }

    /// What the process wrote to stdout and stderr so far (its log).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("output.log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Waits for the process to exit (at most `limit`); returns whether it exited cleanly.
    pub async fn wait_for_exit(&mut self, limit: std::time::Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the process did not exit within {limit:?}");
    }
}

/// Starts `connecthub demo` with `env` (on top of the test settings) and waits until it
/// answers. `{sandbox}` in a value stands for `provider_host`'s address, so the process can
/// use another app's sandbox as its providers and the calls it makes stay countable there
/// after it has stopped.
pub async fn spawn_process(
    backend: Backend,
    provider_host: &TestApp,
    env: &[(&str, &str)],
) -> TestProcess {
    let database = TestDatabase::create(backend);
    start_process(backend, database, provider_host, env).await
}

/// `spawn_process` on a PostgreSQL database the test made itself (`url`).
pub async fn spawn_process_on(
    url: &str,
    provider_host: &TestApp,
    env: &[(&str, &str)],
) -> TestProcess {
    let database = TestDatabase::Elsewhere(url.to_string());
    start_process(Backend::Postgres, database, provider_host, env).await
}

async fn start_process(
    backend: Backend,
    database: TestDatabase,
    provider_host: &TestApp,
    env: &[(&str, &str)],
) -> TestProcess {
    let database = std::sync::Arc::new(database);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let sandbox = |path: &str| format!("{}/sandbox/klaviyo{path}", provider_host.address);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connecthub"));
    command
        .arg("demo")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("PUBLIC_URL", &address)
        .env("DATABASE_URL", database.url())
        .env("ENCRYPTION_KEY", TEST_KEY)
        .env("LOG_LEVEL", "warn")
        .env("PROVIDER_RETRY_DELAY_MS", "20")
        // As in `test_config`: these tests load the proxy far past Klaviyo's accounts tier.
        .env("PROVIDER_BUDGETS", "off")
        .env("KLAVIYO_AUTHORIZE_URL", sandbox("/oauth/authorize"))
        .env("KLAVIYO_TOKEN_URL", sandbox("/oauth/token"))
        .env("KLAVIYO_REVOKE_URL", sandbox("/oauth/revoke"))
        .env("KLAVIYO_API_BASE_URL", sandbox(""))
        .env("KLAVIYO_ISSUER", sandbox(""))
        .env(
            "KUSTOMER_API_BASE_URL",
            format!("{}/sandbox/kustomer", provider_host.address),
        );
    for (k, v) in env {
        command.env(k, v.replace("{sandbox}", &provider_host.address));
    }
    let settings: Vec<(String, String)> = command
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
        .collect();
    let mut child = with_output_to(&mut command, dir.path())
        .spawn()
        .expect("start connecthub demo");
    let client = new_client();
    wait_until_up(&client, &address, dir.path(), &mut child).await;
    let url = connecthub::db::DatabaseUrl::parse(&database.url()).expect("a database URL");
    let pool = connecthub::db::connect(&url, 2).expect("open the process's database");
    let app = TestApp {
        address,
        port,
        pool,
        backend,
        client,
        database_url: database.url(),
        _database: database,
        server: None,
    };
    TestProcess {
        child,
        app,
        _dir: dir,
        command: settings,
    }
}

/// Sends the process's stdout and stderr (its log) to `output.log` in `dir`, appending.
fn with_output_to<'a>(
    command: &'a mut std::process::Command,
    dir: &std::path::Path,
) -> &'a mut std::process::Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("output.log"))
        .expect("open the process's log");
    let copy = log.try_clone().expect("clone the log handle");
    command.stdout(copy).stderr(log)
}

/// Waits until the process answers; if it never does, kills it (a panicking test must not
/// leave it running) and fails with its output.
async fn wait_until_up(
    client: &reqwest::Client,
    address: &str,
    dir: &std::path::Path,
    child: &mut std::process::Child,
) {
    for _ in 0..200 {
        if client.get(format!("{address}/login")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let output = std::fs::read_to_string(dir.join("output.log")).unwrap_or_default();
    panic!("connecthub demo does not answer on {address}; its output:\n{output}");
}
