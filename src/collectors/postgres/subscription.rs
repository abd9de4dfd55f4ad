//! `subscription`: the logical replication subscriptions of this server (the subscriber's
//! side), one row per subscription of any database, from `pg_subscription`,
//! `pg_stat_subscription` and (15 on) `pg_stat_subscription_stats`: whether it is enabled and
//! its apply worker runs, table-sync workers, the publisher's WAL position last received, how
//! late and how long ago the last message from the publisher arrived, apply and sync errors,
//! and (18 on) conflicts by kind.
//!
//! How far a subscription is behind in bytes is known only where its slot is: on the
//! publisher, `pg_replication_slots_confirmed_flush_lag_bytes{slot_name}` (the slot is named
//! after the subscription unless `slot_name` says otherwise), and its walsender's
//! `pg_stat_replication_*_lag_seconds{application_name="<subscription>"}`. The subscriber's
//! own record of what it applied (`pg_replication_origin_status`) is closed to `pg_monitor`.
//!
//! PostgreSQL 13 does not let `pg_monitor` read `pg_subscription.oid`, so there the worker is
//! matched by the subscription's name, and only for names no other database reuses.

use super::{Definition, Metric, shaped};

/// The statement, from the parts that differ by version: how a `pg_stat_subscription` row `t`
/// belongs to the subscription `s` (said once for the apply worker joined as `t` and once for
/// the count of sync workers, whose own `t` shadows the outer one), the condition that makes
/// a row the leader apply worker, the stats columns and their join.
macro_rules! subscription_sql {
    (belongs: $belongs:expr, leader: $leader:literal, stats: $stats:expr, join: $join:expr) => {
        concat!(
            "SELECT d.datname::pg_catalog.text, s.subname::pg_catalog.text,
       (CASE WHEN s.subenabled THEN 1 ELSE 0 END)::pg_catalog.int8,
       (CASE WHEN t.pid IS NULL THEN 0 ELSE 1 END)::pg_catalog.int8,
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_subscription t
         WHERE t.pid IS NOT NULL AND t.relid IS NOT NULL AND ",
            $belongs,
            "),
       pg_catalog.pg_wal_lsn_diff(t.received_lsn, '0/0'::pg_catalog.pg_lsn)::pg_catalog.float8,
       greatest(0, extract(epoch FROM t.last_msg_receipt_time OPERATOR(pg_catalog.-)
                                      t.last_msg_send_time))::pg_catalog.float8,
       greatest(0, extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)
                                      t.last_msg_receipt_time))::pg_catalog.float8,
       ",
            $stats,
            "
  FROM pg_catalog.pg_subscription s
  JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.subdbid
  LEFT JOIN pg_catalog.pg_stat_subscription t
    ON t.pid IS NOT NULL AND t.relid IS NULL",
            $leader,
            " AND ",
            $belongs,
            $join,
            "
 ORDER BY 1, 2"
        )
    };
}

/// How a row `t` of `pg_stat_subscription` belongs to subscription `s`, from 14 (by OID).
macro_rules! by_oid {
    () => {
        "t.subid OPERATOR(pg_catalog.=) s.oid"
    };
}

/// The stats columns before 15: none.
macro_rules! no_stats {
    () => {
        "NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.int8,
       NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.int8,
       NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.int8"
    };
}

/// The stats columns of 15 to 17: error counts, from the stats view `x`.
macro_rules! error_stats {
    () => {
        "x.apply_error_count, x.sync_error_count, NULL::pg_catalog.int8,
       NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.int8,
       NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.int8"
    };
}

/// The stats view `x` (15 on).
macro_rules! stats_join {
    () => {
        "
  LEFT JOIN pg_catalog.pg_stat_subscription_stats x ON x.subid OPERATOR(pg_catalog.=) s.oid"
    };
}

/// PostgreSQL 13: matched by name, where the name is unique in the cluster.
const SQL_13: &str = subscription_sql!(
    belongs: "t.subname OPERATOR(pg_catalog.=) s.subname AND NOT EXISTS (
             SELECT FROM pg_catalog.pg_subscription u
              WHERE u.subname OPERATOR(pg_catalog.=) s.subname
                AND u.subdbid OPERATOR(pg_catalog.<>) s.subdbid)",
    leader: "",
    stats: no_stats!(),
    join: ""
);

