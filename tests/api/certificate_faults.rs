//! A provider behind a bad certificate, on a real TLS listener (`openssl s_server` with a
//! certificate `openssl` makes for the test): one expired, one self-signed. Every token
//! and API call through those URLs fails in the handshake and is answered with a JSON 502
//! or 503, never a token; the connection keeps its refresh token and status, and works
//! again through the right URLs. Skipped when `openssl` is missing (a failure under CI=true).

use crate::helpers::Backend;
use crate::with_each_backend;
use connecthub::api_keys::Scope;
use connecthub::auth::users::Role;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

with_each_backend!(expired_and_self_signed_certificates_are_refused_and_nothing_is_lost);

async fn expired_and_self_signed_certificates_are_refused_and_nothing_is_lost(backend: Backend) {
    if !openssl_available() {
        return;
    }
    let app = crate::helpers::spawn_app_with(backend, &[("PROVIDER_TIMEOUT_SECS", "2")]).await;
    app.login_as(Role::Admin).await;
    assert_eq!(app.connect("klaviyo", Some("AcmeK1")).await.status(), 303);
    let id = app.clients().await.remove(0).id;
    let key = app.api_key(&Scope::ALL).await;
    let dir = tempfile::tempdir().unwrap();

    for kind in [Certificate::Expired, Certificate::SelfSigned] {
        let listener = TlsListener::start(dir.path(), kind);
        let https = |path: &str| format!("https://127.0.0.1:{}{path}", listener.port);
        let (token_url, api_url) = (https("/oauth/token"), https(""));
        let other = crate::helpers::instance_on_same_database(
            &app,
            &[
                ("KLAVIYO_TOKEN_URL", token_url.as_str()),
                ("KLAVIYO_API_BASE_URL", api_url.as_str()),
                ("PROVIDER_TIMEOUT_SECS", "2"),
            ],
        )
        .await;
        other.login_as(Role::Admin).await;
        // A refresh (the token endpoint) and a proxied call (the API), both through TLS.
        let sent = Instant::now();
        refused(kind, other.refresh_now("klaviyo", &id).await).await;
        refused(kind, other.proxy_get(&key, &id, "api/accounts/").await).await;
        assert!(sent.elapsed() < Duration::from_secs(50), "answered in time");
        assert!(
            listener.handshakes_seen(),
            "{kind:?}: the listener was reached"
        );
    }

    // Nothing was lost: the connection is not marked for reconnecting and, through the
    // right URLs, refreshes with the refresh token it held (a manual refresh: the failed
    // ones put background refreshes on backoff).
    let client = app.clients().await.remove(0);
    assert_ne!(
        client.status.as_str(),
        "needs_reauth",
        "{:?}",
        client.last_error
    );
    let refreshed = app.refresh_now("klaviyo", &id).await;
    assert_eq!(
        refreshed.status(),
        200,
        "{}",
        refreshed.text().await.unwrap()
    );
    let response = app.service_token(&key, &id).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert!(app.sandbox_token_active("klaviyo", token).await);
    assert_eq!(app.clients().await.remove(0).status.as_str(), "active");
    let stats = app.sandbox_stats("klaviyo").await;
    assert_eq!(
        stats["live_refresh_tokens"], 1,
        "the grant is alive: {stats}"
    );
}

/// A JSON 502/503 and no token.
async fn refused(kind: Certificate, response: reqwest::Response) {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!(status == 502 || status == 503, "{kind:?}: {status} {body}");
    assert!(body.contains("\"error\""), "a JSON error: {body}");
    assert!(
        !body.contains("skla_"),
        "no token after a TLS error: {body}"
    );
}

fn openssl_available() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return true;
    }
    let why = "openssl not found (apt-get install openssl)".to_string();
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {why}");
    }
    crate::helpers::skipped::record("openssl", why);
    false
}

#[derive(Debug, Clone, Copy)]
enum Certificate {
    /// Valid from 2020-01-01 to 2020-01-02.
    Expired,
    /// Valid now, signed by nobody a client trusts.
    SelfSigned,
}

/// `openssl s_server` serving a certificate for 127.0.0.1; stopped when dropped.
struct TlsListener {
    port: u16,
    server: Child,
    log: std::path::PathBuf,
}

impl TlsListener {
    fn start(dir: &Path, kind: Certificate) -> Self {
        let (cert, key) = make_certificate(dir, kind);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join(format!("{kind:?}.log"));
        let output = std::fs::File::create(&log).unwrap();
        let server = Command::new("openssl")
            .args(["s_server", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("openssl s_server starts");
        let listening = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                listening.elapsed() < Duration::from_secs(10),
                "s_server listens"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, server, log }
    }

    /// s_server logs each handshake the client broke off, with the alert it sent
    /// ("tlsv1 alert unknown ca", "certificate expired"…).
    fn handshakes_seen(&self) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|text| text.contains("alert"))
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A key and a certificate for 127.0.0.1: an expired one through `openssl ca` (the only
/// way OpenSSL 3.0 sets a start date in the past), a current self-signed one otherwise.
fn make_certificate(dir: &Path, kind: Certificate) -> (std::path::PathBuf, std::path::PathBuf) {
    let name = format!("{kind:?}").to_lowercase();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let subject = ["-subj", "/CN=127.0.0.1"];
    match kind {
        Certificate::SelfSigned => openssl(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                ])
                .args(subject)
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        ),
        Certificate::Expired => {
            let csr = dir.join("expired.csr");
            openssl(
                Command::new("openssl")
                    .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
                    .args(subject)
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&csr),
            );
            let ca = dir.join("ca");
            std::fs::create_dir_all(&ca).unwrap();
            std::fs::write(ca.join("index.txt"), "").unwrap();
            std::fs::write(ca.join("serial"), "01\n").unwrap();
            let config = dir.join("ca.cnf");
            std::fs::write(
                &config,
                format!(
                    "[ca]\ndefault_ca = test\n[test]\ndatabase = {0}/index.txt\n\
                     serial = {0}/serial\nnew_certs_dir = {0}\ndefault_md = sha256\n\
                     policy = any\n[any]\ncommonName = supplied\n",
                    ca.display()
                ),
            )
            .unwrap();
            openssl(
                Command::new("openssl")
                    .args(["ca", "-batch", "-selfsign", "-notext", "-config"])
                    .arg(&config)
                    .arg("-keyfile")
                    .arg(&key)
                    .arg("-in")
                    .arg(&csr)
                    .arg("-out")
                    .arg(&cert)
                    .args([
                        "-startdate",
                        "20200101000000Z",
                        "-enddate",
                        "20200102000000Z",
                    ]),
            );
        }
    }
    (cert, key)
}

fn openssl(command: &mut Command) {
    let out = command.output().expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
