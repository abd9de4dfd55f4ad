//! `ssl_mode` and `socket` against a live MariaDB (TLS on, with the harness's throwaway CA):
//! each mode connects as the MySQL client's mode of that name does, and a TLS session is
//! proven by the server's own count of TLS handshakes (`Ssl_accepts`), on a server of the
//! test's own so no other test's handshakes count.

use std::path::PathBuf;
use std::time::Duration;

use mesa::gateway::mysql::SslMode;
use mesa::gateway::{Administrator, Deadline, FailureReason};

use mesa_testkit::mariadb::MariaDb;

use super::{MONITOR, gateway, server, setup, spec, target, target_on};

/// The test's own server.
fn tls_server() -> &'static MariaDb {
    static SERVER: std::sync::OnceLock<MariaDb> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let s = MariaDb::start().unwrap_or_else(|e| panic!("MariaDB did not start: {e}"));
        setup(&s);
        s
    })
}

/// The server's count of TLS handshakes it accepted.
fn tls_accepts() -> u64 {
    tls_server()
        .sql("", "SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
        .expect("status")
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

/// One health call on a target with `mode` and `ca`, connecting to `host`; whether it
/// worked (its error's reason otherwise) and how many TLS handshakes the server accepted
/// meanwhile.
async fn health(
    mode: SslMode,
    ca: Option<PathBuf>,
    host: &str,
) -> (Result<(), FailureReason>, u64) {
    let mut t = target_on(tls_server(), "my_tls", MONITOR);
    t.spec.common.host = host.to_owned();
    spec(&mut t).ssl_mode = mode;
    spec(&mut t).ssl_ca = ca;
    let before = tls_accepts();
    let result = gateway(&t)
        .server_health(Deadline::after(Duration::from_secs(10)))
        .await
        .map(|_| ())
        .map_err(|e| e.reason());
    (result, tls_accepts() - before)
}

// One test: the handshake counter is the server's, so the cases must not overlap.
#[tokio::test]
async fn each_ssl_mode_connects_as_the_mysql_client_does() {
    let ca = tls_server().ca_cert();
    // Plaintext.
    assert_eq!(
        health(SslMode::Disabled, None, "127.0.0.1").await,
        (Ok(()), 0)
    );
    // The server offers TLS: preferred and required use it, unverified.
    for mode in [SslMode::Preferred, SslMode::Required] {
        let (result, handshakes) = health(mode, None, "127.0.0.1").await;
        assert_eq!(result, Ok(()), "{mode:?}");
        assert!(handshakes >= 1, "{mode:?}: no TLS handshake");
    }
    // The chain to the harness's CA, then also the name (the certificate is for localhost
    // and 127.0.0.1).
    for (mode, host) in [
        (SslMode::VerifyCa, "127.0.0.1"),
        (SslMode::VerifyIdentity, "127.0.0.1"),
        (SslMode::VerifyIdentity, "localhost"),
    ] {
        let (result, handshakes) = health(mode, Some(ca.clone()), host).await;
        assert_eq!(result, Ok(()), "{mode:?} {host}");
        assert!(handshakes >= 1, "{mode:?} {host}: no TLS handshake");
    }
    // Another CA (the PostgreSQL harness's) signs nothing of this server: refused as TLS.
    let stranger = crate::support::cluster().ca_cert();
    for mode in [SslMode::VerifyCa, SslMode::VerifyIdentity] {
        let (result, _) = health(mode, Some(stranger.clone()), "127.0.0.1").await;
        assert_eq!(result, Err(FailureReason::Tls), "{mode:?}");
    }
    // The public CAs do not sign a throwaway certificate either.
    let (result, _) = health(SslMode::VerifyIdentity, None, "127.0.0.1").await;
    assert_eq!(result, Err(FailureReason::Tls));
}

#[tokio::test]
async fn a_socket_target_connects_through_the_socket() {
    let mut t = target("my_socket");
    // Nothing listens here: only the socket can work.
    t.spec.common.port = crate::support::closed_port();
    spec(&mut t).socket = Some(server().socket());
    let health = gateway(&t)
        .server_health(Deadline::after(Duration::from_secs(10)))
        .await
        .expect("through the socket");
    assert!(health.version.contains("MariaDB"));
    let mut wrong = target("my_no_socket");
    spec(&mut wrong).socket = Some(server().dir().join("no-such.sock"));
    let err = gateway(&wrong)
        .server_health(Deadline::after(Duration::from_secs(10)))
        .await
        .expect_err("no socket");
    assert_eq!(err.reason(), FailureReason::Unreachable, "{err}");
}

#[test]
fn verify_ca_without_a_ca_is_a_config_error() {
    let yaml = "targets:\n  - name: m\n    driver: mysql\n    host: db\n    username: u\n    password_env: PW\n    ssl_mode: verify_ca\n";
    let problems =
        mesa::config::parse_str(yaml, std::path::Path::new("."), &|_| Some("x".to_owned()))
            .expect_err("refused");
    let text = format!("{problems:?}");
    assert!(
        text.contains("targets[0].ssl_mode") && text.contains("ssl_ca"),
        "{text}"
    );
}
