//! The shipped MySQL alerts fire for real, as the PostgreSQL ones do (`alerting.rs`): Mesa
//! and Prometheus with the shipped scrape configs and `alerts.yml` (`for:` cut to 2 s). Real
//! client connections push the utilization ratio over the warning threshold until Prometheus
//! reports `MysqlConnectionSaturation` firing; closing them resolves it; stopping the server
//! fires `MysqlDown`.
//!
//! A server of its own with `max_connections = 20`: 17 clients and Mesa's session are 18
//! threads, 17 of them clients: 85%.

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa_testkit::mariadb::MariaDb;

use super::{PASSWORD, client, plain_user, setup};
use crate::alerting::{Alerts, firing, prometheus_with_shipped_rules, saturation_then_down};
use crate::support::daemon_config;

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

    let seen = saturation_then_down(
        prom,
        Alerts {
            ratio: "mysql_connections_utilization_ratio",
            saturation: "MysqlConnectionSaturation",
            down: "MysqlDown",
        },
        async || {
            let mut clients = Vec::new();
            for _ in 0..17 {
                clients.push(client(small, "my_crowd", PASSWORD).await);
            }
            clients
        },
        async |clients| {
            for c in clients {
                let _ = c.disconnect().await;
            }
        },
        move || small.stop(),
    )
    .await;
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        firing(&seen, "MysqlDown", "critical"),
        "MysqlDown never fired: {seen:?}"
    );
    assert!(
        !seen.iter().any(|(n, _, _)| n == "PostgresDown"),
        "a MySQL target fires no PostgreSQL alert: {seen:?}"
    );
}
