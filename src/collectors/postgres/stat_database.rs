//! `stat_database`: per-database activity counters from `pg_stat_database` (commits,
//! rollbacks, cache hits and reads, tuples, conflicts, temp files, deadlocks, I/O time), under
//! postgres_exporter's names. PostgreSQL 14 added session counters; on 13 they are absent.

use super::{Definition, Metric, shaped};

/// Columns every supported version has, then the 14+ session columns.
macro_rules! stat_database_sql {
    ($sessions:literal) => {
        concat!(
            "\
SELECT s.datid::pg_catalog.text, s.datname::pg_catalog.text,
       s.numbackends::pg_catalog.int8, s.xact_commit, s.xact_rollback, s.blks_read, s.blks_hit,
       s.tup_returned, s.tup_fetched, s.tup_inserted, s.tup_updated, s.tup_deleted, s.conflicts,
       s.temp_files, s.temp_bytes, s.deadlocks,
       s.blk_read_time::pg_catalog.float8, s.blk_write_time::pg_catalog.float8,
       extract(epoch FROM s.stats_reset)::pg_catalog.float8,
       ",
            $sessions,
            "
  FROM pg_catalog.pg_stat_database s
 WHERE s.datname IS NOT NULL
 ORDER BY s.datname"
        )
    };
}

/// PostgreSQL 14 and later.
const SQL_14: &str = stat_database_sql!(
    "(s.session_time OPERATOR(pg_catalog./) 1000)::pg_catalog.float8,
       (s.active_time OPERATOR(pg_catalog./) 1000)::pg_catalog.float8,
       (s.idle_in_transaction_time OPERATOR(pg_catalog./) 1000)::pg_catalog.float8,
       s.sessions, s.sessions_abandoned, s.sessions_fatal, s.sessions_killed"
);

/// PostgreSQL 13: no session counters.
const SQL_13: &str = stat_database_sql!(
    "NULL::pg_catalog.float8, NULL::pg_catalog.float8, NULL::pg_catalog.float8,
       NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.int8"
);

/// The SQL for `server_version_num`.
pub(super) fn sql(version: u32) -> Option<&'static str> {
    match version {
        0..130_000 => None,
        130_000..140_000 => Some(SQL_13),
        _ => Some(SQL_14),
    }
}

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "stat_database",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::by_version(sql(server.version)),
    labels: &["datid", "datname"],
    metrics: &[
        Metric::gauge(
            "pg_stat_database_numbackends",
            "Backends connected to this database.",
        ),
        Metric::counter("pg_stat_database_xact_commit", "Transactions committed."),
        Metric::counter(
            "pg_stat_database_xact_rollback",
            "Transactions rolled back.",
        ),
        Metric::counter(
            "pg_stat_database_blks_read",
            "Disk blocks read (not found in shared buffers).",
        ),
        Metric::counter(
            "pg_stat_database_blks_hit",
            "Disk block reads found in shared buffers.",
        ),
        Metric::counter(
            "pg_stat_database_tup_returned",
            "Live rows fetched by sequential scans and index entries returned by index scans.",
        ),
        Metric::counter(
            "pg_stat_database_tup_fetched",
            "Live rows fetched by index scans.",
        ),
        Metric::counter("pg_stat_database_tup_inserted", "Rows inserted."),
        Metric::counter("pg_stat_database_tup_updated", "Rows updated."),
        Metric::counter("pg_stat_database_tup_deleted", "Rows deleted."),
        Metric::counter(
            "pg_stat_database_conflicts",
            "Queries cancelled by conflicts with recovery (standbys only).",
        ),
        Metric::counter("pg_stat_database_temp_files", "Temporary files created."),
        Metric::counter(
            "pg_stat_database_temp_bytes",
            "Data written to temporary files, in bytes.",
        ),
        Metric::counter("pg_stat_database_deadlocks", "Deadlocks detected."),
        Metric::counter(
            "pg_stat_database_blk_read_time",
            "Time spent reading data file blocks, in milliseconds (track_io_timing).",
        ),
        Metric::counter(
            "pg_stat_database_blk_write_time",
            "Time spent writing data file blocks, in milliseconds (track_io_timing).",
        ),
        Metric::gauge(
            "pg_stat_database_stats_reset",
            "When these statistics were last reset, as Unix seconds.",
        ),
        Metric::counter(
            "pg_stat_database_session_time_seconds",
            "Time spent by sessions, in seconds (PostgreSQL 14+).",
        ),
        Metric::counter(
            "pg_stat_database_active_time_seconds",
            "Time spent executing statements, in seconds (PostgreSQL 14+).",
        ),
        Metric::counter(
            "pg_stat_database_idle_in_transaction_time_seconds",
            "Time spent idle in a transaction, in seconds (PostgreSQL 14+).",
        ),
        Metric::counter(
            "pg_stat_database_sessions",
            "Sessions established (PostgreSQL 14+).",
        ),
        Metric::counter(
            "pg_stat_database_sessions_abandoned",
            "Sessions ended because the client went away (PostgreSQL 14+).",
        ),
        Metric::counter(
            "pg_stat_database_sessions_fatal",
            "Sessions ended by fatal errors (PostgreSQL 14+).",
        ),
        Metric::counter(
            "pg_stat_database_sessions_killed",
            "Sessions ended by operator intervention (PostgreSQL 14+).",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
