//! Each collector against the real server: its values agree with the catalog, counters move
//! with scripted work, zero-filled families are complete, the size guard holds, and a
//! collector that fails does so alone and recovers (issue 8).

use std::time::Duration;

use crate::support::*;

mod logical;
mod run;
mod signals;
mod views;

/// The single value of `name` with `labels` in an exposition, or a panic naming it.
/// A target for database `db` as the least-privilege monitoring role.
fn monitor_of(db: &str) -> mesa::config::TargetConfig {
    let mut t = target(db, "mesa_monitor");
    t.spec.common.database = db.to_owned();
    t
}

/// Lets `session`'s backend send its pending statistics. From 15 an idle backend flushes
/// them within a second by itself; before 15 (the stats collector) only when it goes idle
/// again at least half a second after its last report, so a statement is sent here.
async fn flush_stats_of(session: &tokio_postgres::Client) {
    session
        .simple_query("SELECT 1")
        .await
        .expect("the session answers");
}

async fn scalar_f64(client: &tokio_postgres::Client, sql: &str) -> f64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<_, f64>(0)
}

#[tokio::test]
async fn the_server_is_the_major_the_matrix_asked_for() {
    // `cargo xtask matrix` sets MESA_TEST_PG per run; without it the harness starts the
    // distribution's server (15 on Debian 12). Either way, Mesa's health collector must see the
    // major the harness says it started.
    let collection = mesa::collectors::Collect::collect(
        &gateway(&monitor_of("postgres")),
        mesa::gateway::Deadline::after(Duration::from_secs(10)),
    )
    .await
    .expect("collection");
    assert_eq!(collection.server_version / 10_000, cluster().major());
    if let Ok(asked) = std::env::var("MESA_TEST_PG") {
        assert_eq!(
            cluster().major().to_string(),
            asked,
            "the harness ignored MESA_TEST_PG"
        );
    }
}

#[tokio::test]
async fn stat_database_counts_scripted_commits_rollbacks_and_deadlock_free_work() {
    let db = fresh_database("coll_stat_db").await;
    db.batch_execute("CREATE TABLE t (id int)")
        .await
        .expect("table");
    let t = monitor_of("coll_stat_db");
    let (_, before) = collect_text(&t).await;
    let labels = [("datname", "coll_stat_db")];
    let commits0 = must(&before, "pg_stat_database_xact_commit_total", &labels);
    let rollbacks0 = must(&before, "pg_stat_database_xact_rollback_total", &labels);
    let inserted0 = must(&before, "pg_stat_database_tup_inserted_total", &labels);
    for i in 0..25 {
        db.execute("INSERT INTO t VALUES ($1)", &[&i])
            .await
            .expect("insert");
    }
    for _ in 0..4 {
        db.batch_execute("BEGIN; INSERT INTO t VALUES (0); ROLLBACK")
            .await
            .expect("rollback");
    }
    // Backends flush their statistics when idle, at most once a second; before 15 only when
    // they next go idle after that, so the polling nudges this one.
    let (moved, after) = poll_until(
        Duration::from_secs(15),
        || async {
            flush_stats_of(&db).await;
            collect_text(&t).await.1
        },
        |after| {
            must(after, "pg_stat_database_xact_commit_total", &labels) >= commits0 + 25.0
                && must(after, "pg_stat_database_xact_rollback_total", &labels) >= rollbacks0 + 4.0
                && must(after, "pg_stat_database_tup_inserted_total", &labels) >= inserted0 + 25.0
        },
    )
    .await;
    assert!(
        moved,
        "counters did not move by the scripted work:\n{after}"
    );
    assert!(must(&after, "pg_stat_database_tup_inserted_total", &labels) >= inserted0 + 25.0);
    // The collected value is what the catalog said (it only grows afterwards).
    let catalog = scalar_f64(
        &db,
        "SELECT xact_commit::float8 FROM pg_stat_database WHERE datname = 'coll_stat_db'",
    )
    .await;
    let collected = must(&after, "pg_stat_database_xact_commit_total", &labels);
    assert!(
        collected <= catalog && collected >= commits0 + 25.0,
        "{collected} vs {catalog}"
    );
    for family in [
        "pg_stat_database_numbackends",
        "pg_stat_database_blks_hit_total",
        "pg_stat_database_blks_read_total",
        "pg_stat_database_tup_fetched_total",
        "pg_stat_database_tup_returned_total",
        "pg_stat_database_deadlocks_total",
        "pg_stat_database_conflicts_total",
        "pg_stat_database_temp_bytes_total",
        "pg_stat_database_blk_read_time_total",
    ] {
        must(&after, family, &labels);
    }
    // PostgreSQL 14 added the session counters: present from 14, absent before.
    for family in [
        "pg_stat_database_sessions_total",
        "pg_stat_database_active_time_seconds_total",
    ] {
        assert_eq!(
            value(&after, family, &labels).is_some(),
            cluster().major() >= 14,
            "{family} on {}",
            cluster().major()
        );
    }
}

