//! The `mesa` binary through a hundred injected and cleared faults: its descriptors, tasks
//! and memory come back to their baseline.

use super::*;

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
    let port = crate::support::closed_port();
    let c = cluster();
    let yaml = format!(
        "collection: {{interval: 150ms, timeout: 120ms, connect_timeout: 100ms, statement_timeout: 100ms, lock_timeout: 50ms, databases: {{discover: false}}, session: ephemeral}}
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
            // Generous: this test is about leaks. After a black hole clears, a target waits
            // for the slots its abandoned logins hold (up to 2 s each, see hold.rs) and
            // its backoff; the fault suite bounds recovery itself.
            assert!(
                started.elapsed() < Duration::from_secs(15),
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
    // Let in-flight work end, then compare: an abandoned startup finishes in the background
    // for at most 2 s, a slow close for at most 5 s more (hold.rs, ABANDONED_LINGER and
    // CLOSE_LINGER), each holding its slot, socket and task until then.
    tokio::time::sleep(Duration::from_secs(6)).await;
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
