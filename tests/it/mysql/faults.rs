//! The fault suite's cases for MySQL targets, run by the suite's own scenario (`faults::run`)
//! with its rules: one healthy and one faulty target on one daemon, the faulty one through
//! the fault proxy, as a login of the scenario's own; `mysql_up` turns 0 with the expected
//! reason within one interval plus the timeout plus 1 s, the healthy target misses nothing,
//! `/metrics` p99 stays under 100 ms, at most 2 sessions of the login (sampled from the
//! processlist), no statement past `statement_timeout` + 1 s, and `mysql_up` is 1 again
//! within the longest backoff plus one interval once the fault clears.

use std::time::Duration;

use mesa::app::App;
use mesa_testkit::mariadb::MariaDb;
use mesa_testkit::proxy::{FaultProxy, Mode};
use mysql_async::prelude::Queryable;

use super::{PASSWORD, server, setup};
use crate::faults::{Figures, INTERVAL, STATEMENT_TIMEOUT, TIMEOUT, Watched, run};
use crate::support::{daemon_config, quiet};

/// Creates `user` afresh on `on`: the monitor's grants, the fixture password.
fn monitor_login(on: &MariaDb, user: &str) {
    on.sql(
        "",
        &format!(
            "DROP USER IF EXISTS {user}@'%'; CREATE USER {user}@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO {user}@'%';"
        ),
    )
    .unwrap_or_else(|e| panic!("{user}: {e}"));
}

/// Runs one scenario: Mesa watches `healthy` (the shared server, as `mesa_mon`) directly and
/// `faulty` (on `on`, as `user`) through a fault proxy; `inject` makes the fault, `clear`
/// undoes it; `reason` is the failure the faulty target must report. The rules are the
/// PostgreSQL suite's (`faults::run`).
async fn scenario<I, C>(
    on: &'static MariaDb,
    user: &str,
    reason: &str,
    inject: I,
    clear: C,
) -> Figures
where
    I: AsyncFnOnce(&FaultProxy),
    C: AsyncFnOnce(&FaultProxy),
{
    let _quiet = quiet().await;
    monitor_login(on, user);
    let proxy = FaultProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], on.port()))).await;
    let config = daemon_config(&format!(
        "collection: {{interval: {i}ms, timeout: {t}ms, connect_timeout: 500ms, statement_timeout: {s}ms, lock_timeout: 300ms, session: ephemeral}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: healthy, driver: mysql, host: 127.0.0.1, port: {hp}, username: mesa_mon, password_file: fixture.pw, ssl_mode: disabled}}
  - {{name: faulty, driver: mysql, host: 127.0.0.1, port: {fp}, username: {user}, password_file: fixture.pw, ssl_mode: disabled}}
",
        i = INTERVAL.as_millis(),
        t = TIMEOUT.as_millis(),
        s = STATEMENT_TIMEOUT.as_millis(),
        hp = server().port(),
        fp = proxy.port(),
    ));
    let app = App::start(config).await.expect("daemon starts");
    // The faulty login's sessions, seen by root on its server (SUPER gets the one
    // connection past max_connections, so this works when the server is full too). The
    // processlist counts whole seconds.
    let mut root = super::client(on, "root", on.password()).await;
    let sessions = async || {
        let query = root.exec_first::<(i64, i64), _, _>(
            "SELECT COUNT(*), CAST(COALESCE(MAX(IF(COMMAND = 'Query', TIME, 0)), 0) AS SIGNED) \
             FROM information_schema.PROCESSLIST WHERE USER = ?",
            (user,),
        );
        match tokio::time::timeout(Duration::from_secs(1), query).await {
            Ok(Ok(Some((n, secs)))) => Some((n, secs as f64)),
            _ => None,
        }
    };
    let watched = Watched {
        up: "mysql_up",
        login: user,
        reason,
    };
    run(
        app,
        &watched,
        async || inject(&proxy).await,
        async || clear(&proxy).await,
        sessions,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port() {
    scenario(
        server(),
        "myf_refused",
        "unreachable",
        async |p| p.set(Mode::Refuse),
        async |p| p.set(Mode::Pass),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole() {
    scenario(
        server(),
        "myf_black_hole",
        "timeout",
        async |p| p.set(Mode::BlackHole),
        async |p| p.set(Mode::Pass),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_mid_handshake() {
    // 40 bytes of the server's greeting arrive, the rest never does.
    scenario(
        server(),
        "myf_stall",
        "timeout",
        async |p| p.set(Mode::StallAfter(40)),
        async |p| p.set(Mode::Pass),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password() {
    let s = server();
    scenario(
        s,
        "myf_password",
        "auth_failed",
        async |_| {
            s.sql(
                "",
                "ALTER USER myf_password@'%' IDENTIFIED BY 'not-the-one-in-the-file'",
            )
            .expect("alter");
        },
        async |_| {
            s.sql(
                "",
                &format!("ALTER USER myf_password@'%' IDENTIFIED BY '{PASSWORD}'"),
            )
            .expect("alter");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_reached() {
    // A server of its own, filled by a tenant's sessions.
    let own: &'static MariaDb = Box::leak(Box::new(
        MariaDb::start_with(&["--max-connections=12"]).expect("its own MariaDB"),
    ));
    setup(own);
    super::plain_user(own, "myf_tenant");
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let fill = held.clone();
    scenario(
        own,
        "myf_full",
        "too_many_connections",
        async |_| {
            // Until the server refuses: every slot is the tenant's.
            let mut held = fill.lock().await;
            for _ in 0..20 {
                let opts = mysql_async::OptsBuilder::default()
                    .ip_or_hostname(own.host())
                    .tcp_port(own.port())
                    .user(Some("myf_tenant"))
                    .pass(Some(PASSWORD))
                    .prefer_socket(false);
                match mysql_async::Conn::new(opts).await {
                    Ok(conn) => held.push(conn),
                    Err(mysql_async::Error::Server(e)) if e.code == 1040 => break,
                    Err(e) => panic!("filling the server: {e}"),
                }
            }
            assert!(!held.is_empty());
        },
        async |_| {
            for conn in fill.lock().await.drain(..) {
                let _ = conn.disconnect().await;
            }
        },
    )
    .await;
    drop(held);
}
