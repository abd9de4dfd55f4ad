//! Drop-in compatibility, proven live (issue 8): a real Prometheus scrapes Mesa through the
//! shipped `deploy/prometheus/postgres-exporter-names.yml` job, and every query of
//! postgres_exporter's mixin (its overview dashboard and its alert rules) evaluates without
//! error and returns data. Mesa watches a primary and its streaming standby (a harness
//! standby with `hot_standby_feedback` through a repmgr-style slot), so replication rules
//! have their signals too.
//!
//! The queries are written here from the metric names and labels the mixin uses (dashboard
//! variables filled in: `$db` = every database, `$instance` = the one probed target); they
//! are not copied from it. Alert expressions are checked twice: whole (it must evaluate), and
//! as the signal under the threshold (it must return series), since an alert that does not
//! fire returns nothing by design.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use crate::prometheus::{query, query_checked, start_prometheus};
use crate::support::*;

/// The overview dashboard's panels and template variables.
const DASHBOARD: &[&str] = &[
    r#"sum(irate(pg_stat_database_tup_fetched{datname=~".*",instance=~"local"}[5m]))"#,
    r#"sum(irate(pg_stat_database_tup_returned{datname=~".*",instance=~"local"}[5m]))"#,
    r#"sum(irate(pg_stat_database_tup_inserted{datname=~".*",instance=~"local"}[5m]))"#,
    r#"sum(irate(pg_stat_database_tup_updated{datname=~".*",instance=~"local"}[5m]))"#,
    r#"sum(irate(pg_stat_database_tup_deleted{datname=~".*",instance=~"local"}[5m]))"#,
    r#"sum(irate(pg_stat_database_xact_commit{datname=~".*",instance=~"local"}[5m])) + sum(irate(pg_stat_database_xact_rollback{datname=~".*",instance=~"local"}[5m]))"#,
    r#"irate(pg_stat_bgwriter_buffers_alloc_total{instance="local"}[5m])"#,
    r#"irate(pg_stat_bgwriter_buffers_backend_fsync_total{instance="local"}[5m])"#,
    r#"irate(pg_stat_bgwriter_buffers_backend_total{instance="local"}[5m])"#,
    r#"irate(pg_stat_bgwriter_buffers_clean_total{instance="local"}[5m])"#,
    r#"irate(pg_stat_bgwriter_buffers_checkpoint_total{instance="local"}[5m])"#,
    r#"sum(rate(pg_stat_database_deadlocks{datname=~".*",instance=~"local"}[5m]))"#,
    r#"sum(rate(pg_stat_database_conflicts{datname=~".*",instance=~"local"}[5m]))"#,
    r#"sum(pg_stat_database_blks_hit{datname=~".*",instance=~"local"}) / (sum(pg_stat_database_blks_hit{datname=~".*",instance=~"local"}) + sum(pg_stat_database_blks_read{datname=~".*",instance=~"local"}))"#,
    r#"pg_stat_database_numbackends{datname=~".*",instance=~"local"}"#,
    // Template variables: label_values(up{job=~"postgres.*"}, instance) and
    // label_values(pg_stat_database_tup_fetched{...,datname!~"template.*|postgres"}, datname).
    r#"group by (instance) (up{job=~"postgres.*"})"#,
    r#"group by (datname) (pg_stat_database_tup_fetched{instance=~"local",datname!~"template.*|postgres"})"#,
];