#[tokio::test]
async fn a_held_access_exclusive_lock_is_counted_under_its_mode_and_every_mode_is_zero_filled() {
    let db = fresh_database("coll_locks").await;
    db.batch_execute("CREATE TABLE held (id int)")
        .await
        .expect("table");
    let t = monitor_of("coll_locks");
    let labels = [("datname", "coll_locks"), ("mode", "accessexclusivelock")];
    let (_, idle) = collect_text(&t).await;
    assert_eq!(must(&idle, "pg_locks_count", &labels), 0.0, "{idle}");
    db.batch_execute("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let (_, locked) = collect_text(&t).await;
    let counted = must(&locked, "pg_locks_count", &labels);
    let catalog = db
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
              WHERE d.datname = 'coll_locks' AND l.mode = 'AccessExclusiveLock'",
            &[],
        )
        .await
        .expect("catalog")
        .get::<_, i64>(0);
    assert_eq!(counted, catalog as f64, "{locked}");
    assert!(counted >= 1.0);
    db.batch_execute("COMMIT").await.expect("commit");
    // Every mode of every database has a series, so sums are 0, not empty.
    let modes = [
        "accesssharelock",
        "rowsharelock",
        "rowexclusivelock",
        "shareupdateexclusivelock",
        "sharelock",
        "sharerowexclusivelock",
        "exclusivelock",
        "accessexclusivelock",
        "sireadlock",
    ];
    for datname in ["postgres", "coll_locks", "template1"] {
        for mode in modes {
            must(
                &locked,
                "pg_locks_count",
                &[("datname", datname), ("mode", mode)],
            );
        }
    }
}

#[tokio::test]
async fn activity_is_zero_filled_for_every_database_and_state_and_counts_sessions() {
    let _db = fresh_database("coll_activity").await;
    let t = monitor_of("coll_activity");
    let (_, quiet) = collect_text(&t).await;
    for state in [
        "active",
        "idle",
        "idle in transaction",
        "idle in transaction (aborted)",
        "fastpath function call",
        "disabled",
    ] {
        let n = samples(&quiet)
            .into_iter()
            .filter(|s| {
                s.name == "pg_stat_activity_count"
                    && s.label("datname") == Some("coll_activity")
                    && s.label("state") == Some(state)
            })
            .count();
        assert!(n >= 1, "no series for coll_activity/{state}:\n{quiet}");
    }
    let app = client_as("app_user", ROLE_PASSWORD, "coll_activity")
        .await
        .expect("app_user connects");
    app.batch_execute("BEGIN; SELECT 1")
        .await
        .expect("open transaction");
    let labels = [
        ("datname", "coll_activity"),
        ("usename", "app_user"),
        ("state", "idle in transaction"),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, busy) = collect_text(&t).await;
    assert_eq!(
        must(&busy, "pg_stat_activity_count", &labels),
        1.0,
        "{busy}"
    );
    assert!(must(&busy, "pg_stat_activity_max_tx_duration", &labels) >= 0.1);
    app.batch_execute("COMMIT").await.expect("commit");
}

