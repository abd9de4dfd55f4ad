//! The faults a fleet really has, each with one healthy and one faulty target on one daemon
//! (issue 11). Network faults go through [`proxy::FaultProxy`]; server faults are made on the
//! shared cluster with a role of the scenario's own (so nothing else is touched).
//!
//! Every scenario checks, while the fault lasts and after it clears:
//! - the faulty target's `pg_up` turns 0, with the expected failure reason counted, within
//!   one interval (the next tick) plus `collection.timeout` plus 1 s;
//! - the healthy target misses no collection and skips no tick;
//! - `/metrics` answers every 100 ms with p99 under 100 ms;
//! - Mesa never holds more than 2 sessions of the faulty role (sampled every 100 ms from
//!   `pg_stat_activity`), and no statement of it runs longer than `statement_timeout` + 1 s;
//! - once the fault clears, `pg_up` is 1 again within the longest backoff plus one interval.

mod proxy;

use std::time::{Duration, Instant};

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use proxy::{FaultProxy, Mode};

use crate::support::*;

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(800);
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(700);
/// The longest backoff: 4 intervals stretched by 25 %.
const BACKOFF: Duration = Duration::from_millis(5000);

/// What the scenario changes, and how it undoes it.
struct Fault<'a> {
    /// The failure reason the faulty target must report.
    reason: &'a str,
}

/// What a scenario measured.
#[derive(Debug)]
struct Figures {
    to_down: Duration,
    to_up: Duration,
    max_sessions: i64,
    oldest_statement: f64,
    scrape_p99: Duration,
    healthy_collections: usize,
}

/// The server behind the faulty target: the shared cluster, or one of the scenario's own.
#[derive(Clone, Copy)]
enum Server {
    Shared,
    Own(&'static mesa::testing::PgCluster),
}

impl Server {
    fn cluster(self) -> &'static mesa::testing::PgCluster {
        match self {
            Server::Shared => cluster(),
            Server::Own(c) => c,
        }
    }

    /// A superuser session, or `None` while the server does not answer.
    async fn superuser(self) -> Option<tokio_postgres::Client> {
        self.cluster()
            .try_superuser("postgres", Duration::from_secs(1))
            .await
    }
}

/// Creates `role` afresh on `server`: a `pg_monitor` member with the fixture password.
async fn monitor_role(server: Server, role: &str) {
    let _guard = role_lock().await;
    let su = server.superuser().await.expect("the server answers");
    su.batch_execute(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}' IN ROLE pg_monitor"
    ))
    .await
    .expect("role");
}

/// A scenario's daemon: `healthy` on the shared cluster as `mesa_monitor`, and `faulty`
/// with the given fields (where and as whom it connects), both with the fixture password,
/// every [`INTERVAL`] under the scenario's timeouts.
fn pair_config(faulty: &str) -> mesa::config::Config {
    daemon_config(&format!(
        "collection: {{interval: {i}ms, timeout: {t}ms, connect_timeout: 500ms, statement_timeout: {s}ms, lock_timeout: 300ms}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: healthy, driver: postgres, host: '{{host}}', port: {{port}}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}
  - {{name: faulty, driver: postgres, {faulty}, password_file: fixture.pw, sslmode: disable}}
",
        i = INTERVAL.as_millis(),
        t = TIMEOUT.as_millis(),
        s = STATEMENT_TIMEOUT.as_millis(),
    ))
}

