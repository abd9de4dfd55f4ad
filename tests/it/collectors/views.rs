//! The per-database collectors read the catalog and the `pg_stat_get_*` functions the
//! server's `pg_stat_user_*` and `pg_statio_user_*` views are made of (planning the views
//! cost each database visit about 1 ms per statement): what they export must be exactly what
//! the views say, on every major the matrix runs, for every kind of relation the views list.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{flush_stats_of, monitor_of};
use crate::support::*;

/// One family against one view: the view, its label columns, and per exported family the
/// view's expression for it.
struct Against {
    view: &'static str,
    labels: &'static [&'static str],
    families: Vec<(&'static str, &'static str)>,
}

/// Every family of the four collectors, each with its view's expression.
fn against(major: u32) -> Vec<Against> {
    let mut tables = vec![
        ("pg_stat_user_tables_seq_scan_total", "seq_scan"),
        ("pg_stat_user_tables_seq_tup_read_total", "seq_tup_read"),
        ("pg_stat_user_tables_idx_scan_total", "idx_scan"),
        ("pg_stat_user_tables_idx_tup_fetch_total", "idx_tup_fetch"),
        ("pg_stat_user_tables_n_tup_ins_total", "n_tup_ins"),
        ("pg_stat_user_tables_n_tup_upd_total", "n_tup_upd"),
        ("pg_stat_user_tables_n_tup_del_total", "n_tup_del"),
        ("pg_stat_user_tables_n_tup_hot_upd_total", "n_tup_hot_upd"),
        ("pg_stat_user_tables_n_live_tup", "n_live_tup"),
        ("pg_stat_user_tables_n_dead_tup", "n_dead_tup"),
        (
            "pg_stat_user_tables_n_mod_since_analyze",
            "n_mod_since_analyze",
        ),
        ("pg_stat_user_tables_vacuum_count_total", "vacuum_count"),
        (
            "pg_stat_user_tables_autovacuum_count_total",
            "autovacuum_count",
        ),
        ("pg_stat_user_tables_analyze_count_total", "analyze_count"),
        (
            "pg_stat_user_tables_autoanalyze_count_total",
            "autoanalyze_count",
        ),
    ];
    // The timestamps, as Unix seconds.
    tables.extend([
        (
            "pg_stat_user_tables_last_vacuum",
            "extract(epoch FROM last_vacuum)",
        ),
        (
            "pg_stat_user_tables_last_autovacuum",
            "extract(epoch FROM last_autovacuum)",
        ),
        (
            "pg_stat_user_tables_last_analyze",
            "extract(epoch FROM last_analyze)",
        ),
        (
            "pg_stat_user_tables_last_autoanalyze",
            "extract(epoch FROM last_autoanalyze)",
        ),
    ]);
    if major >= 18 {
        tables.extend([
            (
                "pg_stat_user_tables_vacuum_seconds_total",
                "total_vacuum_time / 1000",
            ),
            (
                "pg_stat_user_tables_autovacuum_seconds_total",
                "total_autovacuum_time / 1000",
            ),
            (
                "pg_stat_user_tables_analyze_seconds_total",
                "total_analyze_time / 1000",
            ),
            (
                "pg_stat_user_tables_autoanalyze_seconds_total",
                "total_autoanalyze_time / 1000",
            ),
        ]);
    }
    vec![
        Against {
            view: "pg_stat_user_tables",
            labels: &["schemaname", "relname"],
            families: tables,
        },
        Against {
            view: "pg_statio_user_tables",
            labels: &["schemaname", "relname"],
            families: vec![
                (
                    "pg_statio_user_tables_heap_blocks_read_total",
                    "heap_blks_read",
                ),
                (
                    "pg_statio_user_tables_heap_blocks_hit_total",
                    "heap_blks_hit",
                ),
                (
                    "pg_statio_user_tables_idx_blocks_read_total",
                    "idx_blks_read",
                ),
                ("pg_statio_user_tables_idx_blocks_hit_total", "idx_blks_hit"),
                (
                    "pg_statio_user_tables_toast_blocks_read_total",
                    "toast_blks_read",
                ),
                (
                    "pg_statio_user_tables_toast_blocks_hit_total",
                    "toast_blks_hit",
                ),
                (
                    "pg_statio_user_tables_tidx_blocks_read_total",
                    "tidx_blks_read",
                ),
                (
                    "pg_statio_user_tables_tidx_blocks_hit_total",
                    "tidx_blks_hit",
                ),
            ],
        },
        Against {
            view: "pg_stat_user_indexes",
            labels: &["schemaname", "relname", "indexrelname"],
            families: vec![
                ("pg_stat_user_indexes_idx_scan_total", "idx_scan"),
                ("pg_stat_user_indexes_idx_tup_read_total", "idx_tup_read"),
                ("pg_stat_user_indexes_idx_tup_fetch_total", "idx_tup_fetch"),
            ],
        },
        Against {
            view: "pg_statio_user_indexes",
            labels: &["schemaname", "relname", "indexrelname"],
            families: vec![
                (
                    "pg_statio_user_indexes_idx_blks_read_total",
                    "idx_blks_read",
                ),
                ("pg_statio_user_indexes_idx_blks_hit_total", "idx_blks_hit"),
            ],
        },
    ]
}

