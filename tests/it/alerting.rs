//! The shipped alerts fire for real (issue 9): PostgreSQL, Mesa and Prometheus (with the
//! shipped scrape configs and `alerts.yml`, its `for:` durations shortened to seconds). Real
//! client connections push the utilization ratio over the warning threshold until Prometheus
//! reports `PostgresConnectionSaturation` firing; closing them resolves it; stopping
//! PostgreSQL fires `PostgresDown`.
//!
//! A small cluster of its own (`max_connections = 20`, 2 reserved: 18 usable, so 15 clients
//! are 83%) keeps the other tests' connections out of the ratio and theirs safe from this
//! test's flood.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa_testkit::{ClusterOptions, PgCluster};

use crate::prometheus::start_prometheus;
use crate::support::*;

/// `(alertname, severity, state)` of every alert Prometheus holds.
pub(crate) async fn alerts(prom: std::net::SocketAddr) -> Vec<(String, String, String)> {
    let Some((200, _, body)) = try_http_get(prom, "/api/v1/alerts").await else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    json["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
            (
                s(&a["labels"]["alertname"]),
                s(&a["labels"]["severity"]),
                s(&a["state"]),
            )
        })
        .collect()
}

/// Whether `name` of `severity` is firing among `all`.
pub(crate) fn firing(all: &[(String, String, String)], name: &str, severity: &str) -> bool {
    all.iter()
        .any(|(n, s, state)| n == name && s == severity && state == "firing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_fires_and_resolves_and_a_stopped_server_fires_postgres_down() {
    let small = tokio::task::spawn_blocking(|| {
        PgCluster::start(ClusterOptions {
            extra_conf: vec![
                "max_connections = 20".to_owned(),
                "superuser_reserved_connections = 2".to_owned(),
            ],
            ..ClusterOptions::default()
        })
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("small cluster: {e}"));
    small
        .psql(
            "postgres",
            &format!(
                "CREATE ROLE mesa_monitor LOGIN PASSWORD '{ROLE_PASSWORD}' IN ROLE pg_monitor;
                 CREATE ROLE app_user LOGIN PASSWORD '{ROLE_PASSWORD}';"
            ),
        )
        .expect("roles");

    let config = daemon_config(
        &"collection: {interval: 1s, timeout: 800ms}
web: {listen_address: '127.0.0.1:0'}
targets:
  - {name: small, driver: postgres, host: '{host}', port: SMALL_PORT, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}
"
        .replace("SMALL_PORT", &small.port().to_string()),
    );
    let app = App::start(config).await.expect("daemon starts");

    let dir = std::env::temp_dir().join(format!("mesa-alerting-{}", std::process::id()));
    let (_prometheus, prom) = prometheus_with_shipped_rules(&dir, &app, "[small]");

    let small = std::sync::Arc::new(small);
    let stopping = small.clone();
    let seen = saturation_then_down(
        prom,
        Alerts {
            ratio: "pg_connections_utilization_ratio",
            saturation: "PostgresConnectionSaturation",
            down: "PostgresDown",
        },
        // 15 real client connections: 15 / 18 = 0.83 > 0.8.
        async || {
            let mut clients = Vec::new();
            for _ in 0..15 {
                let client = small
                    .connect("app_user", ROLE_PASSWORD, "postgres")
                    .await
                    .expect("client connects");
                clients.push(client);
            }
            clients
        },
        async |clients| drop(clients),
        move || stopping.stop(),
    )
    .await;
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        firing(&seen, "PostgresDown", "critical"),
        "PostgresDown never fired: {seen:?}"
    );
}

/// The alerts one driver's saturation and down rules are about.
pub(crate) struct Alerts<'a> {
    /// The utilization ratio family.
    pub ratio: &'a str,
    /// The saturation alert (warning over 80 %, critical over 95 %).
    pub saturation: &'a str,
    /// The down alert.
    pub down: &'a str,
}

/// The life of one target's alerts on Prometheus `prom`: quiet first; `crowd` opens client
/// connections until the ratio is between the thresholds, and the saturation alert must fire
/// as a warning and not as critical; `disperse` closes them, and it must resolve; `stop`
/// stops the server, and the down alert is waited for. Returns the alerts seen last (the
/// caller asserts the down alert, after its own clean-up).
pub(crate) async fn saturation_then_down<C>(
    prom: std::net::SocketAddr,
    a: Alerts<'_>,
    crowd: impl AsyncFnOnce() -> C,
    disperse: impl AsyncFnOnce(C),
    stop: impl FnOnce() + Send + 'static,
) -> Vec<(String, String, String)> {
    assert!(
        eventually(Duration::from_secs(40), || async {
            !crate::prometheus::query(prom, a.ratio).await.is_empty()
        })
        .await,
        "Prometheus never saw {}",
        a.ratio
    );
    assert!(!firing(&alerts(prom).await, a.saturation, "warning"));

    let clients = crowd().await;
    let fired = eventually(Duration::from_secs(30), || async {
        firing(&alerts(prom).await, a.saturation, "warning")
    })
    .await;
    let seen = alerts(prom).await;
    assert!(fired, "{} never fired: {seen:?}", a.saturation);
    assert!(
        !firing(&seen, a.saturation, "critical"),
        "the crowd is under the critical threshold: {seen:?}"
    );

    disperse(clients).await;
    let resolved = eventually(Duration::from_secs(30), || async {
        !alerts(prom).await.iter().any(|(n, _, _)| n == a.saturation)
    })
    .await;
    assert!(
        resolved,
        "{} never resolved: {:?}",
        a.saturation,
        alerts(prom).await
    );

    tokio::task::spawn_blocking(stop).await.expect("stop");
    eventually(Duration::from_secs(30), || async {
        firing(&alerts(prom).await, a.down, "critical")
    })
    .await;
    alerts(prom).await
}

/// A Prometheus scraping `app` with the shipped scrape configs (its `/probe` job on
/// `probe_targets`, a YAML list) and the shipped `alerts.yml`, its `for:` durations cut to
/// 2 s; nothing else changes. Its files live in `dir`.
pub(crate) fn prometheus_with_shipped_rules(
    dir: &std::path::Path,
    app: &App,
    probe_targets: &str,
) -> (crate::prometheus::Running, std::net::SocketAddr) {
    std::fs::create_dir_all(dir).expect("dir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules =
        std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).expect("alerts.yml");
    let fast: String = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 2s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(fast, rules, "alerts.yml has `for:` clauses to shorten");
    let rules_path = dir.join("alerts.yml");
    std::fs::write(&rules_path, fast).expect("rules");
    let jobs = std::fs::read_to_string(root.join("deploy/prometheus/scrape.yml"))
        .expect("scrape.yml")
        .replace("mesa.example:9930", &app.metrics_addr().to_string())
        .replace("[orders-primary, billing]", probe_targets);
    start_prometheus(dir, &jobs, &[rules_path.as_path()])
}
