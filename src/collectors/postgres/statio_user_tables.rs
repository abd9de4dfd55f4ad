//! `statio_user_tables`: block reads and buffer hits per table of each visited database
//! (`pg_statio_user_tables`), under postgres_exporter's names. Database-scoped, and guarded
//! by `max_tables` over all databases of a target like `stat_user_tables`, with the same
//! order (the largest by `pg_class.relpages`), so both export the same tables.

use super::{Definition, Metric, guarded, shaped};
use crate::collectors::{Schedule, Scope};

const SQL: &str = "\
SELECT pg_catalog.current_database()::pg_catalog.text, t.schemaname::pg_catalog.text,
       t.relname::pg_catalog.text,
       t.heap_blks_read, t.heap_blks_hit, t.idx_blks_read, t.idx_blks_hit,
       t.toast_blks_read, t.toast_blks_hit, t.tidx_blks_read, t.tidx_blks_hit,
       pg_catalog.count(*) OVER (), c.relpages::pg_catalog.int8
  FROM pg_catalog.pg_statio_user_tables t
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
 ORDER BY c.relpages DESC, t.schemaname, t.relname
 LIMIT $1::pg_catalog.int8";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "statio_user_tables",
    enabled_by_default: true,
    schedule: Schedule::Every,
    scope: Scope::Database,
    plan: |server, options| guarded(server, SQL, options.max_tables),
    labels: &["datname", "schemaname", "relname"],
    metrics: &[
        Metric::counter(
            "pg_statio_user_tables_heap_blocks_read",
            "Disk blocks read from this table.",
        ),
        Metric::counter(
            "pg_statio_user_tables_heap_blocks_hit",
            "Buffer hits in this table.",
        ),
        Metric::counter(
            "pg_statio_user_tables_idx_blocks_read",
            "Disk blocks read from all indexes on this table.",
        ),
        Metric::counter(
            "pg_statio_user_tables_idx_blocks_hit",
            "Buffer hits in all indexes on this table.",
        ),
        Metric::counter(
            "pg_statio_user_tables_toast_blocks_read",
            "Disk blocks read from this table's TOAST table.",
        ),
        Metric::counter(
            "pg_statio_user_tables_toast_blocks_hit",
            "Buffer hits in this table's TOAST table.",
        ),
        Metric::counter(
            "pg_statio_user_tables_tidx_blocks_read",
            "Disk blocks read from this table's TOAST table indexes.",
        ),
        Metric::counter(
            "pg_statio_user_tables_tidx_blocks_hit",
            "Buffer hits in this table's TOAST table indexes.",
        ),
    ],
    guarded: true,
    counts_hidden: false,
    ranked: true,
    build: shaped,
};
