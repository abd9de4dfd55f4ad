//! `database`: size, owner and encoding of every non-template database.

use super::{Definition, Metric, shaped};

/// The size is computed only where PostgreSQL would allow it (CONNECT privilege, or
/// `pg_read_all_stats`), so one forbidden database yields NULL (no series) instead of failing
/// the statement. Databases left invalid by an interrupted DROP (`datconnlimit = -2`) are
/// skipped.
const SQL: &str = "\
SELECT d.datname::pg_catalog.text,
       pg_catalog.pg_get_userbyid(d.datdba)::pg_catalog.text,
       pg_catalog.pg_encoding_to_char(d.encoding)::pg_catalog.text,
       CASE WHEN pg_catalog.has_database_privilege(d.oid, 'CONNECT')
              OR pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
            THEN pg_catalog.pg_database_size(d.oid) END,
       1::pg_catalog.int8
  FROM pg_catalog.pg_database d
 WHERE NOT d.datistemplate
   AND d.datconnlimit OPERATOR(pg_catalog.<>) -2
 ORDER BY d.datname";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "database",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::Interval(std::time::Duration::from_secs(300)),
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &["datname", "owner", "encoding"],
    metrics: &[
        Metric::gauge(
            "pg_database_size_bytes",
            "Database size on disk, in bytes; absent when the role may not read it.",
        )
        .with_labels(&["datname"]),
        Metric::gauge(
            "pg_database_info",
            "Database owner and encoding; the value is always 1.",
        ),
    ],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build: shaped,
};