#[tokio::test]
async fn a_primary_reports_it_is_not_a_replica_and_its_slots() {
    let su = superuser("postgres").await;
    let _ = su
        .batch_execute("SELECT pg_drop_replication_slot('coll_slot') FROM pg_replication_slots WHERE slot_name = 'coll_slot'")
        .await;
    su.batch_execute("SELECT pg_create_physical_replication_slot('coll_slot', true)")
        .await
        .expect("slot");
    let before = scalar_f64(
        &su,
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8",
    )
    .await;
    let t = target("replication", "mesa_monitor");
    let (collection, text) = collect_text(&t).await;
    let after = scalar_f64(
        &su,
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8",
    )
    .await;
    su.batch_execute("SELECT pg_drop_replication_slot('coll_slot')")
        .await
        .expect("drop slot");
    assert_eq!(must(&text, "pg_replication_is_replica", &[]), 0.0, "{text}");
    assert_eq!(must(&text, "pg_replication_lag_seconds", &[]), 0.0);
    assert_eq!(
        value(&text, "pg_replication_last_replay_seconds", &[]),
        None
    );
    let position = must(&text, "pg_xlog_position_bytes", &[]);
    assert!(
        before <= position && position <= after,
        "{before} <= {position} <= {after}"
    );
    let slot = [("slot_name", "coll_slot"), ("slot_type", "physical")];
    assert_eq!(
        must(&text, "pg_replication_slots_active", &slot),
        0.0,
        "{text}"
    );
    assert!(must(&text, "pg_replication_slots_retained_bytes", &slot) >= 0.0);
    // It ran (a standby of another test may be streaming, so its rows are not asserted here).
    let standbys = collection.outcome("stat_replication").expect("ran");
    assert!(standbys.result.is_ok(), "{standbys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_standby_is_seen_from_both_sides() {
    let su = superuser("postgres").await;
    let _ = su
        .batch_execute("SELECT pg_drop_replication_slot('mesa_standby') FROM pg_replication_slots WHERE slot_name = 'mesa_standby'")
        .await;
    let standby = tokio::task::spawn_blocking(|| cluster().standby("mesa_standby"))
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("standby: {e}"));
    // A replayed transaction, so the replica has a last replay time.
    su.batch_execute(
        "CREATE TABLE IF NOT EXISTS standby_probe (x int); INSERT INTO standby_probe VALUES (1)",
    )
    .await
    .expect("write on the primary");

    let mut replica = target("replica", "mesa_monitor");
    replica.spec.common.port = standby.port();
    let (seen, text) = poll_until(
        Duration::from_secs(20),
        || async {
            let (collection, text) = collect_text(&replica).await;
            for o in &collection.outcomes {
                assert!(
                    o.result.is_ok(),
                    "on the replica, {}: {:?}",
                    o.collector,
                    o.result
                );
            }
            text
        },
        |text| value(text, "pg_replication_last_replay_seconds", &[]).is_some(),
    )
    .await;
    assert!(seen, "{text}");
    assert_eq!(must(&text, "pg_replication_is_replica", &[]), 1.0);
    // Recovery conflicts are a standby's: counted per database, zero here.
    assert_eq!(
        must(
            &text,
            "pg_stat_database_conflicts_confl_snapshot_total",
            &[("datname", "postgres")]
        ),
        0.0
    );
    assert!(must(&text, "pg_replication_lag_seconds", &[]) >= 0.0);
    assert!(must(&text, "pg_xlog_position_bytes", &[]) > 0.0);

    let primary = target("primary", "mesa_monitor");
    let (streaming, text) = poll_until(
        Duration::from_secs(20),
        || async { collect_text(&primary).await.1 },
        |text| {
            value(
                text,
                "pg_replication_slots_active",
                &[("slot_name", "mesa_standby")],
            ) == Some(1.0)
                && samples(text).iter().any(|s| {
                    s.name == "pg_stat_replication_pg_wal_lsn_diff"
                        && s.label("state") == Some("streaming")
                })
        },
    )
    .await;
    drop(standby);
    let _ = su
        .batch_execute("SELECT pg_drop_replication_slot('mesa_standby')")
        .await;
    assert!(streaming, "{text}");
    let standby_row = samples(&text)
        .into_iter()
        .find(|s| {
            s.name == "pg_stat_replication_pg_wal_lsn_diff" && s.label("state") == Some("streaming")
        })
        .expect("found above");
    assert!(standby_row.value >= 0.0, "{standby_row:?}");
    assert_eq!(standby_row.label("client_addr"), Some("127.0.0.1"));
    assert!(
        must(
            &text,
            "pg_replication_slots_retained_bytes",
            &[("slot_name", "mesa_standby")]
        ) >= 0.0
    );
}

#[tokio::test]
async fn wraparound_ages_match_age_of_datfrozenxid() {
    let su = superuser("postgres").await;
    let sql = "SELECT age(datfrozenxid)::float8, mxid_age(datminmxid)::float8 FROM pg_database WHERE datname = 'postgres'";
    let before = su.query_one(sql, &[]).await.expect("ages");
    let (_, text) = collect_text(&target("wrap", "mesa_monitor")).await;
    let after = su.query_one(sql, &[]).await.expect("ages");
    let labels = [("datname", "postgres")];
    let xid = must(&text, "pg_database_wraparound_age_datfrozenxid", &labels);
    let mxid = must(&text, "pg_database_wraparound_age_datminmxid", &labels);
    assert!(
        before.get::<_, f64>(0) <= xid && xid <= after.get::<_, f64>(0),
        "{xid}"
    );
    assert!(
        before.get::<_, f64>(1) <= mxid && mxid <= after.get::<_, f64>(1),
        "{mxid}"
    );
    assert!(xid > 0.0);
}

