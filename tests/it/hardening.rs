//! Hardening (issue 7): channel binding against a relaying server, and the admin actions'
//! safety rules, against the real cluster.

use std::time::Duration;

use mesa::config::ChannelBinding;
use mesa::gateway::{Administrator, Deadline, FailureReason};
use mesa::tls::{ServerTls, server_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const D: Duration = Duration::from_secs(5);

/// A server that holds a certificate the client trusts (signed by the cluster's CA, for
/// localhost) and, after TLS, asks for the password in cleartext: what an attacker relaying a
/// login would do. Returns the password the client sent, if any.
async fn password_phisher() -> (u16, tokio::task::JoinHandle<Option<String>>) {
    let c = cluster();
    let tls = server_config(&ServerTls::new(
        c.dir().join("server.crt"),
        c.dir().join("server.key"),
    ))
    .expect("server TLS");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.ok()?;
        let mut ssl_request = [0u8; 8];
        tcp.read_exact(&mut ssl_request).await.ok()?;
        tcp.write_all(b"S").await.ok()?;
        let mut tls = acceptor.accept(tcp).await.ok()?;
        let len = tls.read_u32().await.ok()?;
        let mut startup = vec![0u8; usize::try_from(len).ok()?.checked_sub(4)?];
        tls.read_exact(&mut startup).await.ok()?;
        // AuthenticationCleartextPassword.
        tls.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await.ok()?;
        tls.flush().await.ok()?;
        let tag = tls.read_u8().await.ok()?;
        let len = tls.read_u32().await.ok()?;
        let mut body = vec![0u8; usize::try_from(len).ok()?.checked_sub(4)?];
        tls.read_exact(&mut body).await.ok()?;
        (tag == b'p').then(|| {
            String::from_utf8_lossy(&body)
                .trim_end_matches('\0')
                .to_owned()
        })
    });
    (port, task)
}

#[tokio::test]
async fn an_authenticated_server_gets_no_password_without_channel_binding() {
    let c = cluster();
    // The defaults for verify-full: channel binding required.
    let config = daemon_config(&format!(
        "targets:\n  - {{name: cb, driver: postgres, host: localhost, port: {{port}}, username: mesa_monitor, password_file: fixture.pw, sslmode: verify-full, sslrootcert: {}}}\n",
        c.ca_cert().display()
    ));
    let mut real = config.targets[0].clone();
    assert_eq!(pg(&mut real).channel_binding, ChannelBinding::Require);
    // Against the real server, SCRAM-SHA-256-PLUS binds the login to the TLS channel.
    gateway(&real)
        .server_health(Deadline::after(D))
        .await
        .expect("verify-full with channel binding logs in");

    // A relay holding a trusted certificate asks for the password in cleartext: refused.
    let (port, phisher) = password_phisher().await;
    let mut relayed = real.clone();
    relayed.spec.common.port = port;
    let err = gateway(&relayed)
        .server_health(Deadline::after(D))
        .await
        .expect_err("no login without channel binding");
    assert_eq!(err.reason(), FailureReason::AuthFailed, "{err}");
    assert_eq!(phisher.await.expect("phisher"), None, "the password leaked");

    // With binding only preferred (libpq's default), the same relay gets the password: this
    // is what the default prevents.
    let (port, phisher) = password_phisher().await;
    relayed.spec.common.port = port;
    pg(&mut relayed).channel_binding = ChannelBinding::Prefer;
    let _ = gateway(&relayed).server_health(Deadline::after(D)).await;
    assert_eq!(
        phisher.await.expect("phisher").as_deref(),
        Some(ROLE_PASSWORD),
        "the relay should have phished the password with binding merely preferred"
    );
}

