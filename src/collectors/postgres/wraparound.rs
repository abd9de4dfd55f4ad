//! `wraparound`: how far each database is from transaction-ID and multixact wraparound,
//! `age(datfrozenxid)` and `mxid_age(datminmxid)`. Alert well before
//! `autovacuum_freeze_max_age` (in `pg_settings_*`); PostgreSQL stops writes near 2^31.

use super::{Definition, Metric, shaped};

const SQL: &str = "\
SELECT d.datname::pg_catalog.text,
       pg_catalog.age(d.datfrozenxid)::pg_catalog.int8,
       pg_catalog.mxid_age(d.datminmxid)::pg_catalog.int8
  FROM pg_catalog.pg_database d
 WHERE d.datallowconn
 ORDER BY 1";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "wraparound",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Interval(std::time::Duration::from_secs(300)),
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &["datname"],
    metrics: &[
        Metric::gauge(
            "pg_database_wraparound_age_datfrozenxid",
            "age(datfrozenxid): transactions since the database's oldest unfrozen XID (postgres_exporter adds a misleading _seconds).",
        ),
        Metric::gauge(
            "pg_database_wraparound_age_datminmxid",
            "mxid_age(datminmxid): multixacts since the database's oldest unfrozen multixact ID (postgres_exporter adds a misleading _seconds).",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
