//! `stat_user_indexes` and `statio_user_indexes`: scans and block I/O per index of each
//! visited database (`pg_stat_user_indexes`, `pg_statio_user_indexes`). Database-scoped, and
//! guarded by `max_indexes` over all databases of a target, the largest (by
//! `pg_class.relpages`) first. An index with `idx_scan` at 0 over weeks is a candidate to drop:
//! the dashboard's unused-index table reads these.

use super::{Definition, Metric, guarded, shaped};
use crate::collectors::{Schedule, Scope};

const STAT_SQL: &str = "\
SELECT pg_catalog.current_database()::pg_catalog.text, i.schemaname::pg_catalog.text,
       i.relname::pg_catalog.text, i.indexrelname::pg_catalog.text,
       i.idx_scan, i.idx_tup_read, i.idx_tup_fetch,
       pg_catalog.count(*) OVER (), c.relpages::pg_catalog.int8
  FROM pg_catalog.pg_stat_user_indexes i
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
 ORDER BY c.relpages DESC, i.schemaname, i.relname, i.indexrelname
 LIMIT $1::pg_catalog.int8";

const STATIO_SQL: &str = "\
SELECT pg_catalog.current_database()::pg_catalog.text, i.schemaname::pg_catalog.text,
       i.relname::pg_catalog.text, i.indexrelname::pg_catalog.text,
       i.idx_blks_read, i.idx_blks_hit,
       pg_catalog.count(*) OVER (), c.relpages::pg_catalog.int8
  FROM pg_catalog.pg_statio_user_indexes i
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
 ORDER BY c.relpages DESC, i.schemaname, i.relname, i.indexrelname
 LIMIT $1::pg_catalog.int8";

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
