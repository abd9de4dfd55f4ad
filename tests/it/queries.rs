//! Users' own SQL as metrics (issue 20, sections 1 and 2), live: a postgres_exporter
//! `queries.yaml` served under postgres_exporter's names (compared with Debian's
//! postgres_exporter 0.11 run on the same file), `cache_seconds`, per-database queries, and the
//! guarantees: writes refused and nothing changed, each failing query alone with its reason,
//! `max_rows`, label bytes of any kind through the strict parser and a real Prometheus, and a
//! reload that keeps the running set when a file turns bad.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use crate::prometheus::{query, start_prometheus};
use crate::support::*;

/// A directory of its own for a test's files, with the fixture password file.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesa-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("fixture.pw"), ROLE_PASSWORD).expect("password file");
    dir
}

/// The config text of one target `name` on `database` with the queries file `queries`.
fn config_text(
    name: &str,
    database: &str,
    queries: &Path,
    collection: &str,
    databases: &str,
) -> String {
    let c = cluster();
    format!(
        "collection: {{{collection}, queries: ['{}']}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: {name}, driver: postgres, host: '{}', port: {}, database: {database}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable, databases: {databases}}}
",
        queries.display(),
        c.host(),
        c.port()
    )
}

fn load(dir: &Path, text: &str) -> Result<mesa::config::Config, mesa::config::ConfigError> {
    let path = dir.join("mesa.yml");
    std::fs::write(&path, text).expect("config");
    mesa::config::load(&path)
}

async fn metrics(app: &App) -> String {
    http_get(app.metrics_addr(), "/metrics").await.2
}

/// A daemon with one target `server` on `database`, the queries file `queries_text` (written
/// to the test's own directory), `collection` keys and `databases`; once `ready` holds for its
/// exposition, the directory, the daemon and that exposition.
async fn daemon(
    tag: &str,
    server: &str,
    database: &str,
    queries_text: &str,
    collection: &str,
    databases: &str,
    ready: impl Fn(&str) -> bool,
) -> (PathBuf, App, String) {
    let dir = workdir(tag);
    let queries = dir.join("queries.yaml");
    std::fs::write(&queries, queries_text).expect("queries");
    let config = load(
        &dir,
        &config_text(server, database, &queries, collection, databases),
    )
    .expect("config loads");
    let app = App::start(config).await.expect("daemon starts");
    let (ok, text) = poll_until(Duration::from_secs(20), || metrics(&app), ready).await;
    assert!(ok, "user queries served:\n{text}");
    (dir, app, text)
}

/// The value of `name` with `server` and `labels` in `text`.
fn of(text: &str, server: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut all = vec![("server", server)];
    all.extend_from_slice(labels);
    value(text, name, &all)
}

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

async fn app_database(db: &str) {
    let su = fresh_database(db).await;
    su.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.jobs (queue text, retries int, took_ms numeric, took text);
         INSERT INTO app.jobs VALUES ('mail', 1, 1500, '1.5s'), ('mail', 2, 250, '250ms'), ('pdf', 0, 120000, '2m');
         ANALYZE app.jobs;
         GRANT USAGE ON SCHEMA app TO mesa_monitor;
         GRANT SELECT ON ALL TABLES IN SCHEMA app TO mesa_monitor;",
    )
    .await
    .expect("app schema");
}

