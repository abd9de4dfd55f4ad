//! `health`, the core collector: server version, start time, connection limits and how full
//! they are. It always runs; if it fails, the collection fails and `pg_up` is 0.

use super::{Definition, Metric, Plan, Statement, shaped};

/// Client backends other than Mesa's own, against the slots ordinary roles may use. The
/// ratio is NULL (no series) when no slot is usable. PostgreSQL 10 and later.
///
/// The last column, `hidden`, is not exported: the sessions `pg_stat_activity` hides from
/// the role (their `backend_type` is NULL without `pg_read_all_stats`, which `pg_monitor`
/// grants). Above 0 the counts would be silently low, so the collection fails instead
/// (`permission_denied`, see [`Definition::counts_hidden`]).
const SQL: &str = "\
SELECT s.version, s.short_version, 1::pg_catalog.int8 AS static, s.started, s.max_connections,
       s.reserved,
       CASE WHEN s.max_connections OPERATOR(pg_catalog.>) s.reserved
            THEN s.sessions::pg_catalog.float8 OPERATOR(pg_catalog./)
                 (s.max_connections OPERATOR(pg_catalog.-) s.reserved)::pg_catalog.float8
       END AS utilization,
       s.hidden
  FROM (SELECT pg_catalog.version() AS version,
               pg_catalog.concat(v.num OPERATOR(pg_catalog./) 10000, '.',
                                 v.num OPERATOR(pg_catalog.%) 10000, '.0') AS short_version,
               extract(epoch FROM pg_catalog.pg_postmaster_start_time())::pg_catalog.float8
                 AS started,
               pg_catalog.current_setting('max_connections')::pg_catalog.int8 AS max_connections,
               pg_catalog.current_setting('superuser_reserved_connections')::pg_catalog.int8
                 AS reserved,
               c.sessions, c.hidden
          FROM (SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4 AS num) v,
               -- One pass over pg_stat_activity for both counts.
               (SELECT pg_catalog.count(*) FILTER (
                         WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend'
                           AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid())
                         AS sessions,
                       pg_catalog.count(*) FILTER (WHERE a.backend_type IS NULL) AS hidden
                  FROM pg_catalog.pg_stat_activity a) c
       ) s";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: super::super::HEALTH,
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |_, _| Plan::Run(Statement::fixed(SQL)),
    labels: &["version", "short_version"],
    metrics: &[
        Metric::gauge("pg_static", "Server version; the value is always 1."),
        Metric::gauge(
            "pg_postmaster_start_time_seconds",
            "When the server started, as Unix seconds.",
        )
        .with_labels(&[]),
        Metric::gauge("pg_settings_max_connections", "The max_connections setting.")
            .with_labels(&[]),
        Metric::gauge(
            "pg_settings_superuser_reserved_connections",
            "The superuser_reserved_connections setting.",
        )
        .with_labels(&[]),
        Metric::gauge(
            "pg_connections_utilization_ratio",
            "Client backends (Mesa's own excluded) / (max_connections - superuser_reserved_connections).",
        )
        .with_labels(&[]),
    ],
    guarded: false,
    counts_hidden: true,
    ranked: false,
    build: shaped,
};