/// Runs one scenario on the shared cluster.
async fn scenario<I, C>(role: &str, fault: Fault<'_>, inject: I, clear: C) -> Figures
where
    I: AsyncFnOnce(&FaultProxy, &str),
    C: AsyncFnOnce(&FaultProxy, &str),
{
    scenario_on(Server::Shared, role, fault, inject, clear).await
}

/// Runs one scenario: `role` is created on `server` (a `pg_monitor` member with the fixture
/// password), Mesa watches `healthy` (on the shared cluster) directly and `faulty` (on
/// `server`) through a fault proxy, `inject` makes the fault, `clear` undoes it.
async fn scenario_on<I, C>(
    server: Server,
    role: &str,
    fault: Fault<'_>,
    inject: I,
    clear: C,
) -> Figures
where
    I: AsyncFnOnce(&FaultProxy, &str),
    C: AsyncFnOnce(&FaultProxy, &str),
{
    // Its scrape p99 is a figure of this daemon alone, not of a flood next door.
    let _quiet = quiet().await;
    monitor_role(server, role).await;
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], server.cluster().port()));
    let proxy = FaultProxy::start(upstream).await;
    let config = pair_config(&format!(
        "host: 127.0.0.1, port: {}, username: {role}",
        proxy.port()
    ));
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.metrics_addr();
    let up = |text: &str, server: &str| value(text, "pg_up", &[("server", server)]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, _, text) = http_get(addr, "/metrics").await;
            up(&text, "healthy") == Some(1.0) && up(&text, "faulty") == Some(1.0)
        })
        .await,
        "{role}: both targets up before the fault"
    );
    // Sessions are sampled on the faulty server; while it does not answer (stopped,
    // restarting) there is nothing to count, and a new session is tried next time.
    let mut su = server.superuser().await;
    let failures = |text: &str| {
        value(
            text,
            "mesa_collect_failures_total",
            &[
                ("server", "faulty"),
                ("reason", fault.reason),
                ("collector", "health"),
            ],
        )
        .unwrap_or(0.0)
    };
    let (_, _, before) = http_get(addr, "/metrics").await;
    let failures_before = failures(&before);

    let mut scrapes: Vec<Duration> = Vec::new();
    let mut healthy_seen: Vec<f64> = Vec::new();
    let mut max_sessions = 0i64;
    let mut oldest = 0f64;
    // One sample: a timed scrape, the healthy target's last success, the faulty role's
    // sessions and its oldest running statement.
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
        if su.as_ref().is_none_or(|c| c.is_closed()) {
            su = server.superuser().await;
        }
        if let Some(client) = &su {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&role];
            let query = client.query_one(
                "SELECT count(*), coalesce(max(extract(epoch FROM now() - query_start)) FILTER (WHERE state = 'active'), 0)::float8
                   FROM pg_stat_activity WHERE usename = $1",
                &params,
            );
            // A stopped postmaster leaves this session working; a bounded wait anyway.
            if let Ok(Ok(row)) = tokio::time::timeout(Duration::from_secs(1), query).await {
                max_sessions = max_sessions.max(row.get::<_, i64>(0));
                oldest = oldest.max(row.get::<_, f64>(1));
            }
        }
        text
    };

    inject(&proxy, role).await;
    let injected = Instant::now();
    let limit_down = INTERVAL + TIMEOUT + Duration::from_secs(1);
    let to_down = loop {
        let text = sample(&mut scrapes).await;
        if up(&text, "faulty") == Some(0.0) {
            assert!(
                failures(&text) > failures_before,
                "{role}: pg_up 0 but no failure with reason {:?}:\n{}",
                fault.reason,
                text.lines()
                    .filter(|l| l.starts_with("mesa_collect_failures_total{server=\"faulty\""))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            break injected.elapsed();
        }
        assert!(
            injected.elapsed() < limit_down + Duration::from_secs(1),
            "{role}: pg_up still not 0 after {:?}",
            injected.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The fault lasts a little longer: retries and backoff under it.
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(2) {
        sample(&mut scrapes).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    clear(&proxy, role).await;
    let cleared = Instant::now();
    let to_up = loop {
        let text = sample(&mut scrapes).await;
        if up(&text, "faulty") == Some(1.0) {
            break cleared.elapsed();
        }
        assert!(
            cleared.elapsed() < BACKOFF + INTERVAL + Duration::from_secs(2),
            "{role}: pg_up not back to 1 after {:?}",
            cleared.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (_, _, last) = http_get(addr, "/metrics").await;
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");

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
    eprintln!("{role}: {figures:?}");
    assert!(figures.to_down <= limit_down, "{role}: {figures:?}");
    assert!(figures.to_up <= BACKOFF + INTERVAL, "{role}: {figures:?}");
    assert!(figures.max_sessions <= 2, "{role}: {figures:?}");
    assert!(
        figures.oldest_statement <= (STATEMENT_TIMEOUT + Duration::from_secs(1)).as_secs_f64(),
        "{role}: {figures:?}"
    );
    assert!(
        figures.scrape_p99 < Duration::from_millis(100),
        "{role}: {figures:?}"
    );
    // The healthy target: a success every interval, never a skipped tick.
    let gaps: Vec<f64> = healthy_seen.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        // A missed collection leaves a gap of two intervals; scheduling jitter under load stays
        // far below that.
        gaps.iter().all(|g| *g < INTERVAL.as_secs_f64() * 1.9),
        "{role}: the healthy target missed a collection: gaps {gaps:?}"
    );
    let elapsed = injected.elapsed().as_secs_f64();
    assert!(
        figures.healthy_collections as f64 >= elapsed / INTERVAL.as_secs_f64() - 2.0,
        "{role}: {figures:?}"
    );
    assert_eq!(
        value(
            &last,
            "mesa_collect_skipped_total",
            &[("server", "healthy")]
        ),
        Some(0.0),
        "{role}"
    );
    figures
}

async fn set(proxy: &FaultProxy, mode: Mode) {
    proxy.set(mode);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port() {
    scenario(
        "fault_refused",
        Fault {
            reason: "unreachable",
        },
        async |p, _| set(p, Mode::Refuse).await,
        async |p, _| set(p, Mode::Pass).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole() {
    scenario(
        "fault_black_hole",
        Fault { reason: "timeout" },
        async |p, _| set(p, Mode::BlackHole).await,
        async |p, _| set(p, Mode::Pass).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_mid_startup() {
    // 60 bytes from the server: the authentication request arrives, the rest never does.
    scenario(
        "fault_stall",
        Fault { reason: "timeout" },
        async |p, _| set(p, Mode::StallAfter(60)).await,
        async |p, _| set(p, Mode::Pass).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_beyond_the_deadline() {
    scenario(
        "fault_latency",
        Fault { reason: "timeout" },
        async |p, _| set(p, Mode::Latency(Duration::from_millis(400))).await,
        async |p, _| set(p, Mode::Pass).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset() {
    scenario(
        "fault_reset",
        Fault {
            reason: "unreachable",
        },
        async |p, _| set(p, Mode::Reset).await,
        async |p, _| set(p, Mode::Pass).await,
    )
    .await;
}

/// Runs `sql` as the superuser (role changes of a scenario).
async fn admin_sql(sql: &str) {
    let _guard = role_lock().await;
    superuser("postgres")
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_with_connection_limit_zero() {
    scenario(
        "fault_conn_limit",
        Fault {
            reason: "too_many_connections",
        },
        async |_, role| admin_sql(&format!("ALTER ROLE {role} CONNECTION LIMIT 0")).await,
        async |_, role| admin_sql(&format!("ALTER ROLE {role} CONNECTION LIMIT -1")).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password() {
    scenario(
        "fault_password",
        Fault {
            reason: "auth_failed",
        },
        async |_, role| {
            admin_sql(&format!(
                "ALTER ROLE {role} PASSWORD 'not-the-one-in-the-file'"
            ))
            .await
        },
        async |_, role| admin_sql(&format!("ALTER ROLE {role} PASSWORD '{ROLE_PASSWORD}'")).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_backends_terminated_by_the_server() {
    // Every session of the role is terminated as soon as it appears, for as long as the fault
    // lasts; 40 ms of latency per chunk keeps each collection on the server long enough to be caught.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (stop, armed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let killer = {
        let (stop, armed) = (stop.clone(), armed.clone());
        tokio::spawn(async move {
            let su = superuser("postgres").await;
            while !stop.load(Ordering::Relaxed) {
                if !armed.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let _ = su
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'fault_terminated'",
                        &[],
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (arm, disarm) = (armed.clone(), armed.clone());
    scenario(
        "fault_terminated",
        Fault {
            reason: "unreachable",
        },
        async move |p, _| {
            arm.store(true, Ordering::Relaxed);
            set(p, Mode::Latency(Duration::from_millis(40))).await
        },
        async move |p, _| {
            disarm.store(false, Ordering::Relaxed);
            set(p, Mode::Pass).await
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = killer.await;
}

/// A cluster of the scenario's own (the fault would disturb every other test).
fn own_cluster(extra_conf: &[&str]) -> &'static mesa::testing::PgCluster {
    let cluster = mesa::testing::PgCluster::start(mesa::testing::ClusterOptions {
        extra_conf: extra_conf.iter().map(|s| (*s).to_owned()).collect(),
        ..mesa::testing::ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("a scenario's PostgreSQL did not start: {e}"));
    // Lives until the test binary exits (the harness' watchdog removes it then).
    Box::leak(Box::new(cluster))
}

/// Sends `signal` to `pid` with the system's `kill`.
fn kill(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postmaster() {
    // SIGSTOP: the port still accepts (the kernel's backlog), nothing answers.
    let own = own_cluster(&[]);
    let pid = own.postmaster_pid().expect("pid");
    scenario_on(
        Server::Own(own),
        "fault_sigstop",
        Fault { reason: "timeout" },
        async |_, _| kill("-STOP", pid),
        async |_, _| kill("-CONT", pid),
    )
    .await;
    own.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_collections() {
    // 30 ms per chunk keeps collections in flight when the server goes down.
    let own = own_cluster(&[]);
    scenario_on(
        Server::Own(own),
        "fault_restart",
        Fault {
            reason: "unreachable",
        },
        async |p, _| {
            set(p, Mode::Latency(Duration::from_millis(30))).await;
            tokio::task::block_in_place(|| own.stop());
        },
        async |p, _| {
            tokio::task::block_in_place(|| own.start_again()).expect("starts again");
            set(p, Mode::Pass).await;
        },
    )
    .await;
    own.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_exhausted() {
    // 3 of 8 slots are the superuser's; five sessions of another role take the rest.
    let own = own_cluster(&["max_connections = 8", "superuser_reserved_connections = 3"]);
    own.psql(
        "postgres",
        &format!("CREATE ROLE fault_hog LOGIN PASSWORD '{ROLE_PASSWORD}'"),
    )
    .expect("role");
    // The hogs are a task that keeps taking every slot that frees up: a collection of
    // Mesa's own that was in flight when the fault began gives its slot back, and a hog must
    // take it before Mesa's next collection does.
    let hogs: std::sync::Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>> =
        Default::default();
    let (take, give) = (hogs.clone(), hogs.clone());
    scenario_on(
        Server::Own(own),
        "fault_max_conn",
        Fault {
            reason: "too_many_connections",
        },
        async move |_, _| {
            let (refused_tx, refused_rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(async move {
                let mut held = Vec::new();
                let mut refused_tx = Some(refused_tx);
                loop {
                    match own.connect("fault_hog", ROLE_PASSWORD, "postgres").await {
                        Ok(client) => held.push(client),
                        Err(e) => {
                            if e.code()
                                == Some(&tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS)
                                && let Some(tx) = refused_tx.take()
                            {
                                let _ = tx.send(held.len());
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            });
            *take.lock().await = Some(task);
            // The fault is in place once the server has refused a hog for want of a slot.
            let held = tokio::time::timeout(Duration::from_secs(5), refused_rx)
                .await
                .expect("the server refused a hog within 5 s")
                .expect("the hogs' task runs");
            assert!(held >= 2, "took only {held} slots before the first refusal");
        },
        async move |_, _| {
            // Dropping the task drops its sessions.
            if let Some(task) = give.lock().await.take() {
                task.abort();
            }
        },
    )
    .await;
    own.stop();
}

/// The Mesa binary's own resources, as it reports them on `/metrics`.
#[derive(Debug, Clone, Copy)]
struct Resources {
    fds: f64,
    tasks: f64,
    rss_mib: f64,
}

async fn resources(addr: std::net::SocketAddr) -> Resources {
    let (_, _, text) = http_get(addr, "/metrics").await;
    let get = |name: &str| value(&text, name, &[]).unwrap_or_else(|| panic!("{name} missing"));
    Resources {
        fds: get("process_open_fds"),
        tasks: get("mesa_runtime_alive_tasks"),
        rss_mib: get("process_resident_memory_bytes") / (1024.0 * 1024.0),
    }
}

/// The smallest of a few readings (a collection or a scrape in flight adds a socket and a
/// task for a moment; a leak stays).
async fn settled(addr: std::net::SocketAddr) -> Resources {
    let mut best: Option<Resources> = None;
    for _ in 0..10 {
        let r = resources(addr).await;
        best = Some(match best {
            None => r,
            Some(b) => Resources {
                fds: b.fds.min(r.fds),
                tasks: b.tasks.min(r.tasks),
                rss_mib: b.rss_mib.min(r.rss_mib),
            },
        });
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    best.expect("ten readings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_faults_injected_and_cleared_leak_nothing() {
    let role = "fault_cycles";
    monitor_role(Server::Shared, role).await;
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], cluster().port()));
    let proxy = FaultProxy::start(upstream).await;
    let dir = std::env::temp_dir().join(format!("mesa-cycles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let pw = dir.join("pw");
    std::fs::write(&pw, ROLE_PASSWORD).expect("pw");
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let c = cluster();
    let yaml = format!(
        "collection: {{interval: 150ms, timeout: 120ms, connect_timeout: 100ms, statement_timeout: 100ms, lock_timeout: 50ms}}
web: {{listen_address: '127.0.0.1:{port}'}}
targets:
  - {{name: healthy, driver: postgres, host: {h}, port: {p}, username: mesa_monitor, password_file: {pw}, sslmode: disable}}
  - {{name: faulty, driver: postgres, host: 127.0.0.1, port: {fp}, username: {role}, password_file: {pw}, sslmode: disable}}
",
        h = c.host(),
        p = c.port(),
        fp = proxy.port(),
        pw = pw.display(),
    );
    let config = dir.join("mesa.yaml");
    std::fs::write(&config, yaml).expect("config");
    let mut mesa = std::process::Command::new(env!("CARGO_BIN_EXE_mesa"))
        .arg("--config.file")
        .arg(&config)
        .args(["--log.level", "error"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mesa starts");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let faulty_up = async || {
        try_http_get(addr, "/metrics")
            .await
            .and_then(|(_, _, text)| value(&text, "pg_up", &[("server", "faulty")]))
    };
    let wait_for = async |want: f64| {
        let started = Instant::now();
        while faulty_up().await != Some(want) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "pg_up{{server=\"faulty\"}} never became {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for(1.0).await;
    let modes = [
        Mode::Refuse,
        Mode::BlackHole,
        Mode::Reset,
        Mode::StallAfter(60),
        Mode::Latency(Duration::from_millis(200)),
    ];
    let cycle = async |i: usize| {
        proxy.set(modes[i % modes.len()]);
        wait_for(0.0).await;
        proxy.set(Mode::Pass);
        wait_for(1.0).await;
    };
    // Warm-up: pools, buffers and the allocator reach their working size.
    for i in 0..10 {
        cycle(i).await;
    }
    let baseline = settled(addr).await;
    for i in 0..100 {
        cycle(i).await;
    }
    // Let in-flight work end, then compare.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = settled(addr).await;
    let _ = mesa.kill();
    let _ = mesa.wait();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("cycles: baseline {baseline:?}, after 100 cycles {after:?}");
    assert!(
        after.fds <= baseline.fds,
        "descriptors leaked: {baseline:?} -> {after:?}"
    );
    assert!(
        after.tasks <= baseline.tasks,
        "tasks leaked: {baseline:?} -> {after:?}"
    );
    assert!(
        after.rss_mib <= baseline.rss_mib + 5.0,
        "memory grew: {baseline:?} -> {after:?}"
    );
}

/// Starts an admin call (`start`) with every chunk slowed by 60 ms, lets `moment` pass, then
/// makes `fault`; returns the answer and how long after the fault it came.
async fn interrupted(
    proxy: &FaultProxy,
    start: impl FnOnce() -> tokio::task::JoinHandle<Reply>,
    moment: impl std::future::Future<Output = ()>,
    fault: Mode,
) -> (Reply, Duration) {
    proxy.set(Mode::Latency(Duration::from_millis(60)));
    let pending = start();
    moment.await;
    proxy.set(fault);
    let at = Instant::now();
    let reply = pending.await.expect("request task");
    (reply, at.elapsed())
}

/// The audit log's records, one JSON object per line.
fn audit_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_whose_target_dies_mid_call() {
    let (monitor, admin) = ("fault_adm_monitor", "fault_adm_admin");
    {
        let _guard = role_lock().await;
        superuser("postgres")
            .await
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS fault_half_user;
                 DROP ROLE IF EXISTS {monitor}; DROP ROLE IF EXISTS {admin};
                 CREATE ROLE {monitor} LOGIN PASSWORD '{ROLE_PASSWORD}' IN ROLE pg_monitor;
                 CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD '{ROLE_PASSWORD}'
                   IN ROLE pg_signal_backend, pg_read_all_stats;"
            ))
            .await
            .expect("roles");
    }
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], cluster().port()));
    let proxy = FaultProxy::start(upstream).await;
    let token = mesa::token::generate().expect("token");
    let config = daemon_config(&format!(
        "collection: {{interval: 2s, timeout: 1s, connect_timeout: 500ms}}
web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  audit_log: audit-faults.jsonl
  tokens:
    - {{name: ops, sha256: '{sha}', scopes: [read, terminate, create_user], targets: ['*']}}
targets:
  - {{name: faulty, driver: postgres, host: 127.0.0.1, port: {port}, username: {monitor}, password_file: fixture.pw, sslmode: disable, admin: {{username: {admin}, password_file: fixture.pw}}}}
",
        sha = token.sha256_hex,
        port = proxy.port(),
    ));
    let audit = config.admin.audit_log.clone().expect("audit path");
    let _ = std::fs::remove_file(&audit);
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.admin_addr().expect("admin API");
    let bearer = token.token.expose().to_owned();
    let call = |method: &'static str, path: String, body: Option<&'static str>| {
        let bearer = bearer.clone();
        tokio::spawn(async move { request(addr, method, &path, Some(&bearer), body).await })
    };

    // Create-user: every chunk is slowed, then the connection is reset while the call is in
    // flight (during the login or the transaction).
    let create = || {
        call(
            "POST",
            "/api/v1/targets/faulty/users".to_owned(),
            Some(r#"{"name":"fault_half_user"}"#),
        )
    };
    let sleep = || tokio::time::sleep(Duration::from_millis(250));
    let (created, _) = interrupted(&proxy, create, sleep(), Mode::Reset).await;
    eprintln!(
        "create-user, reset during the login: {} {}",
        created.status, created.body
    );
    assert!(
        [503, 504].contains(&created.status),
        "create-user through a dying target: {} {}",
        created.status,
        created.body
    );
    assert_eq!(
        created.header("content-type"),
        Some("application/problem+json")
    );

    // Again, but the reset comes once Mesa's admin session exists on the server (logged in,
    // its transaction on the way).
    let su = superuser("postgres").await;
    let admin_session = async {
        let logged_in = Instant::now();
        while su
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE usename = $1",
                &[&admin],
            )
            .await
            .expect("probe")
            .is_none()
        {
            assert!(
                logged_in.elapsed() < Duration::from_secs(5),
                "no admin session"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (mid, _) = interrupted(&proxy, create, admin_session, Mode::Reset).await;
    eprintln!(
        "create-user, reset after the login: {} {}",
        mid.status, mid.body
    );
    assert!(
        [503, 504].contains(&mid.status),
        "{} {}",
        mid.status,
        mid.body
    );
    proxy.set(Mode::Pass);

    // Terminate: the target stops answering mid-call (a black hole).
    let victim = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("victim");
    let pid = backend_pid(&victim).await;
    let terminate = || {
        call(
            "POST",
            format!("/api/v1/targets/faulty/sessions/{pid}/terminate"),
            None,
        )
    };
    let (terminated, after_fault) = interrupted(&proxy, terminate, sleep(), Mode::BlackHole).await;
    assert_eq!(terminated.status, 504, "{}", terminated.body);
    assert!(after_fault < Duration::from_secs(10), "{after_fault:?}");
    proxy.set(Mode::Pass);

    // Nothing half-created: the role either does not exist or exists whole (created and
    // committed in one transaction, its login and password usable).
    if role_exists("fault_half_user").await {
        panic!(
            "create-user answered {} but the role exists: the outcome says it failed",
            created.status
        );
    }
    // The terminate never reached the server (or did, whole): the audit says which.
    let records = audit_records(&audit);
    let outcomes: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["event"] == "outcome").collect();
    assert_eq!(outcomes.len(), 3, "{records:#?}");
    for (outcome, status) in outcomes
        .iter()
        .zip([created.status, mid.status, terminated.status])
    {
        assert_eq!(outcome["outcome"], "error", "{outcome}");
        assert_eq!(outcome["status"], status, "{outcome}");
    }
    assert!(
        pid_exists(pid).await,
        "the terminate failed, so the victim session must still be there"
    );
    drop(victim);
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
}

/// A role without `pg_monitor` sees other roles' sessions without their type: connection
/// counts and utilisation would read low and a saturation alert stay silent. Mesa says so:
/// `pg_up` 0 with reason `permission_denied` (and the grant to make in its log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_monitor_revoked() {
    scenario(
        "fault_unprivileged",
        Fault {
            reason: "permission_denied",
        },
        async |_, role| admin_sql(&format!("REVOKE pg_monitor FROM {role}")).await,
        async |_, role| admin_sql(&format!("GRANT pg_monitor TO {role}")).await,
    )
    .await;
}

/// The one fault of the list that is not an outage, on a running daemon: a lock that a
/// collector's statement waits on. It fails that collector alone, counted with reason
/// `timeout` after `lock_timeout`, inside the collection's deadline; `pg_up` stays 1 (paging
/// for one blocked view would be a false alarm, and would blind every other panel), the
/// other collectors deliver, it clears without a restart, and the healthy target never
/// notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_fails_its_collector_not_the_health_check() {
    let role = "fault_locked";
    monitor_role(Server::Shared, role).await;
    let db = fresh_database("fault_locked").await;
    db.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("extension");
    let config = pair_config(&format!(
        "host: '{{host}}', port: {{port}}, database: fault_locked, username: {role}, collectors: {{stat_statements: true}}"
    ));
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.metrics_addr();
    let statements = |text: &str| {
        value(
            text,
            "mesa_collector_success",
            &[("server", "faulty"), ("collector", "stat_statements")],
        )
    };
    let lock_failures = |text: &str| {
        value(
            text,
            "mesa_collect_failures_total",
            &[
                ("server", "faulty"),
                ("collector", "stat_statements"),
                ("reason", "timeout"),
            ],
        )
        .unwrap_or(0.0)
    };
    let (ready, text) = poll_until(
        Duration::from_secs(5),
        || async { http_get(addr, "/metrics").await.2 },
        |text| {
            statements(text) == Some(1.0)
                && value(text, "pg_up", &[("server", "healthy")]) == Some(1.0)
        },
    )
    .await;
    assert!(
        ready,
        "before the lock, both up, stat_statements succeeds:\n{text}"
    );

    // Every scrape while the lock lasts: both targets up, no health failure.
    let both_up = |text: &str, moment: &str| {
        for server in ["healthy", "faulty"] {
            assert_eq!(
                value(text, "pg_up", &[("server", server)]),
                Some(1.0),
                "{moment}: {server} down"
            );
            let health_failures = sum(
                text,
                "mesa_collect_failures_total",
                &[("server", server), ("collector", "health")],
            );
            assert_eq!(
                health_failures, 0.0,
                "{moment}: {server}'s health check failed"
            );
        }
    };

    let before = lock_failures(&text);
    db.batch_execute("BEGIN; LOCK TABLE public.pg_stat_statements IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let (failed, text) = poll_until(
        Duration::from_secs(5),
        || async {
            let text = http_get(addr, "/metrics").await.2;
            both_up(&text, "locked");
            text
        },
        |text| lock_failures(text) >= before + 2.0 && statements(text) == Some(0.0),
    )
    .await;
    assert!(
        failed,
        "locked: stat_statements fails alone, twice:\n{text}"
    );
    // The other collectors of the locked target still deliver.
    assert_eq!(
        value(
            &text,
            "mesa_collector_success",
            &[("server", "faulty"), ("collector", "activity")]
        ),
        Some(1.0)
    );
    // Failed by lock_timeout (300 ms), inside the collection's deadline.
    let last = value(
        &text,
        "mesa_collect_duration_seconds",
        &[("server", "faulty")],
    )
    .expect("the last collection's duration");
    assert!(
        last < TIMEOUT.as_secs_f64(),
        "a locked collection took {last} s"
    );
    db.batch_execute("ROLLBACK").await.expect("unlock");
    let (recovered, text) = poll_until(
        Duration::from_secs(5),
        || async { http_get(addr, "/metrics").await.2 },
        |text| statements(text) == Some(1.0),
    )
    .await;
    assert!(
        recovered,
        "unlocked: stat_statements succeeds again:\n{text}"
    );
    assert_eq!(
        value(
            &text,
            "mesa_collect_skipped_total",
            &[("server", "healthy")]
        ),
        Some(0.0)
    );
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
}
