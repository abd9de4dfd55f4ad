//! `wait_events`: what client sessions wait on, from `pg_stat_activity`: sessions by
//! `wait_event_type`, zero-filled for every type, and the ten commonest `wait_event`s with
//! their type. Mesa's own session is left out. A role without `pg_read_all_stats` sees the
//! waits of its own sessions only.

use super::{Definition, Metric, shaped};

const SQL: &str = "\
WITH w AS (
  SELECT a.wait_event_type::pg_catalog.text AS t, a.wait_event::pg_catalog.text AS e
    FROM pg_catalog.pg_stat_activity a
   WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend'
     AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
     AND a.wait_event_type IS NOT NULL)
SELECT k.t, ''::pg_catalog.text,
       (SELECT pg_catalog.count(*) FROM w WHERE w.t OPERATOR(pg_catalog.=) k.t),
       NULL::pg_catalog.int8
  FROM (VALUES ('Activity'::pg_catalog.text), ('BufferPin'), ('Client'), ('Extension'),
               ('IO'), ('IPC'), ('Lock'), ('LWLock'), ('Timeout')) AS k(t)
UNION ALL
SELECT top.t, top.e, NULL::pg_catalog.int8, top.n
  FROM (SELECT w.t, w.e, pg_catalog.count(*) AS n FROM w
         GROUP BY w.t, w.e ORDER BY 3 DESC, 1, 2 LIMIT 10) AS top";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "wait_events",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &["wait_event_type", "wait_event"],
    metrics: &[
        Metric::gauge(
            "pg_stat_activity_wait_event_type_count",
            "Client sessions waiting, by wait_event_type (every type listed, 0 when none waits).",
        )
        .with_labels(&["wait_event_type"]),
        Metric::gauge(
            "pg_stat_activity_wait_event_count",
            "Client sessions waiting on the ten commonest wait events.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
