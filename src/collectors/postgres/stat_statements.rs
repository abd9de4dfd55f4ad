//! `stat_statements` (off by default): the `max_statements` statements with the most total
//! execution time, from the `pg_stat_statements` extension, with the query id and a
//! normalised, truncated, redacted text.
//!
//! The view lives in whatever schema the extension was installed in, which a database owner
//! may control. Mesa reads it only when the view is a superuser-owned member of the extension
//! in a schema a superuser controls (found in `pg_catalog`, see `STAT_STATEMENTS_VIEW`), so
//! nobody else can drop, rename or replace either; it names the view schema-qualified with a
//! quoted identifier, and the prepared statement must read the view's OID before it runs. Utility statements are
//! not normalised by the extension (`ALTER ROLE ... PASSWORD '...'`), so texts pass the same
//! redaction as the admin API's session list.

use std::borrow::Cow;

use postgres_protocol::escape::escape_identifier;

use super::{Definition, Metric, Plan, Record, Statement, shaped};
use crate::collectors::Family;

/// Longest query text exported, in characters.
pub const MAX_QUERY_TEXT: usize = 120;

/// `{source}` is replaced by the view (or the extension's function, see [`fallback_sql`]);
/// `{read}`/`{write}` by the I/O time columns, which PostgreSQL 17 renamed.
const SQL: &str = "\
SELECT s.queryid::pg_catalog.text, coalesce(d.datname::pg_catalog.text, ''),
       coalesce(r.rolname::pg_catalog.text, ''), s.query,
       s.calls, (s.total_exec_time OPERATOR(pg_catalog./) 1000)::pg_catalog.float8, s.rows,
       (s.{read} OPERATOR(pg_catalog./) 1000)::pg_catalog.float8,
       (s.{write} OPERATOR(pg_catalog./) 1000)::pg_catalog.float8,
       pg_catalog.count(*) OVER ()
  FROM {source} s
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid
  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) s.userid
 WHERE s.queryid IS NOT NULL
 ORDER BY s.total_exec_time DESC
 LIMIT $1::pg_catalog.int8";

/// The statement for `version` against the view in `schema`.
pub(super) fn sql(version: u32, schema: &str) -> String {
    with_source(
        version,
        &format!("{}.pg_stat_statements", escape_identifier(schema)),
    )
}

/// The same columns without the texts: the extension's function with `showtext => false`.
///
/// With texts, the extension converts every statement's text to this database's encoding
/// and fails the whole call on one it cannot: a statement holding bytes that are not UTF-8,
/// run in a `SQL_ASCII` database, makes it fail in every UTF-8 database (SQLSTATE 22021)
/// until the entry is evicted or reset. Then the statements are still exported, with an
/// empty `query` label. The function is named in the same schema, which a superuser
/// controls (see `STAT_STATEMENTS_VIEW`), with a boolean argument that only the extension's
/// own `pg_stat_statements(boolean)` matches exactly.
pub(super) fn fallback_sql(version: u32, schema: &str) -> String {
    with_source(
        version,
        &format!(
            "{}.pg_stat_statements(false::pg_catalog.bool)",
            escape_identifier(schema)
        ),
    )
}

fn with_source(version: u32, source: &str) -> String {
    let (read, write) = if version >= 170_000 {
        ("shared_blk_read_time", "shared_blk_write_time")
    } else {
        ("blk_read_time", "blk_write_time")
    };
    SQL.replace("{source}", source)
        .replace("{read}", read)
        .replace("{write}", write)
}

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "stat_statements",
    enabled_by_default: false,
    schedule: crate::collectors::Schedule::Every,
    scope: crate::collectors::Scope::Server,
    plan: |server, options| {
        if server.version < super::MIN_VERSION {
            return Plan::Unsupported;
        }
        match &server.stat_statements {
            Some(view) => Plan::Run(Statement {
                sql: Cow::Owned(sql(server.version, &view.schema)),
                limit: Some(i64::from(options.max_statements)),
                reads: Some(view.oid),
                fallback: Some(super::Fallback {
                    sql: Cow::Owned(fallback_sql(server.version, &view.schema)),
                    when: tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                }),
            }),
            None => Plan::Unavailable(
                "pg_stat_statements is not installed in the target's database, or not where only a superuser controls it (its view must be a superuser-owned member of the extension, in a schema a superuser owns); CREATE EXTENSION pg_stat_statements as a superuser, in a superuser's schema (e.g. CREATE SCHEMA monitoring AUTHORIZATION postgres; CREATE EXTENSION pg_stat_statements SCHEMA monitoring), with it in shared_preload_libraries",
            ),
        }
    },
    labels: &["queryid", "datname", "user", "query"],
    metrics: &[
        Metric::counter("pg_stat_statements_calls", "Times the statement ran."),
        Metric::counter(
            "pg_stat_statements_seconds",
            "Total execution time of the statement, in seconds.",
        ),
        Metric::counter(
            "pg_stat_statements_rows",
            "Rows retrieved or affected by the statement.",
        ),
        Metric::counter(
            "pg_stat_statements_block_read_seconds",
            "Time the statement spent reading blocks, in seconds (track_io_timing).",
        ),
        Metric::counter(
            "pg_stat_statements_block_write_seconds",
            "Time the statement spent writing blocks, in seconds (track_io_timing).",
        ),
    ],
    guarded: true,
    counts_hidden: false,
    ranked: false,
    build,
};

/// The text as a label: redacted, whitespace collapsed, truncated on a character boundary.
pub(super) fn query_label(text: &str) -> String {
    let redacted = crate::gateway::postgres::redact_query(text.to_owned());
    let collapsed = redacted.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(MAX_QUERY_TEXT) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

fn build(def: &Definition, records: &[Record]) -> Vec<Family> {
    let cleaned: Vec<Record> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(text) = r.labels.get_mut(3) {
                *text = query_label(text);
            }
            r
        })
        .collect();
    shaped(def, &cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_is_named_by_a_quoted_schema_and_the_version_picks_the_columns() {
        let s = sql(160_004, "odd\"schema");
        assert!(
            s.contains("FROM \"odd\"\"schema\".pg_stat_statements"),
            "{s}"
        );
        assert!(s.contains("s.blk_read_time"), "{s}");
        let s = sql(170_000, "public");
        assert!(s.contains("s.shared_blk_read_time"), "{s}");
        let f = fallback_sql(160_004, "odd\"schema");
        assert!(
            f.contains("FROM \"odd\"\"schema\".pg_stat_statements(false::pg_catalog.bool) s"),
            "{f}"
        );
    }

    #[test]
    fn query_texts_are_collapsed_and_truncated() {
        assert_eq!(query_label("SELECT  $1,\n\t$2"), "SELECT $1, $2");
        let long = "x".repeat(500);
        assert_eq!(query_label(&long).chars().count(), MAX_QUERY_TEXT + 1);
    }
}
