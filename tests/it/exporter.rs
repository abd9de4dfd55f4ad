//! The daemon in-process against the real server: /metrics, /probe, failures, OpenMetrics
//! validity, and a scrape path without database I/O.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa::metrics::CONTENT_TYPE;

use crate::support::*;

async fn scrape(app: &App, path: &str) -> String {
    let (status, content_type, body) = http_get(app.metrics_addr(), path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(content_type, CONTENT_TYPE);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_what_the_server_says() {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE ROLE metrics_user LOGIN PASSWORD 'fixture-password-0123456789'")
        .await
        .expect("role");
    su.batch_execute("CREATE DATABASE exporter_db OWNER metrics_user TEMPLATE template0")
        .await
        .expect("db");
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            client_as("metrics_user", ROLE_PASSWORD, "exporter_db")
                .await
                .expect("idle session"),
        );
    }
    let sleeper = client_as("metrics_user", ROLE_PASSWORD, "exporter_db")
        .await
        .expect("sleeper");
    let (_sleeping_pid, _sleep) = background(sleeper, "SELECT pg_sleep(30)").await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();

    let config = daemon_config(&format!(
        "collection: {{interval: 1s, timeout: 800ms, connect_timeout: 500ms, collectors: {{database: {{interval: 1s}}}}}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: local, driver: postgres, host: '{{host}}', port: {{port}}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}
  - {{name: closed, driver: postgres, host: 127.0.0.1, port: {closed}, username: x, sslmode: disable}}
  - {{name: silent, driver: postgres, host: 127.0.0.1, port: {silent_port}, username: x, sslmode: disable}}
",
        closed = closed_port(),
    ));
    let app = App::start(config).await.expect("daemon starts");

    let ready = eventually(Duration::from_secs(6), || async {
        http_get(app.metrics_addr(), "/readyz").await.0 == 200
    })
    .await;
    assert!(ready, "every target attempted within a few intervals");
    // The sleeper has run at least two seconds by a later collection.
    let sleep_seen = eventually(Duration::from_secs(5), || async {
        let body = scrape(&app, "/metrics").await;
        value(
            &body,
            "pg_stat_activity_max_query_duration_seconds",
            &[
                ("server", "local"),
                ("usename", "metrics_user"),
                ("state", "active"),
            ],
        )
        .is_some_and(|v| v >= 2.0)
    })
    .await;
    assert!(
        sleep_seen,
        "the pg_sleep(30) session shows in max_query_duration"
    );

    let body = scrape(&app, "/metrics").await;
    let local = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("server", "local")];
        labels.extend_from_slice(extra);
        value(&body, name, &labels)
    };
    assert_eq!(local("pg_up", &[]), Some(1.0));
    let max: String = su
        .query_one("SHOW max_connections", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(
        local("pg_settings_max_connections", &[]),
        Some(max.parse().expect("number"))
    );
    let size: i64 = su
        .query_one("SELECT pg_database_size('exporter_db')", &[])
        .await
        .expect("size")
        .get(0);
    let ours = local("pg_database_size_bytes", &[("datname", "exporter_db")]).expect("size series");
    assert_size_close(ours, size);
    assert_eq!(
        local(
            "pg_database_info",
            &[
                ("datname", "exporter_db"),
                ("owner", "metrics_user"),
                ("encoding", "UTF8")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        local(
            "pg_stat_activity_count",
            &[
                ("datname", "exporter_db"),
                ("usename", "metrics_user"),
                ("state", "idle")
            ]
        ),
        Some(5.0),
        "the five held sessions"
    );
    // Same collection, same pg_stat_activity snapshot: the groups add up to the client
    // backends the health query counted (utilization = backends / usable slots).
    let activity_total = sum(&body, "pg_stat_activity_count", &[("server", "local")]);
    let usable = local("pg_settings_max_connections", &[]).expect("max")
        - local("pg_settings_superuser_reserved_connections", &[]).expect("reserved");
    let ratio = local("pg_connections_utilization_ratio", &[]).expect("ratio");
    assert!(
        (ratio * usable - activity_total).abs() < 1e-6,
        "{ratio} * {usable} vs {activity_total}"
    );
    assert!(activity_total >= 6.0);

    // The closed port: down, failures rising, no stale pg_* series.
    assert_eq!(value(&body, "pg_up", &[("server", "closed")]), Some(0.0));
    assert!(!samples(&body).iter().any(|s| s.name.starts_with("pg_")
        && s.name != "pg_up"
        && s.name != "pg_exporter_last_scrape_error"
        && s.label("server") == Some("closed")));
    assert_eq!(
        value(
            &body,
            "pg_exporter_last_scrape_error",
            &[("server", "closed")]
        ),
        Some(1.0)
    );
    let failures = |text: &str, server: &str, reason: &str| {
        value(
            text,
            "mesa_collect_failures_total",
            &[("server", server), ("reason", reason)],
        )
        .unwrap_or(0.0)
    };
    let before = failures(&body, "closed", "unreachable");
    let last_ok = local("mesa_collect_last_success_timestamp_seconds", &[]).expect("timestamp");
    assert!(before >= 1.0);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let later = scrape(&app, "/metrics").await;
    assert!(
        failures(&later, "closed", "unreachable") > before,
        "failures keep counting"
    );
    let last_ok_later = value(
        &later,
        "mesa_collect_last_success_timestamp_seconds",
        &[("server", "local")],
    )
    .expect("timestamp");
    assert!(
        last_ok_later >= last_ok + 2.0,
        "the healthy target kept its schedule"
    );

    // The listener that never answers: timeout within collection.timeout + 1 s.
    assert!(failures(&later, "silent", "timeout") >= 1.0, "{later}");
    let took = value(
        &later,
        "mesa_collect_duration_seconds",
        &[("server", "silent")],
    )
    .expect("duration");
    assert!(took <= 1.8, "silent target took {took}s");

    // /probe: one target, no server label.
    let probe = scrape(&app, "/probe?target=local").await;
    assert_eq!(value(&probe, "pg_up", &[]), Some(1.0));
    assert!(!probe.contains("server="), "{probe}");
    assert!(
        !probe.contains("mesa_collect_failures"),
        "only the target's families"
    );
    assert_eq!(
        http_get(app.metrics_addr(), "/probe?target=nope").await.0,
        400
    );
    assert_eq!(http_get(app.metrics_addr(), "/probe").await.0, 400);
    let (status, _, landing) = http_get(app.metrics_addr(), "/").await;
    assert!(status == 200 && landing.contains("/probe?target=local"));
    assert_eq!(http_get(app.metrics_addr(), "/healthz").await.0, 200);

    assert_openmetrics_valid(&later);
    assert_openmetrics_valid(&probe);

    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_never_touch_the_database() {
    let su = superuser("postgres").await;
    su.batch_execute(
        "CREATE ROLE scrape_user LOGIN PASSWORD 'fixture-password-0123456789' IN ROLE pg_monitor",
    )
    .await
    .expect("role");
    let config = daemon_config(
        "collection: {interval: 2s, timeout: 1s, collectors: {stat_user_tables: false, statio_user_tables: false, stat_user_indexes: false, statio_user_indexes: false}}
web: {listen_address: '127.0.0.1:0'}
targets:
  - {name: scraped, driver: postgres, host: '{host}', port: {port}, username: scrape_user, password_file: fixture.pw, sslmode: disable}
",
    );
    let app = App::start(config).await.expect("daemon starts");
    let finished = || app.store().get("scraped").map(|s| s.finished_at);
    let log_lines = || {
        cluster()
            .server_log()
            .lines()
            .filter(|l| l.contains("] scrape_user@"))
            .count()
    };
    let mut clean_windows = 0;
    for _ in 0..5 {
        // Start right after a collection, so the next one is ~2 s away.
        let seen = finished();
        assert!(
            eventually(Duration::from_secs(5), || async {
                finished() != seen && finished().is_some()
            })
            .await
        );
        let mark = finished();
        let lines_before = log_lines();
        let sessions_before = sessions_of("scrape_user").await;
        for _ in 0..200 {
            let (status, _, _) = http_get(app.metrics_addr(), "/metrics").await;
            assert_eq!(status, 200);
        }
        if finished() != mark {
            continue; // a collection ran during the window; try another window
        }
        assert_eq!(log_lines(), lines_before, "a scrape reached the server");
        assert_eq!(sessions_of("scrape_user").await, sessions_before);
        // At most the kept collection session, idle between collections.
        assert!(sessions_before <= 1, "{sessions_before} sessions");
        clean_windows += 1;
        break;
    }
    assert_eq!(
        clean_windows, 1,
        "no window of 200 scrapes between two collections"
    );
    assert!(log_lines() > 0, "collections themselves are logged");
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_every_first_attempt() {
    // A listener that never answers: no snapshot can exist before the 800 ms timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = daemon_config(&format!(
        "collection: {{interval: 1s, timeout: 800ms, connect_timeout: 500ms}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: slow, driver: postgres, host: 127.0.0.1, port: {}, username: x, sslmode: disable}}
",
        silent.local_addr().expect("addr").port()
    ));
    let app = App::start(config).await.expect("daemon starts");
    let (status, _, body) = http_get(app.metrics_addr(), "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("slow"), "{body}");
    assert_eq!(
        http_get(app.metrics_addr(), "/probe?target=slow").await.0,
        503
    );
    assert_eq!(http_get(app.metrics_addr(), "/healthz").await.0, 200);
    let ready = eventually(Duration::from_secs(4), || async {
        http_get(app.metrics_addr(), "/readyz").await.0 == 200
    })
    .await;
    assert!(
        ready,
        "ready once the first attempt finished, even though it failed"
    );
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
}

/// GET `path` as Prometheus asks (OpenMetrics) with `Accept-Encoding: {encoding}`: status,
/// headers and the raw body bytes.
pub async fn get_encoded(
    addr: std::net::SocketAddr,
    path: &str,
    encoding: Option<&str>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    get_as(addr, path, PROMETHEUS_ACCEPT, encoding).await
}

/// GET `path` with `Accept: {accept}` (none when empty) and `Accept-Encoding: {encoding}`.
pub async fn get_as(
    addr: std::net::SocketAddr,
    path: &str,
    accept: &str,
    encoding: Option<&str>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let mut headers: Vec<_> = encoding
        .map(|e| (hyper::header::ACCEPT_ENCODING, e.to_owned()))
        .into_iter()
        .collect();
    if !accept.is_empty() {
        headers.push((hyper::header::ACCEPT, accept.to_owned()));
    }
    let (status, headers, body) = exchange(addr, "GET", path, &headers, None)
        .await
        .unwrap_or_else(|| panic!("GET http://{addr}{path} failed"));
    (status, headers, body.to_vec())
}

/// `bytes` decoded by the system's `gzip -dc`, a decoder Mesa does not share code with.
pub fn system_gunzip(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gzip is part of every Debian system");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let out = child.wait_with_output().expect("gzip runs");
    assert!(
        out.status.success(),
        "gzip -dc rejected the body: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Gauges `/metrics` measures at each request (the process's memory, descriptors and live
/// tasks): two scrapes a millisecond apart may differ in them, under load they usually do.
const MEASURED_PER_SCRAPE: [&str; 3] = [
    "process_resident_memory_bytes",
    "process_open_fds",
    "mesa_runtime_alive_tasks",
];

/// `text` without the samples of [`MEASURED_PER_SCRAPE`] (their HELP and TYPE lines stay),
/// after checking that each of them is there.
pub(crate) fn without_per_scrape_gauges(text: &str, path: &str) -> String {
    let per_scrape = |line: &str| {
        MEASURED_PER_SCRAPE.iter().any(|name| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
    };
    if path == "/metrics" {
        for name in MEASURED_PER_SCRAPE {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{path}: no {name} sample"
            );
        }
    }
    text.lines()
        .filter(|l| !per_scrape(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_is_served_when_asked_and_decodes_to_the_plain_text() {
    let config = daemon_config(
        "collection: {interval: 3s, timeout: 2s, databases: {discover: false}}
web: {listen_address: '127.0.0.1:0'}
targets:
  - {name: zipped, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}
  - {name: zipped-two, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}
",
    );
    let app = App::start(config).await.expect("daemon starts");
    assert!(
        eventually(Duration::from_secs(10), || async {
            http_get(app.metrics_addr(), "/readyz").await.0 == 200
        })
        .await
    );
    // Each target's first collection started on (or after) its tick, and was timed.
    let text = scrape(&app, "/metrics").await;
    let started = value(&text, "mesa_collect_start_delay_seconds_count", &[]);
    assert!(started.is_some_and(|n| n >= 2.0), "{text}");
    let within = value(
        &text,
        "mesa_collect_start_delay_seconds_bucket",
        &[("le", "5.0")],
    );
    assert!(within.is_some_and(|n| n >= 1.0), "{text}");
    for path in ["/metrics", "/probe?target=zipped"] {
        // A collection (every 3 s) may land between the plain and the gzip request: try a
        // few windows until one holds still. The process gauges are measured at each scrape,
        // so they are left out of the comparison (the CI once saw ten windows in a row
        // differ in resident memory alone).
        let mut matched = 0;
        for _ in 0..10 {
            let (status, headers, plain) = get_encoded(app.metrics_addr(), path, None).await;
            assert_eq!(status, 200);
            assert!(headers.get("content-encoding").is_none(), "{headers:?}");
            assert_eq!(headers["vary"], "accept, accept-encoding");
            let plain = String::from_utf8(plain).expect("utf-8");
            assert!(plain.contains("pg_up"), "{plain}");
            let stable = without_per_scrape_gauges(&plain, path);
            let mut same = true;
            // Twice: the second gzip scrape splices the cached stream of the first.
            for _ in 0..2 {
                let (status, headers, zipped) =
                    get_encoded(app.metrics_addr(), path, Some("gzip, deflate")).await;
                assert_eq!(status, 200);
                assert_eq!(headers["content-encoding"], "gzip", "{path}");
                assert_eq!(headers["content-type"], CONTENT_TYPE);
                assert_eq!(
                    headers["content-length"].to_str().expect("ascii"),
                    zipped.len().to_string()
                );
                assert!(
                    zipped.len() * 4 < plain.len(),
                    "{path}: {} bytes",
                    zipped.len()
                );
                same &= without_per_scrape_gauges(&system_gunzip(&zipped), path) == stable;
            }
            let (_, headers, refused) =
                get_encoded(app.metrics_addr(), path, Some("gzip;q=0, identity")).await;
            assert!(headers.get("content-encoding").is_none());
            let refused = String::from_utf8(refused).expect("utf-8");
            same &= without_per_scrape_gauges(&refused, path) == stable;
            if same {
                matched += 1;
                break;
            }
        }
        assert_eq!(matched, 1, "{path}: gzip never decoded to the plain text");
    }
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
}
