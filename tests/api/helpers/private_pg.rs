//! A PostgreSQL cluster of one test's own (`initdb`, `pg_ctl` on a free port in a temp
//! dir), for tests that stop the database server: the shared server stays up for the rest.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    /// initdb refuses to run as root: then every command runs as the `postgres` user.
    as_postgres: bool,
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

/// The newest /usr/lib/postgresql/*/bin holding initdb.
fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

impl PrivateCluster {
    /// Creates and starts a cluster; None (the test is skipped and counted) when the
    /// PostgreSQL server programs are not installed — a failure instead under CI=true.
    pub fn start() -> Option<Self> {
        let Some(bin) = server_binaries() else {
            let why = "initdb not found under /usr/lib/postgresql/*/bin \
                       (apt-get install postgresql)"
                .to_string();
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but {why}");
            }
            super::skipped::record("private PostgreSQL cluster", why);
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            bin,
            dir: tempfile::tempdir().expect("temp dir"),
            port,
            as_postgres: running_as_root(),
        };
        if cluster.as_postgres {
            let dir = cluster.dir.path().display().to_string();
            let owned = Command::new("chown")
                .args(["postgres:postgres", &dir])
                .status();
            assert!(owned.is_ok_and(|s| s.success()), "chown {dir}");
        }
        let data = cluster.data().display().to_string();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_again();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// postgres:// URL of database `name` in this cluster.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let started = self.pg_ctl(&["-o", &options, "-l", &log, "-w", "start"]);
        assert!(started, "pg_ctl start failed: {}", self.log());
    }

    /// Stops the server at once, as a crash or a pulled cable would (no shutdown checkpoint,
    /// every connection cut).
    pub fn stop_immediately(&self) {
        assert!(
            self.pg_ctl(&["-m", "immediate", "-w", "stop"]),
            "pg_ctl stop"
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        let data = self.data().display().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.command("pg_ctl", &all)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program, args).output().expect(program);
        assert!(
            out.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(Path::new("/"));
        command
    }
}
