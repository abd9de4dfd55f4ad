//! Every statement the PostgreSQL driver sends, one documented constant each.
//!
//! # The rule: nothing is looked up by name outside `pg_catalog`
//!
//! A role that owns a database can create operators, functions and types in its own schema
//! and put that schema first on the database's `search_path`; any unqualified name Mesa sends
//! would then run that role's code as Mesa's login (a `pg_monitor` member, or the admin role).
//! Two layers stop it:
//!
//! 1. Every connection sets `search_path=pg_catalog,pg_temp` as a startup parameter
//!    (`connect.rs`), which overrides `ALTER DATABASE ... SET search_path`.
//! 2. Every statement here is safe even without that, so a future code path that forgets it
//!    (or a pooler that drops startup options) is not exposed:
//!    - relations and functions are written `pg_catalog.name(...)`, including aggregates
//!      (`pg_catalog.count(*)`, `pg_catalog.max(...)`);
//!    - operators are written `OPERATOR(pg_catalog.=)`; constructs that resolve an operator
//!      by name behind the scenes are avoided: no `IN (...)`/`NOT IN` (use
//!      `OPERATOR(pg_catalog.=) ANY (array)`), no `IS [NOT] DISTINCT FROM`, no simple `CASE x
//!      WHEN`, no `LIKE`;
//!    - casts name their type `pg_catalog.text`, `pg_catalog.int4`, ... (a tenant's domain
//!      called `text` could carry a CHECK that calls its code);
//!    - grammar constructs that PostgreSQL itself binds to `pg_catalog` are fine as written:
//!      `coalesce`, `greatest`, `EXTRACT`, `CASE WHEN`, `ORDER BY`/`GROUP BY` (the type's
//!      default operator class), `EXISTS`, `AND`/`OR`/`NOT`.
//!
//! (`information_schema` views would be safe too: their definitions were bound to
//! `pg_catalog` objects when the server created them; Mesa reads `pg_catalog` directly.) The
//! test `search_path::a_tenant_search_path_never_runs_
//! code_as_mesa` plants trojans for every operator used here and checks the server log.
//!
//! Values travel as bind parameters; the only statement built from input is `CREATE ROLE`
//! (DDL takes no parameters), see `admin.rs`.

/// Opens the collection's transaction: one snapshot for every statement of a collection
/// (and a new one for the statements after a collector that failed).
/// The collectors' own statements live beside them in `collectors/postgres/` and follow the
/// same rule.
pub const COLLECTION_BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Server health. `client_sessions` counts client backends other than Mesa's own. Epoch
/// seconds come back as float8 so no date-time crate is needed.
pub const SERVER_HEALTH: &str = "\
SELECT pg_catalog.version() AS version,
       pg_catalog.current_setting('server_version_num')::pg_catalog.int4 AS version_num,
       pg_catalog.current_setting('max_connections')::pg_catalog.int4 AS max_connections,
       pg_catalog.current_setting('superuser_reserved_connections')::pg_catalog.int4
         AS superuser_reserved,
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend'
           AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid())::pg_catalog.int4
         AS client_sessions,
       extract(epoch FROM pg_catalog.pg_postmaster_start_time())::pg_catalog.float8 AS started_at,
       extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)
                          pg_catalog.pg_postmaster_start_time())::pg_catalog.float8 AS uptime";

/// Non-template databases. The size is computed only where PostgreSQL would allow it
/// (CONNECT privilege, or the privileges of `pg_read_all_stats`), so one forbidden database
/// yields NULL instead of failing the whole statement. Databases left invalid by an
/// interrupted DROP (`datconnlimit = -2`) are skipped.
pub const DATABASES: &str = "\
SELECT d.datname::pg_catalog.text AS name,
       pg_catalog.pg_get_userbyid(d.datdba)::pg_catalog.text AS owner,
       pg_catalog.pg_encoding_to_char(d.encoding)::pg_catalog.text AS encoding,
       CASE WHEN pg_catalog.has_database_privilege(d.oid, 'CONNECT')
              OR pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
            THEN pg_catalog.pg_database_size(d.oid) END AS size_bytes
  FROM pg_catalog.pg_database d
 WHERE NOT d.datistemplate
   AND d.datconnlimit OPERATOR(pg_catalog.<>) -2
 ORDER BY d.datname";

