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
    /// `VALID UNTIL` the server's `now()` plus this; `None`: no expiry.
    pub valid_for: Option<Duration>,
    /// Roles granted to it in the same transaction, each checked on the server first.
    pub member_of: Vec<RoleName>,
    /// `CONNECTION LIMIT`; `None`: unlimited.
    pub connection_limit: Option<u32>,
}

/// The result of `CreateUser`.
#[derive(Debug, Clone)]
pub struct CreatedUser {
    /// The role that now exists.
    pub name: RoleName,
    /// The generated password, returned once; `None` when the caller chose one.
    pub generated_password: Option<Secret>,
    /// When its password logins stop, by the server's clock; `None`: never.
    pub valid_until: Option<SystemTime>,
}

/// A role Mesa created, as the server records it (`ListManagedUsers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRole {
    /// Role name.
    pub name: String,
    /// When Mesa created it (from Mesa's mark on the role).
    pub created_at: Option<SystemTime>,
    /// `VALID UNTIL`; `None`: no expiry.
    pub valid_until: Option<SystemTime>,
    /// Whether it may log in (`NOLOGIN` once revoked or reaped).
    pub can_login: bool,
    /// Roles it is a member of.
    pub member_of: Vec<String>,
    /// Sessions open now.
    pub sessions: u32,
    /// `CONNECTION LIMIT`; `None`: unlimited.
    pub connection_limit: Option<u32>,
}

/// What dropping a managed role did (`DropManagedUser`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DroppedRole {
    /// Its sessions that were terminated first.
    pub sessions_terminated: u32,
}

/// One step the reaper took on an expired managed role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapStep {
    /// `NOLOGIN` set.
    Disabled,
    /// Sessions still open were terminated.
    Terminated,
    /// Dropped, `drop_after` past its expiry.
    Dropped,
    /// A step failed (the role owns objects, or the server refused); tried again next round.
    Failed,
}

impl ReapStep {
    /// The `action` label and audit action suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Terminated => "terminated",
            Self::Dropped => "dropped",
            Self::Failed => "failed",
        }
    }
}

/// One reaper step on one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// The role.
    pub role: String,
    /// What was done.
    pub step: ReapStep,
    /// Sessions terminated (for [`ReapStep::Terminated`]), else 0.
    pub sessions: u32,
    /// Why a step failed.
    pub detail: Option<String>,
}

pub use super::validate::RoleName;

/// Which signal a bulk call sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalMode {
    /// `pg_terminate_backend`: the session ends.
    Terminate,
    /// `pg_cancel_backend`: the running statement ends, the session stays.
    Cancel,
}

impl SignalMode {
    /// The API's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminate => "terminate",
            Self::Cancel => "cancel",
        }
    }
}

/// Which client sessions a bulk call matches; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMatch {
    /// `pg_stat_activity.state`, e.g. `idle in transaction`.
    pub state: Option<String>,
    /// In that state (since `state_change`) for longer than this.
    pub state_for_longer_than: Option<Duration>,
    /// The session's role.
    pub usename: Option<String>,
    /// Its `application_name`.
    pub application_name: Option<String>,
    /// Its database.
    pub datname: Option<String>,
}

/// A bulk signal request (`SignalMatching`). Build it with [`BulkSignal::new`], which validates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSignal {
    /// Which sessions.
    pub filter: SessionMatch,
    /// Terminate or cancel.
    pub mode: SignalMode,
    /// More matches than this: nothing is signalled.
    pub max_count: u32,
    /// List what would be signalled; signal nothing.
    pub dry_run: bool,
}

/// What happened to one matched session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkOutcome {
    /// Dry run: it would have been signalled.
    WouldSignal,
    /// Signalled.
    Signalled,
    /// Not signalled, and why (a superuser's, one of Mesa's own logins, ...).
    Skipped(String),
    /// It ended, or its pid now belongs to another backend, before it could be signalled.
    Gone,
}

/// One matched session and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkSession {
    /// Backend pid.
    pub pid: i32,
    /// The `backend_start` it was pinned by.
    pub backend_start: Option<SystemTime>,
    /// Its role.
    pub usename: Option<String>,
    /// Its database.
    pub datname: Option<String>,
    /// Its `application_name`.
    pub application_name: String,
    /// Its state when matched.
    pub state: Option<String>,
    /// Seconds in that state when matched.
    pub state_seconds: Option<f64>,
    /// What happened.
    pub outcome: BulkOutcome,
}
