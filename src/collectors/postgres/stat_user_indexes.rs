//! `stat_user_indexes` and `statio_user_indexes`: scans and block I/O per index of each
//! visited database (`pg_stat_user_indexes`, `pg_statio_user_indexes`). Database-scoped, and
//! guarded by `max_indexes` over all databases of a target, the largest (by
//! `pg_class.relpages`) first. An index with `idx_scan` at 0 over weeks is a candidate to drop:
//! the dashboard's unused-index table reads these.

use super::{Definition, Metric, guarded, shaped};
use crate::collectors::{Schedule, Scope};

/// The statement of both index collectors, with their counters (`$counters`): the catalog
/// and the functions `pg_stat_user_indexes` and `pg_statio_user_indexes` are made of, for the
/// largest `$1` indexes only (see `stat_user_tables` for why not the views). Both views list
/// the indexes of tables, TOAST tables and materialized views on every supported version.
macro_rules! user_indexes_sql {
    ($counters:literal) => {
        concat!(
            "\
SELECT pg_catalog.current_database()::pg_catalog.text, r.nspname::pg_catalog.text,
       r.relname::pg_catalog.text, r.indexrelname::pg_catalog.text,
       ",
            $counters,
            ",
       r.total, r.relpages::pg_catalog.int8
  FROM (SELECT i.oid, n.nspname, c.relname, i.relname AS indexrelname, i.relpages,
               pg_catalog.count(*) OVER () AS total
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_index x ON x.indrelid OPERATOR(pg_catalog.=) c.oid
          JOIN pg_catalog.pg_class i ON i.oid OPERATOR(pg_catalog.=) x.indexrelid
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,t,m}'::pg_catalog.\"char\"[])
           AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[])
           AND n.nspname OPERATOR(pg_catalog.!~) '^pg_toast'
         ORDER BY i.relpages DESC, n.nspname, c.relname, i.relname
         LIMIT $1::pg_catalog.int8) r
 ORDER BY r.relpages DESC, r.nspname, r.relname, r.indexrelname"
        )
    };
}

const STAT_SQL: &str = user_indexes_sql!(
    "pg_catalog.pg_stat_get_numscans(r.oid), pg_catalog.pg_stat_get_tuples_returned(r.oid),
       pg_catalog.pg_stat_get_tuples_fetched(r.oid)"
);

const STATIO_SQL: &str = user_indexes_sql!(
    "pg_catalog.pg_stat_get_blocks_fetched(r.oid)
         OPERATOR(pg_catalog.-) pg_catalog.pg_stat_get_blocks_hit(r.oid),
       pg_catalog.pg_stat_get_blocks_hit(r.oid)"
);

const LABELS: &[&str] = &["datname", "schemaname", "relname", "indexrelname"];

/// `stat_user_indexes`.
pub const STAT: Definition = Definition {
    name: "stat_user_indexes",
    enabled_by_default: true,
    schedule: Schedule::Every,
    scope: Scope::Database,
    plan: |server, options| guarded(server, STAT_SQL, options.max_indexes),
    labels: LABELS,
    metrics: &[
        Metric::counter(
            "pg_stat_user_indexes_idx_scan",
            "Index scans started on this index.",
        ),
        Metric::counter(
            "pg_stat_user_indexes_idx_tup_read",
            "Index entries returned by scans of this index.",
        ),
        Metric::counter(
            "pg_stat_user_indexes_idx_tup_fetch",
            "Live table rows fetched by simple index scans of this index.",
        ),
    ],
    guarded: true,
    counts_hidden: false,
    ranked: true,
    build: shaped,
};

/// `statio_user_indexes`.
pub const STATIO: Definition = Definition {
    name: "statio_user_indexes",
    enabled_by_default: true,
    schedule: Schedule::Every,
    scope: Scope::Database,
    plan: |server, options| guarded(server, STATIO_SQL, options.max_indexes),
    labels: LABELS,
    metrics: &[
        Metric::counter(
            "pg_statio_user_indexes_idx_blks_read",
            "Disk blocks read from this index.",
        ),
        Metric::counter(
            "pg_statio_user_indexes_idx_blks_hit",
            "Buffer hits in this index.",
        ),
    ],
    guarded: true,
    counts_hidden: false,
    ranked: true,
    build: shaped,
};
