//! Floods must not starve collections (issue 7, item 2): the `mesa` binary under systemd's
//! default `RLIMIT_NOFILE` of 1024 with 1500 connections held open on each listener, and a
//! burst of slow admin reads that must not take the connection slot a collection needs.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Connections held open on each listener.
const FLOOD: usize = 1500;
/// How long they are held.
const HOLD: Duration = Duration::from_secs(6);

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_on_both_listeners_never_fails_a_collection() {
    let _loud = loud().await;
    // This process holds 3000 sockets: lift its own soft limit first.
    let (_, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
    // Root (as in CI) may raise the hard limit too; anyone may raise the soft one to it.
    let want = hard.max(8192);
    if rlimit::Resource::NOFILE.set(want, want).is_err() {
        rlimit::Resource::NOFILE
            .set(hard, hard)
            .expect("raise the test's own limit");
    }
    let (soft, _) = rlimit::Resource::NOFILE.get().expect("getrlimit");
    assert!(
        soft >= 4096,
        "the test needs 4096 descriptors; the limit is {soft} (run it as root or raise ulimit -n)"
    );

    let (web, admin) = (closed_port(), closed_port());
    let token = mesa::token::generate().expect("token");
    let c = cluster();
    let dir = std::env::temp_dir().join(format!("mesa-it-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("fixture.pw"), ROLE_PASSWORD).expect("password file");
    let config_path = dir.join("flood.yaml");
    std::fs::write(
        &config_path,
        format!(
            "collection: {{interval: 1s, timeout: 800ms, {NO_VISITS}}}
web: {{listen_address: '127.0.0.1:{web}'}}
admin:
  listen_address: '127.0.0.1:{admin}'
  tokens:
    - {{name: reader, sha256: '{}', scopes: [read], targets: ['*']}}
targets:
  - {{name: flood_a, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}
  - {{name: flood_b, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}
",
            token.sha256_hex,
            host = c.host(),
            port = c.port(),
        ),
    )
    .expect("config");
    let log = dir.join("flood.log");
    let daemon = Daemon(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n 1024 && exec '{}' --config.file='{}' --log.level=info",
                env!("CARGO_BIN_EXE_mesa"),
                config_path.display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("mesa starts"),
    );
    let pid = daemon.0.id();
    let web_addr: SocketAddr = ([127, 0, 0, 1], web).into();
    let admin_addr: SocketAddr = ([127, 0, 0, 1], admin).into();
    let up = eventually(Duration::from_secs(10), || async {
        try_http_get(web_addr, "/metrics")
            .await
            .is_some_and(|(_, _, body)| {
                value(&body, "pg_up", &[("server", "flood_a")]) == Some(1.0)
                    && value(&body, "pg_up", &[("server", "flood_b")]) == Some(1.0)
            })
    })
    .await;
    assert!(
        up,
        "both targets up before the flood; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Read once Mesa serves: by then `sh` has set the limit and exec'd it.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("?")
        .to_owned();
    assert!(open_files.contains("1024"), "{open_files}");

    let flood_start = std::time::SystemTime::now();
    let started = Instant::now();
    let (held_web, held_admin) = tokio::join!(hold(web_addr, FLOOD), hold(admin_addr, FLOOD));
    let mut peak_fds = open_descriptors(pid);
    while started.elapsed() < HOLD {
        peak_fds = peak_fds.max(open_descriptors(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "flood: {} connections held on the metrics listener and {} on the admin listener for {:?}; mesa ({open_files}) peaked at {peak_fds} open descriptors",
        held_web.len(),
        held_admin.len(),
        started.elapsed()
    );
    assert!(
        held_web.len() >= 1400 && held_admin.len() >= 1400,
        "the flood connected"
    );
    drop(held_web);
    drop(held_admin);

    // /metrics answers afterwards, collections never failed, and they kept running.
    let mut body = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while body.is_none() && Instant::now() < deadline {
        match try_http_get(web_addr, "/metrics").await {
            Some((200, _, text)) => body = Some(text),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let body = body.expect("/metrics answers after the flood");
    let since = flood_start
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for target in ["flood_a", "flood_b"] {
        let failures = sum(&body, "mesa_collect_failures_total", &[("server", target)]);
        assert_eq!(failures, 0.0, "{target} had failed collections:\n{body}");
        assert_eq!(value(&body, "pg_up", &[("server", target)]), Some(1.0));
        let last = value(
            &body,
            "mesa_collect_last_success_timestamp_seconds",
            &[("server", target)],
        )
        .expect("last success");
        assert!(
            last >= since + HOLD.as_secs_f64() - 2.0,
            "{target}: no collection succeeded late in the flood (last {last}, flood began {since})"
        );
    }
    let reply = request(
        admin_addr,
        "GET",
        "/api/v1/targets",
        Some(token.token.expose()),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "the admin API answers after the flood");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for listener in ["metrics", "admin"] {
        let lines = text
            .lines()
            .filter(|l| {
                l.contains("connection cap reached") && l.contains(&format!("listener={listener}"))
            })
            .count();
        assert_eq!(lines, 1, "the {listener} cap is logged once:\n{text}");
    }
    assert!(!text.contains("Too many open files"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_admin_reads_never_take_the_collections_connection_slot() {
    use mesa::collectors::Collect;
    use mesa::gateway::{Administrator, Deadline, FailureReason, Inspector};
    // A database whose catalogs are locked: a connection to it waits until its deadline,
    // holding one of the target's connection slots all along.
    let su = superuser("postgres").await;
    su.batch_execute("CREATE DATABASE slots_locked")
        .await
        .expect("database");
    let locker = superuser("slots_locked").await;
    locker
        .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_class IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let mut t = target("slots", "mesa_monitor");
    t.collection.connect_timeout = Duration::from_secs(5);
    t.collection.lock_timeout = Duration::from_secs(5);
    let g = std::sync::Arc::new(gateway(&t));
    // A burst of five slow reads, as a `read` token could send.
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let g = g.clone();
        reads.spawn(async move {
            g.tables(
                &object("slots_locked"),
                Deadline::after(Duration::from_secs(3)),
            )
            .await
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Premise: the reads really hold the admin slot (another admin call cannot get one).
    let blocked = g
        .server_health(Deadline::after(Duration::from_millis(300)))
        .await
        .expect_err("the admin slot is taken");
    assert_eq!(blocked.reason(), FailureReason::Timeout, "{blocked}");
    // A collection with a one-second deadline still gets its own slot at once.
    let started = Instant::now();
    let collected = g.collect(Deadline::after(Duration::from_secs(1))).await;
    let took = started.elapsed();
    println!(
        "slots: with 5 slow reads in flight, a collection took {took:?} ({})",
        if collected.is_ok() { "ok" } else { "failed" }
    );
    collected.expect("the collection keeps its deadline");
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    // The reads end by their deadline, or answer once the lock is gone.
    while let Some(read) = reads.join_next().await {
        let _ = read.expect("join");
    }
}
