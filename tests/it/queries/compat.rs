//! A queries file served under postgres_exporter's names, compared with Debian's
//! postgres_exporter 0.11 run on the same file; `cache_seconds`; a per-database query.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mesa::app::DEFAULT_GRACE_PERIOD;

use super::{app_database, daemon, metrics, of};
use crate::support::*;

/// `(family, label names without server and datname)` of every sample of `text` whose name
/// starts with `prefix`.
fn shapes(text: &str, prefix: &str) -> BTreeSet<(String, Vec<String>)> {
    samples(text)
        .iter()
        .filter(|s| s.name.starts_with(prefix))
        .map(|s| {
            let mut labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| k != "server" && k != "datname")
                .collect();
            labels.sort();
            (s.name.clone(), labels)
        })
        .collect()
}

const COMPAT: &str = r#"# Written for these tests in postgres_exporter's documented format.
uq_queue:
  query: "SELECT queue, count(*) AS depth, sum(retries) AS retries_total, max(took_ms) AS slowest, 'x' AS note FROM app.jobs GROUP BY queue"
  master: true
  metrics:
    - queue:
        usage: "LABEL"
        description: "Queue name"
    - depth:
        usage: "GAUGE"
        description: "Jobs waiting"
    - retries_total:
        usage: "COUNTER"
        description: "Retries so far"
    - slowest:
        usage: "DURATION"
        description: "Slowest job"
    - note:
        usage: "DISCARD"
        description: "Not exported"
uq_clock:
  query: "SELECT extract(epoch from pg_catalog.clock_timestamp())::float8 AS at"
  master: true
  cache_seconds: 60
  metrics:
    - at:
        usage: "GAUGE"
        description: "When the query last ran"
uq_tables:
  query: "SELECT relname, n_live_tup AS live FROM pg_catalog.pg_stat_user_tables WHERE schemaname = 'app'"
  metrics:
    - relname:
        usage: "LABEL"
        description: "Table"
    - live:
        usage: "GAUGE"
        description: "Live rows"
"#;

/// Debian's postgres_exporter 0.11 on `database` with `queries`: its exposition.
fn postgres_exporter_text(dir: &Path, database: &str, queries: &Path) -> String {
    let binary = Path::new("/usr/bin/prometheus-postgres-exporter");
    assert!(
        binary.is_file(),
        "prometheus-postgres-exporter is missing (`cargo xtask test` installs it)"
    );
    let c = cluster();
    let port = closed_port();
    let child = Command::new(binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--extend.query-path={}", queries.display()))
        .arg("--disable-default-metrics")
        .arg("--disable-settings-metrics")
        // Its database collector panics on a database named with bytes that are not UTF-8
        // (0.11: "label value ... is not valid UTF-8"), which another test of the shared
        // cluster creates; only the queries file is compared.
        .arg("--no-collector.database")
        .env(
            "DATA_SOURCE_NAME",
            format!(
                "postgresql://mesa_monitor:{ROLE_PASSWORD}@{}:{}/{database}?sslmode=disable",
                c.host(),
                c.port()
            ),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("postgres_exporter.log")).expect("log"),
        ))
        .spawn()
        .expect("postgres_exporter starts");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    scrape_reference(
        child,
        addr,
        "uq_queue_depth",
        &dir.join("postgres_exporter.log"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queries_file_is_served_under_postgres_exporters_names() {
    app_database("uq_app").await;
    let (dir, app, text) = daemon(
        "compat",
        "uq",
        "uq_app",
        COMPAT,
        "interval: 500ms, timeout: 400ms",
        "{include: ['^uq_app$'], interval: 1s}",
        |t| t.contains("uq_tables_live{") && t.contains("uq_queue_depth{"),
    )
    .await;
    let queries = dir.join("queries.yaml");
    let q = |name: &str, labels: &[(&str, &str)]| {
        of(&text, "uq", name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{text}"))
    };
    assert_eq!(q("uq_queue_depth", &[("queue", "mail")]), 2.0);
    assert_eq!(q("uq_queue_retries_total", &[("queue", "mail")]), 3.0);
    // DURATION: milliseconds under `_milliseconds`, as postgres_exporter makes it.
    assert_eq!(
        q("uq_queue_slowest_milliseconds", &[("queue", "mail")]),
        1500.0
    );
    assert_eq!(
        q("uq_queue_slowest_milliseconds", &[("queue", "pdf")]),
        120_000.0
    );
    assert!(!text.contains("uq_queue_note"), "DISCARD is not exported");
    assert_eq!(
        q(
            "uq_tables_live",
            &[("relname", "jobs"), ("datname", "uq_app")]
        ),
        3.0
    );
    assert_eq!(
        q("mesa_collector_success", &[("collector", "uq_queue")]),
        1.0
    );
    assert_openmetrics_valid(&text);

    // cache_seconds: 60 serves the first result while collections go on.
    let first = q("uq_clock_at", &[]);
    let collected = q(
        "mesa_collector_last_success_timestamp_seconds",
        &[("collector", "uq_clock")],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = metrics(&app).await;
    assert_eq!(
        must(&later, "uq_clock_at", &[("server", "uq")]),
        first,
        "served from the cache"
    );
    assert_eq!(
        must(
            &later,
            "mesa_collector_last_success_timestamp_seconds",
            &[("server", "uq"), ("collector", "uq_clock")]
        ),
        collected
    );
    assert!(
        must(
            &later,
            "mesa_collect_last_success_timestamp_seconds",
            &[("server", "uq")]
        ) > must(
            &text,
            "mesa_collect_last_success_timestamp_seconds",
            &[("server", "uq")]
        ),
        "collections went on"
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");

    // The same file under postgres_exporter 0.11: the same families with the same labels.
    let theirs = postgres_exporter_text(&dir, "uq_app", &queries);
    let (ours, their_shapes) = (shapes(&text, "uq_"), shapes(&theirs, "uq_"));
    assert_eq!(
        ours, their_shapes,
        "Mesa:\n{text}\npostgres_exporter:\n{theirs}"
    );
    assert_eq!(
        must(
            &theirs,
            "uq_queue_slowest_milliseconds",
            &[("queue", "pdf")]
        ),
        120_000.0,
        "postgres_exporter reads DURATION the same way"
    );
    assert_eq!(
        must(&theirs, "uq_queue_retries_total", &[("queue", "mail")]),
        3.0
    );
}
