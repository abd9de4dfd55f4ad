//! The guarantees of users' queries: writes refused with nothing changed, each failing query
//! alone with its reason, `max_rows`, label bytes of any kind through the strict parser and a
//! real Prometheus.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use mesa::app::DEFAULT_GRACE_PERIOD;

use super::{daemon, metrics, of};
use crate::prometheus::{query, start_prometheus};
use crate::support::*;

const GUARDED: &str = r#"
uq_delete:
  query: "DELETE FROM app.victims RETURNING id AS n"
  master: true
  metrics:
    - n: {usage: GAUGE, description: "Deleted"}
uq_nextval:
  query: "SELECT pg_catalog.nextval('app.seq') AS n"
  master: true
  metrics:
    - n: {usage: GAUGE, description: "Sequence"}
uq_function:
  query: "SELECT app.bump() AS n"
  master: true
  metrics:
    - n: {usage: GAUGE, description: "A function that writes"}
uq_settings:
  query: "SELECT pg_catalog.set_config('statement_timeout', '1', false) AS s, 1 AS n"
  master: true
  metrics:
    - s: {usage: DISCARD, description: "x"}
    - n: {usage: GAUGE, description: "Changes a session setting"}
uq_error:
  query: "SELECT 1 / 0 AS n"
  master: true
  metrics:
    - n: {usage: GAUGE, description: "Division by zero"}
uq_null:
  query: "SELECT NULL::int AS n"
  master: true
  metrics:
    - n: {usage: GAUGE, description: "NULL"}
uq_undeclared:
  query: "SELECT 1 AS n, 2 AS extra"
  master: true
  metrics:
    - n: {usage: GAUGE, description: "An extra column"}
uq_many:
  query: "SELECT g::text AS i, g AS n FROM pg_catalog.generate_series(1, 50) g"
  master: true
  max_rows: 10
  metrics:
    - i: {usage: LABEL, description: "Row"}
    - n: {usage: GAUGE, description: "Value"}
uq_good:
  query: "SELECT 42 AS n"
  master: true
  metrics:
    - n: {usage: GAUGE, description: "Fine"}
uq_labels:
  query: |
    SELECT l, 1 AS n FROM (
      SELECT datname::text AS l FROM pg_catalog.pg_database WHERE datname LIKE 'uq\_bytes\_%'
      UNION ALL VALUES ('quote"back\slash'), (E'new\nline'), ('ünïcödé')) AS x
  master: true
  metrics:
    - l: {usage: LABEL, description: "Bytes of any kind"}
    - n: {usage: GAUGE, description: "One"}
uq_took:
  query: "SELECT '1.5s' AS go, '1 day 2 ms'::interval AS iv, '250' AS plain"
  master: true
  metrics:
    - go: {usage: DURATION, description: "A Go duration"}
    - iv: {usage: DURATION, description: "An interval"}
    - plain: {usage: DURATION, description: "Milliseconds as text"}
uq_slow:
  query: "SELECT 1 AS n FROM pg_catalog.pg_sleep(5)"
  master: true
  timeout: 300ms
  metrics:
    - n: {usage: GAUGE, description: "Too slow"}
"#;

/// Label values as Mesa serves them: bytes that are not UTF-8 as `\xHH` (and so a backslash
/// doubled), quotes, newlines and Unicode as they are.
const LABELS: [&str; 4] = [
    "uq_bytes_\\xff\\xfe",
    "quote\"back\\\\slash",
    "new\nline",
    "ünïcödé",
];

