//! `locks`: locks held or awaited per database and mode, `pg_locks_count{datname,mode}`, 0 for
//! every mode of every database (as postgres_exporter, whose lower-case mode names it keeps),
//! so `sum()` is 0, not empty. Locks without a database (transaction IDs, shared catalogs)
//! are not counted.

use super::{Definition, Metric, shaped};

const SQL: &str = "\
SELECT d.datname::pg_catalog.text, m.mode::pg_catalog.text, coalesce(l.count, 0)::pg_catalog.int8
  FROM pg_catalog.pg_database d
 CROSS JOIN (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'),
                    ('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'),
                    ('exclusivelock'), ('accessexclusivelock'), ('sireadlock')) m(mode)
  LEFT JOIN (SELECT k.database, pg_catalog.lower(k.mode) AS mode, pg_catalog.count(*) AS count
               FROM pg_catalog.pg_locks k
              WHERE k.database IS NOT NULL
              GROUP BY 1, 2) l
         ON l.database OPERATOR(pg_catalog.=) d.oid
        AND l.mode OPERATOR(pg_catalog.=) m.mode::pg_catalog.text
 ORDER BY 1, 2";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "locks",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &["datname", "mode"],
    metrics: &[Metric::gauge(
        "pg_locks_count",
        "Locks held or awaited per database and mode; 0 for every mode with none.",
    )],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
