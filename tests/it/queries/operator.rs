//! The operator's side of users' queries: a reload that keeps the running set when a file
//! turns bad, and `--check-config --live`.

use std::process::Command;
use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use super::{app_database, config_text, load, metrics, workdir};
use crate::support::*;

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
