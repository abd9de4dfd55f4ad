//! `archiver`: WAL archiving from `pg_stat_archiver`: files archived and failed (counters), and
//! the age of the last successful archive and of the last failure (absent until one
//! happened). An archive age that keeps growing while WAL is written means archiving stalled.

use super::{Definition, Metric, shaped};

const SQL: &str = "\
SELECT a.archived_count, a.failed_count,
       extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) a.last_archived_time)::pg_catalog.float8,
       extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) a.last_failed_time)::pg_catalog.float8,
       extract(epoch FROM a.stats_reset)::pg_catalog.float8
  FROM pg_catalog.pg_stat_archiver a";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "archiver",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &[],
    metrics: &[
        Metric::counter(
            "pg_stat_archiver_archived_count",
            "WAL files archived successfully (postgres_exporter's name).",
        ),
        Metric::counter(
            "pg_stat_archiver_failed_count",
            "Failed attempts to archive a WAL file (postgres_exporter's name).",
        ),
        Metric::gauge(
            "pg_stat_archiver_last_archive_age",
            "Seconds since the last WAL file was archived; absent until one was (postgres_exporter's name).",
        ),
        Metric::gauge(
            "pg_stat_archiver_last_failure_age",
            "Seconds since the last failed attempt to archive a WAL file; absent until one failed.",
        ),
        Metric::gauge(
            "pg_stat_archiver_stats_reset",
            "When these statistics were last reset, as Unix seconds.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
