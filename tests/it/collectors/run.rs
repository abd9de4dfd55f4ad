//! The collection run against the real server: a failing collector fails alone and
//! recovers, the SQL each server version gets, and collectors held up by a lock or cancelled
//! by `statement_timeout` fail alone within the deadline.

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa::collectors::Options;
use mesa::collectors::postgres::{ALL, Plan, Server, TrustedRelation, definition};

use super::*;

#[tokio::test]
async fn a_failing_collector_fails_alone_is_counted_and_recovers() {
    let db = fresh_database("coll_indep").await;
    // Catalog privileges are per database: only this database loses mxid_age, which only the
    // wraparound collector calls.
    db.batch_execute("REVOKE EXECUTE ON FUNCTION pg_catalog.mxid_age(xid) FROM PUBLIC")
        .await
        .expect("revoke");
    let config = daemon_config(
        "collection: {interval: 1s, timeout: 800ms}
web: {listen_address: '127.0.0.1:0'}
targets:
  - {name: indep, driver: postgres, host: '{host}', port: {port}, database: coll_indep, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}
",
    );
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.metrics_addr();
    let wrap = [("server", "indep"), ("collector", "wraparound")];
    let (failed, body) = poll_until(
        Duration::from_secs(10),
        || async { http_get(addr, "/metrics").await.2 },
        |body| {
            value(
                body,
                "mesa_collect_failures_total",
                &[
                    ("server", "indep"),
                    ("collector", "wraparound"),
                    ("reason", "permission_denied"),
                ],
            )
            .is_some_and(|n| n >= 1.0)
        },
    )
    .await;
    assert!(failed, "{body}");
    assert_eq!(must(&body, "pg_up", &[("server", "indep")]), 1.0);
    assert_eq!(must(&body, "mesa_collector_success", &wrap), 0.0);
    assert_eq!(
        value(
            &body,
            "pg_database_wraparound_age_datfrozenxid",
            &[("server", "indep"), ("datname", "postgres")]
        ),
        None
    );
    for (collector, family) in [
        ("stat_database", "pg_stat_database_xact_commit_total"),
        ("locks", "pg_locks_count"),
        ("settings", "pg_settings_max_locks_per_transaction"),
        ("activity", "pg_stat_activity_count"),
    ] {
        assert_eq!(
            must(
                &body,
                "mesa_collector_success",
                &[("server", "indep"), ("collector", collector)]
            ),
            1.0
        );
        assert!(
            samples(&body)
                .iter()
                .any(|s| s.name == family && s.label("server") == Some("indep")),
            "{family} missing while only wraparound failed:\n{body}"
        );
    }
    assert_eq!(
        must(
            &body,
            "pg_exporter_last_scrape_error",
            &[("server", "indep")]
        ),
        1.0
    );
    // Recovery: the privilege comes back, and so do the families.
    db.batch_execute("GRANT EXECUTE ON FUNCTION pg_catalog.mxid_age(xid) TO PUBLIC")
        .await
        .expect("grant");
    let (recovered, body) = poll_until(
        Duration::from_secs(10),
        || async { http_get(addr, "/metrics").await.2 },
        |body| value(body, "mesa_collector_success", &wrap) == Some(1.0),
    )
    .await;
    assert!(recovered, "{body}");
    must(
        &body,
        "pg_database_wraparound_age_datfrozenxid",
        &[("server", "indep"), ("datname", "coll_indep")],
    );
    assert_eq!(
        must(
            &body,
            "pg_exporter_last_scrape_error",
            &[("server", "indep")]
        ),
        0.0
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
}

#[test]
fn version_gating_picks_the_sql_each_server_has() {
    let plan = |name: &str, version: u32| {
        let def = definition(name).expect("collector");
        let server = Server {
            version,
            stat_statements: Some(TrustedRelation {
                schema: "public".to_owned(),
                oid: 0,
            }),
        };
        match (def.plan)(&server, &Options::default()) {
            Plan::Run(s) => Some(s.sql.into_owned()),
            Plan::Unsupported | Plan::Unavailable(_) => None,
        }
    };
    // Older than 13: only health runs. From 13 everything runs but the views later majors
    // added: pg_stat_wal (14), pg_stat_io (16).
    for def in ALL {
        let expected = def.name == "health";
        assert_eq!(plan(def.name, 120_000).is_some(), expected, "{}", def.name);
        let since = match def.name {
            "stat_wal" => 140_000,
            "stat_io" => 160_000,
            _ => 130_000,
        };
        assert!(
            plan(def.name, since).is_some(),
            "{} runs on {since}",
            def.name
        );
        assert!(plan(def.name, 180_000).is_some(), "{} runs on 18", def.name);
        if since > 130_000 {
            assert!(
                plan(def.name, since - 1).is_none(),
                "{} before {since}",
                def.name
            );
        }
    }
    // 18 moved WAL writes to pg_stat_io and added bytes there; 16 added logical slot conflicts.
    assert!(
        plan("stat_wal", 170_000)
            .expect("17")
            .contains("w.wal_write,")
    );
    assert!(
        !plan("stat_wal", 180_000)
            .expect("18")
            .contains("w.wal_write,")
    );
    assert!(
        plan("stat_io", 180_000)
            .expect("18")
            .contains("i.read_bytes")
    );
    assert!(
        !plan("stat_io", 170_000)
            .expect("17")
            .contains("i.read_bytes")
    );
    assert!(
        plan("database_conflicts", 160_000)
            .expect("16")
            .contains("confl_active_logicalslot")
    );
    assert!(
        !plan("database_conflicts", 150_000)
            .expect("15")
            .contains("confl_active_logicalslot")
    );
    // 17 moved checkpoint counters to pg_stat_checkpointer.
    for v in [130_000, 140_000, 150_018, 160_004] {
        let sql = plan("bgwriter", v).expect("bgwriter");
        assert!(
            sql.contains("b.checkpoints_timed") && !sql.contains("checkpointer"),
            "{v}"
        );
    }
    let sql = plan("bgwriter", 170_000).expect("bgwriter");
    assert!(sql.contains("pg_catalog.pg_stat_checkpointer") && sql.contains("c.num_timed"));
    // 14 added session counters.
    assert!(
        !plan("stat_database", 130_012)
            .expect("13")
            .contains("s.session_time")
    );
    assert!(
        plan("stat_database", 140_000)
            .expect("14")
            .contains("s.session_time")
    );
    // 17 renamed the I/O timing columns of pg_stat_statements.
    assert!(
        plan("stat_statements", 160_000)
            .expect("16")
            .contains("s.blk_read_time")
    );
    assert!(
        plan("stat_statements", 170_000)
            .expect("17")
            .contains("s.shared_blk_read_time")
    );
}

#[tokio::test]
async fn the_sql_for_every_version_up_to_the_installed_one_runs_here() {
    // The installed server runs what each collector plans for it and, up to 16, for every
    // older supported major: their columns are a subset of the newer views'. 17 dropped
    // pg_stat_bgwriter's checkpoint columns and renamed pg_stat_statements' timing columns, so
    // from 17 on only the plans of 17 and later run here; the older majors' own plans run on
    // their own servers in the matrix (`cargo xtask matrix`).
    let su = superuser("postgres").await;
    su.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .expect("extension");
    let installed: i32 = su
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .expect("version")
        .get(0);
    let monitor = client_as("mesa_monitor", ROLE_PASSWORD, "postgres")
        .await
        .expect("monitor connects");
    let installed = installed as u32;
    for version in [
        130_000, 140_000, 150_000, 160_000, 170_000, 180_000, installed,
    ] {
        // 17 removed the bgwriter's checkpoint columns and 18 pg_stat_wal's write and sync
        // ones: an older major's SQL runs on its own major only (the matrix runs each).
        if version > installed
            || (installed >= 170_000 && version < 170_000)
            || (installed >= 180_000 && version < 180_000)
        {
            continue;
        }
        let server = Server {
            version,
            stat_statements: Some(TrustedRelation {
                schema: "public".to_owned(),
                oid: 0,
            }),
        };
        for def in ALL {
            let Plan::Run(statement) = (def.plan)(&server, &Options::default()) else {
                continue;
            };
            // The statement and its fallback (stat_statements' without texts) return the
            // same columns.
            let fallback = statement.fallback.as_ref().map(|f| f.sql.as_ref());
            for sql in std::iter::once(statement.sql.as_ref()).chain(fallback) {
                let rows = match statement.limit {
                    Some(limit) => monitor.query(sql, &[&limit]).await,
                    None => monitor.query(sql, &[]).await,
                };
                let rows = rows.unwrap_or_else(|e| panic!("{} for {version}: {e}", def.name));
                for row in &rows {
                    // Label columns, one value column per metric, then the trailing ones (the
                    // guard's total, health's count of sessions hidden from the role).
                    assert_eq!(
                        row.len(),
                        def.labels.len() + def.metrics.len() + def.trailing_columns(),
                        "{} for {version}",
                        def.name
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn a_collector_blocked_by_a_lock_times_out_alone_within_the_deadline() {
    // The server's lock_timeout (300 ms), not Mesa's 10 s collection deadline, ends the wait.
    blocked_collector(
        "coll_blocked",
        Duration::from_millis(300),
        mesa::config::DEFAULT_STATEMENT_TIMEOUT,
    )
    .await;
}

#[tokio::test]
async fn a_collector_cancelled_by_statement_timeout_fails_alone() {
    // Now the statement_timeout (300 ms) fires first: the lock wait would last 5 s.
    blocked_collector(
        "coll_stmt_timeout",
        Duration::from_secs(5),
        Duration::from_millis(300),
    )
    .await;
}

/// A collector whose statement waits on a lock held by another session, under these
/// server-side timeouts: it fails alone with reason `timeout`, well before the longer one.
async fn blocked_collector(database: &str, lock_timeout: Duration, statement_timeout: Duration) {
    // pg_stat_statements is a view over a function, so locking it blocks nothing else.
    let db = fresh_database(database).await;
    db.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("extension");
    db.batch_execute("BEGIN; LOCK TABLE public.pg_stat_statements IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let mut t = with_stat_statements(monitor_of(database));
    t.collection.lock_timeout = lock_timeout;
    t.collection.statement_timeout = statement_timeout;
    let started = std::time::Instant::now();
    let (collection, text) = collect_text(&t).await;
    let took = started.elapsed();
    db.batch_execute("ROLLBACK").await.expect("unlock");
    let blocked = collection.outcome("stat_statements").expect("ran");
    assert_eq!(
        blocked.result.as_ref().err(),
        Some(&mesa::gateway::FailureReason::Timeout),
        "{blocked:?}"
    );
    assert_the_rest_succeeded(&collection, "stat_statements");
    assert_eq!(must(&text, "pg_up", &[]), 1.0);
    assert!(!text.contains("pg_stat_statements_calls"), "{text}");
    // The shorter server-side timeout ended the wait, not the longer one nor Mesa's 10 s
    // collection deadline.
    let shorter = lock_timeout.min(statement_timeout);
    let longer = lock_timeout.max(statement_timeout);
    assert!(took >= shorter, "{took:?}");
    assert!(took < longer.min(Duration::from_secs(10)), "{took:?}");
}
