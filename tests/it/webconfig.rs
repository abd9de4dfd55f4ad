//! The metrics listener with an exporter-toolkit web config: TLS and bcrypt basic auth, a file
//! `promtool check web-config` accepts, and files Mesa must refuse at startup.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;

use mesa::app::{App, AppError, DEFAULT_GRACE_PERIOD};

use crate::support::*;

/// GET over TLS trusting the cluster's CA, with optional basic auth; `None` if TLS fails.
async fn https_get(
    addr: SocketAddr,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Option<(u16, String)> {
    use http_body_util::BodyExt as _;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(cluster().ca_cert()).expect("CA");
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = hyper::Request::get(path).header(hyper::header::HOST, "localhost");
    if let Some((user, password)) = auth {
        builder = builder.header(
            hyper::header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
        );
    }
    let response = sender
        .send_request(
            builder
                .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                .expect("request"),
        )
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn promtool_accepts(path: &Path) -> bool {
    Command::new("promtool")
        .args(["check", "web-config"])
        .arg(path)
        .output()
        .expect("promtool runs (apt-get install prometheus; .ci/run installs it)")
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_user_over_tls() {
    let c = cluster();
    let dir = std::env::temp_dir().join(format!("mesa-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let hash = bcrypt::hash("scrape-password-1", 4).expect("bcrypt");
    let web = write(
        &dir,
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: '{hash}'\n",
            c.dir().join("server.crt").display(),
            c.dir().join("server.key").display(),
        ),
    );
    assert!(promtool_accepts(&web), "promtool rejects the web config");
    let mut config = daemon_config(
        "collection: {interval: 1s, timeout: 800ms}\nweb: {listen_address: '127.0.0.1:0'}\ntargets:\n  - {name: local, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}\n",
    );
    config.web.config_file = Some(web);
    let app = App::start(config)
        .await
        .expect("daemon starts with the web config");
    let addr = app.metrics_addr();
    assert_eq!(
        https_get(addr, "/metrics", None).await.map(|r| r.0),
        Some(401)
    );
    assert_eq!(
        https_get(addr, "/metrics", Some(("prometheus", "wrong")))
            .await
            .map(|r| r.0),
        Some(401)
    );
    assert_eq!(
        https_get(addr, "/metrics", Some(("nobody", "scrape-password-1")))
            .await
            .map(|r| r.0),
        Some(401)
    );
    let up = eventually(std::time::Duration::from_secs(5), || async {
        https_get(addr, "/metrics", Some(("prometheus", "scrape-password-1")))
            .await
            .is_some_and(|(status, body)| {
                status == 200 && value(&body, "pg_up", &[("server", "local")]) == Some(1.0)
            })
    })
    .await;
    assert!(up, "the user gets /metrics over TLS");
    // Plain HTTP gets nothing useful from a TLS listener.
    let plain = try_http_get(addr, "/metrics").await;
    assert!(plain.is_none_or(|(status, _, _)| status != 200));
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
}

#[tokio::test]
async fn bad_web_configs_are_refused_at_startup() {
    let c = cluster();
    let dir = std::env::temp_dir().join(format!("mesa-web-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let tls = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        c.dir().join("server.crt").display(),
        c.dir().join("server.key").display()
    );
    let cases = [
        (
            "unknown.yml",
            format!("{tls}basic_auth: {{}}\n"),
            "basic_auth: unknown key",
        ),
        (
            "tls11.yml",
            format!("{tls}  min_version: TLS11\n"),
            "tls_server_config.min_version: TLS11 is refused: TLS below 1.2 is insecure",
        ),
        (
            "plainpw.yml",
            "basic_auth_users:\n  u: hunter2\n".to_owned(),
            "basic_auth_users.u: expected a bcrypt hash",
        ),
    ];
    for (name, text, expected) in cases {
        let path = write(&dir, name, &text);
        let mut config = daemon_config(
            "web: {listen_address: '127.0.0.1:0'}\ntargets:\n  - {name: local, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw}\n",
        );
        config.web.config_file = Some(path.clone());
        let err = App::start(config).await.expect_err(name);
        assert!(matches!(err, AppError::WebConfig(_)), "{name}: {err}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
        // The binary says the same and exits 64 under --check-config.
        let cfg = write(
            &dir,
            "mesa.yaml",
            "targets:\n  - {name: a, driver: postgres, host: h, username: u}\n",
        );
        let out = Command::new(env!("CARGO_BIN_EXE_mesa"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.config.file={}", path.display()))
            .arg("--check-config")
            .output()
            .expect("mesa runs");
        assert_eq!(out.status.code(), Some(64), "{name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_over_tls() {
    let c = cluster();
    let t = mesa::token::generate().expect("token");
    let yaml = format!(
        "web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  tls: {{cert_file: '{}', key_file: '{}'}}
  tokens:
    - {{name: r, sha256: '{}', scopes: [read], targets: ['*']}}
targets:
  - {{name: local, driver: postgres, host: '{{host}}', port: {{port}}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}
",
        c.dir().join("server.crt").display(),
        c.dir().join("server.key").display(),
        t.sha256_hex,
    );
    let app = App::start(daemon_config(&yaml)).await.expect("daemon");
    let admin = app.admin_addr().expect("admin");
    let (status, body) = https_get(admin, "/api/v1/openapi.json", None)
        .await
        .expect("TLS works");
    assert_eq!(status, 200);
    assert!(body.contains("\"openapi\":\"3.0.3\""));
    assert!(
        try_http_get(admin, "/api/v1/openapi.json")
            .await
            .is_none_or(|(s, _, _)| s != 200),
        "no plaintext"
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
}

/// One plain GET of `/metrics` with basic credentials on a new connection; the status, or
/// `None` if the exchange failed or took longer than `limit`.
async fn basic_get(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    limit: std::time::Duration,
) -> Option<u16> {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let headers = [(hyper::header::AUTHORIZATION, format!("Basic {auth}"))];
    tokio::time::timeout(limit, exchange(addr, "GET", "/metrics", &headers, None))
        .await
        .ok()
        .flatten()
        .map(|(status, ..)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_flood_never_fails_a_cached_scrape() {
    let _loud = loud().await;
    // Issue 17, item 4: with basic auth, wrong passwords used to queue for bcrypt without
    // bound, each holding a connection slot, until legitimate scrapes could not get one.
    use std::time::Duration;
    let dir = std::env::temp_dir().join(format!("mesa-web-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // Cost 10, as htpasswd makes them: each wrong password costs tens of milliseconds.
    let hash = bcrypt::hash("scrape-password-2", 10).expect("bcrypt");
    let web = write(
        &dir,
        "web.yml",
        &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
    );
    let mut config = daemon_config(
        "collection: {interval: 2s, timeout: 1500ms}\nweb: {listen_address: '127.0.0.1:0', max_connections: 64}\ntargets:\n  - {name: local, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}\n",
    );
    config.web.config_file = Some(web);
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.metrics_addr();
    // Prometheus logs in once; its login is cached from then on.
    assert_eq!(
        basic_get(
            addr,
            "prometheus",
            "scrape-password-2",
            Duration::from_secs(10)
        )
        .await,
        Some(200)
    );
    // 200 attackers, each a new connection per wrong password, for 6 s.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attackers: Vec<_> = (0..200)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let status = basic_get(
                        addr,
                        "prometheus",
                        &format!("guess-{i}-{n}"),
                        Duration::from_secs(20),
                    )
                    .await;
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut scrapes = Vec::new();
    for _ in 0..10 {
        scrapes.push(
            basic_get(
                addr,
                "prometheus",
                "scrape-password-2",
                Duration::from_secs(5),
            )
            .await,
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut refused = 0;
    let mut denied = 0;
    for a in attackers {
        for status in a.await.expect("attacker") {
            match status {
                Some(429) => refused += 1,
                Some(401) => denied += 1,
                _ => {}
            }
        }
    }
    eprintln!(
        "attackers: {denied} answered 401 after a check, {refused} refused with 429; scrapes: {scrapes:?}"
    );
    assert!(
        scrapes.iter().all(|s| *s == Some(200)),
        "a cached scrape failed during the flood: {scrapes:?}"
    );
    assert!(refused > 0, "the queue never filled: {denied} checks");
    app.shutdown(mesa::app::DEFAULT_GRACE_PERIOD)
        .await
        .expect("shutdown");
}
