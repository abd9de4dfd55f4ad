//! The driver-neutral database gateway.
//!
//! Two traits describe what Mesa asks of a database server: [`Inspector`] (structure:
//! databases, tables, columns) and [`Administrator`] (runtime: health, sessions, terminate,
//! cancel, create user). The scheduled collection is the `collectors` layer's: it asks a
//! driver for one session (`PostgresGateway::collection_session`) and runs its own statements
//! there, so the gateway knows nothing of metrics. [`Gateway`] is a closed enum over the
//! drivers: adding MySQL means adding a variant, and the compiler then lists every `match`
//! that must learn it. Nothing here knows HTTP or Prometheus.
//!
//! Every call takes a [`Deadline`]; drivers open an ephemeral connection per call, bound the
//! number of connections per target, and cancel server-side work when the deadline passes.

pub mod error;
pub mod model;
pub mod mysql;
pub mod postgres;
pub mod spec;
pub mod validate;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use error::{FailureReason, GatewayError};
pub use model::*;
pub use spec::{CommonSpec, Credentials, DriverSpec, Limits, TargetSpec};
pub use validate::{ObjectName, Pid, SessionLimit};

/// A point in time by which a call must finish, with the budget it was created from (for
/// error messages), and optionally a cancellation token that ends the call early (shutdown).
/// Built on tokio's clock so paused-time tests control it.
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
    cancel: Option<CancellationToken>,
}

/// Why a [`Deadline`] ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The time ran out.
    Timeout,
    /// The cancellation token fired (shutdown or reload).
    Cancelled,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
            budget,
            cancel: None,
        }
    }

    /// The same deadline, also ended by `token`.
    pub fn with_cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The instant it expires.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The budget it was created with.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The earlier of this deadline and `limit` from now; keeps the original budget when this
    /// deadline is the earlier one. The cancellation token carries over.
    pub fn capped(&self, limit: Duration) -> Self {
        let other = Instant::now() + limit;
        if other < self.at {
            Self {
                at: other,
                budget: limit,
                cancel: self.cancel.clone(),
            }
        } else {
            self.clone()
        }
    }

    /// Resolves when the deadline passes or its token is cancelled, saying which.
    pub async fn expired(&self) -> Expiry {
        let cancelled = async {
            match &self.cancel {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(self.at) => Expiry::Timeout,
            () = cancelled => Expiry::Cancelled,
        }
    }

    /// Runs `work` until it finishes or the deadline expires.
    pub async fn bound<T>(&self, work: impl Future<Output = T>) -> Result<T, Expiry> {
        tokio::select! {
            biased;
            out = work => Ok(out),
            why = self.expired() => Err(why),
        }
    }

    /// The error of a wait this deadline ended (`why`) while `phase` ran.
    pub fn error(&self, why: Expiry, phase: &'static str) -> GatewayError {
        match why {
            Expiry::Timeout => GatewayError::Timeout {
                phase,
                limit: self.budget,
            },
            Expiry::Cancelled => GatewayError::Cancelled { phase },
        }
    }

    /// A permit of `slots` (a driver's connection cap), waited for until this deadline;
    /// `phase` names the wait in the error. A closed semaphore is the gateway shutting down.
    pub async fn permit(
        &self,
        slots: &std::sync::Arc<tokio::sync::Semaphore>,
        phase: &'static str,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, GatewayError> {
        self.bound(slots.clone().acquire_owned())
            .await
            .map_err(|why| self.error(why, phase))?
            .map_err(|_| GatewayError::Refused {
                reason: "the gateway is shutting down".to_owned(),
            })
    }
}

/// The database drivers Mesa speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    /// PostgreSQL 10 and later.
    Postgres,
    /// MySQL 8.0 and later, MariaDB 10.6 and later.
    Mysql,
}

impl Driver {
    /// Every driver, each at its [`Driver::index`] (checked below, at compile time). The
    /// accepted names and parsing come from this list.
    pub const ALL: [Driver; 2] = [Self::Postgres, Self::Mysql];

    /// Names accepted in the config's `driver` key.
    pub fn supported() -> Vec<&'static str> {
        Self::ALL.iter().map(|d| d.as_str()).collect()
    }

    /// The config name of this driver.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }

    /// Its position in [`Driver::ALL`], for per-driver tables.
    pub const fn index(self) -> usize {
        match self {
            Self::Postgres => 0,
            Self::Mysql => 1,
        }
    }

    /// The most connections its gateway opens to one target at once (collection and admin
    /// calls together); what the descriptor budget plans for.
    pub fn max_connections_per_target(self) -> usize {
        match self {
            Self::Postgres => postgres::MAX_CONNECTIONS_PER_TARGET,
            Self::Mysql => mysql::MAX_CONNECTIONS_PER_TARGET,
        }
    }

    /// The descriptors one of its connections holds: a PostgreSQL connection keeps a second
    /// descriptor of its socket, to see the server end the session before its slot is freed.
    pub fn descriptors_per_connection(self) -> usize {
        match self {
            Self::Postgres => 2,
            Self::Mysql => 1,
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Each driver of `Driver::ALL` sits at its index, so per-driver tables index it directly.
const _: () = {
    let mut i = 0;
    while i < Driver::ALL.len() {
        assert!(
            Driver::ALL[i].index() == i,
            "Driver::ALL out of index order"
        );
        i += 1;
    }
};

/// An unknown driver name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid driver {given:?}; supported drivers: {}", Driver::supported().join(", "))]
pub struct InvalidDriver {
    /// The name that was given.
    pub given: String,
}

impl FromStr for Driver {
    type Err = InvalidDriver;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| InvalidDriver {
                given: s.to_owned(),
            })
    }
}