/// Tables, partitioned tables, views, materialized views and foreign tables, as psql's `\dt`,
/// `\dv`, `\dm` and `\dE` list them, from `pg_class` (readable by every role), not
/// `information_schema`, which shows a role only the objects it holds privileges on: a
/// least-privilege monitoring role would see nothing. System, TOAST and temporary schemas
/// are left out.
pub const TABLES: &str = "\
SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text, c.relkind::pg_catalog.text
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[])
   AND NOT (n.nspname OPERATOR(pg_catalog.=)
              ANY ('{pg_catalog,information_schema}'::pg_catalog.name[]))
   AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~) '^pg_(toast|temp_)'
 ORDER BY 1, 2";

/// Columns of one relation in order, as psql's `\d table` shows them, from `pg_attribute`:
/// the type with its modifiers (`varchar(40)`, `numeric(10,2)`, arrays, user types) by
/// `format_type`, `NOT NULL`, and the default expression by `pg_get_expr`.
pub const COLUMNS: &str = "\
SELECT a.attname::pg_catalog.text,
       pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid),
       a.attnum::pg_catalog.int4
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  LEFT JOIN pg_catalog.pg_attrdef d
         ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid
        AND d.adnum OPERATOR(pg_catalog.=) a.attnum
 WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name
   AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name
   AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[])
   AND a.attnum OPERATOR(pg_catalog.>) 0
   AND NOT a.attisdropped
 ORDER BY a.attnum";

/// Whether a relation exists, to tell "no such table" from "a table without columns".
pub const TABLE_EXISTS: &str = "\
SELECT EXISTS (SELECT 1
                 FROM pg_catalog.pg_class c
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name
                  AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name
                  AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[]))";

/// Client sessions other than Mesa's own, oldest statement first. `$1`: include idle;
/// `$2`: limit. `backend_start` comes as a timestamp (exact to the microsecond), because
/// callers hand it back to pin the backend they signal.
pub const SESSIONS: &str = "\
SELECT a.pid,
       a.usename::pg_catalog.text,
       a.datname::pg_catalog.text,
       coalesce(a.application_name, ''),
       a.client_addr,
       a.state,
       coalesce(a.query, ''),
       a.wait_event_type,
       a.wait_event,
       a.backend_start,
       extract(epoch FROM a.xact_start)::pg_catalog.float8,
       extract(epoch FROM a.query_start)::pg_catalog.float8,
       CASE WHEN a.state OPERATOR(pg_catalog.=) 'active'
            THEN greatest(extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)
                                              a.query_start), 0)::pg_catalog.float8 END
  FROM pg_catalog.pg_stat_activity a
 WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend'
   AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
   AND ($1::pg_catalog.bool OR coalesce(a.state OPERATOR(pg_catalog.<>) 'idle', true))
 ORDER BY a.query_start NULLS LAST, a.pid
 LIMIT $2::pg_catalog.int8";

/// Signals `$1` only if it is a client backend other than Mesa's own, of a role that is not a
/// superuser (PostgreSQL's `pg_signal_backend` rule, enforced whatever the admin login's own
/// rights), and, when `$2` is not NULL, only if it started at `$2` (so a pid reused since the
/// caller listed it is never hit). The checks and the signal are one statement, so no other
/// backend can be hit between check and act, and the signal is decided from exactly the
/// columns that report why it was refused. No row: no such pid. `signalled` is NULL when
/// refused; the other columns say why. `backend_type` is NULL when the role lacks
/// `pg_read_all_stats` and the session is another role's: Mesa then refuses (fails closed), as
/// it does when the backend's role cannot be found (`is_superuser` is then true) or a pinned
/// start time cannot be compared (`same_backend` is then false).
macro_rules! signal_statement {
    ($function:literal) => {
        concat!(
            "\
SELECT s.backend_type, s.is_self, s.is_superuser, s.role, s.same_backend, s.backend_start,
       CASE WHEN s.backend_type OPERATOR(pg_catalog.=) 'client backend'
             AND NOT s.is_self AND NOT s.is_superuser AND s.same_backend
            THEN pg_catalog.",
            $function,
            "(s.pid) END AS signalled
  FROM (SELECT a.pid,
               a.backend_type::pg_catalog.text AS backend_type,
               a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() AS is_self,
               coalesce(r.rolsuper, true) AS is_superuser,
               r.rolname::pg_catalog.text AS role,
               coalesce($2::pg_catalog.timestamptz IS NULL
                        OR a.backend_start OPERATOR(pg_catalog.=) $2::pg_catalog.timestamptz,
                        false) AS same_backend,
               a.backend_start
          FROM pg_catalog.pg_stat_activity a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.usesysid
         WHERE a.pid OPERATOR(pg_catalog.=) $1::pg_catalog.int4) s"
        )
    };
}

