//! `stat_io`: I/O by backend type, object and context from `pg_stat_io` (PostgreSQL 16 on):
//! reads, writes, writebacks, extends, hits, evictions, reuses and fsyncs, their times where
//! `track_io_timing` measures them, and from PostgreSQL 18 the bytes read, written and
//! extended. A combination the server never does is NULL there, and its series is absent.

use super::{Definition, Metric, shaped};

/// PostgreSQL 16 and 17 (no byte counts).
const SQL_16: &str = "\
SELECT i.backend_type::pg_catalog.text, i.object::pg_catalog.text, i.context::pg_catalog.text,
       i.reads, i.read_time, i.writes, i.write_time, i.writebacks, i.writeback_time,
       i.extends, i.extend_time, i.hits, i.evictions, i.reuses, i.fsyncs, i.fsync_time,
       NULL::pg_catalog.float8, NULL::pg_catalog.float8, NULL::pg_catalog.float8
  FROM pg_catalog.pg_stat_io i";

/// PostgreSQL 18 and later.
const SQL_18: &str = "\
SELECT i.backend_type::pg_catalog.text, i.object::pg_catalog.text, i.context::pg_catalog.text,
       i.reads, i.read_time, i.writes, i.write_time, i.writebacks, i.writeback_time,
       i.extends, i.extend_time, i.hits, i.evictions, i.reuses, i.fsyncs, i.fsync_time,
       i.read_bytes::pg_catalog.float8, i.write_bytes::pg_catalog.float8,
       i.extend_bytes::pg_catalog.float8
  FROM pg_catalog.pg_stat_io i";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "stat_io",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| {
        super::by_version(match server.version {
            0..160_000 => None,
            160_000..180_000 => Some(SQL_16),
            _ => Some(SQL_18),
        })
    },
    labels: &["backend_type", "object", "context"],
    metrics: &[
        Metric::counter("pg_stat_io_reads", "Read operations."),
        Metric::counter(
            "pg_stat_io_read_time",
            "Time in read operations, in milliseconds (track_io_timing).",
        ),
        Metric::counter("pg_stat_io_writes", "Write operations."),
        Metric::counter(
            "pg_stat_io_write_time",
            "Time in write operations, in milliseconds (track_io_timing).",
        ),
        Metric::counter("pg_stat_io_writebacks", "Writeback requests to the kernel."),
        Metric::counter(
            "pg_stat_io_writeback_time",
            "Time in writeback operations, in milliseconds (track_io_timing).",
        ),
        Metric::counter("pg_stat_io_extends", "Relation extend operations."),
        Metric::counter(
            "pg_stat_io_extend_time",
            "Time in extend operations, in milliseconds (track_io_timing).",
        ),
        Metric::counter(
            "pg_stat_io_hits",
            "Times a wanted block was found in a shared buffer.",
        ),
        Metric::counter(
            "pg_stat_io_evictions",
            "Times a block was evicted from a buffer for another use.",
        ),
        Metric::counter(
            "pg_stat_io_reuses",
            "Times a ring buffer was reused (bulk reads, writes, vacuum).",
        ),
        Metric::counter("pg_stat_io_fsyncs", "fsync calls."),
        Metric::counter(
            "pg_stat_io_fsync_time",
            "Time in fsync calls, in milliseconds (track_io_timing).",
        ),
        Metric::counter("pg_stat_io_read_bytes", "Bytes read (PostgreSQL 18 on)."),
        Metric::counter(
            "pg_stat_io_write_bytes",
            "Bytes written (PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_io_extend_bytes",
            "Bytes extended (PostgreSQL 18 on).",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