#[tokio::test]
async fn settings_and_health_agree_with_the_server() {
    let su = superuser("postgres").await;
    let (_, text) = collect_text(&target("settings", "mesa_monitor")).await;
    let setting = |name: &str| {
        let su = &su;
        let name = name.to_owned();
        async move {
            su.query_one(
                "SELECT setting::float8 FROM pg_settings WHERE name = $1",
                &[&name],
            )
            .await
            .expect("setting")
            .get::<_, f64>(0)
        }
    };
    assert_eq!(
        must(&text, "pg_settings_max_locks_per_transaction", &[]),
        setting("max_locks_per_transaction").await
    );
    assert_eq!(
        must(&text, "pg_settings_shared_buffers_bytes", &[]),
        setting("shared_buffers").await * 8192.0
    );
    assert_eq!(
        must(&text, "pg_settings_autovacuum_vacuum_scale_factor", &[]),
        setting("autovacuum_vacuum_scale_factor").await
    );
    assert_eq!(
        must(&text, "pg_settings_autovacuum_vacuum_threshold", &[]),
        setting("autovacuum_vacuum_threshold").await
    );
    assert_eq!(
        must(&text, "pg_settings_autovacuum_naptime_seconds", &[]),
        1.0,
        "the harness sets autovacuum_naptime = 1"
    );
    let fsync: String = su
        .query_one("SELECT setting FROM pg_settings WHERE name = 'fsync'", &[])
        .await
        .expect("fsync")
        .get(0);
    assert_eq!(
        must(&text, "pg_settings_fsync", &[]),
        if fsync == "on" { 1.0 } else { 0.0 },
        "booleans are 1/0"
    );
    // From health (always on), exactly once.
    assert_eq!(
        must(&text, "pg_settings_max_connections", &[]),
        setting("max_connections").await
    );
    let version: String = su
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .expect("version")
        .get(0);
    let num: u32 = version.parse().expect("number");
    let short = format!("{}.{}.0", num / 10_000, num % 10_000);
    assert!(
        samples(&text)
            .iter()
            .any(|s| s.name == "pg_static" && s.label("short_version") == Some(&short)),
        "{text}"
    );
}

