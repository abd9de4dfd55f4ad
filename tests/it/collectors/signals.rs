//! The signals of issue 20, section 4, live on the harness server (and on every major 13 to
//! 18 through `cargo xtask matrix`): WAL, archiver, I/O, recovery conflicts, wait events and
//! vacuum progress, each gated on the versions that have its view.

use std::time::Duration;

use super::monitor_of;
use crate::support::*;

async fn scalar(su: &tokio_postgres::Client, sql: &str) -> f64 {
    su.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<_, f64>(0)
}

#[tokio::test]
async fn wal_archiver_io_and_conflicts_agree_with_the_server() {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE TABLE IF NOT EXISTS signals_wal (x int); INSERT INTO signals_wal SELECT pg_catalog.generate_series(1, 100)")
        .await
        .expect("some WAL");
    let version = cluster().major();
    let (collection, text) = collect_text(&monitor_of("postgres")).await;
    let ran = |name: &str| collection.outcome(name).map(|o| o.result.is_ok());

    // Archiver, every version: the server's counts; no archive yet, so no age.
    assert_eq!(ran("archiver"), Some(true));
    let archived = scalar(&su, "SELECT archived_count::float8 FROM pg_stat_archiver").await;
    assert_eq!(
        must(&text, "pg_stat_archiver_archived_count_total", &[]),
        archived
    );
    assert_eq!(
        value(&text, "pg_stat_archiver_last_archive_age", &[]).is_some(),
        archived > 0.0
    );

    // WAL: 14 on; 18 moved the write and sync counts to pg_stat_io.
    if version >= 14 {
        assert_eq!(ran("stat_wal"), Some(true));
        let records = must(&text, "pg_stat_wal_records_total", &[]);
        let after = scalar(&su, "SELECT wal_records::float8 FROM pg_stat_wal").await;
        assert!(records > 0.0 && records <= after, "{records} of {after}");
        assert!(must(&text, "pg_stat_wal_bytes_total", &[]) > 0.0);
        assert_eq!(
            value(&text, "pg_stat_wal_write_total", &[]).is_some(),
            version < 18
        );
    } else {
        assert_eq!(ran("stat_wal"), None, "no pg_stat_wal before 14: not run");
    }

    // I/O: 16 on; bytes from 18.
    if version >= 16 {
        assert_eq!(ran("stat_io"), Some(true));
        let io = [
            ("backend_type", "client backend"),
            ("object", "relation"),
            ("context", "normal"),
        ];
        assert!(must(&text, "pg_stat_io_hits_total", &io) > 0.0);
        assert_eq!(
            value(&text, "pg_stat_io_read_bytes_total", &io).is_some(),
            version >= 18
        );
    } else {
        assert_eq!(ran("stat_io"), None, "no pg_stat_io before 16: not run");
    }

    // Recovery conflicts, zero on a primary; logical slots from 16.
    assert_eq!(ran("database_conflicts"), Some(true));
    let db = [("datname", "postgres")];
    assert_eq!(
        must(&text, "pg_stat_database_conflicts_confl_lock_total", &db),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "pg_stat_database_conflicts_confl_active_logicalslot_total",
            &db
        )
        .is_some(),
        version >= 16
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_waiting_on_a_lock_is_counted_and_every_wait_type_is_listed() {
    let su = fresh_database("signals_wait").await;
    su.batch_execute("CREATE TABLE held (x int)")
        .await
        .expect("table");
    let holder = superuser("signals_wait").await;
    holder
        .batch_execute("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let (waiter, handle) = background(superuser("signals_wait").await, "SELECT * FROM held").await;
    let t = monitor_of("signals_wait");
    let (seen, text) = poll_until(
        Duration::from_secs(10),
        || async { collect_text(&t).await.1 },
        |text| {
            value(
                text,
                "pg_stat_activity_wait_event_count",
                &[("wait_event_type", "Lock"), ("wait_event", "relation")],
            )
            .is_some_and(|n| n >= 1.0)
        },
    )
    .await;
    assert!(seen, "the waiter (pid {waiter}) is counted:\n{text}");
    assert!(
        must(
            &text,
            "pg_stat_activity_wait_event_type_count",
            &[("wait_event_type", "Lock")]
        ) >= 1.0
    );
    for kind in [
        "Activity",
        "BufferPin",
        "Client",
        "Extension",
        "IO",
        "IPC",
        "Lock",
        "LWLock",
        "Timeout",
    ] {
        assert!(
            value(
                &text,
                "pg_stat_activity_wait_event_type_count",
                &[("wait_event_type", kind)]
            )
            .is_some(),
            "{kind} is listed"
        );
    }
    holder.batch_execute("ROLLBACK").await.expect("release");
    handle.await.expect("join").expect("the waiter ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vacuum_is_seen_in_its_phase_and_every_phase_is_listed() {
    let su = fresh_database("signals_vacuum").await;
    su.batch_execute(
        "CREATE TABLE slow (id int, pad text);
         INSERT INTO slow SELECT g, repeat('x', 200) FROM generate_series(1, 40000) g;
         DELETE FROM slow WHERE id % 2 = 0;",
    )
    .await
    .expect("table");
    let relid = su
        .query_one("SELECT 'slow'::regclass::oid::int8", &[])
        .await
        .expect("oid")
        .get::<_, i64>(0)
        .to_string();
    // Throttled to crawl: a vacuum that is still running when Mesa looks.
    let vacuumer = superuser("signals_vacuum").await;
    vacuumer
        .batch_execute("SET vacuum_cost_delay = 100; SET vacuum_cost_limit = 1")
        .await
        .expect("throttle");
    // VACUUM cannot share a simple query with other statements (an implicit transaction).
    let (pid, handle) = background(vacuumer, "VACUUM slow").await;
    let t = monitor_of("signals_vacuum");
    let row = [("datname", "signals_vacuum"), ("relid", relid.as_str())];
    let (seen, text) = poll_until(
        Duration::from_secs(20),
        || async { collect_text(&t).await.1 },
        |text| {
            samples(text).iter().any(|s| {
                s.name == "pg_stat_progress_vacuum_heap_blks_total"
                    && s.label("relid") == Some(relid.as_str())
                    && s.value > 0.0
            })
        },
    )
    .await;
    assert!(seen, "the vacuum (pid {pid}) is seen:\n{text}");
    let phase = samples(&text)
        .into_iter()
        .find(|s| {
            s.name == "pg_stat_progress_vacuum_heap_blks_total"
                && s.label("relid") == Some(relid.as_str())
        })
        .and_then(|s| s.label("phase").map(str::to_owned))
        .expect("a phase");
    let scanned = must(
        &text,
        "pg_stat_progress_vacuum_heap_blks_scanned",
        &[row[0], row[1], ("phase", &phase)],
    );
    let total = must(
        &text,
        "pg_stat_progress_vacuum_heap_blks_total",
        &[row[0], row[1], ("phase", &phase)],
    );
    assert!(scanned <= total, "{scanned} of {total}");
    assert!(must(&text, "pg_stat_progress_vacuum_count", &[("phase", &phase)]) >= 1.0);
    for p in [
        "initializing",
        "scanning heap",
        "vacuuming indexes",
        "vacuuming heap",
        "cleaning up indexes",
        "truncating heap",
        "performing final cleanup",
    ] {
        assert!(
            value(&text, "pg_stat_progress_vacuum_count", &[("phase", p)]).is_some(),
            "{p}"
        );
    }
    superuser("postgres")
        .await
        .execute("SELECT pg_cancel_backend($1)", &[&pid])
        .await
        .expect("cancel");
    let _ = handle.await;
}
