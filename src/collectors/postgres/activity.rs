//! `activity`: client backends per database, user and state, with the oldest open
//! transaction and the longest running statement. Every database × state has a series, 0
//! when nobody is there, so saturation sums are never empty on an idle server (as
//! postgres_exporter); those zero series carry `usename=""`.

use super::{Definition, Metric, shaped};

/// States `pg_stat_activity.state` can take.
const SQL: &str = "\
WITH groups AS (
  SELECT coalesce(a.datname::pg_catalog.text, '') AS datname,
         coalesce(a.usename::pg_catalog.text, '') AS usename,
         coalesce(a.state, '') AS state,
         pg_catalog.count(*) AS sessions,
         greatest(coalesce(pg_catalog.max(extract(epoch FROM
                    pg_catalog.now() OPERATOR(pg_catalog.-) a.xact_start)), 0), 0)::pg_catalog.float8
           AS max_tx_seconds,
         greatest(coalesce(pg_catalog.max(extract(epoch FROM
                    pg_catalog.now() OPERATOR(pg_catalog.-) a.query_start))
                    FILTER (WHERE a.state OPERATOR(pg_catalog.=) 'active'), 0), 0)::pg_catalog.float8
           AS max_query_seconds
    FROM pg_catalog.pg_stat_activity a
   WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend'
     AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
   GROUP BY 1, 2, 3)
SELECT g.datname, g.usename, g.state, g.sessions, g.max_tx_seconds, g.max_query_seconds
  FROM groups g
UNION ALL
SELECT d.datname::pg_catalog.text, ''::pg_catalog.text, s.state::pg_catalog.text,
       0::pg_catalog.int8, 0::pg_catalog.float8, 0::pg_catalog.float8
  FROM pg_catalog.pg_database d
 CROSS JOIN (VALUES ('active'), ('idle'), ('idle in transaction'),
                    ('idle in transaction (aborted)'), ('fastpath function call'),
                    ('disabled')) s(state)
 WHERE NOT d.datistemplate
   AND NOT EXISTS (SELECT 1 FROM groups g
                    WHERE g.datname OPERATOR(pg_catalog.=) d.datname::pg_catalog.text
                      AND g.state OPERATOR(pg_catalog.=) s.state::pg_catalog.text)
 ORDER BY 1, 3, 2";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "activity",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &["datname", "usename", "state"],
    metrics: &[
        Metric::gauge(
            "pg_stat_activity_count",
            "Client backends per database, user and state (Mesa's own excluded); 0 for every database and state with none.",
        ),
        Metric::gauge(
            "pg_stat_activity_max_tx_duration",
            "Age of the oldest open transaction per database, user and state, in seconds.",
        ),
        Metric::gauge(
            "pg_stat_activity_max_query_duration_seconds",
            "Longest-running active statement per database, user and state, in seconds.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