/// (family, label values) to value.
type Values = BTreeMap<(String, Vec<String>), f64>;

/// What the views say, NULLs left out (as Mesa leaves them out).
async fn from_views(db: &tokio_postgres::Client, all: &[Against]) -> Values {
    let mut out = Values::new();
    for a in all {
        let labels = a
            .labels
            .iter()
            .map(|l| format!("{l}::text"))
            .collect::<Vec<_>>()
            .join(", ");
        let values = a
            .families
            .iter()
            .map(|(_, e)| format!("({e})::float8"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {labels}, {values} FROM pg_catalog.{}", a.view);
        for row in db.query(&sql, &[]).await.expect("the view") {
            let key: Vec<String> = (0..a.labels.len()).map(|i| row.get(i)).collect();
            for (k, (family, _)) in a.families.iter().enumerate() {
                if let Some(v) = row.get::<_, Option<f64>>(a.labels.len() + k) {
                    out.insert(((*family).to_owned(), key.clone()), v);
                }
            }
        }
    }
    out
}

/// What Mesa exported for database `datname`, of the families in `all`.
fn from_exposition(text: &str, datname: &str, all: &[Against]) -> Values {
    let samples = samples(text);
    let mut out = Values::new();
    for a in all {
        for s in samples
            .iter()
            .filter(|s| s.label("datname") == Some(datname))
            .filter(|s| a.families.iter().any(|(f, _)| *f == s.name))
        {
            let key = a
                .labels
                .iter()
                .map(|l| s.label(l).unwrap_or_default().to_owned())
                .collect();
            out.insert((s.name.clone(), key), s.value);
        }
    }
    out
}

#[tokio::test]
async fn per_database_collectors_equal_the_servers_views() {
    let db = fresh_database("coll_views").await;
    db.batch_execute(
        "CREATE SCHEMA other;
         CREATE TABLE plain (id int PRIMARY KEY, w int, pad text);
         CREATE INDEX plain_w ON plain (w);
         CREATE INDEX plain_expr ON plain ((w + 1));
         INSERT INTO plain SELECT g, g % 10, repeat('x', 100) FROM generate_series(1, 2000) g;
         UPDATE plain SET w = w + 1 WHERE id <= 100;
         DELETE FROM plain WHERE id > 1900;
         CREATE TABLE toasty (id int, doc text);
         ALTER TABLE toasty ALTER doc SET STORAGE EXTERNAL;
         INSERT INTO toasty SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 50) g;
         CREATE TABLE other.noindex (v int);
         INSERT INTO other.noindex SELECT generate_series(1, 10);
         CREATE MATERIALIZED VIEW mv AS SELECT w, count(*) AS n FROM plain GROUP BY w;
         CREATE INDEX mv_w ON mv (w);
         CREATE TABLE parted (id int, k int) PARTITION BY RANGE (k);
         CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (10);
         CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (10) TO (20);
         CREATE INDEX parted_k ON parted (k);
         INSERT INTO parted SELECT g, g % 20 FROM generate_series(1, 200) g;",
    )
    .await
    .expect("the relations");
    // A multi-statement string is one transaction, which VACUUM refuses.
    db.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
    db.batch_execute(
        "SELECT count(*) FROM other.noindex;
         SELECT count(*) FROM toasty WHERE doc LIKE '%zz%';
         SET enable_seqscan = off;
         SELECT count(*) FROM plain WHERE w = 3;
         SELECT count(*) FROM plain WHERE w + 1 = 4;
         SELECT count(*) FROM mv WHERE w = 2;
         RESET enable_seqscan;",
    )
    .await
    .expect("reads");
    // The session's counters reach the views when it flushes them (from 15, at most once a
    // second, and within 10 s when idle): wait for the last of them.
    let flushed = eventually(Duration::from_secs(20), || async {
        flush_stats_of(&db).await;
        db.query_one(
            "SELECT coalesce(toast_blks_hit, 0)::float8 FROM pg_statio_user_tables WHERE relname = 'toasty'",
            &[],
        )
        .await
        .expect("the view")
        .get::<_, f64>(0)
            > 0.0
    })
    .await;
    assert!(flushed, "the TOAST reads reach the statistics");
    let all = against(cluster().major());
    let t = monitor_of("coll_views");
    // Autovacuum may touch a table between two reads: compare once the views read the same
    // before and after a collection.
    let mut compared = None;
    for _ in 0..50 {
        flush_stats_of(&db).await;
        let before = from_views(&db, &all).await;
        let text = collect_text(&t).await.1;
        let after = from_views(&db, &all).await;
        if before == after {
            compared = Some((after, from_exposition(&text, "coll_views", &all)));
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (views, exported) = compared.expect("the views settle");
    assert_eq!(exported, views);
    // Not an empty comparison: every kind of relation the views list is in it.
    let has = |family: &str, labels: &[&str]| {
        views.contains_key(&(
            family.to_owned(),
            labels.iter().map(|l| (*l).to_owned()).collect(),
        ))
    };
    assert!(has("pg_stat_user_tables_n_live_tup", &["public", "plain"]));
    assert!(has("pg_stat_user_tables_n_live_tup", &["public", "mv"]));
    assert!(has("pg_stat_user_tables_n_live_tup", &["other", "noindex"]));
    assert!(!has(
        "pg_stat_user_tables_idx_scan_total",
        &["other", "noindex"]
    ));
    assert!(has(
        "pg_stat_user_tables_idx_scan_total",
        &["public", "plain"]
    ));
    // Partitioned tables are in pg_stat_user_tables from 14 on, never in the statio view.
    assert_eq!(
        has("pg_stat_user_tables_n_live_tup", &["public", "parted"]),
        cluster().major() >= 14
    );
    assert!(!has(
        "pg_statio_user_tables_heap_blocks_hit_total",
        &["public", "parted"]
    ));
    assert!(
        views[&(
            "pg_statio_user_tables_toast_blocks_hit_total".to_owned(),
            vec!["public".to_owned(), "toasty".to_owned()]
        )] > 0.0
    );
    assert!(has(
        "pg_statio_user_tables_tidx_blocks_hit_total",
        &["public", "toasty"]
    ));
    assert!(has(
        "pg_stat_user_indexes_idx_scan_total",
        &["public", "plain", "plain_expr"]
    ));
    assert!(has(
        "pg_statio_user_indexes_idx_blks_hit_total",
        &["public", "mv", "mv_w"]
    ));
    assert!(
        views.len() > 150,
        "{} values compared: fewer than the relations make",
        views.len()
    );
}
