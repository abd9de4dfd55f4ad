//! `database_conflicts`: queries a standby canceled because of recovery, by database and
//! cause, from `pg_stat_database_conflicts`, under postgres_exporter's names (zeros on a
//! primary). PostgreSQL 16 added conflicts with logical slots.

use super::{Definition, Metric, shaped};

/// PostgreSQL 13 to 15.
const SQL_13: &str = "\
SELECT c.datid::pg_catalog.text, c.datname::pg_catalog.text, c.confl_tablespace, c.confl_lock,
       c.confl_snapshot, c.confl_bufferpin, c.confl_deadlock, NULL::pg_catalog.int8
  FROM pg_catalog.pg_stat_database_conflicts c
 WHERE c.datname IS NOT NULL";

/// PostgreSQL 16 and later.
const SQL_16: &str = "\
SELECT c.datid::pg_catalog.text, c.datname::pg_catalog.text, c.confl_tablespace, c.confl_lock,
       c.confl_snapshot, c.confl_bufferpin, c.confl_deadlock, c.confl_active_logicalslot
  FROM pg_catalog.pg_stat_database_conflicts c
 WHERE c.datname IS NOT NULL";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "database_conflicts",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| {
        super::by_version(match server.version {
            0..130_000 => None,
            130_000..160_000 => Some(SQL_13),
            _ => Some(SQL_16),
        })
    },
    labels: &["datid", "datname"],
    metrics: &[
        Metric::counter(
            "pg_stat_database_conflicts_confl_tablespace",
            "Queries canceled because of dropped tablespaces.",
        ),
        Metric::counter(
            "pg_stat_database_conflicts_confl_lock",
            "Queries canceled because of lock timeouts.",
        ),
        Metric::counter(
            "pg_stat_database_conflicts_confl_snapshot",
            "Queries canceled because of old snapshots.",
        ),
        Metric::counter(
            "pg_stat_database_conflicts_confl_bufferpin",
            "Queries canceled because of pinned buffers.",
        ),
        Metric::counter(
            "pg_stat_database_conflicts_confl_deadlock",
            "Queries canceled because of deadlocks.",
        ),
        Metric::counter(
            "pg_stat_database_conflicts_confl_active_logicalslot",
            "Uses of logical slots canceled because of old snapshots or too low wal_level on the primary (PostgreSQL 16 on).",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
