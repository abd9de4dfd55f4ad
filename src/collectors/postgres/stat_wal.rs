//! `stat_wal`: WAL generation from `pg_stat_wal` (PostgreSQL 14 on): records, full-page
//! images, bytes, and times the WAL buffers were full. PostgreSQL 18 moved the write and sync
//! counts and times to `pg_stat_io` (`object = 'wal'`); there those four families are absent.

use super::{Definition, Metric, shaped};

/// PostgreSQL 14 to 17.
const SQL_14: &str = "\
SELECT w.wal_records, w.wal_fpi, w.wal_bytes::pg_catalog.float8, w.wal_buffers_full,
       w.wal_write, w.wal_sync, w.wal_write_time, w.wal_sync_time,
       extract(epoch FROM w.stats_reset)::pg_catalog.float8
  FROM pg_catalog.pg_stat_wal w";

/// PostgreSQL 18 and later.
const SQL_18: &str = "\
SELECT w.wal_records, w.wal_fpi, w.wal_bytes::pg_catalog.float8, w.wal_buffers_full,
       NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.float8,
       NULL::pg_catalog.float8, extract(epoch FROM w.stats_reset)::pg_catalog.float8
  FROM pg_catalog.pg_stat_wal w";

/// The SQL for `server_version_num`.
fn sql(version: u32) -> Option<&'static str> {
    match version {
        0..140_000 => None,
        140_000..180_000 => Some(SQL_14),
        _ => Some(SQL_18),
    }
}

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "stat_wal",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::by_version(sql(server.version)),
    labels: &[],
    metrics: &[
        Metric::counter("pg_stat_wal_records", "WAL records generated."),
        Metric::counter("pg_stat_wal_fpi", "WAL full-page images generated."),
        Metric::counter("pg_stat_wal_bytes", "WAL generated, in bytes."),
        Metric::counter(
            "pg_stat_wal_buffers_full",
            "Times WAL was written to disk because the WAL buffers were full.",
        ),
        Metric::counter(
            "pg_stat_wal_write",
            "Times WAL buffers were written to disk (PostgreSQL 14 to 17).",
        ),
        Metric::counter(
            "pg_stat_wal_sync",
            "Times WAL files were synced to disk (PostgreSQL 14 to 17).",
        ),
        Metric::counter(
            "pg_stat_wal_write_time",
            "Time spent writing WAL buffers to disk, in milliseconds (track_wal_io_timing; PostgreSQL 14 to 17).",
        ),
        Metric::counter(
            "pg_stat_wal_sync_time",
            "Time spent syncing WAL files to disk, in milliseconds (track_wal_io_timing; PostgreSQL 14 to 17).",
        ),
        Metric::gauge(
            "pg_stat_wal_stats_reset",
            "When these statistics were last reset, as Unix seconds.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
