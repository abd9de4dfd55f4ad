//! Mesa's MySQL families against Debian's `prometheus-mysqld-exporter` (0.14) run on the same
//! MariaDB: the names mysqld_exporter's mixin queries (its alerts, recording rules and the
//! MySQL overview dashboard; the list below is ours, written from the names and labels they
//! use), and every `SHOW GLOBAL STATUS` / `VARIABLES` family either exporter serves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{closed_port, samples, scrape_reference};

use std::time::Duration;

use mesa_testkit::mariadb::MariaDb;

use super::{MONITOR, PASSWORD, plain_user, replica, server, sleeper, target_on};
use crate::support::collect_text;

/// Families the mixin's alerts, rules and overview dashboard read (a name the server does
/// not have, e.g. Galera's `wsrep_local_state` without Galera, must be absent from both).
const MIXIN: &[&str] = &[
    "mysql_up",
    "mysql_global_status_uptime",
    "mysql_global_status_queries",
    "mysql_global_status_questions",
    "mysql_global_status_slow_queries",
    "mysql_global_status_threads_connected",
    "mysql_global_status_threads_running",
    "mysql_global_status_threads_created",
    "mysql_global_status_threads_cached",
    "mysql_global_status_connections",
    "mysql_global_status_max_used_connections",
    "mysql_global_status_aborted_connects",
    "mysql_global_status_aborted_clients",
    "mysql_global_status_created_tmp_tables",
    "mysql_global_status_created_tmp_disk_tables",
    "mysql_global_status_created_tmp_files",
    "mysql_global_status_binlog_cache_use",
    "mysql_global_status_binlog_cache_disk_use",
    "mysql_global_status_binlog_stmt_cache_use",
    "mysql_global_status_binlog_stmt_cache_disk_use",
    "mysql_global_status_select_full_join",
    "mysql_global_status_select_full_range_join",
    "mysql_global_status_select_range",
    "mysql_global_status_select_range_check",
    "mysql_global_status_select_scan",
    "mysql_global_status_sort_rows",
    "mysql_global_status_sort_range",
    "mysql_global_status_sort_merge_passes",
    "mysql_global_status_sort_scan",
    "mysql_global_status_table_locks_immediate",
    "mysql_global_status_table_locks_waited",
    "mysql_global_status_bytes_received",
    "mysql_global_status_bytes_sent",
    "mysql_global_status_open_files",
    "mysql_global_status_open_tables",
    "mysql_global_status_opened_tables",
    "mysql_global_status_opened_files",
    "mysql_global_status_table_open_cache_hits",
    "mysql_global_status_table_open_cache_misses",
    "mysql_global_status_table_open_cache_overflows",
    "mysql_global_status_qcache_free_memory",
    "mysql_global_status_qcache_hits",
    "mysql_global_status_qcache_inserts",
    "mysql_global_status_qcache_not_cached",
    "mysql_global_status_qcache_lowmem_prunes",
    "mysql_global_status_qcache_queries_in_cache",
    "mysql_global_status_innodb_log_waits",
    "mysql_global_status_innodb_page_size",
    "mysql_global_status_innodb_row_lock_waits",
    "mysql_global_status_innodb_buffer_pool_reads",
    "mysql_global_status_innodb_buffer_pool_read_requests",
    "mysql_global_status_buffer_pool_pages",
    "mysql_global_status_buffer_pool_dirty_pages",
    "mysql_global_status_commands_total",
    "mysql_global_status_handlers_total",
    "mysql_global_status_innodb_row_ops_total",
    "mysql_global_status_wsrep_ready",
    "mysql_global_status_wsrep_local_state",
    "mysql_global_status_wsrep_local_recv_queue",
    "mysql_global_variables_wsrep_desync",
    "mysql_global_variables_max_connections",
    "mysql_global_variables_innodb_buffer_pool_size",
    "mysql_global_variables_innodb_log_buffer_size",
    "mysql_global_variables_innodb_additional_mem_pool_size",
    "mysql_global_variables_key_buffer_size",
    "mysql_global_variables_query_cache_size",
    "mysql_global_variables_thread_cache_size",
    "mysql_global_variables_open_files_limit",
    "mysql_global_variables_table_open_cache",
    "mysql_slave_status_seconds_behind_master",
    "mysql_slave_status_sql_delay",
    "mysql_slave_status_slave_io_running",
    "mysql_slave_status_slave_sql_running",
    "mysql_info_schema_processlist_threads",
    "mysql_version_info",
];

