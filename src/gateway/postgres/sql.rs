//! Every statement the PostgreSQL driver sends, one documented constant each.
//!
//! All catalog objects are schema-qualified so a hostile `search_path` cannot shadow them.
//! Values travel as bind parameters; the only statement built from input is `CREATE ROLE`
//! (DDL takes no parameters), see `admin.rs`.

/// Opens the collection's transaction: one snapshot for every statement of a collection.
pub const COLLECTION_BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Server health. `client_sessions` counts client backends other than Mesa's own. Epoch
/// seconds come back as float8 so no date-time crate is needed.
pub const SERVER_HEALTH: &str = "\
SELECT pg_catalog.version() AS version,
       pg_catalog.current_setting('server_version_num')::int AS version_num,
       pg_catalog.current_setting('max_connections')::int AS max_connections,
       pg_catalog.current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_type = 'client backend'
           AND a.pid <> pg_catalog.pg_backend_pid())::int AS client_sessions,
       extract(epoch FROM pg_catalog.pg_postmaster_start_time())::float8 AS started_at,
       extract(epoch FROM now() - pg_catalog.pg_postmaster_start_time())::float8 AS uptime";

/// Client backends grouped by database, user and state, with the oldest open transaction and
/// the longest active statement per group. Durations are clamped at zero: `now()` is this
/// statement's start and a session may have begun a statement since.
pub const ACTIVITY: &str = "\
SELECT coalesce(a.datname::text, '') AS datname,
       coalesce(a.usename::text, '') AS usename,
       coalesce(a.state, '') AS state,
       count(*)::int AS sessions,
       greatest(coalesce(max(extract(epoch FROM now() - a.xact_start)), 0), 0)::float8
         AS max_tx_seconds,
       greatest(coalesce(max(extract(epoch FROM now() - a.query_start))
                           FILTER (WHERE a.state = 'active'), 0), 0)::float8
         AS max_query_seconds
  FROM pg_catalog.pg_stat_activity a
 WHERE a.backend_type = 'client backend'
   AND a.pid <> pg_catalog.pg_backend_pid()
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3";

/// Non-template databases. The size is computed only where PostgreSQL would allow it
/// (CONNECT privilege, or the privileges of `pg_read_all_stats`), so one forbidden database
/// yields NULL instead of failing the whole statement. Databases left invalid by an
/// interrupted DROP (`datconnlimit = -2`) are skipped.
pub const DATABASES: &str = "\
SELECT d.datname::text AS name,
       pg_catalog.pg_get_userbyid(d.datdba)::text AS owner,
       pg_catalog.pg_encoding_to_char(d.encoding)::text AS encoding,
       CASE WHEN pg_catalog.has_database_privilege(d.oid, 'CONNECT')
              OR pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
            THEN pg_catalog.pg_database_size(d.oid) END AS size_bytes
  FROM pg_catalog.pg_database d
 WHERE NOT d.datistemplate
   AND d.datconnlimit <> -2
 ORDER BY d.datname";

/// Tables and views visible to the role, system, TOAST and temporary schemas excluded.
pub const TABLES: &str = "\
SELECT t.table_schema::text, t.table_name::text, t.table_type::text
  FROM information_schema.tables t
 WHERE t.table_schema::text NOT IN ('pg_catalog', 'information_schema')
   AND t.table_schema::text !~ '^pg_(toast|temp_)'
 ORDER BY 1, 2";

/// Columns of one table in order. `information_schema` says which columns the role may see;
/// the type is printed by `format_type` so modifiers (`varchar(40)`, `numeric(10,2)`) and
/// array and user-defined types read as in `\d`.
pub const COLUMNS: &str = "\
SELECT c.column_name::text,
       coalesce(pg_catalog.format_type(att.atttypid, att.atttypmod), c.data_type::text),
       c.is_nullable::text = 'YES',
       c.column_default::text,
       c.ordinal_position::int
  FROM information_schema.columns c
  LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = c.table_schema::text
  LEFT JOIN pg_catalog.pg_class r ON r.relnamespace = n.oid AND r.relname = c.table_name::text
  LEFT JOIN pg_catalog.pg_attribute att
         ON att.attrelid = r.oid AND att.attname = c.column_name::text AND NOT att.attisdropped
 WHERE c.table_schema::text = $1::text
   AND c.table_name::text = $2::text
 ORDER BY c.ordinal_position";

/// Whether a table is visible, to tell "no such table" from "a table without columns".
pub const TABLE_EXISTS: &str = "\
SELECT EXISTS (SELECT 1 FROM information_schema.tables t
                WHERE t.table_schema::text = $1::text AND t.table_name::text = $2::text)";

/// Client sessions other than Mesa's own, oldest statement first. `$1`: include idle;
/// `$2`: limit.
pub const SESSIONS: &str = "\
SELECT a.pid,
       a.usename::text,
       a.datname::text,
       coalesce(a.application_name, ''),
       a.client_addr,
       a.state,
       coalesce(a.query, ''),
       a.wait_event_type,
       a.wait_event,
       extract(epoch FROM a.backend_start)::float8,
       extract(epoch FROM a.xact_start)::float8,
       extract(epoch FROM a.query_start)::float8,
       CASE WHEN a.state = 'active'
            THEN greatest(extract(epoch FROM now() - a.query_start), 0)::float8 END
  FROM pg_catalog.pg_stat_activity a
 WHERE a.backend_type = 'client backend'
   AND a.pid <> pg_catalog.pg_backend_pid()
   AND ($1::bool OR a.state IS DISTINCT FROM 'idle')
 ORDER BY a.query_start NULLS LAST, a.pid
 LIMIT $2::int8";

/// Terminates `$1` only if it is a client backend other than Mesa's own; the checks and the
/// signal are one statement, so no other backend can be hit between check and act. No row:
/// no such pid. `signalled` is NULL when refused. `backend_type` is NULL when the role lacks
/// `pg_read_all_stats` and the session is another role's: Mesa then refuses (fails closed).
pub const TERMINATE: &str = "\
SELECT a.backend_type::text,
       a.pid = pg_catalog.pg_backend_pid() AS is_self,
       CASE WHEN a.backend_type = 'client backend' AND a.pid <> pg_catalog.pg_backend_pid()
            THEN pg_catalog.pg_terminate_backend(a.pid) END AS signalled
  FROM pg_catalog.pg_stat_activity a
 WHERE a.pid = $1::int4";

/// As [`TERMINATE`], but cancels the running statement and keeps the session.
pub const CANCEL: &str = "\
SELECT a.backend_type::text,
       a.pid = pg_catalog.pg_backend_pid() AS is_self,
       CASE WHEN a.backend_type = 'client backend' AND a.pid <> pg_catalog.pg_backend_pid()
            THEN pg_catalog.pg_cancel_backend(a.pid) END AS signalled
  FROM pg_catalog.pg_stat_activity a
 WHERE a.pid = $1::int4";