/// Terminates a backend; see [`signal_statement!`] for the rules.
pub const TERMINATE: &str = signal_statement!("pg_terminate_backend");

/// As [`TERMINATE`], but cancels the running statement and keeps the session.
pub const CANCEL: &str = signal_statement!("pg_cancel_backend");

/// The start of the comment Mesa puts on every role it creates (`COMMENT ON ROLE`), followed by
/// `created_at=<Unix seconds>`. Only a role with CREATEROLE (and, from PostgreSQL 16, ADMIN
/// OPTION on that role) may comment on a role, so a tenant cannot mark a role as Mesa's, and
/// the mark lives on the server, where every Mesa replica and restart sees it.
pub const MANAGED_MARK: &str = "mesa:managed ";

/// Joins a role `r` to its comment `d` (roles' comments live in the shared catalog).
macro_rules! role_comment_join {
    () => {
        "
  LEFT JOIN pg_catalog.pg_shdescription d
         ON d.objoid OPERATOR(pg_catalog.=) r.oid
        AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass"
    };
}

/// Whether `d` (see [`role_comment_join!`]) carries [`MANAGED_MARK`] (13 characters).
macro_rules! is_managed {
    () => {
        "coalesce(pg_catalog.substr(d.description, 1, 13) OPERATOR(pg_catalog.=) 'mesa:managed ', false)"
    };
}

/// The server's clock now and `$1` seconds from now (NULL for no expiry), as Unix seconds and
/// as the `timestamptz` written into `VALID UNTIL`.
pub const NOW_AND_EXPIRY: &str = "\
SELECT extract(epoch FROM pg_catalog.now())::pg_catalog.float8,
       pg_catalog.now() OPERATOR(pg_catalog.+)
         pg_catalog.make_interval(secs => $1::pg_catalog.float8)";

/// The attribute columns of a reached role `r` and the role it was reached from `o`, shared
/// by [`GRANT_REACH`] and [`GRANTED_REACH`].
macro_rules! reach_select {
    () => {
        "
SELECT o.rolname::pg_catalog.text, r.rolname::pg_catalog.text, r.rolsuper, r.rolcreaterole,
       r.rolcreatedb, r.rolreplication, r.rolbypassrls
  FROM reach
  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) reach.oid
  JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) reach.origin"
    };
}

/// The rest of a reach: every role a reached role is a member of, at any depth, whatever
/// the memberships' INHERIT or SET options.
macro_rules! reach_up {
    () => {
        "
  UNION
  SELECT reach.origin, m.roleid FROM pg_catalog.pg_auth_members m
    JOIN reach ON m.member OPERATOR(pg_catalog.=) reach.oid
)"
    };
}

/// Every role `$1` is, or reaches through memberships, with the attributes that would make
/// granting it more than data access: origin (`$1`), reached role, SUPERUSER, CREATEROLE,
/// CREATEDB, REPLICATION, BYPASSRLS. No row: no role of that name. Checked before a grant.
pub const GRANT_REACH: &str = concat!(
    "\
WITH RECURSIVE reach(origin, oid) AS (
  SELECT r.oid, r.oid FROM pg_catalog.pg_roles r
   WHERE r.rolname OPERATOR(pg_catalog.=) $1::pg_catalog.name",
    reach_up!(),
    reach_select!()
);

/// As [`GRANT_REACH`], from every role the role named `$1` is a direct member of: what a
/// grant actually gave it, by OID, so a role renamed between the check by name and the
/// `GRANT` is still seen. Checked after the grant, in the same transaction.
pub const GRANTED_REACH: &str = concat!(
    "\
WITH RECURSIVE reach(origin, oid) AS (
  SELECT m.roleid, m.roleid FROM pg_catalog.pg_auth_members m
    JOIN pg_catalog.pg_roles u ON u.oid OPERATOR(pg_catalog.=) m.member
   WHERE u.rolname OPERATOR(pg_catalog.=) $1::pg_catalog.name",
    reach_up!(),
    reach_select!()
);

