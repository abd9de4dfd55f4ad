//! `statio_user_tables`: block reads and buffer hits per table of each visited database
//! (`pg_statio_user_tables`), under postgres_exporter's names. Database-scoped, and guarded
//! by `max_tables` over all databases of a target like `stat_user_tables`, with the same
//! order (the largest by `pg_class.relpages`), so both export the same tables.

use super::{Definition, Metric, guarded, shaped};
use crate::collectors::{Schedule, Scope};

/// A lateral join `$alias` of the block reads and hits summed over the indexes of relation
/// `$rel` (NULL without one), as the view computes its index and TOAST index columns.
macro_rules! index_blocks {
    ($rel:literal, $alias:literal) => {
        concat!(
            "  LEFT JOIN LATERAL (
       SELECT pg_catalog.sum(pg_catalog.pg_stat_get_blocks_fetched(i.indexrelid)
                OPERATOR(pg_catalog.-) pg_catalog.pg_stat_get_blocks_hit(i.indexrelid))::pg_catalog.int8 AS blks_read,
              pg_catalog.sum(pg_catalog.pg_stat_get_blocks_hit(i.indexrelid))::pg_catalog.int8 AS blks_hit
         FROM pg_catalog.pg_index i
        WHERE i.indrelid OPERATOR(pg_catalog.=) ",
            $rel,
            ") ",
            $alias,
            " ON true
"
        )
    };
}

/// The statement: the catalog and the functions `pg_statio_user_tables` is made of, for the
/// largest `$1` tables only (see `stat_user_tables` for why not the view). The view lists
/// tables, TOAST tables and materialized views on every supported version; its index and
/// TOAST index columns are sums over the relation's indexes (NULL without one).
const SQL: &str = concat!(
    "\
SELECT pg_catalog.current_database()::pg_catalog.text, r.nspname::pg_catalog.text,
       r.relname::pg_catalog.text,
       pg_catalog.pg_stat_get_blocks_fetched(r.oid)
         OPERATOR(pg_catalog.-) pg_catalog.pg_stat_get_blocks_hit(r.oid),
       pg_catalog.pg_stat_get_blocks_hit(r.oid),
       x.blks_read, x.blks_hit,
       pg_catalog.pg_stat_get_blocks_fetched(t.oid)
         OPERATOR(pg_catalog.-) pg_catalog.pg_stat_get_blocks_hit(t.oid),
       pg_catalog.pg_stat_get_blocks_hit(t.oid),
       tx.blks_read, tx.blks_hit,
       r.total, r.relpages::pg_catalog.int8
  FROM (SELECT c.oid, n.nspname, c.relname, c.relpages, c.reltoastrelid,
               pg_catalog.count(*) OVER () AS total
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,t,m}'::pg_catalog.\"char\"[])
           AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[])
           AND n.nspname OPERATOR(pg_catalog.!~) '^pg_toast'
         ORDER BY c.relpages DESC, n.nspname, c.relname
         LIMIT $1::pg_catalog.int8) r
  LEFT JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) r.reltoastrelid
",
    index_blocks!("r.oid", "x"),
    index_blocks!("t.oid", "tx"),
    "\
 ORDER BY r.relpages DESC, r.nspname, r.relname"
);

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
