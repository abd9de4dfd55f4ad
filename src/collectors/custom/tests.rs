use std::io::Write as _;
use std::path::PathBuf;

use super::{Cell, Usage, go_duration_ms, harvest, load_files, match_columns};
use crate::collectors::{Kind, Scope, Value};

fn file(text: &str) -> (tempfile_path::Dir, PathBuf) {
    let dir = tempfile_path::Dir::new();
    let path = dir.0.join("queries.yaml");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    (dir, path)
}

/// A throwaway directory under the target dir (no tempfile crate in the daemon's deps).
mod tempfile_path {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let dir = std::env::temp_dir().join(format!("mesa-queries-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("mkdir");
            Self(dir)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const GOOD: &str = r#"
pg_app_queue:
  query: "SELECT queue, count(*) AS depth FROM app.jobs GROUP BY queue"
  master: true
  cache_seconds: 60
  metrics:
    - queue: {usage: "LABEL", description: "Queue name"}
    - depth: {usage: "GAUGE", description: "Jobs waiting"}

pg_app_tables:
  query: "SELECT relname, n_live_tup, '1.5s' AS vac, 'ok' AS state, seq_scan AS scans_total FROM pg_catalog.pg_stat_user_tables"
  runonserver: ">=13.0.0"
  max_rows: 5
  timeout: 2s
  role: primary
  metrics:
    - relname: {usage: "LABEL", description: "Table"}
    - n_live_tup: {usage: "GAUGE", description: "Live rows"}
    - vac: {usage: "DURATION", description: "Vacuum time"}
    - state: {usage: "MAPPEDMETRIC", description: "State", metric_mapping: {ok: 1, bad: 0}}
    - scans_total: {usage: "COUNTER", description: "Scans"}
"#;

#[test]
fn a_postgres_exporter_file_loads_with_its_names() {
    let (_d, path) = file(GOOD);
    let set = load_files(&[path], &|_| false).expect("loads");
    assert_eq!(set.queries.len(), 2);
    let queue = &set.queries[0];
    assert_eq!(queue.name, "pg_app_queue");
    assert_eq!(queue.scope, Scope::Server);
    assert_eq!(queue.cache, Some(std::time::Duration::from_secs(60)));
    assert_eq!(queue.columns[1].family, "pg_app_queue_depth");
    let tables = &set.queries[1];
    assert_eq!(tables.scope, Scope::Database);
    assert_eq!(tables.max_rows, 5);
    let families: Vec<&str> = tables
        .columns
        .iter()
        .filter(|c| c.is_value())
        .map(|c| c.family.as_str())
        .collect();
    // DURATION gets `_milliseconds`, a counter's `_total` is the wire's.
    assert_eq!(
        families,
        [
            "pg_app_tables_n_live_tup",
            "pg_app_tables_vac_milliseconds",
            "pg_app_tables_state",
            "pg_app_tables_scans"
        ]
    );
    assert!(tables.runs_on(150_018, false));
    assert!(!tables.runs_on(150_018, true), "role: primary");
    assert!(!tables.runs_on(120_010, false), "runonserver >=13");
}

#[test]
fn every_load_error_names_file_line_and_key() {
    let bad = r#"
q_one:
  query: ""
  metrics:
    - a: {usage: "GUAGE"}
q_two:
  query: "SELECT 1 AS server, 2 AS v"
  metrics:
    - server: {usage: LABEL}
    - v: {usage: GAUGE}
q_three:
  query: "SELECT 1 AS h"
  metrics:
    - h: {usage: HISTOGRAM}
q_four:
  query: "SELECT 1 AS a, 2 AS a_milliseconds"
  metrics:
    - a: {usage: DURATION}
    - a_milliseconds: {usage: GAUGE}
pg_up_:
  query: "SELECT 1 AS x"
  metrics:
    - x: {usage: GAUGE}
q_five:
  query: "SELECT 1 AS datname, 1 AS v"
  metrics:
    - datname: {usage: LABEL}
    - v: {usage: GAUGE}
q_six:
  query: "SELECT 1 AS v"
  max_rows: 0
  role: leader
  runonserver: ">=fourteen"
  metrics:
    - v: {usage: MAPPEDMETRIC}
"#;
    let (_d, path) = file(bad);
    let errors =
        load_files(std::slice::from_ref(&path), &|name| name == "pg_up__x").expect_err("invalid");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    let f = path.display().to_string();
    for want in [
        format!("{f}:2: q_one.query: the query is missing or empty"),
        format!("{f}:5: q_one.metrics[0].a.usage: unknown usage \"GUAGE\""),
        format!("{f}:9: q_two.metrics[0].server: a label Mesa adds itself"),
        format!("{f}:14: q_three.metrics[0].h.usage: HISTOGRAM is not supported"),
        format!(
            "{f}:19: q_four.metrics[1].a_milliseconds: makes the family q_four_a_milliseconds, as column a does"
        ),
        format!("{f}:20: pg_up_.x: makes pg_up__x, a family of Mesa's built-in collectors"),
        format!("{f}:27: q_five.metrics[0].datname: a label Mesa adds itself: server and datname"),
        format!("{f}:31: q_six.max_rows: expected a whole number from 1 to"),
        format!("{f}:32: q_six.role: expected primary, replica or any"),
        format!("{f}:33: q_six.runonserver:"),
        format!("{f}:35: q_six.metrics[0].v.metric_mapping: MAPPEDMETRIC needs metric_mapping"),
    ] {
        assert!(all.contains(&want), "missing {want:?} in:\n{all}");
    }
}

#[test]
fn yaml_errors_and_unknown_keys_say_where() {
    let (_d, path) = file("q:\n  query: \"SELECT 1 AS v\"\n  metric:\n    - v: {usage: GAUGE}\n");
    let all = load_files(&[path], &|_| false)
        .expect_err("unknown key")
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains("metric"), "{all}");
    assert!(all.contains("line 3") || all.contains(":3"), "{all}");
    let (_d, path) = file("q: [unclosed\n");
    assert!(load_files(&[path], &|_| false).is_err());
}

#[test]
fn a_name_declared_in_two_files_is_an_error() {
    let (_d1, one) = file("q:\n  query: \"SELECT 1 AS v\"\n  metrics:\n    - v: {usage: GAUGE}\n");
    let (_d2, two) = file("q:\n  query: \"SELECT 2 AS v\"\n  metrics:\n    - v: {usage: GAUGE}\n");
    let all = load_files(&[one, two], &|_| false)
        .expect_err("duplicate")
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("a query of this name is declared already"),
        "{all}"
    );
}

#[test]
fn rows_become_families_and_bad_cells_fail_the_query() {
    let (_d, path) = file(GOOD);
    let set = load_files(&[path], &|_| false).expect("loads");
    let q = &set.queries[1];
    let returned = ["scans_total", "relname", "n_live_tup", "vac", "state"];
    let at = match_columns(q, &returned).expect("same columns");
    let row = |name: &str, state: &str| {
        vec![
            Cell::Int(7),
            Cell::Text(name.into()),
            Cell::Int(3),
            Cell::Text("1.5s".into()),
            Cell::Text(state.into()),
        ]
    };
    let h = harvest(q, &at, &[row("a\"b\n", "ok")], Some("app"), 2).expect("decodes");
    assert_eq!(h.omitted, Some(2));
    assert_eq!(
        h.families[0].series[0].labels,
        vec![
            ("relname", "a\"b\n".to_owned()),
            ("datname", "app".to_owned())
        ]
    );
    assert_eq!(h.families[1].series[0].value, Value::Float(1500.0));
    assert_eq!(h.families[2].series[0].value, Value::Float(1.0));
    assert_eq!(h.families[3].kind, Kind::Counter);
    let e = harvest(q, &at, &[row("a", "weird")], None, 0).expect_err("unmapped");
    assert_eq!(e.column, "state");
    let mut null = row("a", "ok");
    null[2] = Cell::Null;
    assert_eq!(
        harvest(q, &at, &[null], None, 0).expect_err("null").column,
        "n_live_tup"
    );
    assert!(
        match_columns(q, &["relname", "n_live_tup", "vac", "state"]).is_err(),
        "missing"
    );
    assert!(
        match_columns(q, &[&returned[..], &["extra"]].concat()).is_err(),
        "undeclared"
    );
    assert!(matches!(q.columns[3].usage, Usage::Mapped(_)));
}

#[test]
fn go_durations_read_as_go_reads_them() {
    assert_eq!(go_duration_ms("1.5s"), Some(1500.0));
    assert_eq!(go_duration_ms("1h2m"), Some(3_720_000.0));
    assert_eq!(go_duration_ms("300ms"), Some(300.0));
    assert_eq!(go_duration_ms("-2m"), Some(-120_000.0));
    assert_eq!(go_duration_ms("0"), Some(0.0));
    // Go divides by a millisecond in integers: 1.9ms is 1.
    assert_eq!(go_duration_ms("1900us"), Some(1.0));
    assert_eq!(go_duration_ms("5"), None);
    assert_eq!(go_duration_ms("00:00:01"), None);
}