/// Debian's postgres_exporter 0.11 on `database` with `queries`: its exposition.
fn postgres_exporter_text(dir: &Path, database: &str, queries: &Path) -> String {
    let binary = Path::new("/usr/bin/prometheus-postgres-exporter");
    assert!(
        binary.is_file(),
        "prometheus-postgres-exporter is missing (`cargo xtask test` installs it)"
    );
    let c = cluster();
    let port = closed_port();
    let mut child = Command::new(binary)
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
    let started = std::time::Instant::now();
    let text = loop {
        let got = std::net::TcpStream::connect(addr).ok().and_then(|mut s| {
            use std::io::{Read as _, Write as _};
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).ok()?;
            Some(body)
        });
        match got {
            Some(body) if body.contains("uq_queue_depth") => break body,
            _ if started.elapsed() > Duration::from_secs(20) => {
                let _ = child.kill();
                panic!(
                    "postgres_exporter served no uq_ metrics; its log:\n{}",
                    std::fs::read_to_string(dir.join("postgres_exporter.log")).unwrap_or_default()
                );
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(text)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_running_queries_when_a_file_turns_bad() {
    let dir = workdir("reload");
    let queries = dir.join("queries.yaml");
    let good = "uq_r:\n  query: \"SELECT 7 AS v\"\n  master: true\n  metrics:\n    - v: {usage: GAUGE, description: \"Seven\"}\n";
    std::fs::write(&queries, good).expect("queries");
    let text = config_text(
        "uqr",
        "postgres",
        &queries,
        "interval: 500ms, timeout: 400ms",
        "{discover: false}",
    );
    let mut app = App::start(load(&dir, &text).expect("loads"))
        .await
        .expect("starts");
    let served = |t: &str| value(t, "uq_r_v", &[("server", "uqr")]);
    let (ok, before) = poll_until(
        Duration::from_secs(10),
        || metrics(&app),
        |t| served(t) == Some(7.0),
    )
    .await;
    assert!(ok, "{before}");

    std::fs::write(
        &queries,
        "uq_r:\n  query: \"SELECT 8 AS v\"\n  metrics:\n    - v: {usage: GUAGE}\n",
    )
    .expect("bad");
    let loaded = load(&dir, &text);
    let problems = loaded
        .as_ref()
        .expect_err("a bad file fails the load")
        .to_string();
    assert!(
        problems.contains("queries.yaml:4: uq_r.metrics[0].v.usage: unknown usage"),
        "{problems}"
    );
    assert!(app.reload(loaded).is_none(), "rejected");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        served(&metrics(&app).await),
        Some(7.0),
        "the running set stays"
    );

    std::fs::write(&queries, good.replace("SELECT 7", "SELECT 9")).expect("fixed");
    assert!(app.reload(load(&dir, &text)).is_some(), "accepted");
    let (ok, after) = poll_until(
        Duration::from_secs(10),
        || metrics(&app),
        |t| served(t) == Some(9.0),
    )
    .await;
    assert!(ok, "the new set runs:\n{after}");
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_live_sets_each_column_against_the_server() {
    app_database("uq_live").await;
    let dir = workdir("live");
    let queries = dir.join("queries.yaml");
    std::fs::write(
        &queries,
        r#"uq_jobs:
  query: "SELECT queue, count(*) AS depth FROM app.jobs GROUP BY queue"
  master: true
  metrics:
    - queue: {usage: LABEL, description: Queue}
    - depth: {usage: GAUGE, description: Jobs}
uq_unqualified:
  query: "SELECT count(*) AS n FROM jobs"
  master: true
  metrics:
    - n: {usage: GAUGE, description: Jobs}
uq_types:
  query: "SELECT queue AS depth, now() AS at, 1 AS extra FROM app.jobs"
  master: true
  metrics:
    - depth: {usage: GAUGE, description: Text as a number}
    - at: {usage: LABEL, description: A timestamp label}
uq_old:
  query: "SELECT 1 AS v"
  runonserver: "<10.0.0"
  metrics:
    - v: {usage: GAUGE, description: Old servers only}
"#,
    )
    .expect("queries");
    let text = config_text(
        "uql",
        "uq_live",
        &queries,
        "interval: 15s",
        "{discover: false}",
    );
    std::fs::write(dir.join("mesa.yml"), &text).expect("config");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mesa"))
            .arg("--config.file")
            .arg(dir.join("mesa.yml"))
            .arg("--check-config")
            .args(extra)
            .output()
            .expect("mesa runs")
    };
    let out = run(&["--live"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |cells: &[&str]| {
        stdout.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() >= cells.len() && words[..cells.len()] == *cells
        })
    };
    assert!(stdout.contains("target uql ("), "{stdout}");
    assert!(
        row(&["uq_jobs", "queue", "LABEL", "text", "ok"]),
        "{stdout}"
    );
    assert!(
        row(&["uq_jobs", "depth", "GAUGE", "int8", "ok"]),
        "{stdout}"
    );
    assert!(
        row(&[
            "uq_types", "depth", "GAUGE", "text", "text:", "every", "value", "must"
        ]),
        "{stdout}"
    );
    assert!(
        row(&[
            "uq_types",
            "at",
            "LABEL",
            "timestamptz",
            "a",
            "label",
            "must"
        ]),
        "{stdout}"
    );
    assert!(
        row(&[
            "uq_types",
            "extra",
            "-",
            "int4",
            "returned,",
            "not",
            "declared"
        ]),
        "{stdout}"
    );
    assert!(row(&["uq_old", "-", "-", "-", "skipped:"]), "{stdout}");
    assert!(
        stdout.contains("relation \"jobs\" does not exist (42P01); Mesa's search_path is pg_catalog: schema-qualify"),
        "{stdout}"
    );
    // Only the queries that agree: exit 0. An unknown --target: exit 64.
    std::fs::write(
        &queries,
        "uq_jobs:\n  query: \"SELECT queue, count(*) AS depth FROM app.jobs GROUP BY queue\"\n  master: true\n  metrics:\n    - queue: {usage: LABEL}\n    - depth: {usage: GAUGE}\n",
    )
    .expect("queries");
    let out = run(&["--live", "--target", "uql"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(run(&["--live", "--target", "nope"]).status.code(), Some(64));
}
