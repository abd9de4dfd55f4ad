//! The MySQL collectors against the live MariaDB: each family checked against what the
//! server itself says, a collector that fails alone, and the exposition's validity.

use crate::support::{assert_openmetrics_valid, collect_text, must, value};

use super::{PASSWORD, plain_user, server, sleeper, target, target_on};

/// `SHOW GLOBAL STATUS` / `VARIABLES` of one name, as root reads it.
fn server_value(kind: &str, name: &str) -> f64 {
    let out = server()
        .sql("", &format!("SHOW GLOBAL {kind} LIKE '{name}'"))
        .expect("show");
    out.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{kind} {name}: {out:?}"))
}

#[tokio::test]
async fn every_collector_reads_what_the_server_says() {
    plain_user(server(), "my_coll_app");
    let (id, task) = sleeper("my_coll_app", PASSWORD, 30).await;
    let t = target("my_collect");
    let (collection, text) = collect_text(&t).await;
    let names: Vec<&str> = collection.outcomes.iter().map(|o| o.collector).collect();
    assert_eq!(
        names,
        [
            "health",
            "global_status",
            "global_variables",
            "processlist",
            "replica_status"
        ]
    );
    for o in &collection.outcomes {
        assert!(o.result.is_ok(), "{}: {:?}", o.collector, o.result);
    }
    assert!(
        collection.server_version >= 100_600,
        "{}",
        collection.server_version
    );
    assert_openmetrics_valid(&text);

    // health
    let version = server().sql("", "SELECT @@version").expect("version");
    assert_eq!(
        must(&text, "mysql_version_info", &[("version", version.trim())]),
        1.0
    );
    assert_eq!(must(&text, "mysql_up", &[]), 1.0);
    let ratio = must(&text, "mysql_connections_utilization_ratio", &[]);
    assert!(
        ratio > 0.0 && ratio < 0.5,
        "{ratio}: at least the sleeper, far from 200"
    );

    // global_status: the plain ones, the grouped ones, and a counter's suffix.
    let uptime = must(&text, "mysql_global_status_uptime", &[]);
    assert!(
        (uptime - server_value("STATUS", "Uptime")).abs() <= 2.0,
        "{uptime}"
    );
    assert!(must(&text, "mysql_global_status_threads_connected", &[]) >= 2.0);
    assert!(must(&text, "mysql_global_status_questions", &[]) > 0.0);
    assert!(value(&text, "mysql_global_status_slow_queries", &[]).is_some());
    assert!(value(&text, "mysql_global_status_aborted_connects", &[]).is_some());
    assert!(value(&text, "mysql_global_status_innodb_row_lock_waits", &[]).is_some());
    assert!(
        must(
            &text,
            "mysql_global_status_innodb_buffer_pool_read_requests",
            &[]
        ) > 0.0
    );
    assert!(value(&text, "mysql_global_status_innodb_buffer_pool_reads", &[]).is_some());
    assert!(
        must(
            &text,
            "mysql_global_status_commands_total",
            &[("command", "select")]
        ) > 0.0
    );
    assert!(
        must(
            &text,
            "mysql_global_status_buffer_pool_pages",
            &[("state", "data")]
        ) > 0.0
    );
    assert!(
        value(
            &text,
            "mysql_global_status_buffer_pool_pages",
            &[("state", "free")]
        )
        .is_some()
    );
    assert!(
        value(
            &text,
            "mysql_global_status_handlers_total",
            &[("handler", "read_rnd_next")]
        )
        .is_some()
    );
    assert!(
        !text.contains("mysql_global_status_innodb_buffer_pool_pages_total"),
        "the total is the sum of the states"
    );
    assert!(
        !text.contains("mysql_global_status_rpl_status"),
        "text values are left out"
    );

    // global_variables
    assert_eq!(
        must(&text, "mysql_global_variables_max_connections", &[]),
        200.0
    );
    assert_eq!(
        must(&text, "mysql_global_variables_innodb_buffer_pool_size", &[]),
        server_value("VARIABLES", "innodb_buffer_pool_size")
    );
    assert_eq!(must(&text, "mysql_global_variables_read_only", &[]), 0.0);
    assert_eq!(
        must(
            &text,
            "mysql_transaction_isolation",
            &[("level", "REPEATABLE-READ")]
        ),
        1.0
    );

    // processlist: the sleeper, and not Mesa's own collection session.
    assert!(
        must(
            &text,
            "mysql_info_schema_processlist_threads",
            &[("command", "query"), ("state", "user_sleep")]
        ) >= 1.0
    );
    assert_eq!(
        must(
            &text,
            "mysql_info_schema_processlist_processes_by_user",
            &[("mysql_user", "my_coll_app")]
        ),
        1.0
    );
    assert!(
        value(
            &text,
            "mysql_info_schema_processlist_processes_by_user",
            &[("mysql_user", "mesa_mon")]
        )
        .is_none(),
        "Mesa's own session is left out:\n{text}"
    );

    // replica_status: this server replicates from nothing, so it succeeded with no series.
    assert!(!text.contains("mysql_slave_status_"), "no replication here");

    server().sql("", &format!("KILL {id}")).expect("cleanup");
    let _ = task.await;
}