/// Grafana.com dashboard 9628 ("PostgreSQL Database"), the most installed dashboard for
/// postgres_exporter: its queries that read metrics Mesa serves (variables filled in:
/// `$instance` = the probed primary, `$datname`/`$mode` = all, `$release` = none), each with
/// the selector that must return data. Its other panels read `process_*` (the exporter's own
/// process; Mesa exports none) and `pg_stat_bgwriter_*` without `_total` (postgres_exporter
/// before 0.11; the snippet keeps the `_total` the mixin reads): the README lists them.
const DASHBOARD_9628: &[(&str, &str)] = &[
    (
        r#"pg_locks_count{datname=~".*",instance=~"local",mode=~".*"} != 0"#,
        r#"pg_locks_count{instance="local"}"#,
    ),
    (
        r#"pg_postmaster_start_time_seconds{release="",instance="local"} * 1000"#,
        r#"pg_postmaster_start_time_seconds{release="",instance="local"}"#,
    ),
    (
        r#"pg_settings_effective_cache_size_bytes{instance="local"}"#,
        r#"pg_settings_effective_cache_size_bytes{instance="local"}"#,
    ),
    (
        r#"pg_settings_maintenance_work_mem_bytes{instance="local"}"#,
        r#"pg_settings_maintenance_work_mem_bytes{instance="local"}"#,
    ),
    (
        r#"pg_settings_max_connections{release="",instance="local"}"#,
        r#"pg_settings_max_connections{release="",instance="local"}"#,
    ),
    (
        r#"pg_settings_max_parallel_workers{instance="local"}"#,
        r#"pg_settings_max_parallel_workers{instance="local"}"#,
    ),
    (
        r#"pg_settings_max_wal_size_bytes{instance="local"}"#,
        r#"pg_settings_max_wal_size_bytes{instance="local"}"#,
    ),
    (
        r#"pg_settings_max_worker_processes{instance="local"}"#,
        r#"pg_settings_max_worker_processes{instance="local"}"#,
    ),
    (
        r#"pg_settings_random_page_cost{instance="local"}"#,
        r#"pg_settings_random_page_cost{instance="local"}"#,
    ),
    ("pg_settings_seq_page_cost", "pg_settings_seq_page_cost"),
    (
        r#"pg_settings_shared_buffers_bytes{instance="local"}"#,
        r#"pg_settings_shared_buffers_bytes{instance="local"}"#,
    ),
    (
        r#"pg_settings_work_mem_bytes{instance="local"}"#,
        r#"pg_settings_work_mem_bytes{instance="local"}"#,
    ),
    (
        r#"pg_stat_activity_count{datname=~".*",instance=~"local",state="active"} != 0"#,
        r#"pg_stat_activity_count{instance="local",state="active"}"#,
    ),
    (
        r#"pg_stat_activity_count{datname=~".*",instance=~"local",state=~"idle|idle in transaction|idle in transaction (aborted)"}"#,
        r#"pg_stat_activity_count{instance="local",state="idle"}"#,
    ),
    (
        r#"pg_stat_database_blks_hit{instance="local",datname=~".*"} / (pg_stat_database_blks_read{instance="local",datname=~".*"} + pg_stat_database_blks_hit{instance="local",datname=~".*"})"#,
        r#"pg_stat_database_blks_hit{instance="local"}"#,
    ),
    (
        r#"irate(pg_stat_database_conflicts{instance="local",datname=~".*"}[5m])"#,
        r#"pg_stat_database_conflicts{instance="local"}"#,
    ),
    (
        r#"irate(pg_stat_database_deadlocks{instance="local",datname=~".*"}[5m])"#,
        r#"pg_stat_database_deadlocks{instance="local"}"#,
    ),
    (
        r#"irate(pg_stat_database_temp_bytes{instance="local",datname=~".*"}[5m])"#,
        r#"pg_stat_database_temp_bytes{instance="local"}"#,
    ),
    (
        r#"pg_stat_database_tup_deleted{datname=~".*",instance=~"local"} != 0"#,
        r#"pg_stat_database_tup_deleted{instance="local"}"#,
    ),
    (
        r#"SUM(pg_stat_database_tup_fetched{datname=~".*",instance=~"local"})"#,
        r#"pg_stat_database_tup_fetched{instance="local"}"#,
    ),
    (
        r#"SUM(pg_stat_database_tup_inserted{release="",datname=~".*",instance=~"local"})"#,
        r#"pg_stat_database_tup_inserted{instance="local"}"#,
    ),
    (
        r#"pg_stat_database_tup_returned{datname=~".*",instance=~"local"} != 0"#,
        r#"pg_stat_database_tup_returned{instance="local"}"#,
    ),
    (
        r#"SUM(pg_stat_database_tup_updated{datname=~".*",instance=~"local"})"#,
        r#"pg_stat_database_tup_updated{instance="local"}"#,
    ),
    (
        r#"irate(pg_stat_database_xact_commit{instance="local",datname=~".*"}[5m])"#,
        r#"pg_stat_database_xact_commit{instance="local"}"#,
    ),
    (
        r#"irate(pg_stat_database_xact_rollback{instance="local",datname=~".*"}[5m])"#,
        r#"pg_stat_database_xact_rollback{instance="local"}"#,
    ),
    (
        r#"pg_static{release="",instance="local"}"#,
        r#"pg_static{release="",instance="local"}"#,
    ),
];

/// An alert rule of the mixin: its name, its whole expression, and the signal queries under
/// its threshold.
struct Alert {
    name: &'static str,
    expr: &'static str,
    signals: &'static [&'static str],
}

