//! The shipped MySQL alerts fire for real, as the PostgreSQL ones do (`alerting.rs`): Mesa
//! and Prometheus with the shipped scrape configs and `alerts.yml` (`for:` cut to 2 s). Real
//! client connections push the utilization ratio over the warning threshold until Prometheus
//! reports `MysqlConnectionSaturation` firing; closing them resolves it; stopping the server
//! fires `MysqlDown`.
//!
//! A server of its own with `max_connections = 20`: 17 clients and Mesa's session are 18
//! threads, 17 of them clients: 85%.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa_testkit::mariadb::MariaDb;

use super::{PASSWORD, client, plain_user, setup};
use crate::alerting::{alerts, firing, prometheus_with_shipped_rules};
use crate::support::{daemon_config, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_fires_and_resolves_and_a_stopped_server_fires_mysql_down() {
    let small: &'static MariaDb = Box::leak(Box::new(
        tokio::task::spawn_blocking(|| MariaDb::start_with(&["--max-connections=20"]))
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("small MariaDB: {e}")),
    ));
    setup(small);
    plain_user(small, "my_crowd");
    let config = daemon_config(&format!(
        "collection: {{interval: 1s, timeout: 800ms}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: mysmall, driver: mysql, host: 127.0.0.1, port: {}, username: mesa_mon, password_file: fixture.pw, ssl_mode: disabled}}
",
        small.port()
    ));
    let app = App::start(config).await.expect("daemon starts");
    let dir = std::env::temp_dir().join(format!("mesa-mysql-alerting-{}", std::process::id()));
    let (_prometheus, prom) = prometheus_with_shipped_rules(&dir, &app, "[mysmall]");

    assert!(
        eventually(Duration::from_secs(40), || async {
            !crate::prometheus::query(prom, "mysql_connections_utilization_ratio")
                .await
                .is_empty()
        })
        .await,
        "Prometheus never saw the ratio"
    );
    assert!(!firing(
        &alerts(prom).await,
        "MysqlConnectionSaturation",
        "warning"
    ));

    let mut clients = Vec::new();
    for _ in 0..17 {
        clients.push(client(small, "my_crowd", PASSWORD).await);
    }
    let fired = eventually(Duration::from_secs(30), || async {
        firing(&alerts(prom).await, "MysqlConnectionSaturation", "warning")
    })
    .await;
    let seen = alerts(prom).await;
    assert!(fired, "saturation never fired: {seen:?}");
    assert!(
        !firing(&seen, "MysqlConnectionSaturation", "critical"),
        "85% is under the critical threshold: {seen:?}"
    );

    for c in clients {
        let _ = c.disconnect().await;
    }
    let resolved = eventually(Duration::from_secs(30), || async {
        !alerts(prom)
            .await
            .iter()
            .any(|(n, _, _)| n == "MysqlConnectionSaturation")
    })
    .await;
    assert!(
        resolved,
        "saturation never resolved: {:?}",
        alerts(prom).await
    );

    tokio::task::spawn_blocking(move || small.stop())
        .await
        .expect("stop");
    let down = eventually(Duration::from_secs(30), || async {
        firing(&alerts(prom).await, "MysqlDown", "critical")
    })
    .await;
    let seen = alerts(prom).await;
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(down, "MysqlDown never fired: {seen:?}");
    assert!(
        !seen.iter().any(|(n, _, _)| n == "PostgresDown"),
        "a MySQL target fires no PostgreSQL alert: {seen:?}"
    );
}
