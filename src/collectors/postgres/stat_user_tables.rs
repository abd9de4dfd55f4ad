//! `stat_user_tables`: per-table activity and vacuum state of each visited database
//! (`pg_stat_user_tables`), under postgres_exporter's names. Database-scoped. A size guard
//! keeps a schema with 100 000 tables from flooding Prometheus: only the `max_tables` largest
//! (by `pg_class.relpages`, which needs no lock) over all databases of a target are exported,
//! and `mesa_collector_rows_omitted{collector="stat_user_tables",datname}` says how many of
//! each database's were left out.

use super::{Definition, Metric, guarded, shaped};

/// The statement, over the relation kinds `pg_stat_user_tables` lists (`$kinds`), with the
/// four columns of time spent in vacuum and analyze (`$times`), which only PostgreSQL 18 has.
///
/// It reads the catalog and the `pg_stat_get_*` functions the view is made of rather than the
/// view: the largest `$1` tables are chosen first, and only their counters are read. Planning
/// the view (a grouped join over every relation) cost a fresh backend about 1 ms per
/// statement, which every database visit paid. The columns equal the view's, version by
/// version (test `collectors::per_database_collectors_equal_the_servers_views`).
macro_rules! stat_user_tables_sql {
    ($kinds:literal, $times:expr) => {
        concat!(
            "\
SELECT pg_catalog.current_database()::pg_catalog.text, r.nspname::pg_catalog.text,
       r.relname::pg_catalog.text,
       pg_catalog.pg_stat_get_numscans(r.oid), pg_catalog.pg_stat_get_tuples_returned(r.oid),
       x.idx_scan,
       x.idx_tup_fetch OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_tuples_fetched(r.oid),
       pg_catalog.pg_stat_get_tuples_inserted(r.oid), pg_catalog.pg_stat_get_tuples_updated(r.oid),
       pg_catalog.pg_stat_get_tuples_deleted(r.oid),
       pg_catalog.pg_stat_get_tuples_hot_updated(r.oid),
       pg_catalog.pg_stat_get_live_tuples(r.oid), pg_catalog.pg_stat_get_dead_tuples(r.oid),
       pg_catalog.pg_stat_get_mod_since_analyze(r.oid),
       extract(epoch FROM pg_catalog.pg_stat_get_last_vacuum_time(r.oid))::pg_catalog.float8,
       extract(epoch FROM pg_catalog.pg_stat_get_last_autovacuum_time(r.oid))::pg_catalog.float8,
       extract(epoch FROM pg_catalog.pg_stat_get_last_analyze_time(r.oid))::pg_catalog.float8,
       extract(epoch FROM pg_catalog.pg_stat_get_last_autoanalyze_time(r.oid))::pg_catalog.float8,
       pg_catalog.pg_stat_get_vacuum_count(r.oid), pg_catalog.pg_stat_get_autovacuum_count(r.oid),
       pg_catalog.pg_stat_get_analyze_count(r.oid),
       pg_catalog.pg_stat_get_autoanalyze_count(r.oid),
       ",
            $times,
            ",
       r.total, r.relpages::pg_catalog.int8
  FROM (SELECT c.oid, n.nspname, c.relname, c.relpages, pg_catalog.count(*) OVER () AS total
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (",
            $kinds,
            "::pg_catalog.\"char\"[])
           AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[])
           AND n.nspname OPERATOR(pg_catalog.!~) '^pg_toast'
         ORDER BY c.relpages DESC, n.nspname, c.relname
         LIMIT $1::pg_catalog.int8) r
  LEFT JOIN LATERAL (
       SELECT pg_catalog.sum(pg_catalog.pg_stat_get_numscans(i.indexrelid))::pg_catalog.int8 AS idx_scan,
              pg_catalog.sum(pg_catalog.pg_stat_get_tuples_fetched(i.indexrelid))::pg_catalog.int8 AS idx_tup_fetch
         FROM pg_catalog.pg_index i
        WHERE i.indrelid OPERATOR(pg_catalog.=) r.oid) x ON true
 ORDER BY r.relpages DESC, r.nspname, r.relname"
        )
    };
}

/// The time columns before PostgreSQL 18.
macro_rules! no_times {
    () => {
        "NULL::pg_catalog.float8, NULL::pg_catalog.float8, NULL::pg_catalog.float8,
       NULL::pg_catalog.float8"
    };
}

/// PostgreSQL 13: the view lists tables, TOAST tables and materialized views.
const SQL_13: &str = stat_user_tables_sql!("'{r,t,m}'", no_times!());

/// PostgreSQL 14 to 17: partitioned tables too.
const SQL_14: &str = stat_user_tables_sql!("'{r,t,m,p}'", no_times!());

/// PostgreSQL 18 and later: time spent in vacuum and analyze (milliseconds, read as seconds).
const SQL_18: &str = stat_user_tables_sql!(
    "'{r,t,m,p}'",
    "pg_catalog.pg_stat_get_total_vacuum_time(r.oid) OPERATOR(pg_catalog./) 1000::pg_catalog.float8,
       pg_catalog.pg_stat_get_total_autovacuum_time(r.oid) OPERATOR(pg_catalog./) 1000::pg_catalog.float8,
       pg_catalog.pg_stat_get_total_analyze_time(r.oid) OPERATOR(pg_catalog./) 1000::pg_catalog.float8,
       pg_catalog.pg_stat_get_total_autoanalyze_time(r.oid) OPERATOR(pg_catalog./) 1000::pg_catalog.float8"
);

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "stat_user_tables",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Database,
    plan: |server, options| {
        let sql = match server.version {
            180_000.. => SQL_18,
            140_000.. => SQL_14,
            _ => SQL_13,
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
