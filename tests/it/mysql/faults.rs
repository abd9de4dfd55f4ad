//! The fault suite's cases for MySQL targets, with the PostgreSQL suite's rules
//! (`faults/mod.rs`): one healthy and one faulty target on one daemon, the faulty one through
//! the fault proxy, as a login of the scenario's own. While the fault lasts and after it
//! clears:
//! - the faulty target's `mysql_up` turns 0, with the expected failure reason counted, within
//!   one interval plus `collection.timeout` plus 1 s;
//! - the healthy target misses no collection and skips no tick;
//! - `/metrics` answers every 100 ms with p99 under 100 ms;
//! - Mesa never holds more than 2 sessions of the faulty login (sampled every 100 ms from the
//!   processlist), and no statement of it runs longer than `statement_timeout` + 1 s;
//! - once the fault clears, `mysql_up` is 1 again within the longest backoff plus one interval.

use std::time::{Duration, Instant};

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa_testkit::mariadb::MariaDb;
use mesa_testkit::proxy::{FaultProxy, Mode};
use mysql_async::prelude::Queryable;

use super::{PASSWORD, server, setup};
use crate::support::{daemon_config, eventually, http_get, quiet, value};

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(800);
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(700);
/// The longest backoff: 4 intervals stretched by 25 %.
const BACKOFF: Duration = Duration::from_millis(5000);

/// What a scenario measured.
#[derive(Debug)]
struct Figures {
    to_down: Duration,
    to_up: Duration,
    max_sessions: i64,
    oldest_statement: i64,
    scrape_p99: Duration,
    healthy_collections: usize,
}

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
/// undoes it; `reason` is the failure the faulty target must report.
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
    let shared = server();
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
        hp = shared.port(),
        fp = proxy.port(),
    ));
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.metrics_addr();
    let up = |text: &str, server: &str| value(text, "mysql_up", &[("server", server)]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, _, text) = http_get(addr, "/metrics").await;
            up(&text, "healthy") == Some(1.0) && up(&text, "faulty") == Some(1.0)
        })
        .await,
        "{user}: both targets up before the fault"
    );
    let failures = |text: &str| {
        value(
            text,
            "mesa_collect_failures_total",
            &[
                ("server", "faulty"),
                ("reason", reason),
                ("collector", "health"),
            ],
        )
        .unwrap_or(0.0)
    };
    let (_, _, before) = http_get(addr, "/metrics").await;
    let failures_before = failures(&before);
    // The faulty login's sessions, seen by root on its server (SUPER gets the one
    // connection past max_connections, so this works when the server is full too).
    let mut root = super::client(on, "root", on.password()).await;

    let mut scrapes: Vec<Duration> = Vec::new();
    let mut healthy_seen: Vec<f64> = Vec::new();
    let mut max_sessions = 0i64;
    let mut oldest = 0i64;
    // Samples of the processlist that answered: the session figures rest on them.
    let mut sampled = 0usize;
    let mut sample = async |scrapes: &mut Vec<Duration>| -> String {
        let started = Instant::now();
        let (status, _, text) = http_get(addr, "/metrics").await;
        scrapes.push(started.elapsed());
        assert_eq!(status, 200);
        if let Some(t) = value(
            &text,
            "mesa_collect_last_success_timestamp_seconds",
            &[("server", "healthy")],
        ) && healthy_seen.last() != Some(&t)
        {
            healthy_seen.push(t);
        }
        let query = root.exec_first::<(i64, i64), _, _>(
            "SELECT COUNT(*), CAST(COALESCE(MAX(IF(COMMAND = 'Query', TIME, 0)), 0) AS SIGNED) \
             FROM information_schema.PROCESSLIST WHERE USER = ?",
            (user,),
        );
        if let Ok(Ok(Some((n, secs)))) = tokio::time::timeout(Duration::from_secs(1), query).await {
            max_sessions = max_sessions.max(n);
            oldest = oldest.max(secs);
            sampled += 1;
        }
        text
    };

    inject(&proxy).await;
    let injected = Instant::now();
    let limit_down = INTERVAL + TIMEOUT + Duration::from_secs(1);
    let to_down = loop {
        let text = sample(&mut scrapes).await;
        if up(&text, "faulty") == Some(0.0) {
            assert!(
                failures(&text) > failures_before,
                "{user}: mysql_up 0 but no failure with reason {reason:?}:\n{}",
                text.lines()
                    .filter(|l| l.starts_with("mesa_collect_failures_total{server=\"faulty\""))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            break injected.elapsed();
        }
        assert!(
            injected.elapsed() < limit_down + Duration::from_secs(1),
            "{user}: mysql_up still not 0 after {:?}",
            injected.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(2) {
        sample(&mut scrapes).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    clear(&proxy).await;
    let cleared = Instant::now();
    let to_up = loop {
        let text = sample(&mut scrapes).await;
        if up(&text, "faulty") == Some(1.0) {
            break cleared.elapsed();
        }
        assert!(
            cleared.elapsed() < BACKOFF + INTERVAL + Duration::from_secs(2),
            "{user}: mysql_up not back to 1 after {:?}",
            cleared.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (_, _, last) = http_get(addr, "/metrics").await;
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");

    assert!(
        sampled >= 20,
        "{user}: the processlist answered only {sampled} samples"
    );
    scrapes.sort();
    let p99 = scrapes[(scrapes.len() * 99).div_ceil(100).saturating_sub(1)];
    let figures = Figures {
        to_down,
        to_up,
        max_sessions,
        oldest_statement: oldest,
        scrape_p99: p99,
        healthy_collections: healthy_seen.len(),
    };
    eprintln!("{user}: {figures:?}");
    assert!(figures.to_down <= limit_down, "{user}: {figures:?}");
    assert!(figures.to_up <= BACKOFF + INTERVAL, "{user}: {figures:?}");
    assert!(figures.max_sessions <= 2, "{user}: {figures:?}");
    // The processlist counts whole seconds.
    assert!(
        figures.oldest_statement as f64
            <= (STATEMENT_TIMEOUT + Duration::from_secs(1)).as_secs_f64(),
        "{user}: {figures:?}"
    );
    assert!(
        figures.scrape_p99 < Duration::from_millis(100),
        "{user}: {figures:?}"
    );
    let gaps: Vec<f64> = healthy_seen.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g < INTERVAL.as_secs_f64() * 1.9),
        "{user}: the healthy target missed a collection: gaps {gaps:?}"
    );
    let elapsed = injected.elapsed().as_secs_f64();
    assert!(
        figures.healthy_collections as f64 >= elapsed / INTERVAL.as_secs_f64() - 2.0,
        "{user}: {figures:?}"
    );
    assert_eq!(
        value(
            &last,
            "mesa_collect_skipped_total",
            &[("server", "healthy")]
        ),
        Some(0.0),
        "{user}"
    );
    figures
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