/// `psql` as the superuser on `uq_ascii` (SQL_ASCII) with a command of raw bytes.
fn raw_psql(sql: &[u8]) {
    use std::os::unix::ffi::OsStrExt as _;
    let c = cluster();
    let bindir = mesa_testkit::find_bindir().expect("PostgreSQL binaries");
    let out = Command::new(bindir.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", c.host(), "-p"])
        .arg(c.port().to_string())
        .args(["-U", c.superuser(), "-d", "uq_ascii", "-c"])
        .arg(std::ffi::OsStr::from_bytes(sql))
        .env("PGPASSWORD", c.password())
        .env("PGCLIENTENCODING", "SQL_ASCII")
        .env("PGSSLMODE", "disable")
        // Not recorded by pg_stat_statements: its texts would hold the bytes, and the
        // extension then fails to return any text in a UTF-8 database (other tests read them).
        .env("PGOPTIONS", "-c pg_stat_statements.track=none")
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_queries_cannot_write_and_fail_alone() {
    let su = fresh_database("uq_guard").await;
    su.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.victims (id int);
         INSERT INTO app.victims SELECT pg_catalog.generate_series(1, 5);
         CREATE SEQUENCE app.seq;
         CREATE TABLE app.log (at timestamptz);
         CREATE FUNCTION app.bump() RETURNS int LANGUAGE sql AS 'INSERT INTO app.log VALUES (now()) RETURNING 1';
         GRANT USAGE ON SCHEMA app TO mesa_monitor;
         GRANT ALL ON ALL TABLES IN SCHEMA app TO mesa_monitor;
         GRANT ALL ON ALL SEQUENCES IN SCHEMA app TO mesa_monitor;",
    )
    .await
    .expect("schema");
    // A database named with bytes that are not UTF-8 (created from a SQL_ASCII database by a
    // client that sends raw bytes): its name reaches a UTF-8 database's catalog unchecked.
    let admin = superuser("postgres").await;
    for sql in [
        "DROP DATABASE IF EXISTS uq_ascii WITH (FORCE)",
        "CREATE DATABASE uq_ascii TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'",
    ] {
        admin.batch_execute(sql).await.expect("sql_ascii database");
    }
    for sql in [
        &b"DROP DATABASE IF EXISTS \"uq_bytes_\xff\xfe\" WITH (FORCE)"[..],
        &b"CREATE DATABASE \"uq_bytes_\xff\xfe\" TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"[..],
    ] {
        raw_psql(sql);
    }

    let (dir, app, text) = daemon(
        "guard",
        "uqg",
        "uq_guard",
        GUARDED,
        "interval: 2s, timeout: 1500ms",
        "{discover: false}",
        |t| t.contains("uq_labels_n{") && t.contains("collector=\"uq_slow\""),
    )
    .await;
    let at = |name: &str, labels: &[(&str, &str)]| of(&text, "uqg", name, labels);
    assert_eq!(
        at("pg_up", &[]),
        Some(1.0),
        "the collection stands:\n{text}"
    );
    assert_eq!(at("uq_good_n", &[]), Some(42.0));
    // DURATION from a Go duration, an interval and plain milliseconds.
    assert_eq!(at("uq_took_go_milliseconds", &[]), Some(1500.0));
    assert_eq!(at("uq_took_iv_milliseconds", &[]), Some(86_400_002.0));
    assert_eq!(at("uq_took_plain_milliseconds", &[]), Some(250.0));
    for (collector, reason) in [
        ("uq_delete", "query_failed"),
        ("uq_nextval", "query_failed"),
        ("uq_function", "query_failed"),
        ("uq_error", "query_failed"),
        ("uq_null", "decode"),
        ("uq_undeclared", "decode"),
        ("uq_slow", "timeout"),
    ] {
        assert_eq!(
            at("mesa_collector_success", &[("collector", collector)]),
            Some(0.0),
            "{collector}"
        );
        assert!(
            at(
                "mesa_collect_failures_total",
                &[("collector", collector), ("reason", reason)]
            )
            .unwrap_or(0.0)
                >= 1.0,
            "{collector} failed with {reason}:\n{text}"
        );
        assert!(
            !text.contains(&format!("{collector}_n{{")),
            "{collector} exports nothing"
        );
    }
    // Nothing changed: the rows, the sequence, the function's table.
    let count = |sql: &'static str| {
        let su = &su;
        async move {
            su.query_one(sql, &[])
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };
    assert_eq!(count("SELECT count(*) FROM app.victims").await, 5);
    assert_eq!(count("SELECT count(*) FROM app.log").await, 0);
    assert_eq!(
        count("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM app.seq").await,
        0
    );
    // A session setting the query changed (statement_timeout 1 ms on the kept session) is
    // rolled back with its savepoint: the next collections' statements do not time out.
    assert_eq!(
        at("mesa_collector_success", &[("collector", "uq_settings")]),
        Some(1.0)
    );
    let before = at("mesa_collect_last_success_timestamp_seconds", &[]).expect("collected");
    let (ok, next) = poll_until(
        Duration::from_secs(10),
        || metrics(&app),
        |t| {
            value(
                t,
                "mesa_collect_last_success_timestamp_seconds",
                &[("server", "uqg")],
            )
            .is_some_and(|v| v > before + 2.5)
        },
    )
    .await;
    assert!(ok, "two more collections:\n{next}");
    assert_eq!(value(&next, "pg_up", &[("server", "uqg")]), Some(1.0));
    assert_eq!(
        value(
            &next,
            "mesa_collector_success",
            &[("server", "uqg"), ("collector", "stat_database")]
        ),
        Some(1.0)
    );
    // max_rows: 10 kept, 40 counted.
    let many = samples(&text)
        .iter()
        .filter(|s| s.name == "uq_many_n")
        .count();
    assert_eq!(many, 10);
    assert_eq!(
        at("mesa_collector_rows_omitted", &[("collector", "uq_many")]),
        Some(40.0)
    );
    // Label bytes of any kind: escaped losslessly, valid for the strict parser.
    for label in LABELS {
        assert_eq!(
            at("uq_labels_n", &[("l", label)]),
            Some(1.0),
            "label {label:?}:\n{text}"
        );
    }
    assert_openmetrics_valid(&text);

    // A real Prometheus reads the same label values.
    let prom_dir = dir.join("prometheus");
    let (_prom, prom) = start_prometheus(
        &prom_dir,
        &format!(
            "- job_name: mesa\n  static_configs: [{{targets: ['{}']}}]",
            app.metrics_addr()
        ),
        &[],
    );
    let mut got = BTreeSet::new();
    let started = std::time::Instant::now();
    while got.len() < 4 && started.elapsed() < Duration::from_secs(30) {
        got = query(prom, "uq_labels_n")
            .await
            .iter()
            .filter_map(|(m, _)| m["l"].as_str().map(str::to_owned))
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let want: BTreeSet<String> = LABELS.map(String::from).into();
    assert_eq!(got, want);
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
}