/// Mesa-managed roles: name, comment, expiry (Unix seconds; NULL for none or infinity),
/// LOGIN, connection limit, memberships, sessions open now.
pub const MANAGED_ROLES: &str = concat!(
    "\
SELECT r.rolname::pg_catalog.text, d.description::pg_catalog.text,
       CASE WHEN pg_catalog.isfinite(r.rolvaliduntil)
            THEN extract(epoch FROM r.rolvaliduntil)::pg_catalog.float8 END,
       r.rolcanlogin, r.rolconnlimit,
       ARRAY(SELECT g.rolname::pg_catalog.text
               FROM pg_catalog.pg_auth_members m
               JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) m.roleid
              WHERE m.member OPERATOR(pg_catalog.=) r.oid
              ORDER BY 1),
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.usesysid OPERATOR(pg_catalog.=) r.oid)::pg_catalog.int4
  FROM pg_catalog.pg_roles r",
    role_comment_join!(),
    "
 WHERE ",
    is_managed!(),
    "
 ORDER BY 1"
);

/// One role by name `$1`: its OID, whether it is a superuser, and whether it is managed.
pub const ROLE_STATE: &str = concat!(
    "\
SELECT r.oid, r.rolsuper, ",
    is_managed!(),
    "
  FROM pg_catalog.pg_roles r",
    role_comment_join!(),
    "
 WHERE r.rolname OPERATOR(pg_catalog.=) $1::pg_catalog.name"
);

/// Terminates every client session of the role with OID `$1` but Mesa's own connection;
/// one row per session, true when signalled.
pub const TERMINATE_ROLE_SESSIONS: &str = "\
SELECT pg_catalog.pg_terminate_backend(a.pid)
  FROM pg_catalog.pg_stat_activity a
 WHERE a.usesysid OPERATOR(pg_catalog.=) $1::pg_catalog.oid
   AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()";

/// Managed roles whose `VALID UNTIL` has passed: name, OID, LOGIN, superuser, seconds since
/// expiry.
pub const EXPIRED_MANAGED_ROLES: &str = concat!(
    "\
SELECT r.rolname::pg_catalog.text, r.oid, r.rolcanlogin, r.rolsuper,
       extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) r.rolvaliduntil)::pg_catalog.float8
  FROM pg_catalog.pg_roles r",
    role_comment_join!(),
    "
 WHERE ",
    is_managed!(),
    "
   AND r.rolvaliduntil OPERATOR(pg_catalog.<=) pg_catalog.now()
 ORDER BY 1"
);

/// Client backends matching a bulk filter, oldest state first: `$1` state, `$2` seconds in
/// that state at least, `$3` role, `$4` `application_name`, `$5` database; NULL matches any.
/// Returns the pin (`backend_start`), what the answer shows, and whether the session is a
/// superuser's (true also when its role cannot be found) or this connection.
pub const MATCH_SESSIONS: &str = "\
SELECT a.pid, a.backend_start, a.usename::pg_catalog.text, a.datname::pg_catalog.text,
       coalesce(a.application_name, ''), a.state,
       extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) a.state_change)::pg_catalog.float8,
       coalesce(r.rolsuper, true),
       a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
  FROM pg_catalog.pg_stat_activity a
  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.usesysid
 WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend'
   AND ($1::pg_catalog.text IS NULL OR a.state OPERATOR(pg_catalog.=) $1::pg_catalog.text)
   AND ($2::pg_catalog.float8 IS NULL
        OR a.state_change OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-)
           pg_catalog.make_interval(secs => $2::pg_catalog.float8)))
   AND ($3::pg_catalog.text IS NULL
        OR a.usename::pg_catalog.text OPERATOR(pg_catalog.=) $3::pg_catalog.text)
   AND ($4::pg_catalog.text IS NULL
        OR a.application_name OPERATOR(pg_catalog.=) $4::pg_catalog.text)
   AND ($5::pg_catalog.text IS NULL
        OR a.datname::pg_catalog.text OPERATOR(pg_catalog.=) $5::pg_catalog.text)
 ORDER BY a.state_change NULLS LAST, a.pid";
