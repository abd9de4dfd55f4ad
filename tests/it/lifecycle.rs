//! The `mesa` binary as a daemon: SIGTERM during collections, SIGHUP with a broken and with a
//! valid config, and its worker threads by fleet size.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

struct Daemon {
    child: Child,
    addr: std::net::SocketAddr,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(config: &Path) -> Self {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", closed_port())
            .parse()
            .expect("addr");
        let log = config.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_mesa"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={addr}"))
            .args(["--log.format", "json"])
            .env_remove("TOKIO_WORKER_THREADS")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("mesa starts");
        Self { child, addr, log }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn metrics(&self) -> String {
        try_http_get(self.addr, "/metrics")
            .await
            .map(|(_, _, b)| b)
            .unwrap_or_default()
    }

    async fn ready(&self) -> bool {
        eventually(Duration::from_secs(10), || async {
            try_http_get(self.addr, "/readyz")
                .await
                .is_some_and(|(s, _, _)| s == 200)
        })
        .await
    }

    /// Waits for exit; returns the exit code and how long it took.
    async fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status.code(), started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (None, started.elapsed())
    }
}

fn config_file(name: &str, targets: &str) -> PathBuf {
    let c = cluster();
    let dir = std::env::temp_dir().join(format!("mesa-life-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("fixture.pw"), ROLE_PASSWORD).expect("password file");
    let path = dir.join(name);
    write_targets(&path, targets, c);
    path
}

fn write_targets(path: &Path, targets: &str, c: &mesa_testkit::PgCluster) {
    let text = format!(
        "collection: {{interval: 1s, timeout: 800ms, connect_timeout: 500ms}}\ntargets:\n{}",
        targets
            .replace("{host}", c.host())
            .replace("{port}", &c.port().to_string())
    );
    std::fs::write(path, text).expect("config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_collections_exits_0_and_leaves_no_session() {
    superuser("postgres")
        .await
        .batch_execute(
            "CREATE ROLE life_user LOGIN PASSWORD 'fixture-password-0123456789' IN ROLE pg_monitor",
        )
        .await
        .expect("role");
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut targets = String::new();
    for i in 0..4 {
        targets.push_str(&format!(
            "  - {{name: db{i}, driver: postgres, host: '{{host}}', port: {{port}}, username: life_user, password_file: fixture.pw, sslmode: disable}}\n"
        ));
    }
    targets.push_str(&format!(
        "  - {{name: hung, driver: postgres, host: 127.0.0.1, port: {}, username: x, sslmode: disable}}\n",
        silent.local_addr().expect("addr").port()
    ));
    let mut daemon = Daemon::start(&config_file("term.yaml", &targets));
    assert!(
        daemon.ready().await,
        "daemon never became ready:\n{}",
        daemon.log()
    );
    // Let collections run for a while, then stop it in the middle of them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.signal("TERM");
    let (code, took) = daemon.wait_exit(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0), "log:\n{}", daemon.log());
    assert!(took < mesa::app::DEFAULT_GRACE_PERIOD, "took {took:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        mesa_sessions_of("life_user").await,
        0,
        "a Mesa session outlived the daemon"
    );
    assert!(daemon.log().contains("SIGTERM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_a_broken_config_out_and_restarts_only_changed_targets() {
    let a = "  - {name: a, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}\n";
    let b = "  - {name: b, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}\n";
    let path = config_file("hup.yaml", &format!("{a}{b}"));
    let mut daemon = Daemon::start(&path);
    assert!(
        daemon.ready().await,
        "daemon never became ready:\n{}",
        daemon.log()
    );

    // Broken: the old config keeps serving, the reload gauge drops to 0.
    std::fs::write(
        &path,
        "targets:\n  - {name: a, driver: postgres, colour: blue}\n",
    )
    .expect("break config");
    daemon.signal("HUP");
    let flagged = eventually(Duration::from_secs(5), || async {
        value(
            &daemon.metrics().await,
            "mesa_config_last_reload_successful",
            &[],
        ) == Some(0.0)
    })
    .await;
    assert!(flagged, "log:\n{}", daemon.log());
    let before = daemon.metrics().await;
    let last_a = value(
        &before,
        "mesa_collect_last_success_timestamp_seconds",
        &[("server", "a")],
    )
    .expect("a");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = daemon.metrics().await;
    assert_eq!(value(&after, "pg_up", &[("server", "a")]), Some(1.0));
    assert_eq!(value(&after, "pg_up", &[("server", "b")]), Some(1.0));
    assert!(
        value(
            &after,
            "mesa_collect_last_success_timestamp_seconds",
            &[("server", "a")]
        )
        .expect("a")
            > last_a
    );
    assert!(
        daemon.log().contains("colour: unknown key"),
        "the problem is logged"
    );

    // Valid, with only b changed: only b restarts.
    let b2 = b.replace(
        "sslmode: disable}",
        "sslmode: disable, statement_timeout: 2s}",
    );
    write_targets(&path, &format!("{a}{b2}"), cluster());
    daemon.signal("HUP");
    let applied = eventually(Duration::from_secs(5), || async {
        value(
            &daemon.metrics().await,
            "mesa_config_last_reload_successful",
            &[],
        ) == Some(1.0)
    })
    .await;
    assert!(applied, "log:\n{}", daemon.log());
    let log = daemon.log();
    let reload = log
        .lines()
        .find(|l| l.contains("\"config reloaded\""))
        .unwrap_or_else(|| panic!("no reload line in:\n{log}"));
    let line: serde_json::Value = serde_json::from_str(reload).expect("JSON log line");
    assert_eq!(line["restarted"], "[\"b\"]", "{line}");
    assert_eq!(line["added"], "[]", "{line}");
    assert_eq!(line["removed"], "[]", "{line}");
    assert_eq!(line["unchanged"], 1, "{line}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            value(&daemon.metrics().await, "pg_up", &[("server", "b")]) == Some(1.0)
        })
        .await
    );

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(12)).await.0, Some(0));
}

/// The daemon's tokio worker threads (tokio names them `tokio-rt-worker`).
fn workers_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's threads")
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "tokio-rt-worker")
        })
        .count()
}

#[tokio::test]
async fn a_small_fleet_runs_on_one_worker_thread_and_a_large_one_on_every_core() {
    // Targets on a closed port: the runtime is chosen from the count alone.
    let port = closed_port();
    let fleet = |n: usize| {
        (0..n)
            .map(|i| {
                format!("  - {{name: w{i}, driver: postgres, host: 127.0.0.1, port: {port}, username: x, sslmode: disable}}\n")
            })
            .collect::<String>()
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for (n, expected) in [(1, 1), (64, 1), (65, cores)] {
        let daemon = Daemon::start(&config_file(&format!("workers{n}.yaml"), &fleet(n)));
        assert!(daemon.ready().await, "not ready:\n{}", daemon.log());
        assert_eq!(workers_of(daemon.child.id()), expected, "{n} targets");
    }
}
