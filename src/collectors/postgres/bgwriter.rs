//! `bgwriter`: checkpoint and background-writer counters under postgres_exporter's
//! `pg_stat_bgwriter_*` names. PostgreSQL 17 moved the checkpoint counters to
//! `pg_stat_checkpointer` and dropped the backend-write counters (now in `pg_stat_io`); there
//! the `buffers_backend*` families are absent.

use super::{Definition, Metric, shaped};

/// PostgreSQL 13 to 16.
const SQL_13: &str = "\
SELECT b.checkpoints_timed, b.checkpoints_req,
       b.checkpoint_write_time::pg_catalog.float8, b.checkpoint_sync_time::pg_catalog.float8,
       b.buffers_checkpoint, b.buffers_clean, b.maxwritten_clean, b.buffers_backend,
       b.buffers_backend_fsync, b.buffers_alloc,
       extract(epoch FROM b.stats_reset)::pg_catalog.float8
  FROM pg_catalog.pg_stat_bgwriter b";

/// PostgreSQL 17 and later.
const SQL_17: &str = "\
SELECT c.num_timed, c.num_requested,
       c.write_time::pg_catalog.float8, c.sync_time::pg_catalog.float8,
       c.buffers_written, b.buffers_clean, b.maxwritten_clean, NULL::pg_catalog.int8,
       NULL::pg_catalog.int8, b.buffers_alloc,
       extract(epoch FROM b.stats_reset)::pg_catalog.float8
  FROM pg_catalog.pg_stat_bgwriter b CROSS JOIN pg_catalog.pg_stat_checkpointer c";

/// The SQL for `server_version_num`.
pub(super) fn sql(version: u32) -> Option<&'static str> {
    match version {
        0..130_000 => None,
        130_000..170_000 => Some(SQL_13),
        _ => Some(SQL_17),
    }
}

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "bgwriter",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::by_version(sql(server.version)),
    labels: &[],
    metrics: &[
        Metric::counter(
            "pg_stat_bgwriter_checkpoints_timed",
            "Scheduled checkpoints performed.",
        ),
        Metric::counter(
            "pg_stat_bgwriter_checkpoints_req",
            "Requested checkpoints performed.",
        ),
        Metric::counter(
            "pg_stat_bgwriter_checkpoint_write_time",
            "Time spent writing checkpoint files to disk, in milliseconds.",
        ),
        Metric::counter(
            "pg_stat_bgwriter_checkpoint_sync_time",
            "Time spent syncing checkpoint files to disk, in milliseconds.",
        ),
        Metric::counter(
            "pg_stat_bgwriter_buffers_checkpoint",
            "Buffers written during checkpoints.",
        ),
        Metric::counter(
            "pg_stat_bgwriter_buffers_clean",
            "Buffers written by the background writer.",
        ),
        Metric::counter(
            "pg_stat_bgwriter_maxwritten_clean",
            "Times the background writer stopped a cleaning scan for writing too many buffers.",
        ),
        Metric::counter(
            "pg_stat_bgwriter_buffers_backend",
            "Buffers written directly by backends (PostgreSQL 16 and older).",
        ),
        Metric::counter(
            "pg_stat_bgwriter_buffers_backend_fsync",
            "Times a backend had to fsync itself (PostgreSQL 16 and older).",
        ),
        Metric::counter("pg_stat_bgwriter_buffers_alloc", "Buffers allocated."),
        Metric::gauge(
            "pg_stat_bgwriter_stats_reset",
            "When these statistics were last reset, as Unix seconds.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
