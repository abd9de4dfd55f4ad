//! Failure classification, deadlines, TLS modes and connection hygiene against the real server.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use mesa::collectors::Collect;
use mesa::config::SslMode;
use mesa::gateway::{Administrator, Deadline, FailureReason, Inspector, NewUser, SessionFilter};
use mesa::secret::Secret;

use crate::support::*;

const D: Duration = Duration::from_secs(10);

#[tokio::test]
async fn wrong_password_is_auth_failed() {
    let mut t = target("badpw", "mesa_monitor");
    t.spec.common.monitor.password = Some(Secret::new("not-the-password-at-all"));
    let err = gateway(&t)
        .server_health(Deadline::after(D))
        .await
        .expect_err("bad password");
    assert_eq!(err.reason(), FailureReason::AuthFailed, "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    assert!(!format!("{err:?}").contains("not-the-password"), "{err:?}");
}

#[tokio::test]
async fn connection_limit_is_too_many_connections() {
    let err = gateway(&target("noslots", "no_slots"))
        .server_health(Deadline::after(D))
        .await
        .expect_err("CONNECTION LIMIT 0");
    assert_eq!(err.reason(), FailureReason::TooManyConnections, "{err}");
    assert_eq!(err.sqlstate(), Some("53300"));
}

#[tokio::test]
async fn missing_privilege_is_permission_denied() {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE DATABASE errors_locked TEMPLATE template0")
        .await
        .expect("db");
    su.batch_execute("REVOKE CONNECT ON DATABASE errors_locked FROM PUBLIC")
        .await
        .expect("revoke");
    let err = gateway(&target("noconnect", "mesa_plain"))
        .tables(&object("errors_locked"), Deadline::after(D))
        .await
        .expect_err("no CONNECT privilege");
    assert_eq!(err.reason(), FailureReason::PermissionDenied, "{err}");
}

/// Holds `LOCK pg_authid IN EXCLUSIVE MODE` (readers and logins pass, CREATE ROLE waits) for
/// as long as the returned client's transaction is open.
async fn block_role_creation() -> tokio_postgres::Client {
    let su = superuser("postgres").await;
    su.batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_authid IN EXCLUSIVE MODE;")
        .await
        .expect("lock pg_authid");
    su
}

#[tokio::test]
async fn server_and_client_timeouts_are_timeout() {
    let _serial = role_lock().await;
    let lock = block_role_creation().await;
    let base = with_admin(target("timeouts", "mesa_monitor"), "mesa_admin");

    // statement_timeout fires first.
    let mut t = base.clone();
    t.collection.statement_timeout = Duration::from_millis(300);
    t.collection.lock_timeout = Duration::from_secs(60);
    let user = NewUser::new("timeout_user_1", None, false, true).expect("valid");
    let err = gateway(&t)
        .create_user(user, Deadline::after(D))
        .await
        .expect_err("statement_timeout");
    assert_eq!(err.reason(), FailureReason::Timeout, "{err}");
    assert_eq!(err.sqlstate(), Some("57014"));

    // lock_timeout fires first.
    let mut t = base.clone();
    t.collection.statement_timeout = Duration::from_secs(60);
    t.collection.lock_timeout = Duration::from_millis(300);
    let user = NewUser::new("timeout_user_2", None, false, true).expect("valid");
    let err = gateway(&t)
        .create_user(user, Deadline::after(D))
        .await
        .expect_err("lock_timeout");
    assert_eq!(err.reason(), FailureReason::Timeout, "{err}");
    assert_eq!(err.sqlstate(), Some("55P03"));

    // Our own deadline fires first: a cancel request stops the server-side statement.
    let mut t = base.clone();
    t.collection.statement_timeout = Duration::from_secs(60);
    t.collection.lock_timeout = Duration::from_secs(60);
    let user = NewUser::new("timeout_user_3", None, false, true).expect("valid");
    let started = Instant::now();
    let err = gateway(&t)
        .create_user(user, Deadline::after(Duration::from_millis(500)))
        .await
        .expect_err("deadline");
    assert_eq!(err.reason(), FailureReason::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_millis(500) + Duration::from_secs(1));
    assert!(
        eventually(Duration::from_secs(2), || async {
            mesa_sessions_of("mesa_admin").await == 0
        })
        .await,
        "the cancelled statement's session is gone"
    );
    drop(lock);
    let su = superuser("postgres").await;
    let created: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'timeout_user_%'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(created, 0, "no timed-out CREATE ROLE went through");
}

#[tokio::test]
async fn a_listener_that_never_answers_is_a_timeout_within_the_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut t = target("silent", "mesa_monitor");
    t.spec.common.port = silent.local_addr().expect("addr").port();
    t.collection.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = gateway(&t)
        .collect(Deadline::after(D))
        .await
        .expect_err("no answer");
    assert_eq!(err.reason(), FailureReason::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn invalid_input_cannot_reach_the_gateway() {
    // The gateway takes parsed types only, so invalid input is refused before a gateway call
    // (and so before any connection) can even be written.
    use mesa::gateway::{ObjectName, Pid, SessionLimit};
    let reasons = [
        Pid::new(0).expect_err("pid 0").reason(),
        Pid::new(-7).expect_err("pid -7").reason(),
        Pid::parse("12abc").expect_err("not a number").reason(),
        ObjectName::parse("database", "")
            .expect_err("empty db")
            .reason(),
        ObjectName::parse("table", &"t".repeat(64))
            .expect_err("long")
            .reason(),
        SessionLimit::new(5000).expect_err("limit").reason(),
    ];
    assert!(
        reasons.iter().all(|r| *r == FailureReason::InvalidInput),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn tls_modes_follow_libpq() {
    let c = cluster();
    let ok = |mode: SslMode, host: &str, root: Option<std::path::PathBuf>| {
        let mut t = target("tls", "mesa_monitor");
        pg(&mut t).sslmode = mode;
        t.spec.common.host = host.to_owned();
        pg(&mut t).sslrootcert = root;
        t
    };
    for (mode, host) in [
        (SslMode::Prefer, "127.0.0.1"),
        (SslMode::Require, "127.0.0.1"),
        (SslMode::VerifyCa, "127.0.0.1"),
        (SslMode::VerifyFull, "localhost"),
        (SslMode::VerifyFull, "127.0.0.1"),
    ] {
        let root = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull).then(|| c.ca_cert());
        gateway(&ok(mode, host, root))
            .server_health(Deadline::after(D))
            .await
            .unwrap_or_else(|e| panic!("{mode:?} via {host}: {e}"));
    }
    // A root that did not sign the server certificate: the chain fails.
    let wrong_root = c.dir().join("server.crt");
    let err = gateway(&ok(SslMode::VerifyCa, "127.0.0.1", Some(wrong_root)))
        .server_health(Deadline::after(D))
        .await
        .expect_err("untrusted chain");
    assert_eq!(err.reason(), FailureReason::Tls, "{err}");
    // The right CA but a name the certificate does not carry.
    let err = gateway(&ok(SslMode::VerifyFull, "127.0.0.2", Some(c.ca_cert())))
        .server_health(Deadline::after(D))
        .await;
    // 127.0.0.2 is loopback but the server listens on 127.0.0.1 only: either way no session.
    assert!(err.is_err());
    // Encryption is really on: the server logged an SSL connection for mesa.
    let log = c.server_log();
    assert!(
        log.lines().any(|l| l.contains("user=mesa_monitor")
            && l.contains("application_name=mesa")
            && l.contains("SSL enabled")),
        "no TLS connection in the server log"
    );
}

/// Resumes a stopped backend however the test ends.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        kill("-CONT", self.0);
    }
}

/// A closed session's slot stays taken until its backend is gone from the server, not only
/// until Mesa has sent Terminate (tokio-postgres ends the connection then): a backend that is
/// slow to exit, here stopped with SIGSTOP, still counts, so a third call waits for the slot
/// instead of making a third backend on the server.
#[tokio::test]
async fn a_closed_sessions_slot_is_freed_only_when_its_backend_is_gone() {
    const USER: &str = "slow_exit_user";
    monitor_login(USER).await;
    let g = gateway(&target("slow_exit", USER));
    // The collection keeps its session open (the default): one backend of USER.
    g.collect(Deadline::after(D)).await.expect("collects");
    let pids = mesa_session_pids(USER).await;
    let [kept] = pids[..] else {
        panic!("one kept session, found {pids:?}");
    };
    let kept = u32::try_from(kept).expect("a pid");
    kill("-STOP", kept);
    let resume = Resume(kept);
    // Terminate is sent; the stopped backend cannot act on it and stays in pg_stat_activity.
    g.close_kept().await;
    // A new collection session takes the other slot; an admin read then finds none free.
    g.collect(Deadline::after(D)).await.expect("collects again");
    let err = g
        .server_health(Deadline::after(Duration::from_secs(1)))
        .await
        .expect_err("no third session while the closed one's backend is on the server");
    assert_eq!(err.reason(), FailureReason::Timeout, "{err}");
    assert!(
        mesa_sessions_of(USER).await <= 2,
        "more than two backends of Mesa on the server"
    );
    // Resumed, the backend reads Terminate and exits; its slot is freed.
    drop(resume);
    assert!(
        eventually(Duration::from_secs(5), || async {
            g.server_health(Deadline::after(D)).await.is_ok()
        })
        .await,
        "the slot is freed once the backend is gone"
    );
    g.close_kept().await;
}

#[tokio::test]
async fn no_connection_leaks_and_never_more_than_two() {
    // Alone among the tests that load the machine: Mesa's slots are freed only when the
    // server's backend is gone, but a saturated machine makes every backend slow, and the
    // sampler must see Mesa's peak, not the neighbours'.
    let _alone = loud().await;
    let t = with_admin(target("leak", "leak_user"), "leak_user");
    let g = Arc::new(gateway(&t));
    // Another login, so the sampler counts `g`'s sessions alone (a failing authentication
    // shows in pg_stat_activity too).
    let mut bad = t.clone();
    bad.spec.common.monitor.user = "leak_user_unknown".to_owned();
    bad.spec.common.monitor.password = Some(Secret::new("wrong-password-for-leak-test"));
    let bad = Arc::new(gateway(&bad));

    let peak = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            let su = superuser("postgres").await;
            loop {
                let n: i64 = su
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mesa' AND usename = 'leak_user'",
                        &[],
                    )
                    .await
                    .expect("sample")
                    .get(0);
                peak.fetch_max(n, Ordering::Relaxed);
                tokio::select! {
                    () = stop.notified() => break,
                    () = tokio::time::sleep(Duration::from_millis(2)) => {}
                }
            }
        })
    };

    let mut ops = tokio::task::JoinSet::new();
    let mut failures = 0usize;
    for i in 0..200u32 {
        let (g, bad) = (g.clone(), bad.clone());
        ops.spawn(async move {
            let d = Deadline::after(D);
            match i % 8 {
                0 => g.databases(d).await.map(drop),
                1 => g.sessions(SessionFilter::default(), d).await.map(drop),
                2 => g.server_health(d).await.map(drop),
                3 => g.collect(d).await.map(drop),
                4 => g.terminate(backend(i32::MAX), d).await,
                5 => bad.server_health(d).await.map(drop),
                6 => g
                    .collect(Deadline::after(Duration::from_millis(3)))
                    .await
                    .map(drop),
                _ => g.tables(&object("postgres"), d).await.map(drop),
            }
        });
        // Keep about 8 operations in flight.
        if ops.len() >= 8
            && let Some(done) = ops.join_next().await
        {
            failures += usize::from(done.expect("op task").is_err());
        }
    }
    while let Some(done) = ops.join_next().await {
        failures += usize::from(done.expect("op task").is_err());
    }
    stop.notify_one();
    sampler.await.expect("sampler");
    // Unknown pid and wrong password always fail; 3 ms deadlines fail most of the time.
    assert!(failures >= 50, "failures {failures}");
    let max = peak.load(Ordering::Relaxed);
    println!(
        "200 operations: {failures} failed as scripted, peak {max} concurrent mesa connections"
    );
    assert!(max <= 2, "peak {max} concurrent mesa connections");
    assert!(max >= 1, "the sampler saw the operations");
    // The collection session is kept between collections (one at most); every other
    // connection ended with its call, and the kept one ends when the target's loop does.
    assert!(
        eventually(Duration::from_secs(2), || async {
            mesa_sessions_of("leak_user").await <= 1
        })
        .await,
        "a mesa connection outlived its call"
    );
    g.close_kept().await;
    assert!(
        eventually(Duration::from_secs(2), || async {
            mesa_sessions_of("leak_user").await == 0
        })
        .await,
        "the kept collection session outlived close_kept"
    );
}

#[tokio::test]
async fn cancellation_stops_the_statement_on_the_server() {
    let _serial = role_lock().await;
    let lock = block_role_creation().await;
    let mut t = with_admin(target("shutdown", "mesa_monitor"), "mesa_admin");
    t.collection.statement_timeout = Duration::from_secs(60);
    t.collection.lock_timeout = Duration::from_secs(60);
    let token = tokio_util::sync::CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let user = NewUser::new("cancelled_user_1", None, false, true).expect("valid");
    let started = Instant::now();
    let err = gateway(&t)
        .create_user(user, Deadline::after(D).with_cancel(token))
        .await
        .expect_err("cancelled");
    assert!(
        matches!(err, mesa::gateway::GatewayError::Cancelled { .. }),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The cancel request reached the server: the waiting CREATE ROLE is gone at once, while
    // the lock that blocked it is still held.
    assert!(
        eventually(Duration::from_secs(2), || async {
            mesa_sessions_of("mesa_admin").await == 0
        })
        .await,
        "the statement kept running on the server"
    );
    drop(lock);
    assert!(!role_exists("cancelled_user_1").await);
}
