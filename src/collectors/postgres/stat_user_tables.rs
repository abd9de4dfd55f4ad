//! `stat_user_tables`: per-table activity and vacuum state of each visited database
//! (`pg_stat_user_tables`), under postgres_exporter's names. Database-scoped. A size guard
//! keeps a schema with 100 000 tables from flooding Prometheus: only the `max_tables` largest
//! (by `pg_class.relpages`, which needs no lock) over all databases of a target are exported,
//! and `mesa_collector_rows_omitted{collector="stat_user_tables",datname}` says how many of
//! each database's were left out.

use super::{Definition, Metric, guarded, shaped};

/// The statement, with the four columns of time spent in vacuum and analyze (`$times`),
/// which only PostgreSQL 18 has.
macro_rules! stat_user_tables_sql {
    ($times:literal) => {
        concat!(
            "\
SELECT pg_catalog.current_database()::pg_catalog.text, t.schemaname::pg_catalog.text,
       t.relname::pg_catalog.text,
       t.seq_scan, t.seq_tup_read, t.idx_scan, t.idx_tup_fetch, t.n_tup_ins, t.n_tup_upd,
       t.n_tup_del, t.n_tup_hot_upd, t.n_live_tup, t.n_dead_tup, t.n_mod_since_analyze,
       extract(epoch FROM t.last_vacuum)::pg_catalog.float8,
       extract(epoch FROM t.last_autovacuum)::pg_catalog.float8,
       extract(epoch FROM t.last_analyze)::pg_catalog.float8,
       extract(epoch FROM t.last_autoanalyze)::pg_catalog.float8,
       t.vacuum_count, t.autovacuum_count, t.analyze_count, t.autoanalyze_count,
       ",
            $times,
            ",
       pg_catalog.count(*) OVER (), c.relpages::pg_catalog.int8
  FROM pg_catalog.pg_stat_user_tables t
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
 ORDER BY c.relpages DESC, t.schemaname, t.relname
 LIMIT $1::pg_catalog.int8"
        )
    };
}

/// PostgreSQL 13 to 17.
const SQL_13: &str = stat_user_tables_sql!(
    "NULL::pg_catalog.float8, NULL::pg_catalog.float8, NULL::pg_catalog.float8,
       NULL::pg_catalog.float8"
);

/// PostgreSQL 18 and later: time spent in vacuum and analyze (milliseconds, read as seconds).
const SQL_18: &str = stat_user_tables_sql!(
    "t.total_vacuum_time OPERATOR(pg_catalog./) 1000::pg_catalog.float8,
       t.total_autovacuum_time OPERATOR(pg_catalog./) 1000::pg_catalog.float8,
       t.total_analyze_time OPERATOR(pg_catalog./) 1000::pg_catalog.float8,
       t.total_autoanalyze_time OPERATOR(pg_catalog./) 1000::pg_catalog.float8"
);

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "stat_user_tables",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Database,
    plan: |server, options| {
        let sql = if server.version >= 180_000 {
            SQL_18
        } else {
            SQL_13
        };
        guarded(server, sql, options.max_tables)
    },
    labels: &["datname", "schemaname", "relname"],
    metrics: &[
        Metric::counter(
            "pg_stat_user_tables_seq_scan",
            "Sequential scans started on this table.",
        ),
        Metric::counter(
            "pg_stat_user_tables_seq_tup_read",
            "Live rows fetched by sequential scans.",
        ),
        Metric::counter(
            "pg_stat_user_tables_idx_scan",
            "Index scans started on this table.",
        ),
        Metric::counter(
            "pg_stat_user_tables_idx_tup_fetch",
            "Live rows fetched by index scans.",
        ),
        Metric::counter("pg_stat_user_tables_n_tup_ins", "Rows inserted."),
        Metric::counter("pg_stat_user_tables_n_tup_upd", "Rows updated."),
        Metric::counter("pg_stat_user_tables_n_tup_del", "Rows deleted."),
        Metric::counter(
            "pg_stat_user_tables_n_tup_hot_upd",
            "Rows HOT updated (no index update needed).",
        ),
        Metric::gauge("pg_stat_user_tables_n_live_tup", "Estimated live rows."),
        Metric::gauge("pg_stat_user_tables_n_dead_tup", "Estimated dead rows."),
        Metric::gauge(
            "pg_stat_user_tables_n_mod_since_analyze",
            "Estimated rows modified since the last analyze.",
        ),
        Metric::gauge(
            "pg_stat_user_tables_last_vacuum",
            "Last manual vacuum, as Unix seconds; absent if never.",
        ),
        Metric::gauge(
            "pg_stat_user_tables_last_autovacuum",
            "Last autovacuum, as Unix seconds; absent if never.",
        ),
        Metric::gauge(
            "pg_stat_user_tables_last_analyze",
            "Last manual analyze, as Unix seconds; absent if never.",
        ),
        Metric::gauge(
            "pg_stat_user_tables_last_autoanalyze",
            "Last autoanalyze, as Unix seconds; absent if never.",
        ),
        Metric::counter(
            "pg_stat_user_tables_vacuum_count",
            "Manual vacuums of this table.",
        ),
        Metric::counter(
            "pg_stat_user_tables_autovacuum_count",
            "Autovacuums of this table.",
        ),
        Metric::counter(
            "pg_stat_user_tables_analyze_count",
            "Manual analyzes of this table.",
        ),
        Metric::counter(
            "pg_stat_user_tables_autoanalyze_count",
            "Autoanalyzes of this table.",
        ),
        Metric::counter(
            "pg_stat_user_tables_vacuum_seconds",
            "Time spent in manual vacuums of this table, in seconds (PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_user_tables_autovacuum_seconds",
            "Time spent in autovacuums of this table, in seconds (PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_user_tables_analyze_seconds",
            "Time spent in manual analyzes of this table, in seconds (PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_user_tables_autoanalyze_seconds",
            "Time spent in autoanalyzes of this table, in seconds (PostgreSQL 18 on).",
        ),
    ],
    guarded: true,
    counts_hidden: false,
    ranked: true,
    build: shaped,
};