#[tokio::test]
async fn stat_user_tables_reports_tuples_and_the_size_guard_keeps_the_largest() {
    let db = fresh_database("coll_tables").await;
    // Five tables with rows (several pages each) and thirty empty ones: more than the limit.
    let mut ddl = String::new();
    for i in 0..5 {
        ddl.push_str(&format!(
            "CREATE TABLE big_{i} (id int, pad text); INSERT INTO big_{i} SELECT g, repeat('x', 200) FROM generate_series(1, {}) g;",
            1000 + 500 * i
        ));
    }
    for i in 0..30 {
        ddl.push_str(&format!("CREATE TABLE empty_{i:02} (id int);"));
    }
    ddl.push_str("DELETE FROM big_0 WHERE id <= 100;");
    db.batch_execute(&ddl).await.expect("tables");
    db.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
    let mut t = monitor_of("coll_tables");
    t.collection.collectors.max_tables = 5;
    let (flushed, text) = poll_until(
        Duration::from_secs(15),
        || async {
            flush_stats_of(&db).await;
            collect_text(&t).await.1
        },
        |text| {
            value(
                text,
                "pg_stat_user_tables_n_tup_del_total",
                &[("relname", "big_0")],
            ) == Some(100.0)
        },
    )
    .await;
    assert!(flushed, "{text}");
    let tables: std::collections::BTreeSet<String> = samples(&text)
        .into_iter()
        .filter(|s| s.name == "pg_stat_user_tables_n_live_tup")
        .filter_map(|s| s.label("relname").map(str::to_owned))
        .collect();
    assert_eq!(
        tables.into_iter().collect::<Vec<_>>(),
        ["big_0", "big_1", "big_2", "big_3", "big_4"],
        "the five largest, and only five"
    );
    assert_eq!(
        must(
            &text,
            "mesa_collector_rows_omitted",
            &[("collector", "stat_user_tables")]
        ),
        30.0
    );
    let labels = [
        ("datname", "coll_tables"),
        ("schemaname", "public"),
        ("relname", "big_0"),
    ];
    assert_eq!(
        must(&text, "pg_stat_user_tables_n_tup_ins_total", &labels),
        1000.0
    );
    // Estimates, which VACUUM, ANALYZE and autovacuum each set, so they may move between a
    // collection and a catalog read: the collected values must equal the catalog's once two
    // reads around a collection agree.
    let catalog = || async {
        let row = db
            .query_one(
                "SELECT n_live_tup::float8, n_dead_tup::float8 FROM pg_stat_user_tables WHERE relname = 'big_0'",
                &[],
            )
            .await
            .expect("catalog");
        (row.get::<_, f64>(0), row.get::<_, f64>(1))
    };
    let mut agreed = None;
    for _ in 0..50 {
        let before = catalog().await;
        let text = collect_text(&t).await.1;
        let after = catalog().await;
        let collected = (
            must(&text, "pg_stat_user_tables_n_live_tup", &labels),
            must(&text, "pg_stat_user_tables_n_dead_tup", &labels),
        );
        if before == after {
            agreed = Some((collected, after));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (collected, catalog) = agreed.expect("the estimates settle");
    assert_eq!(collected, catalog);
    assert!(must(&text, "pg_stat_user_tables_last_vacuum", &labels) > 1.7e9);
    assert!(must(&text, "pg_stat_user_tables_vacuum_count_total", &labels) >= 1.0);
    // Time spent vacuuming and analyzing, from 18: the server's milliseconds, as seconds.
    let spent = value(&text, "pg_stat_user_tables_vacuum_seconds_total", &labels);
    if cluster().major() >= 18 {
        let ms = scalar_f64(
            &db,
            "SELECT total_vacuum_time FROM pg_stat_user_tables WHERE relname = 'big_0'",
        )
        .await;
        assert_eq!(spent, Some(ms / 1000.0), "vacuum time");
        assert!(ms > 0.0, "VACUUM took some time: {ms} ms");
        assert!(must(&text, "pg_stat_user_tables_analyze_seconds_total", &labels) > 0.0);
    } else {
        assert_eq!(spent, None, "no vacuum times before 18");
    }
    // The default guard keeps all 35.
    let (_, all) = collect_text(&monitor_of("coll_tables")).await;
    assert_eq!(
        must(
            &all,
            "mesa_collector_rows_omitted",
            &[("collector", "stat_user_tables")]
        ),
        0.0
    );
}

#[tokio::test]
async fn stat_statements_is_off_by_default_and_reports_top_statements_when_on() {
    let db = fresh_database("coll_pss").await;
    let mut t = monitor_of("coll_pss");
    let (off, text) = collect_text(&t).await;
    assert!(off.outcome("stat_statements").is_none(), "off by default");
    assert!(!text.contains("pg_stat_statements_calls"), "{text}");
    t = with_stat_statements(t);
    // Not installed in this database yet: that collector fails alone.
    let (missing, _) = collect_text(&t).await;
    assert!(
        missing
            .outcome("stat_statements")
            .expect("ran")
            .result
            .is_err()
    );
    db.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("extension");
    for _ in 0..7 {
        db.batch_execute("SELECT 'coll_pss_marker' AS marker, pg_sleep(0)")
            .await
            .expect("statement");
    }
    let is_marker = |s: &Sample| {
        s.name == "pg_stat_statements_calls_total"
            && s.label("query").is_some_and(|q| q.contains("marker"))
    };
    let (found, text) = poll_until(
        Duration::from_secs(10),
        || async {
            let (collection, text) = collect_text(&t).await;
            let outcome = collection.outcome("stat_statements").map(|o| &o.result);
            format!("{:?}\n{text}", outcome.map(Result::is_ok))
        },
        |text| samples(text).iter().any(|s| is_marker(s) && s.value >= 7.0),
    )
    .await;
    assert!(found, "no marker statement:\n{text}");
    let marker = samples(&text)
        .into_iter()
        .find(|s| is_marker(s))
        .expect("found above");
    assert!(marker.value >= 7.0, "{marker:?}");
    assert_eq!(marker.label("datname"), Some("coll_pss"));
    assert!(marker.label("queryid").is_some_and(|q| !q.is_empty()));
}