const ALERTS: &[Alert] = &[
    Alert {
        name: "PostgreSQLMaxConnectionsReached",
        expr: "sum by (instance) (pg_stat_activity_count) >= sum by (instance) (pg_settings_max_connections) - sum by (instance) (pg_settings_superuser_reserved_connections)",
        signals: &[
            "sum by (instance) (pg_stat_activity_count)",
            "sum by (instance) (pg_settings_max_connections) - sum by (instance) (pg_settings_superuser_reserved_connections)",
        ],
    },
    Alert {
        name: "PostgreSQLHighConnections",
        expr: "sum by (instance) (pg_stat_activity_count) > (sum by (instance) (pg_settings_max_connections) - sum by (instance) (pg_settings_superuser_reserved_connections)) * 0.8",
        signals: &[
            "sum by (instance) (pg_stat_activity_count) / ((sum by (instance) (pg_settings_max_connections) - sum by (instance) (pg_settings_superuser_reserved_connections)) * 0.8)",
        ],
    },
    Alert {
        name: "PostgreSQLDown",
        expr: "pg_up != 1",
        signals: &["pg_up"],
    },
    Alert {
        name: "PostgreSQLSlowQueries",
        expr: r#"avg by (datname) (rate(pg_stat_activity_max_tx_duration{datname!~"template.*"}[2m])) > 2 * 60"#,
        signals: &[
            r#"avg by (datname) (rate(pg_stat_activity_max_tx_duration{datname!~"template.*"}[2m]))"#,
        ],
    },
    Alert {
        name: "PostgreSQLQPS",
        expr: r#"avg by (datname) (irate(pg_stat_database_xact_commit{datname!~"template.*"}[5m]) + irate(pg_stat_database_xact_rollback{datname!~"template.*"}[5m])) > 10000"#,
        signals: &[
            r#"avg by (datname) (irate(pg_stat_database_xact_commit{datname!~"template.*"}[5m]) + irate(pg_stat_database_xact_rollback{datname!~"template.*"}[5m]))"#,
        ],
    },
    Alert {
        name: "PostgreSQLCacheHitRatio",
        expr: r#"avg by (datname) (rate(pg_stat_database_blks_hit{datname!~"template.*"}[5m]) / (rate(pg_stat_database_blks_hit{datname!~"template.*"}[5m]) + rate(pg_stat_database_blks_read{datname!~"template.*"}[5m]))) < 0.98"#,
        signals: &[
            r#"avg by (datname) (rate(pg_stat_database_blks_hit{datname!~"template.*"}[5m]) / (rate(pg_stat_database_blks_hit{datname!~"template.*"}[5m]) + rate(pg_stat_database_blks_read{datname!~"template.*"}[5m])))"#,
        ],
    },
    Alert {
        name: "PostgresHasTooManyRollbacks",
        expr: r#"avg without (pod, instance) (rate(pg_stat_database_xact_rollback{datname!~"template.*"}[5m]) / (rate(pg_stat_database_xact_commit{datname!~"template.*"}[5m]) + rate(pg_stat_database_xact_rollback{datname!~"template.*"}[5m]))) > 0.10"#,
        signals: &[
            r#"avg without (pod, instance) (rate(pg_stat_database_xact_rollback{datname!~"template.*"}[5m]) / (rate(pg_stat_database_xact_commit{datname!~"template.*"}[5m]) + rate(pg_stat_database_xact_rollback{datname!~"template.*"}[5m])))"#,
        ],
    },
    Alert {
        name: "PostgresHasHighDeadLocks",
        expr: r#"max without (pod, instance) (rate(pg_stat_database_deadlocks{datname!~"template.*"}[5m]) * 60) > 5"#,
        signals: &[
            r#"max without (pod, instance) (rate(pg_stat_database_deadlocks{datname!~"template.*"}[5m]) * 60)"#,
        ],
    },
    Alert {
        name: "PostgresAcquiredTooManyLocks",
        expr: r#"max by (server, job, datname, namespace) ((pg_locks_count{datname!~"template.*"}) / on (instance, namespace) group_left (server) (pg_settings_max_locks_per_transaction * pg_settings_max_connections)) > 0.20"#,
        signals: &[
            r#"max by (server, job, datname, namespace) ((pg_locks_count{datname!~"template.*"}) / on (instance, namespace) group_left (server) (pg_settings_max_locks_per_transaction * pg_settings_max_connections))"#,
        ],
    },
    Alert {
        name: "PostgresXLOGConsumptionVeryLow",
        expr: "rate(pg_xlog_position_bytes[5m]) < 200000",
        signals: &["rate(pg_xlog_position_bytes[5m])"],
    },
    Alert {
        name: "PostgresXLOGConsumptionVeryHigh",
        expr: "rate(pg_xlog_position_bytes[2m]) > 36700160 and on (instance) (pg_replication_is_replica == 0)",
        signals: &[
            "rate(pg_xlog_position_bytes[2m])",
            "pg_replication_is_replica == 0",
        ],
    },
    Alert {
        name: "PostgresReplicationStopped",
        expr: "pg_stat_replication_pg_xlog_location_diff != 0",
        signals: &["pg_stat_replication_pg_xlog_location_diff"],
    },
    Alert {
        name: "PostgresReplicationLaggingMore1Hour",
        expr: "(pg_replication_lag > 3600) and on (instance) (pg_replication_is_replica == 1)",
        signals: &["pg_replication_lag", "pg_replication_is_replica == 1"],
    },
    Alert {
        name: "PostgresReplicationLagBytesAreTooLarge",
        expr: "(pg_xlog_position_bytes and pg_replication_is_replica == 0) - on (job, service) group_right (instance) (pg_xlog_position_bytes and pg_replication_is_replica == 1) > 1e+09",
        signals: &[
            "pg_xlog_position_bytes and pg_replication_is_replica == 0",
            "(pg_xlog_position_bytes and pg_replication_is_replica == 0) - on (job, service) group_right (instance) (pg_xlog_position_bytes and pg_replication_is_replica == 1)",
        ],
    },
    Alert {
        name: "PostgresHasReplicationSlotUsed",
        expr: "pg_replication_slots_active == 0",
        signals: &["pg_replication_slots_active == 0"],
    },
    Alert {
        name: "PostgresReplicationIsStale",
        expr: r#"pg_replication_slots_xmin_age{slot_name=~"^repmgr_slot_[0-9]+"} > 20000"#,
        signals: &[r#"pg_replication_slots_xmin_age{slot_name=~"^repmgr_slot_[0-9]+"}"#],
    },
    Alert {
        name: "PostgresReplicationRoleChanged",
        expr: "pg_replication_is_replica and changes(pg_replication_is_replica[1m]) > 0",
        signals: &["changes(pg_replication_is_replica[1m])"],
    },
    Alert {
        name: "PostgresHasExporterErrors",
        expr: "pg_exporter_last_scrape_error > 0",
        signals: &["pg_exporter_last_scrape_error"],
    },
    Alert {
        name: "PostgresHasTooManyDeadTuples",
        expr: r#"(sum without (relname) (pg_stat_user_tables_n_dead_tup{datname!~"template.*"}) > 10000) / ((sum without (relname) (pg_stat_user_tables_n_live_tup{datname!~"template.*"}) + sum without (relname) (pg_stat_user_tables_n_dead_tup{datname!~"template.*"})) > 0) >= 0.1 unless on (instance) (pg_replication_is_replica == 1)"#,
        signals: &[
            r#"sum without (relname) (pg_stat_user_tables_n_dead_tup{datname!~"template.*"})"#,
            r#"sum without (relname) (pg_stat_user_tables_n_live_tup{datname!~"template.*"}) + sum without (relname) (pg_stat_user_tables_n_dead_tup{datname!~"template.*"})"#,
        ],
    },
    Alert {
        name: "PostgresTablesNotVaccumed",
        expr: "group without (pod, instance) (timestamp(pg_stat_user_tables_n_dead_tup > pg_stat_user_tables_n_live_tup * on (namespace, job, service, instance, server) group_left pg_settings_autovacuum_vacuum_scale_factor + on (namespace, job, service, instance, server) group_left pg_settings_autovacuum_vacuum_threshold) < time() - 36000)",
        signals: &[
            "pg_stat_user_tables_n_live_tup * on (namespace, job, service, instance, server) group_left pg_settings_autovacuum_vacuum_scale_factor + on (namespace, job, service, instance, server) group_left pg_settings_autovacuum_vacuum_threshold",
        ],
    },
    Alert {
        name: "PostgresTooManyCheckpointsRequested",
        expr: "rate(pg_stat_bgwriter_checkpoints_timed_total[5m]) / (rate(pg_stat_bgwriter_checkpoints_timed_total[5m]) + rate(pg_stat_bgwriter_checkpoints_req_total[5m])) < 0.5",
        signals: &[
            "rate(pg_stat_bgwriter_checkpoints_timed_total[5m]) / (rate(pg_stat_bgwriter_checkpoints_timed_total[5m]) + rate(pg_stat_bgwriter_checkpoints_req_total[5m]))",
        ],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mixin_query_runs_against_mesa_through_the_shipped_snippet() {
    // A database with a table (per-table signals), an unused slot, and a standby streaming
    // through a repmgr-named slot.
    let db = fresh_database("compat_db").await;
    db.batch_execute(
        "CREATE TABLE ledger (id int); INSERT INTO ledger SELECT generate_series(1, 100); DELETE FROM ledger WHERE id <= 10",
    )
    .await
    .expect("table");
    let su = superuser("postgres").await;
    let _ = su
        .batch_execute("SELECT pg_drop_replication_slot('compat_slot') FROM pg_replication_slots WHERE slot_name = 'compat_slot'")
        .await;
    su.batch_execute("SELECT pg_create_physical_replication_slot('compat_slot')")
        .await
        .expect("slot");
    let _ = su
        .batch_execute("SELECT pg_drop_replication_slot('repmgr_slot_1') FROM pg_replication_slots WHERE slot_name = 'repmgr_slot_1'")
        .await;
    let standby = tokio::task::spawn_blocking(|| cluster().standby("repmgr_slot_1"))
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("standby: {e}"));

    let config = daemon_config(
        &"collection: {interval: 1s, timeout: 800ms}
web: {listen_address: '127.0.0.1:0'}
targets:
  - {name: local, driver: postgres, host: '{host}', port: {port}, database: compat_db, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}
  - {name: replica, driver: postgres, host: '{host}', port: STANDBY_PORT, database: compat_db, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}
"
        .replace("STANDBY_PORT", &standby.port().to_string()),
    );
    let app = App::start(config).await.expect("daemon starts");
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/prometheus/postgres-exporter-names.yml"),
    )
    .expect("deploy/prometheus/postgres-exporter-names.yml");
    let job = shipped
        .replace("mesa.example:9930", &app.metrics_addr().to_string())
        .replace("[orders-primary, billing]", "[local, replica]");
    let dir = std::env::temp_dir().join(format!("mesa-compat-{}", std::process::id()));
    let (_prometheus, prom) = start_prometheus(&dir, &job, &[]);

    // Enough scrapes for rate() and changes() over their windows, and the standby's feedback
    // has given its slot an xmin.
    let ready = eventually(Duration::from_secs(60), || async {
        let scrapes = query(prom, "count_over_time(pg_up[1m]) >= 6").await;
        scrapes.len() == 2
            && !query(
                prom,
                "pg_replication_slots_xmin_age{slot_name=\"repmgr_slot_1\"}",
            )
            .await
            .is_empty()
    })
    .await;
    assert!(ready, "up: {:?}", query(prom, "up").await);

    let mut failures = Vec::new();
    let mut run = async |what: String, q: &str, want_data: bool| match query_checked(prom, q).await
    {
        Err(e) => failures.push(format!("{what}: {q}\n    error: {e}")),
        Ok(series) if want_data && series.is_empty() => {
            failures.push(format!("{what}: {q}\n    returned no data"))
        }
        Ok(_) => {}
    };
    for (i, q) in DASHBOARD.iter().enumerate() {
        run(format!("dashboard query {i}"), q, true).await;
    }
    for alert in ALERTS {
        run(format!("alert {}", alert.name), alert.expr, false).await;
        for q in alert.signals {
            run(format!("alert {} signal", alert.name), q, true).await;
        }
    }
    for (q, signal) in DASHBOARD_9628 {
        run("dashboard 9628".to_owned(), q, false).await;
        run("dashboard 9628 signal".to_owned(), signal, true).await;
    }
    // Legacy spellings are stored; Mesa's own spellings are not, under this job.
    let leftover = query(prom, "pg_stat_database_xact_commit_total").await;
    let wrap = query(prom, "pg_database_wraparound_age_datfrozenxid_seconds").await;
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    drop(standby);
    for slot in ["compat_slot", "repmgr_slot_1"] {
        let _ = su
            .batch_execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
            .await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of the mixin's queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(leftover.is_empty(), "{leftover:?}");
    assert!(
        !wrap.is_empty(),
        "the transaction-ID age under postgres_exporter's name"
    );
}
