//! Replication, as three independent collectors:
//!
//! - `replication`: whether this server is a replica, its replay lag, and its WAL position
//!   (postgres_exporter's `pg_replication_*`, plus the `pg_xlog_position_bytes` its mixin's
//!   WAL-rate alerts read). On a primary the lag is 0, as postgres_exporter reports it.
//! - `replication_slots`: every slot, whether it is in use, the WAL it holds back, and for a
//!   logical slot how far its consumer (a subscription) has confirmed.
//! - `stat_replication`: every standby streaming from this server, its lag in bytes and time.

use super::{Definition, Metric, shaped};

/// The WAL position this server is at: written on a primary, replayed on a replica.
const SQL: &str = "\
SELECT (CASE WHEN pg_catalog.pg_is_in_recovery() THEN 1 ELSE 0 END)::pg_catalog.int8,
       (CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN 0
             WHEN pg_catalog.pg_last_wal_receive_lsn() OPERATOR(pg_catalog.=)
                  pg_catalog.pg_last_wal_replay_lsn() THEN 0
             ELSE greatest(0, extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)
                                      pg_catalog.pg_last_xact_replay_timestamp()))
        END)::pg_catalog.float8,
       (CASE WHEN pg_catalog.pg_is_in_recovery()
             THEN greatest(0, extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)
                                      pg_catalog.pg_last_xact_replay_timestamp()))
        END)::pg_catalog.float8,
       pg_catalog.pg_wal_lsn_diff(
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
              ELSE pg_catalog.pg_current_wal_lsn() END,
         '0/0'::pg_catalog.pg_lsn)::pg_catalog.float8";

/// Retained WAL is measured from the slot's `restart_lsn` to where this server is.
const SLOTS_SQL: &str = "\
SELECT s.slot_name::pg_catalog.text, s.slot_type, coalesce(s.database::pg_catalog.text, ''),
       s.active,
       pg_catalog.pg_wal_lsn_diff(
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
              ELSE pg_catalog.pg_current_wal_lsn() END,
         s.restart_lsn)::pg_catalog.float8,
       pg_catalog.age(s.xmin)::pg_catalog.int8,
       pg_catalog.pg_wal_lsn_diff(
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
              ELSE pg_catalog.pg_current_wal_lsn() END,
         s.confirmed_flush_lsn)::pg_catalog.float8
  FROM pg_catalog.pg_replication_slots s
 ORDER BY 1";

/// One row per standby (or other WAL receiver) streaming from this server. Lag columns are
/// NULL (no series) until the standby has replied, and for roles without
/// `pg_read_all_stats`.
const STANDBYS_SQL: &str = "\
SELECT coalesce(r.application_name, ''), coalesce(pg_catalog.host(r.client_addr), ''),
       coalesce(r.state, ''), coalesce(r.sync_state, ''),
       pg_catalog.pg_wal_lsn_diff(
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
              ELSE pg_catalog.pg_current_wal_lsn() END,
         r.replay_lsn)::pg_catalog.float8,
       extract(epoch FROM r.write_lag)::pg_catalog.float8,
       extract(epoch FROM r.flush_lag)::pg_catalog.float8,
       extract(epoch FROM r.replay_lag)::pg_catalog.float8
  FROM pg_catalog.pg_stat_replication r
 ORDER BY 1, 2";

/// `replication`.
pub const COLLECTOR: Definition = Definition {
    name: "replication",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &[],
    metrics: &[
        Metric::gauge(
            "pg_replication_is_replica",
            "1 if this server is a replica (in recovery), else 0.",
        ),
        Metric::gauge(
            "pg_replication_lag_seconds",
            "Replay lag of a replica, in seconds: 0 when it has replayed all it received, and on a primary.",
        ),
        Metric::gauge(
            "pg_replication_last_replay_seconds",
            "Seconds since a replica last replayed a transaction; absent on a primary.",
        ),
        Metric::gauge(
            "pg_xlog_position_bytes",
            "WAL position in bytes: written on a primary, replayed on a replica (rate() is WAL throughput).",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};

/// `replication_slots`.
pub const SLOTS: Definition = Definition {
    name: "replication_slots",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SLOTS_SQL),
    labels: &["slot_name", "slot_type", "database"],
    metrics: &[
        Metric::gauge(
            "pg_replication_slots_active",
            "1 if a consumer is using the slot now, else 0.",
        ),
        Metric::gauge(
            "pg_replication_slots_retained_bytes",
            "WAL the slot holds back, in bytes (from its restart_lsn); absent for a slot that reserves none.",
        ),
        Metric::gauge(
            "pg_replication_slots_xmin_age",
            "age(xmin) of the slot: transactions whose dead rows it keeps from vacuum; absent when it holds none.",
        ),
        Metric::gauge(
            "pg_replication_slots_confirmed_flush_lag_bytes",
            "A logical slot's consumer (a subscription: the slot is named after it) is this far behind this server's WAL, in bytes (from its confirmed_flush_lsn); absent for physical slots.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};

/// `stat_replication`.
pub const STANDBYS: Definition = Definition {
    name: "stat_replication",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, STANDBYS_SQL),
    labels: &["application_name", "client_addr", "state", "sync_state"],
    metrics: &[
        Metric::gauge(
            "pg_stat_replication_pg_wal_lsn_diff",
            "How far the standby's replay is behind this server's WAL, in bytes.",
        ),
        Metric::gauge(
            "pg_stat_replication_write_lag_seconds",
            "Time until the standby wrote recent WAL, in seconds.",
        ),
        Metric::gauge(
            "pg_stat_replication_flush_lag_seconds",
            "Time until the standby flushed recent WAL, in seconds.",
        ),
        Metric::gauge(
            "pg_stat_replication_replay_lag_seconds",
            "Time until the standby replayed recent WAL, in seconds.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
