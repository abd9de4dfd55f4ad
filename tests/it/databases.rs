//! Every database of a server (issue 19, sections 1 and 2), against the harness cluster with
//! the daemon: discovery with include/exclude, databases created and dropped at run time
//! without a reload, a database that refuses CONNECT failing alone, 50 databases visited with
//! Mesa's sessions never above the cap, `databases.max`, and `max_tables` across databases.
//! Each test filters discovery to its own databases (the cluster is shared).

use std::collections::BTreeSet;
use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use crate::support::*;

/// A daemon with one target, `name`, as `user` on the `postgres` database, collected every
/// 500 ms with `databases` (a YAML flow mapping) and `extra` collection keys.
fn config(name: &str, user: &str, databases: &str, extra: &str) -> mesa::config::Config {
    daemon_config(&format!(
        "collection: {{interval: 500ms, timeout: 400ms{extra}}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: {name}, driver: postgres, host: '{{host}}', port: {{port}}, database: postgres, username: {user}, password_file: fixture.pw, sslmode: disable, databases: {databases}}}
"
    ))
}

async fn metrics(app: &App) -> String {
    http_get(app.metrics_addr(), "/metrics").await.2
}

/// The `datname` values of `server`'s series in `text`.
fn datnames(text: &str, server: &str) -> BTreeSet<String> {
    samples(text)
        .iter()
        .filter(|s| s.label("server") == Some(server))
        .filter_map(|s| s.label("datname").map(str::to_owned))
        .collect()
}

/// The `relname` values of `family`'s series of `server`.
fn relnames(text: &str, server: &str, family: &str) -> BTreeSet<String> {
    samples(text)
        .iter()
        .filter(|s| s.name == family && s.label("server") == Some(server))
        .filter_map(|s| s.label("relname").map(str::to_owned))
        .collect()
}

/// A fresh database with one table `t_<db>` of `rows` rows (a primary key, so an index too).
async fn database_with_table(db: &str, rows: u32) {
    let client = fresh_database(db).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE t_{db} (id int PRIMARY KEY, pad text);
             INSERT INTO t_{db} SELECT g, repeat('x', 100) FROM generate_series(1, {rows}) g;
             ANALYZE t_{db};"
        ))
        .await
        .expect("table");
}

