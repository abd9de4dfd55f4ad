//! `progress_vacuum`: running vacuums from `pg_stat_progress_vacuum`: how many are in each
//! phase (every phase listed, 0 when none is), and for each running vacuum its heap blocks
//! scanned and in total, by database, table OID and phase. A vacuum of one table stuck for
//! hours in one phase shows here before wraparound does.

use super::{Definition, Metric, shaped};

const SQL: &str = "\
SELECT k.phase, ''::pg_catalog.text, ''::pg_catalog.text,
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_progress_vacuum v
         WHERE v.phase OPERATOR(pg_catalog.=) k.phase),
       NULL::pg_catalog.int8, NULL::pg_catalog.int8
  FROM (VALUES ('initializing'::pg_catalog.text), ('scanning heap'), ('vacuuming indexes'),
               ('vacuuming heap'), ('cleaning up indexes'), ('truncating heap'),
               ('performing final cleanup')) AS k(phase)
UNION ALL
SELECT v.phase, v.datname::pg_catalog.text, v.relid::pg_catalog.text, NULL::pg_catalog.int8,
       v.heap_blks_scanned, v.heap_blks_total
  FROM pg_catalog.pg_stat_progress_vacuum v";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "progress_vacuum",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &["phase", "datname", "relid"],
    metrics: &[
        Metric::gauge(
            "pg_stat_progress_vacuum_count",
            "Vacuums running, by phase (every phase listed, 0 when none is in it).",
        )
        .with_labels(&["phase"]),
        Metric::gauge(
            "pg_stat_progress_vacuum_heap_blks_scanned",
            "Heap blocks a running vacuum has scanned.",
        ),
        Metric::gauge(
            "pg_stat_progress_vacuum_heap_blks_total",
            "Heap blocks of the table a running vacuum works on.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