/// `GET .../sessions` on `main`: the whole reply, and the entry of backend `pid`.
async fn listed_session(
    admin: std::net::SocketAddr,
    token: &str,
    pid: i32,
) -> (Reply, serde_json::Value) {
    let reply = request(
        admin,
        "GET",
        "/api/v1/targets/main/sessions?limit=1000",
        Some(token),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.json()["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["pid"] == pid)
        .unwrap_or_else(|| panic!("backend {pid} is listed"))
        .clone();
    (reply, session)
}

const MAIN: &str = "  - {name: main, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable, admin: {username: mesa_admin, password_file: fixture.pw}}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_spare_superusers_and_a_pinned_backend_start_spares_a_reused_pid() {
    let (app, admin, token) =
        admin_daemon("interval: 5s, timeout: 4s", "audit-signals.jsonl", MAIN).await;
    let c = cluster();
    let su_victim = client_as(c.superuser(), c.password(), "postgres")
        .await
        .expect("superuser session");
    let (su_pid, _su) = background(su_victim, "SELECT pg_sleep(60)").await;
    assert!(eventually(D, || is_active(su_pid)).await);
    // mesa_admin holds pg_signal_backend, which PostgreSQL already stops at superusers; Mesa
    // refuses before asking, with the reason (409), and for cancel too.
    for verb in ["cancel", "terminate"] {
        let reply = request(
            admin,
            "POST",
            &format!("/api/v1/targets/main/sessions/{su_pid}/{verb}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(reply.status, 409, "{verb}: {}", reply.body);
        assert!(reply.body.contains("superuser"), "{}", reply.body);
    }
    assert!(is_active(su_pid).await, "the superuser's session survives");

    // backend_start: the value /sessions lists pins the backend.
    let victim = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("victim");
    let (pid, _held) = background(victim, "SELECT pg_sleep(60)").await;
    assert!(eventually(D, || is_active(pid)).await);
    let listed = listed_session(admin, &token, pid).await.1["backend_start"]
        .as_str()
        .expect("backend_start")
        .to_owned();
    let started = humantime::parse_rfc3339(&listed).expect("RFC 3339");
    let truth: std::time::SystemTime = superuser("postgres")
        .await
        .query_one(
            "SELECT backend_start FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .expect("backend_start")
        .get(0);
    assert_eq!(started, truth, "listed to the microsecond");
    // Another backend's start time (as if the pid had been reused since): not found, spared.
    let earlier = humantime::format_rfc3339_micros(truth - Duration::from_micros(1)).to_string();
    for (body, status) in [
        (format!(r#"{{"backend_start": "{earlier}"}}"#), 404),
        (r#"{"backend_start": "yesterday"}"#.to_owned(), 422),
        (
            r#"{"backend_start": "2026-01-01T00:00:00Z", "x": 1}"#.to_owned(),
            422,
        ),
    ] {
        let reply = request(
            admin,
            "POST",
            &format!("/api/v1/targets/main/sessions/{pid}/terminate"),
            Some(&token),
            Some(&body),
        )
        .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert!(is_active(pid).await, "spared after {body}");
    }
    let reply = request(
        admin,
        "POST",
        &format!("/api/v1/targets/main/sessions/{pid}/terminate"),
        Some(&token),
        Some(&format!(r#"{{"backend_start": "{listed}"}}"#)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(eventually(D, || async { !pid_exists(pid).await }).await);
    app.shutdown(mesa::app::DEFAULT_GRACE_PERIOD)
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_never_show_passwords_and_role_names_are_lower_case() {
    let _serial = role_lock().await;
    let (app, admin, token) =
        admin_daemon("interval: 5s, timeout: 4s", "audit-redact.jsonl", MAIN).await;
    let su = superuser("postgres").await;
    su.batch_execute("CREATE ROLE redact_victim NOLOGIN")
        .await
        .expect("role");
    let secret_session = superuser("postgres").await;
    let (pid, _held) = background(
        secret_session,
        "SELECT pg_sleep(60) WHERE 'SCRAM-SHA-256$4096:c2FsdA==$c3Q=:c2U=' <> ''; ALTER ROLE redact_victim PASSWORD 'leaked-secret-123';
         ALTER ROLE redact_victim PASSWORD /* issue 17 */ U&'leaked-secret-456';
         SELECT 'postgresql://app:leaked-secret-789@db/x', 'EXECUTE ''ALTER ROLE x PASSWORD ''''leaked-secret-012''''''';",
    )
    .await;
    assert!(eventually(D, || is_active(pid)).await);
    let (reply, session) = listed_session(admin, &token, pid).await;
    let query = session["query"].as_str().expect("query").to_owned();
    assert!(
        query.contains("ALTER ROLE redact_victim PASSWORD [redacted]"),
        "{query}"
    );
    // The forms of issue 17 (a comment before a U& literal, a URI, a nested literal) too.
    assert!(!reply.body.contains("leaked-secret"), "{}", reply.body);
    assert!(query.contains("app:[redacted]@db"), "{query}");
    assert!(!reply.body.contains("SCRAM-SHA-256$4096"), "{}", reply.body);
    su.query_one("SELECT pg_cancel_backend($1)", &[&pid])
        .await
        .expect("cancel");

    // Upper-case look-alikes of existing roles are refused before any SQL.
    for name in ["Postgres", "App_User", "MESA"] {
        let reply = request(
            admin,
            "POST",
            "/api/v1/targets/main/users",
            Some(&token),
            Some(&format!(r#"{{"name": "{name}"}}"#)),
        )
        .await;
        assert_eq!(reply.status, 422, "{name}: {}", reply.body);
        assert!(!role_exists(name).await);
    }
    app.shutdown(mesa::app::DEFAULT_GRACE_PERIOD)
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn an_unsafe_audit_file_stops_the_daemon_from_starting() {
    let dir = std::env::temp_dir().join(format!("mesa-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let real = dir.join("audit-real.jsonl");
    std::fs::write(&real, "").expect("real");
    let link = dir.join("audit-link.jsonl");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let writable = dir.join("audit-writable.jsonl");
    std::fs::write(&writable, "").expect("file");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    for (file, expected) in [
        ("audit-link.jsonl", "symbolic link"),
        ("audit-writable.jsonl", "writable by group or others"),
    ] {
        let token = mesa::token::generate().expect("token");
        let config = daemon_config(&format!(
            "web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  audit_log: {file}
  tokens:
    - {{name: ops, sha256: '{}', scopes: [terminate], targets: ['*']}}
targets:
{MAIN}",
            token.sha256_hex
        ));
        let err = mesa::app::App::start(config)
            .await
            .expect_err("unsafe audit file");
        let text = err.to_string();
        assert!(
            text.starts_with("admin.audit_log:") && text.contains(expected),
            "{text}"
        );
    }
}

/// The daemon appends audit records on tokio's blocking pool. This test runs it on a runtime
/// whose pool has one thread and keeps that thread busy: every audit write waits, as it would
/// behind a disk that stopped answering, with no seam in the daemon.
#[test]
fn a_mutation_whose_audit_intent_comes_late_is_never_started() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(late_audit_intent());
}

async fn late_audit_intent() {
    let _serial = role_lock().await;
    let dir = std::env::temp_dir().join(format!("mesa-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("audit-stalled.jsonl");
    let _ = std::fs::remove_file(&path);
    let (app, admin, token) =
        admin_daemon("interval: 2s, timeout: 1s", "audit-stalled.jsonl", MAIN).await;
    // The audit disk stops answering: the one blocking thread, where audit writes run, is
    // held until past the request's 1 s deadline.
    let (stalled_tx, stalled_rx) = std::sync::mpsc::channel::<()>();
    let disk = tokio::task::spawn_blocking(move || {
        let _ = stalled_tx.send(());
        std::thread::sleep(Duration::from_millis(1500));
    });
    stalled_rx.recv().expect("the disk stalls");
    let call = tokio::spawn(async move {
        request(
            admin,
            "POST",
            "/api/v1/targets/main/users",
            Some(&token),
            Some(r#"{"name": "late_intent_user"}"#),
        )
        .await
    });
    let reply = call.await.expect("call");
    assert_eq!(reply.status, 504, "{}", reply.body);
    disk.await.expect("disk");
    let records = std::fs::read_to_string(&path).expect("the records");
    assert!(
        !role_exists("late_intent_user").await,
        "the role was created"
    );
    let lines: Vec<serde_json::Value> = records
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines[0]["event"], "intent", "{records}");
    assert_eq!(lines[1]["event"], "outcome", "{records}");
    assert_eq!(lines[1]["outcome"], "abandoned");
    assert_eq!(lines[1]["status"], 504);
    app.shutdown(mesa::app::DEFAULT_GRACE_PERIOD)
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn failed_authentications_are_logged_with_the_peer_and_rate_limited() {
    let (logs, _guard) = crate::admin::capture_logs();
    let (app, admin, token) =
        admin_daemon("interval: 5s, timeout: 4s", "audit-authlog.jsonl", MAIN).await;
    for bad in ["wrong-token", "another-wrong-token", "x", "y", "z"] {
        let reply = request(admin, "GET", "/api/v1/targets", Some(bad), None).await;
        assert_eq!(reply.status, 401);
    }
    let reply = request(admin, "GET", "/api/v1/targets", Some(&token), None).await;
    assert_eq!(reply.status, 200);
    app.shutdown(mesa::app::DEFAULT_GRACE_PERIOD)
        .await
        .expect("shutdown");
    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("admin API authentication failed"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "five failures within the interval log once:\n{text}"
    );
    assert!(lines[0].contains("127.0.0.1:"), "{}", lines[0]);
    assert!(
        !text.contains("wrong-token"),
        "a presented token reached the log"
    );
}