#[tokio::test]
async fn a_collector_without_its_privilege_fails_alone() {
    let s = server();
    // No SLAVE MONITOR: SHOW ALL SLAVES STATUS is refused on MariaDB 10.5 and later.
    s.sql(
        "",
        &format!(
            "CREATE USER IF NOT EXISTS my_thin_mon@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT PROCESS ON *.* TO my_thin_mon@'%';"
        ),
    )
    .expect("account");
    let t = target_on(s, "my_thin", "my_thin_mon");
    let (collection, text) = collect_text(&t).await;
    let replica = collection.outcome("replica_status").expect("ran");
    assert_eq!(
        replica.result.as_ref().err(),
        Some(&mesa::gateway::FailureReason::PermissionDenied),
        "{replica:?}"
    );
    for o in collection
        .outcomes
        .iter()
        .filter(|o| o.collector != "replica_status")
    {
        assert!(o.result.is_ok(), "{}: {:?}", o.collector, o.result);
    }
    assert_eq!(must(&text, "mysql_up", &[]), 1.0);
    assert_eq!(
        must(&text, "mysql_exporter_last_scrape_error", &[]),
        1.0,
        "the failure shows"
    );
    assert_eq!(
        must(
            &text,
            "mesa_collector_success",
            &[("collector", "replica_status")]
        ),
        0.0
    );
    assert!(must(&text, "mysql_global_status_uptime", &[]) >= 0.0);
}

#[tokio::test]
async fn a_wrong_password_is_mysql_up_0_with_its_reason() {
    use mesa::collectors::{Collect, TargetCollector};
    let mut t = target("my_wrong_pw");
    t.spec.common.monitor.password = Some(mesa::secret::Secret::new("not-the-password"));
    let collector = TargetCollector::new(
        std::sync::Arc::new(super::gateway(&t)),
        t.collection.collectors,
        t.collection.databases.clone(),
        t.collection.interval,
    );
    let err = collector
        .collect(mesa::gateway::Deadline::after(
            std::time::Duration::from_secs(5),
        ))
        .await
        .expect_err("refused");
    assert_eq!(
        err.reason(),
        mesa::gateway::FailureReason::AuthFailed,
        "{err}"
    );
}

#[tokio::test]
async fn a_replica_reports_its_threads_and_lag_under_mysqld_exporters_names() {
    let r = super::replica();
    // A change on the primary arrives: replication runs.
    server()
        .sql("", "CREATE DATABASE IF NOT EXISTS my_replicated")
        .expect("primary");
    let arrived = crate::support::eventually(std::time::Duration::from_secs(20), || async {
        r.sql("", "SHOW DATABASES LIKE 'my_replicated'")
            .is_ok_and(|out| out.contains("my_replicated"))
    })
    .await;
    assert!(arrived, "the replica never applied the primary's change");
    let t = target_on(r, "my_replica", super::MONITOR);
    let (collection, text) = collect_text(&t).await;
    assert!(
        collection
            .outcome("replica_status")
            .is_some_and(|o| o.result.is_ok())
    );
    let labels = [
        ("channel_name", ""),
        ("connection_name", ""),
        ("master_host", "127.0.0.1"),
        ("master_uuid", ""),
    ];
    assert_eq!(
        must(&text, "mysql_slave_status_slave_io_running", &labels),
        1.0
    );
    assert_eq!(
        must(&text, "mysql_slave_status_slave_sql_running", &labels),
        1.0
    );
    assert!(must(&text, "mysql_slave_status_seconds_behind_master", &labels) >= 0.0);
    assert_eq!(must(&text, "mysql_slave_status_sql_delay", &labels), 0.0);
    assert_eq!(
        must(&text, "mysql_slave_status_master_port", &labels),
        f64::from(server().port())
    );
}