/// Every family of `text` whose name starts with `mysql_`, with its label names (without
/// `server`), as (family as a sample names it, sorted label names).
fn shapes(text: &str) -> BTreeMap<String, BTreeSet<Vec<String>>> {
    let mut out: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for s in samples(text)
        .iter()
        .filter(|s| s.name.starts_with("mysql_"))
    {
        let mut labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| k != "server")
            .collect();
        labels.sort();
        out.entry(s.name.clone()).or_default().insert(labels);
    }
    out
}

/// Debian's mysqld_exporter on `s` as Mesa's monitoring login: one scrape.
fn mysqld_exporter_text(dir: &Path, s: &MariaDb) -> String {
    let binary = Path::new("/usr/bin/prometheus-mysqld-exporter");
    assert!(
        binary.is_file(),
        "prometheus-mysqld-exporter is missing (`cargo xtask test` installs it)"
    );
    let port = closed_port();
    let log = dir.join("mysqld_exporter.log");
    let child = Command::new(binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collect.info_schema.processlist")
        .env(
            "DATA_SOURCE_NAME",
            format!("{MONITOR}:{PASSWORD}@({}:{})/", s.host(), s.port()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("mysqld_exporter starts");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    scrape_reference(child, addr, "mysql_up 1", &log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mixins_names_are_served_as_mysqld_exporter_serves_them() {
    plain_user(server(), "my_compat_app");
    // A running statement for the processlist families of both.
    let (id, task) = sleeper("my_compat_app", PASSWORD, 60).await;
    let served = compare(server(), "my_compat").await;
    server().sql("", &format!("KILL {id}")).expect("cleanup");
    let _ = task.await;
    assert!(
        served >= 50,
        "only {served} of the mixin's names exist on this server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicas_names_are_served_as_mysqld_exporter_serves_them() {
    let r = replica();
    let running = crate::support::eventually(Duration::from_secs(20), || async {
        r.sql("", "SHOW SLAVE STATUS")
            // Slave_IO_Running and Slave_SQL_Running, side by side.
            .is_ok_and(|out| out.contains("\tYes\tYes\t"))
    })
    .await;
    assert!(running, "the replica's threads never ran");
    compare(r, "my_compat_replica").await;
}

/// Compares one scrape of mysqld_exporter with one collection of Mesa on `s` (as target
/// `name`): the mixin's names present in both or in neither, with the same label names, and
/// every status and variable family of either. Returns how many of the mixin's names exist.
async fn compare(s: &'static MariaDb, name: &str) -> usize {
    let dir = std::env::temp_dir().join(format!("mesa-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let reference = shapes(&mysqld_exporter_text(&dir, s));
    let (_, mesa) = collect_text(&target_on(s, name, MONITOR)).await;
    let mesa = shapes(&mesa);

    let mut served = 0;
    for name in MIXIN {
        let expose = |shapes: &BTreeMap<String, BTreeSet<Vec<String>>>| shapes.get(*name).cloned();
        let (theirs, ours) = (expose(&reference), expose(&mesa));
        assert_eq!(
            ours, theirs,
            "{name}: Mesa {ours:?}, mysqld_exporter {theirs:?}"
        );
        served += usize::from(theirs.is_some());
    }
    let of = |shapes: &BTreeMap<String, BTreeSet<Vec<String>>>, prefix: &str| -> BTreeSet<String> {
        shapes
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect()
    };
    for prefix in ["mysql_global_status_", "mysql_global_variables_"] {
        let (theirs, ours) = (of(&reference, prefix), of(&mesa, prefix));
        let missing: Vec<&String> = theirs.difference(&ours).collect();
        let extra: Vec<&String> = ours.difference(&theirs).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{prefix}: Mesa lacks {missing:?}; only Mesa serves {extra:?}"
        );
        assert!(theirs.len() > 200, "{prefix}: {}", theirs.len());
        for name in &theirs {
            assert_eq!(
                mesa.get(name),
                reference.get(name),
                "{name}: label names differ"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    served
}
