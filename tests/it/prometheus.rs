//! A real Prometheus (Debian's `prometheus` package), configured with the shipped
//! `deploy/prometheus/scrape.yml`, scrapes `/metrics` and the `/probe` multi-target pattern;
//! its HTTP API must report `up == 1` for both jobs and the data.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use crate::support::*;

/// Kills Prometheus when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn encode_query(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `(labels, value)` of every series an instant query returns; empty on any error.
pub async fn query(prom: std::net::SocketAddr, q: &str) -> Vec<(serde_json::Value, String)> {
    query_checked(prom, q).await.unwrap_or_default()
}

/// `(labels, value)` of every series an instant query returns, or Prometheus' error.
pub async fn query_checked(
    prom: std::net::SocketAddr,
    q: &str,
) -> Result<Vec<(serde_json::Value, String)>, String> {
    let Some((status, _, body)) =
        try_http_get(prom, &format!("/api/v1/query?query={}", encode_query(q))).await
    else {
        return Err("Prometheus did not answer".to_owned());
    };
    let json: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
    if json["status"] != "success" {
        return Err(format!(
            "HTTP {status}: {}: {}",
            json["errorType"], json["error"]
        ));
    }
    Ok(json["data"]["result"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .map(|s| {
                    (
                        s["metric"].clone(),
                        s["value"][1].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Starts Prometheus on a free loopback port with `scrape_configs` (YAML list text), scraping
/// and evaluating every second; its data lives in `dir`. `rule_files` are paths for its
/// `rule_files` key.
pub fn start_prometheus(
    dir: &std::path::Path,
    scrape_configs: &str,
    rule_files: &[&std::path::Path],
) -> (Running, std::net::SocketAddr) {
    let binary = which("prometheus").expect(
        "the `prometheus` binary is missing: apt-get install prometheus (.ci/run installs it)",
    );
    std::fs::create_dir_all(dir).expect("dir");
    let indented: String = scrape_configs.lines().map(|l| format!("  {l}\n")).collect();
    let rules: String = if rule_files.is_empty() {
        " []\n".to_owned()
    } else {
        rule_files
            .iter()
            .map(|f| format!("\n  - '{}'", f.display()))
            .collect::<String>()
            + "\n"
    };
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files:{rules}scrape_configs:\n{indented}"
        ),
    )
    .expect("prometheus.yml");
    let prom_addr: std::net::SocketAddr = format!("127.0.0.1:{}", closed_port())
        .parse()
        .expect("addr");
    let running = Running(
        Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    (running, prom_addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_metrics_and_probe() {
    let config = daemon_config(
        "collection: {interval: 1s, timeout: 800ms}
web: {listen_address: '127.0.0.1:0'}
targets:
  - {name: local, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}
",
    );
    let app = App::start(config).await.expect("daemon starts");
    let mesa_addr = app.metrics_addr();
    let dir = std::env::temp_dir().join(format!("mesa-prom-{}", std::process::id()));
    // The shipped scrape configs, pointed at this daemon and its one target.
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/scrape.yml"),
    )
    .expect("deploy/prometheus/scrape.yml");
    let jobs = shipped
        .replace("mesa.example:9930", &mesa_addr.to_string())
        .replace("[orders-primary, billing]", "[local]");
    let (_prometheus, prom_addr) = start_prometheus(&dir, &jobs, &[]);

    let both_up = eventually(Duration::from_secs(40), || async {
        let up = query(prom_addr, "up").await;
        ["mesa", "postgres"]
            .iter()
            .all(|job| up.iter().any(|(m, v)| m["job"] == *job && v == "1"))
    })
    .await;
    assert!(both_up, "up: {:?}", query(prom_addr, "up").await);

    let pg_up = query(prom_addr, "pg_up{server=\"local\"}").await;
    assert_eq!(pg_up.len(), 1, "{pg_up:?}");
    assert_eq!(pg_up[0].0["job"], "mesa");
    assert_eq!(pg_up[0].1, "1");
    let probed = query(prom_addr, "pg_up{job=\"postgres\"}").await;
    assert_eq!(probed.len(), 1, "{probed:?}");
    assert_eq!(probed[0].0["instance"], "local");
    assert_eq!(probed[0].1, "1");
    let max = query(prom_addr, "pg_settings_max_connections{job=\"postgres\"}").await;
    let server_max: String = superuser("postgres")
        .await
        .query_one("SHOW max_connections", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(
        max.first().map(|(_, v)| v.as_str()),
        Some(server_max.as_str())
    );

    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

pub fn which(binary: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(binary))
        .find(|p| p.is_file())
}