/// Which sessions [`Administrator::sessions`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionFilter {
    /// At most this many rows.
    pub limit: SessionLimit,
    /// Include `idle` sessions too.
    pub include_idle: bool,
}

impl Default for SessionFilter {
    fn default() -> Self {
        Self {
            limit: SessionLimit::DEFAULT,
            include_idle: false,
        }
    }
}

/// The backend a signal is meant for: its pid, and optionally the start time the caller saw
/// (from the session list), so a pid reused by a new backend in between is never hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendRef {
    /// Process id.
    pub pid: Pid,
    /// `backend_start` as listed, to the microsecond.
    pub backend_start: Option<std::time::SystemTime>,
}

impl BackendRef {
    /// Just the pid.
    pub fn pid(pid: Pid) -> Self {
        Self {
            pid,
            backend_start: None,
        }
    }
}

/// Structure of a server: databases, tables, columns.
pub trait Inspector {
    /// Non-template databases with owner, encoding and size.
    fn databases(
        &self,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<Database>, GatewayError>> + Send;

    /// Tables and views of `database`, system schemas excluded.
    fn tables(
        &self,
        database: &ObjectName,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<Table>, GatewayError>> + Send;

    /// Columns of `schema.table` in `database`, in table order.
    fn columns(
        &self,
        database: &ObjectName,
        schema: &ObjectName,
        table: &ObjectName,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<Column>, GatewayError>> + Send;
}

/// Runtime administration of a server.
pub trait Administrator {
    /// Version, connection limits, client sessions and uptime.
    fn server_health(
        &self,
        deadline: Deadline,
    ) -> impl Future<Output = Result<ServerHealth, GatewayError>> + Send;

    /// Client sessions, oldest statement first; never Mesa's own.
    fn sessions(
        &self,
        filter: SessionFilter,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<Session>, GatewayError>> + Send;

    /// Terminates the client backend `backend`; never a superuser's.
    fn terminate(
        &self,
        backend: BackendRef,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;

    /// Cancels the running statement of client backend `backend`, keeping the session; never
    /// a superuser's.
    fn cancel(
        &self,
        backend: BackendRef,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;

    /// Creates a role, marked as Mesa's on the server, with its expiry and memberships (each
    /// checked on the server, in the same transaction); the password never crosses the wire
    /// in plaintext.
    fn create_user(
        &self,
        user: NewUser,
        deadline: Deadline,
    ) -> impl Future<Output = Result<CreatedUser, GatewayError>> + Send;

    /// The roles Mesa created (by the mark on the server, so any replica's).
    fn managed_users(
        &self,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<ManagedRole>, GatewayError>> + Send;

    /// Revokes a managed role: `NOLOGIN`, its sessions terminated, dropped. Never `postgres`,
    /// Mesa's own logins, a superuser or an unmanaged role.
    fn drop_user(
        &self,
        name: &RoleName,
        deadline: Deadline,
    ) -> impl Future<Output = Result<DroppedRole, GatewayError>> + Send;

    /// Sets a new password on a managed role (`None`: generate one, returned once).
    fn rotate_password(
        &self,
        name: &RoleName,
        password: Option<crate::secret::Secret>,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Option<crate::secret::Secret>, GatewayError>> + Send;

    /// Terminates or cancels every client session matching `request.filter` (at most
    /// `max_count`, else nothing), each checked and pinned as [`Self::terminate`] is; a dry
    /// run only lists them.
    fn signal_matching(
        &self,
        request: &BulkSignal,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<BulkSession>, GatewayError>> + Send;

    /// One reaper round: managed roles past their expiry lose LOGIN and their sessions, and
    /// are dropped `drop_after` past it.
    fn reap(
        &self,
        drop_after: Duration,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Vec<Reaped>, GatewayError>> + Send;
}

/// One target's gateway, whatever its driver.
#[derive(Debug)]
pub enum Gateway {
    /// A PostgreSQL server.
    Postgres(postgres::PostgresGateway),
    /// A MySQL or MariaDB server.
    Mysql(mysql::MysqlGateway),
}

/// Binds `$g` to the driver's gateway inside `$gateway` and evaluates `$body`: the one place
/// every delegated call learns a new driver's variant (the `match` is exhaustive, so the
/// compiler points here).
macro_rules! each_driver {
    ($gateway:expr, $g:ident => $body:expr) => {
        match $gateway {
            Gateway::Postgres($g) => $body,
            Gateway::Mysql($g) => $body,
        }
    };
}

impl Gateway {
    /// The factory: builds the driver the target's spec names, every session of it under
    /// `limits` (the target's collection settings give them: `CollectionSettings::limits`).
    pub fn for_target(target: &TargetSpec, limits: Limits) -> Result<Self, GatewayError> {
        match &target.driver {
            DriverSpec::Postgres(spec) => Ok(Self::Postgres(postgres::PostgresGateway::new(
                &target.common,
                spec,
                limits,
            )?)),
            DriverSpec::Mysql(spec) => Ok(Self::Mysql(mysql::MysqlGateway::new(
                &target.common,
                spec,
                limits,
            )?)),
        }
    }

    /// Which driver speaks to the server.
    pub fn driver(&self) -> Driver {
        match self {
            Self::Postgres(_) => Driver::Postgres,
            Self::Mysql(_) => Driver::Mysql,
        }
    }

    /// Closes the target's kept collection session, if any (its loop ended: reload,
    /// shutdown).
    pub async fn close_kept(&self) {
        each_driver!(self, g => g.close_kept().await)
    }

    /// The database the target's collections connect to (its `database`).
    pub fn database(&self) -> &str {
        each_driver!(self, g => g.database())
    }

    /// `host:port` of the server.
    pub fn endpoint(&self) -> String {
        each_driver!(self, g => g.endpoint())
    }
}

impl Inspector for Gateway {
    async fn databases(&self, deadline: Deadline) -> Result<Vec<Database>, GatewayError> {
        each_driver!(self, g => g.databases(deadline).await)
    }

    async fn tables(
        &self,
        database: &ObjectName,
        deadline: Deadline,
    ) -> Result<Vec<Table>, GatewayError> {
        each_driver!(self, g => g.tables(database, deadline).await)
    }

    async fn columns(
        &self,
        database: &ObjectName,
        schema: &ObjectName,
        table: &ObjectName,
        deadline: Deadline,
    ) -> Result<Vec<Column>, GatewayError> {
        each_driver!(self, g => g.columns(database, schema, table, deadline).await)
    }
}

impl Administrator for Gateway {
    async fn server_health(&self, deadline: Deadline) -> Result<ServerHealth, GatewayError> {
        each_driver!(self, g => g.server_health(deadline).await)
    }

    async fn sessions(
        &self,
        filter: SessionFilter,
        deadline: Deadline,
    ) -> Result<Vec<Session>, GatewayError> {
        each_driver!(self, g => g.sessions(filter, deadline).await)
    }

    async fn terminate(&self, backend: BackendRef, deadline: Deadline) -> Result<(), GatewayError> {
        each_driver!(self, g => g.terminate(backend, deadline).await)
    }

    async fn cancel(&self, backend: BackendRef, deadline: Deadline) -> Result<(), GatewayError> {
        each_driver!(self, g => g.cancel(backend, deadline).await)
    }

    async fn create_user(
        &self,
        user: NewUser,
        deadline: Deadline,
    ) -> Result<CreatedUser, GatewayError> {
        each_driver!(self, g => g.create_user(user, deadline).await)
    }

    async fn managed_users(&self, deadline: Deadline) -> Result<Vec<ManagedRole>, GatewayError> {
        each_driver!(self, g => g.managed_users(deadline).await)
    }

    async fn drop_user(
        &self,
        name: &RoleName,
        deadline: Deadline,
    ) -> Result<DroppedRole, GatewayError> {
        each_driver!(self, g => g.drop_user(name, deadline).await)
    }

    async fn rotate_password(
        &self,
        name: &RoleName,
        password: Option<crate::secret::Secret>,
        deadline: Deadline,
    ) -> Result<Option<crate::secret::Secret>, GatewayError> {
        each_driver!(self, g => g.rotate_password(name, password, deadline).await)
    }

    async fn signal_matching(
        &self,
        request: &BulkSignal,
        deadline: Deadline,
    ) -> Result<Vec<BulkSession>, GatewayError> {
        each_driver!(self, g => g.signal_matching(request, deadline).await)
    }

    async fn reap(
        &self,
        drop_after: Duration,
        deadline: Deadline,
    ) -> Result<Vec<Reaped>, GatewayError> {
        each_driver!(self, g => g.reap(drop_after, deadline).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_never_reads_the_config_or_the_http_layers() {
        // The gateway is the bottom layer: config and http depend on it, never the reverse.
        fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("source folder") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gateway"),
            &mut files,
        );
        assert!(files.len() > 5, "{files:?}");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source");
            for layer in ["config", "http", "scheduler", "metrics", "collectors"] {
                let path = format!("crate::{layer}");
                assert!(!text.contains(&path), "{} uses {path}", file.display());
            }
        }
    }

    #[test]
    fn unknown_driver_lists_supported() {
        let err = "oracle".parse::<Driver>().expect_err("no oracle driver");
        assert_eq!(
            err.to_string(),
            "invalid driver \"oracle\"; supported drivers: postgres, mysql"
        );
        assert_eq!("postgres".parse::<Driver>(), Ok(Driver::Postgres));
        assert_eq!("mysql".parse::<Driver>(), Ok(Driver::Mysql));
    }
}
