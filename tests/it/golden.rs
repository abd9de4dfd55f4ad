//! Golden files pin the exposition text for fixed snapshots. `UPDATE_GOLDEN=1 cargo test`
//! rewrites them; review the diff before committing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use mesa::gateway::FailureReason;
use mesa::metrics::render_snapshots;
use mesa::snapshot::TargetSnapshot;

use crate::support::{samples, value};

fn snapshots() -> Vec<Arc<TargetSnapshot>> {
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    vec![
        Arc::new(TargetSnapshot {
            target: "orders-primary".to_owned(),
            driver: mesa::gateway::Driver::Postgres,
            finished_at: at,
            duration: Duration::from_millis(42),
            result: Ok(mesa_testkit::sample::collection()),
            last_success: Some(at),
        }),
        Arc::new(TargetSnapshot {
            target: "orders-replica".to_owned(),
            driver: mesa::gateway::Driver::Postgres,
            finished_at: at,
            duration: Duration::from_millis(17),
            result: Ok({
                // One collector failed alone: its families are absent, the rest are there.
                let mut c = mesa_testkit::sample::collection();
                for o in &mut c.outcomes {
                    if o.collector == "stat_statements" {
                        o.result = Err(FailureReason::PermissionDenied);
                    }
                }
                c
            }),
            last_success: Some(at),
        }),
        Arc::new(TargetSnapshot {
            target: "reports".to_owned(),
            driver: mesa::gateway::Driver::Postgres,
            finished_at: at,
            duration: Duration::from_millis(3001),
            result: Err(FailureReason::Unreachable),
            last_success: Some(at - Duration::from_secs(600)),
        }),
    ]
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs; run with UPDATE_GOLDEN=1 and review the diff.\n--- actual ---\n{actual}",
        path.display()
    );
}

#[test]
fn metrics_exposition_is_pinned() {
    check("metrics.txt", &render_snapshots(snapshots(), true));
}

#[test]
fn probe_exposition_is_pinned() {
    check(
        "probe.txt",
        &render_snapshots(snapshots()[..1].to_vec(), false),
    );
}

#[test]
fn a_down_target_has_pg_up_0_and_no_stale_values() {
    let text = render_snapshots(snapshots(), true);
    let reports: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("server=\"reports\""))
        .collect();
    assert!(
        reports.contains(&"pg_up{server=\"reports\"} 0"),
        "{reports:?}"
    );
    let pg: Vec<&&str> = reports.iter().filter(|l| l.starts_with("pg_")).collect();
    assert_eq!(
        pg,
        [
            &"pg_up{server=\"reports\"} 0",
            &"pg_exporter_last_scrape_error{server=\"reports\"} 1"
        ],
        "only pg_up and the error flag for a down target: {reports:?}"
    );
}

#[test]
fn a_collector_that_failed_alone_drops_only_its_families() {
    let text = render_snapshots(snapshots(), true);
    let of = |server: &str, prefix: &str| {
        samples(&text)
            .into_iter()
            .filter(|s| s.label("server") == Some(server) && s.name.starts_with(prefix))
            .count()
    };
    assert!(of("orders-primary", "pg_stat_statements_") > 0, "{text}");
    assert_eq!(of("orders-replica", "pg_stat_statements_"), 0, "{text}");
    for family in [
        "pg_stat_database_",
        "pg_locks_count",
        "pg_settings_",
        "pg_up",
    ] {
        assert_eq!(
            of("orders-primary", family),
            of("orders-replica", family),
            "{family}"
        );
    }
    let success = |server| {
        value(
            &text,
            "mesa_collector_success",
            &[("server", server), ("collector", "stat_statements")],
        )
    };
    assert_eq!(success("orders-primary"), Some(1.0));
    assert_eq!(success("orders-replica"), Some(0.0));
    assert_eq!(
        value(
            &text,
            "pg_exporter_last_scrape_error",
            &[("server", "orders-replica")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "pg_exporter_last_scrape_error",
            &[("server", "orders-primary")]
        ),
        Some(0.0)
    );
}

#[test]
fn statement_texts_are_redacted_in_labels() {
    let text = render_snapshots(snapshots(), true);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("query=\"SELECT * FROM orders WHERE id = $1\""),
        "{text}"
    );
}

#[test]
fn metrics_copies_each_targets_encoding_and_never_serves_a_stale_one() {
    use mesa::metrics::Metrics;
    use mesa::metrics::SnapshotStore;
    let store = Arc::new(SnapshotStore::new());
    let metrics = Metrics::new(store.clone());
    for s in snapshots() {
        store.put((*s).clone());
    }
    // The store keeps only the outcomes; the families live on in the encodings.
    assert!(store.all().iter().all(|s| {
        s.result
            .iter()
            .flat_map(|c| &c.outcomes)
            .filter_map(|o| o.result.as_ref().ok())
            .all(|h| h.families.is_empty())
    }));
    let scratch = render_snapshots(snapshots(), true);
    // /probe comes from the same encoding, without the server label: exactly what encoding
    // the full snapshot alone without the label gives.
    for s in snapshots() {
        assert_eq!(
            metrics.probe(&s.target).expect("stored"),
            render_snapshots(vec![s.clone()], false),
            "{}",
            s.target
        );
    }
    assert_eq!(metrics.probe("never-collected"), None);
    let served = metrics.render();
    // The targets' part is exactly the from-scratch encoding; the exporter's own follow.
    let targets_part = scratch.strip_suffix("# EOF\n").expect("EOF");
    assert!(served.starts_with(targets_part), "{served}");
    assert!(served.contains("# TYPE mesa_build_info gauge"));
    assert!(served.ends_with("# EOF\n"));
    // A new snapshot of a target replaces its encoding, with or without a refresh.
    let mut down = (*snapshots()[0]).clone();
    down.result = Err(FailureReason::Timeout);
    store.put(down);
    let after = metrics.render();
    assert!(
        after.contains("pg_up{server=\"orders-primary\"} 0"),
        "the cache served the old snapshot:\n{after}"
    );
    assert!(!after.contains("pg_static{server=\"orders-primary\""));
    // The process's memory, descriptors and tasks are measured at each render: left out.
    let measured = |text: &str| crate::exporter::without_per_scrape_gauges(text, "/metrics");
    assert_eq!(measured(&after), {
        let mut now = snapshots();
        now[0] = store.get("orders-primary").expect("stored");
        let scratch = render_snapshots(now, true);
        let own = &served[targets_part.len()..];
        measured(&format!(
            "{}{own}",
            scratch.strip_suffix("# EOF\n").expect("EOF")
        ))
    });
}
