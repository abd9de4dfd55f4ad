//! Driver-neutral types the gateway returns.
//!
//! Nothing here knows PostgreSQL or HTTP: a MySQL driver fills the same structs, and the
//! metrics and admin layers read them. Durations and timestamps are std types; the HTTP layer
//! decides how they are rendered.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::secret::Secret;

/// One database on a server (`GetDatabases`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Database name.
    pub name: String,
    /// Owning role.
    pub owner: String,
    /// Server encoding, e.g. `UTF8`.
    pub encoding: String,
    /// Size on disk; `None` when the connecting role may not read it (no CONNECT privilege).
    pub size_bytes: Option<u64>,
}

/// What kind of relation a [`Table`] is (`pg_class.relkind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// An ordinary table (`r`).
    Table,
    /// A partitioned table (`p`).
    PartitionedTable,
    /// A view (`v`).
    View,
    /// A materialized view (`m`).
    MaterializedView,
    /// A foreign table (`f`).
    Foreign,
    /// A temporary table. Mesa's sessions are ephemeral, so it never lists one; kept so
    /// clients of the API can rely on the name.
    Temporary,
}

/// One table or view in a database (`GetTables`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Schema the table lives in.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// What kind of relation it is.
    pub kind: TableKind,
}

/// One column of a table (`GetColumns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// The type as the server prints it, with modifiers: `character varying(40)`, `integer[]`.
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression, if any.
    pub default: Option<String>,
    /// 1-based position in the table.
    pub position: u32,
}

/// Whether a server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Connected and queried.
    Online,
    /// Could not connect or query; callers that report health build this from the error.
    Offline,
}

/// Server-wide facts (`GetServerHealth`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerHealth {
    /// Always [`HealthStatus::Online`] when the gateway returns a value.
    pub status: HealthStatus,
    /// `version()`, e.g. `PostgreSQL 15.18 (Debian ...) on x86_64-pc-linux-gnu ...`.
    pub version: String,
    /// `major.minor.patch` as postgres_exporter prints it, e.g. `15.18.0`.
    pub short_version: String,
    /// `max_connections`.
    pub max_connections: u32,
    /// `superuser_reserved_connections`.
    pub superuser_reserved_connections: u32,
    /// Client backends connected now, Mesa's own connection excluded.
    pub client_sessions: u32,
    /// When the postmaster started.
    pub started_at: SystemTime,
    /// How long the server has been up, by the server's clock.
    pub uptime: Duration,
}

/// One client session (`ListSessions`).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Backend process id.
    pub pid: i32,
    /// Role the session logged in as.
    pub user: Option<String>,
    /// Database it is connected to.
    pub database: Option<String>,
    /// `application_name` the client set.
    pub application_name: String,
    /// Client address; `None` for Unix-socket clients.
    pub client_addr: Option<IpAddr>,
    /// `active`, `idle`, `idle in transaction`, ...
    pub state: Option<String>,
    /// Current or last statement text (truncated by `track_activity_query_size`).
    pub query: String,
    /// Wait event type, if waiting.
    pub wait_event_type: Option<String>,
    /// Wait event, if waiting.
    pub wait_event: Option<String>,
    /// When the backend started.
    pub backend_start: Option<SystemTime>,
    /// When the open transaction started.
    pub xact_start: Option<SystemTime>,
    /// When the current (or last) statement started.
    pub query_start: Option<SystemTime>,
    /// How long the current statement has run (`now() - query_start`), by the server's clock.
    pub duration: Option<Duration>,
}

/// A role to create (`CreateUser`). Build it with [`NewUser::new`], which validates.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Validated role name.
    pub name: RoleName,
    /// Chosen password; `None` asks the gateway to generate one.
    pub password: Option<Secret>,
    /// `SUPERUSER` instead of `NOSUPERUSER`.
    pub superuser: bool,
    /// `LOGIN` instead of `NOLOGIN`.
    pub login: bool,
}

/// The result of `CreateUser`.
#[derive(Debug, Clone)]
pub struct CreatedUser {
    /// The role that now exists.
    pub name: RoleName,
    /// The generated password, returned once; `None` when the caller chose one.
    pub generated_password: Option<Secret>,
}

pub use super::validate::RoleName;