async fn drop_databases(names: &[&str]) {
    let su = superuser("postgres").await;
    for db in names {
        su.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .expect("drop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_filters_visits_and_follows_databases_created_and_dropped() {
    for db in ["disc_a", "disc_b", "disc_scratch"] {
        database_with_table(db, 50).await;
    }
    drop_databases(&["disc_c"]).await;
    let app = App::start(config(
        "disc",
        "mesa_monitor",
        "{include: ['^disc_[abc]$', '^disc_scratch$'], exclude: ['_scratch$'], interval: 1s}",
        "",
    ))
    .await
    .expect("daemon starts");

    let (both, text) = poll_until(
        Duration::from_secs(15),
        || metrics(&app),
        |text| {
            let tables = relnames(text, "disc", "pg_stat_user_tables_n_live_tup");
            tables.contains("t_disc_a") && tables.contains("t_disc_b")
        },
    )
    .await;
    assert!(both, "both databases visited:\n{text}");
    let want: BTreeSet<String> = ["disc_a", "disc_b"].map(String::from).into();
    // Every datname-labelled series, server-wide families included (activity, locks,
    // stat_database, database size, wraparound): only the visited databases.
    assert_eq!(datnames(&text, "disc"), want, "{text}");
    for (family, labels) in [
        (
            "pg_stat_database_xact_commit_total",
            vec![("datname", "disc_a")],
        ),
        (
            "pg_stat_activity_count",
            vec![("datname", "disc_b"), ("state", "idle")],
        ),
        (
            "pg_statio_user_tables_heap_blocks_hit_total",
            vec![("relname", "t_disc_a")],
        ),
        (
            "pg_stat_user_indexes_idx_scan_total",
            vec![("indexrelname", "t_disc_b_pkey")],
        ),
        (
            "pg_statio_user_indexes_idx_blks_hit_total",
            vec![("indexrelname", "t_disc_a_pkey")],
        ),
        ("mesa_database_up", vec![("datname", "disc_a")]),
        (
            "mesa_database_last_visit_timestamp_seconds",
            vec![("datname", "disc_b")],
        ),
        ("mesa_databases_omitted", vec![]),
    ] {
        let mut labels = labels;
        labels.push(("server", "disc"));
        assert!(
            value(&text, family, &labels).is_some(),
            "{family}{labels:?}:\n{text}"
        );
    }
    assert_eq!(
        must(
            &text,
            "mesa_database_up",
            &[("server", "disc"), ("datname", "disc_b")]
        ),
        1.0
    );
    assert_eq!(
        must(&text, "mesa_databases_omitted", &[("server", "disc")]),
        0.0
    );
    assert_eq!(must(&text, "pg_up", &[("server", "disc")]), 1.0);

    // At run time, without a reload: one database created, one dropped.
    database_with_table("disc_c", 10).await;
    drop_databases(&["disc_b"]).await;
    let (followed, text) = poll_until(
        Duration::from_secs(15),
        || metrics(&app),
        |text| {
            let names = datnames(text, "disc");
            relnames(text, "disc", "pg_stat_user_tables_n_live_tup").contains("t_disc_c")
                && !names.contains("disc_b")
        },
    )
    .await;
    assert!(followed, "disc_c visited and disc_b gone:\n{text}");
    let want: BTreeSet<String> = ["disc_a", "disc_c"].map(String::from).into();
    assert_eq!(datnames(&text, "disc"), want, "{text}");
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    drop_databases(&["disc_a", "disc_c", "disc_scratch"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_connect_fails_alone() {
    database_with_table("disc_open", 5).await;
    database_with_table("disc_locked", 5).await;
    superuser("postgres")
        .await
        .batch_execute("REVOKE CONNECT ON DATABASE disc_locked FROM PUBLIC")
        .await
        .expect("revoke");
    let app = App::start(config(
        "locked",
        "mesa_monitor",
        "{include: ['^disc_(open|locked)$'], interval: 1s}",
        "",
    ))
    .await
    .expect("daemon starts");
    let (seen, text) = poll_until(
        Duration::from_secs(15),
        || metrics(&app),
        |text| {
            value(
                text,
                "mesa_database_up",
                &[("server", "locked"), ("datname", "disc_locked")],
            ) == Some(0.0)
                && value(
                    text,
                    "mesa_database_up",
                    &[("server", "locked"), ("datname", "disc_open")],
                ) == Some(1.0)
        },
    )
    .await;
    assert!(seen, "{text}");
    assert_eq!(must(&text, "pg_up", &[("server", "locked")]), 1.0);
    assert!(relnames(&text, "locked", "pg_stat_user_tables_n_live_tup").contains("t_disc_open"));
    // Nothing of the locked database's own tables, and its failure is counted with a reason.
    assert!(
        !relnames(&text, "locked", "pg_stat_user_tables_n_live_tup").contains("t_disc_locked"),
        "{text}"
    );
    assert!(
        must(
            &text,
            "mesa_collect_failures_total",
            &[
                ("server", "locked"),
                ("collector", "visit"),
                ("reason", "permission_denied")
            ]
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "mesa_database_last_visit_timestamp_seconds",
            &[("server", "locked"), ("datname", "disc_locked")]
        ),
        None,
        "never visited successfully"
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    drop_databases(&["disc_open", "disc_locked"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_databases_are_visited_and_mesa_never_holds_more_than_its_cap() {
    monitor_login("disc_fifty").await;
    let names: Vec<String> = (0..50).map(|i| format!("disc50_{i:02}")).collect();
    let su = superuser("postgres").await;
    for db in &names {
        for sql in [
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            format!("CREATE DATABASE {db} TEMPLATE template0"),
        ] {
            su.batch_execute(&sql).await.expect("database");
        }
    }
    let app = App::start(config(
        "fifty",
        "disc_fifty",
        "{include: ['^disc50_'], interval: 2s}",
        "",
    ))
    .await
    .expect("daemon starts");
    // Sample the role's sessions on the server while the visits go round.
    let mut most = 0i64;
    let mut samples_taken = 0;
    let started = std::time::Instant::now();
    let mut all_up = false;
    let mut text = String::new();
    while started.elapsed() < Duration::from_secs(20) {
        let n: i64 = su
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'disc_fifty'",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        most = most.max(n);
        samples_taken += 1;
        if samples_taken % 25 == 0 {
            text = metrics(&app).await;
            all_up = names.iter().all(|db| {
                value(
                    &text,
                    "mesa_database_up",
                    &[("server", "fifty"), ("datname", db)],
                ) == Some(1.0)
            });
            if all_up && started.elapsed() > Duration::from_secs(4) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("fifty: {samples_taken} samples, at most {most} sessions of Mesa's role");
    assert!(all_up, "all fifty visited:\n{text}");
    assert!(most >= 1, "the sampling saw Mesa's sessions at all");
    assert!(
        most <= mesa::gateway::postgres::MAX_CONNECTIONS_PER_TARGET as i64,
        "{most} sessions at once"
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    for db in &names {
        su.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .expect("drop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_databases_max_the_largest_are_visited_and_the_rest_counted() {
    database_with_table("disc_mx_big", 40_000).await;
    database_with_table("disc_mx_mid", 20_000).await;
    database_with_table("disc_mx_small", 1).await;
    let app = App::start(config(
        "mx",
        "mesa_monitor",
        "{include: ['^disc_mx_'], max: 2, interval: 1s}",
        "",
    ))
    .await
    .expect("daemon starts");
    let want: BTreeSet<String> = ["disc_mx_big", "disc_mx_mid"].map(String::from).into();
    let (chosen, text) = poll_until(
        Duration::from_secs(15),
        || metrics(&app),
        |text| {
            relnames(text, "mx", "pg_stat_user_tables_n_live_tup").len() == 2
                && datnames(text, "mx") == want
        },
    )
    .await;
    assert!(chosen, "{text}");
    assert_eq!(
        must(&text, "mesa_databases_omitted", &[("server", "mx")]),
        1.0
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    drop_databases(&["disc_mx_big", "disc_mx_mid", "disc_mx_small"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tables_holds_across_every_database() {
    // Six tables over two databases; the guard keeps three, the largest over the server.
    for (db, sizes) in [
        ("disc_mt_a", [4000u32, 100, 10]),
        ("disc_mt_b", [3000, 2000, 50]),
    ] {
        let client = fresh_database(db).await;
        for (i, rows) in sizes.iter().enumerate() {
            client
                .batch_execute(&format!(
                    "CREATE TABLE {db}_{i} (id int PRIMARY KEY, pad text);
                     INSERT INTO {db}_{i} SELECT g, repeat('x', 100) FROM generate_series(1, {rows}) g;"
                ))
                .await
                .expect("table");
        }
        client
            .batch_execute("VACUUM ANALYZE")
            .await
            .expect("vacuum");
    }
    let app = App::start(config(
        "mt",
        "mesa_monitor",
        "{include: ['^disc_mt_'], interval: 500ms}",
        ", max_tables: 3",
    ))
    .await
    .expect("daemon starts");
    let want: BTreeSet<String> = ["disc_mt_a_0", "disc_mt_b_0", "disc_mt_b_1"]
        .map(String::from)
        .into();
    let started = std::time::Instant::now();
    let mut settled = false;
    let mut text = String::new();
    let mut looks = 0;
    while started.elapsed() < Duration::from_secs(15) {
        text = metrics(&app).await;
        looks += 1;
        let tables = relnames(&text, "mt", "pg_stat_user_tables_n_live_tup");
        // Never more than the guard, at any moment, while visits move the split.
        assert!(tables.len() <= 3, "{tables:?}");
        assert!(relnames(&text, "mt", "pg_statio_user_tables_heap_blocks_hit_total").len() <= 3);
        if tables == want {
            settled = true;
            if looks > 10 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "the three largest over both databases:\n{text}");
    let omitted: f64 = ["disc_mt_a", "disc_mt_b"]
        .iter()
        .map(|db| {
            must(
                &text,
                "mesa_collector_rows_omitted",
                &[
                    ("server", "mt"),
                    ("collector", "stat_user_tables"),
                    ("datname", db),
                ],
            )
        })
        .sum();
    assert_eq!(omitted, 3.0, "six tables, three exported:\n{text}");
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    drop_databases(&["disc_mt_a", "disc_mt_b"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_hangs_its_visit_fails_alone() {
    database_with_table("disc_hang", 5).await;
    database_with_table("disc_calm", 5).await;
    // A superuser holds pg_class of disc_hang exclusively: every catalog read there waits
    // (startup, parse, the statistics views). Other databases have their own pg_class.
    let holder = superuser("disc_hang").await;
    let (holder_pid, held) = background(
        holder,
        "BEGIN; LOCK TABLE pg_catalog.pg_class IN ACCESS EXCLUSIVE MODE; SELECT pg_catalog.pg_sleep(60)",
    )
    .await;
    let app = App::start(config(
        "hang",
        "mesa_monitor",
        "{include: ['^disc_(hang|calm)$'], interval: 1s}",
        ", statement_timeout: 300ms, lock_timeout: 200ms",
    ))
    .await
    .expect("daemon starts");
    let (seen, text) = poll_until(
        Duration::from_secs(15),
        || metrics(&app),
        |text| {
            let calm = value(
                text,
                "mesa_database_up",
                &[("server", "hang"), ("datname", "disc_calm")],
            );
            let hung_down = value(
                text,
                "mesa_database_up",
                &[("server", "hang"), ("datname", "disc_hang")],
            ) == Some(0.0);
            let hung_failing = value(
                text,
                "mesa_collector_success",
                &[
                    ("server", "hang"),
                    ("datname", "disc_hang"),
                    ("collector", "stat_user_tables"),
                ],
            ) == Some(0.0);
            calm == Some(1.0) && (hung_down || hung_failing)
        },
    )
    .await;
    assert!(seen, "{text}");
    assert_eq!(must(&text, "pg_up", &[("server", "hang")]), 1.0);
    let tables = relnames(&text, "hang", "pg_stat_user_tables_n_live_tup");
    assert!(tables.contains("t_disc_calm"), "{text}");
    assert!(!tables.contains("t_disc_hang"), "{text}");
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    superuser("postgres")
        .await
        .query("SELECT pg_catalog.pg_terminate_backend($1)", &[&holder_pid])
        .await
        .expect("end the holder");
    let _ = held.await;
    drop_databases(&["disc_hang", "disc_calm"]).await;
}