/// PostgreSQL 14.
const SQL_14: &str =
    subscription_sql!(belongs: by_oid!(), leader: "", stats: no_stats!(), join: "");

/// PostgreSQL 15: error counts.
const SQL_15: &str = subscription_sql!(
    belongs: by_oid!(),
    leader: "",
    stats: error_stats!(),
    join: stats_join!()
);

/// PostgreSQL 16 and 17: parallel apply workers (16) have a leader; the leader has none.
const SQL_16: &str = subscription_sql!(
    belongs: by_oid!(),
    leader: " AND t.leader_pid IS NULL",
    stats: error_stats!(),
    join: stats_join!()
);

/// PostgreSQL 18 and later: conflicts by kind.
const SQL_18: &str = subscription_sql!(
    belongs: by_oid!(),
    leader: " AND t.leader_pid IS NULL",
    stats: "x.apply_error_count, x.sync_error_count, x.confl_insert_exists,
       x.confl_update_origin_differs, x.confl_update_exists, x.confl_update_missing,
       x.confl_delete_origin_differs, x.confl_delete_missing, x.confl_multiple_unique_conflicts",
    join: stats_join!()
);

/// The SQL for `server_version_num`.
fn sql(version: u32) -> Option<&'static str> {
    match version {
        0..130_000 => None,
        130_000..140_000 => Some(SQL_13),
        140_000..150_000 => Some(SQL_14),
        150_000..160_000 => Some(SQL_15),
        160_000..180_000 => Some(SQL_16),
        _ => Some(SQL_18),
    }
}

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "subscription",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::by_version(sql(server.version)),
    labels: &["datname", "subname"],
    metrics: &[
        Metric::gauge(
            "pg_stat_subscription_enabled",
            "1 if the subscription is enabled, else 0.",
        ),
        Metric::gauge(
            "pg_stat_subscription_worker_running",
            "1 if the subscription's apply worker runs now, else 0 (an enabled subscription whose worker keeps failing shows 0 between retries).",
        ),
        Metric::gauge(
            "pg_stat_subscription_sync_workers",
            "Table synchronization workers running for the subscription.",
        ),
        Metric::gauge(
            "pg_stat_subscription_received_lsn_bytes",
            "The publisher's WAL position last received, in bytes; absent while no apply worker runs.",
        ),
        Metric::gauge(
            "pg_stat_subscription_last_msg_delay_seconds",
            "How late the last message from the publisher arrived (receipt minus send time), in seconds: apply lag while changes flow.",
        ),
        Metric::gauge(
            "pg_stat_subscription_last_msg_age_seconds",
            "Seconds since the last message from the publisher arrived.",
        ),
        Metric::counter(
            "pg_stat_subscription_apply_error_count",
            "Errors while applying changes (PostgreSQL 15 on).",
        ),
        Metric::counter(
            "pg_stat_subscription_sync_error_count",
            "Errors during the initial table synchronization (PostgreSQL 15 on).",
        ),
        Metric::counter(
            "pg_stat_subscription_confl_insert_exists",
            "Inserts that violated a unique constraint while applying (PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_subscription_confl_update_origin_differs",
            "Updates of a row last changed by another origin (track_commit_timestamp; PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_subscription_confl_update_exists",
            "Updates that violated a unique constraint while applying (PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_subscription_confl_update_missing",
            "Updates of a row that was not found (PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_subscription_confl_delete_origin_differs",
            "Deletes of a row last changed by another origin (track_commit_timestamp; PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_subscription_confl_delete_missing",
            "Deletes of a row that was not found (PostgreSQL 18 on).",
        ),
        Metric::counter(
            "pg_stat_subscription_confl_multiple_unique_conflicts",
            "Changes that violated more than one unique constraint (PostgreSQL 18 on).",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_has_a_column_per_label_and_metric() {
        let want = COLLECTOR.labels.len() + COLLECTOR.metrics.len();
        for sql in [SQL_13, SQL_14, SQL_15, SQL_16, SQL_18] {
            let select = sql
                .split("\n  FROM pg_catalog.pg_subscription s")
                .next()
                .expect("split yields one part at least");
            // Top-level commas only: the count subquery's parentheses hold none.
            let mut depth = 0i32;
            let commas = select
                .chars()
                .filter(|c| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        ',' if depth == 0 => return true,
                        _ => {}
                    }
                    false
                })
                .count();
            assert_eq!(commas + 1, want, "{sql}");
        }
    }
}
