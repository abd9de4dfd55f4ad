//! The MySQL/MariaDB driver of the gateway.
//!
//! Layout: `spec` (the target's `ssl_mode`, `ssl_ca`, `socket`, account host), `connect`
//! (connections under the per-target cap, pinned session settings, statement deadlines with
//! `KILL QUERY`), `classify` (error numbers to reasons), `inspect` (`information_schema`),
//! `sessions` (the processlist, `KILL` with its refusals, bulk signals), `users` (create user
//! with a hashed password), `grants` (the roles it grants, checked), `redact` (query texts). This file wires them into the gateway
//! traits and keeps the collection session.
//!
//! What MySQL cannot do that PostgreSQL can, said where it applies: no owner of a database,
//! no start time of a session (a connection id is not reused while the server runs, so the id
//! pins it), and no per-account mark on MariaDB, so the lifecycle calls that act on Mesa's
//! accounts (list, revoke, rotate, reap) are refused rather than guessed.

mod classify;
mod connect;
mod facts;
mod grants;
mod inspect;
mod redact;
mod sessions;
pub mod spec;
mod users;

use std::time::Duration;

pub use connect::{Flavor, MAX_CONNECTIONS_PER_TARGET, Session, text};
pub use facts::ServerFacts;
pub use spec::{AccountHost, MysqlSpec, SslMode};

use self::connect::{Access, Connector, Purpose};
use super::spec::{KEPT_SESSION_LIFETIME, SessionMode};
use super::{
    Administrator, BackendRef, BulkSession, BulkSignal, Column, CommonSpec, CreatedUser,
    Credentials, Database, Deadline, DroppedRole, GatewayError, Inspector, Limits, ManagedRole,
    NewUser, ObjectName, Reaped, RoleName, ServerHealth, Session as ClientSession, SessionFilter,
    Table,
};

/// Gateway to one MySQL or MariaDB server.
#[derive(Debug)]
pub struct MysqlGateway {
    connector: Connector,
    spec: MysqlSpec,
    limits: Limits,
    /// The collection session kept between collections ([`SessionMode::Kept`]).
    kept: tokio::sync::Mutex<Option<Kept>>,
}

#[derive(Debug)]
struct Kept {
    session: Session,
    opened: tokio::time::Instant,
}

impl MysqlGateway {
    /// Builds the gateway for a target.
    pub fn new(
        target: &CommonSpec,
        spec: &MysqlSpec,
        limits: Limits,
    ) -> Result<Self, GatewayError> {
        Ok(Self {
            connector: Connector::new(target, spec, limits),
            spec: spec.clone(),
            limits,
            kept: tokio::sync::Mutex::new(None),
        })
    }

    /// `host:port` (or the socket) of the server.
    pub fn endpoint(&self) -> String {
        self.connector.endpoint()
    }

    /// The database collections connect to (empty: none).
    pub fn database(&self) -> &str {
        &self.connector.common().database
    }

    fn monitor(&self) -> &Credentials {
        &self.connector.common().monitor
    }

    /// Credentials for mutations: the target's `admin` login when configured.
    fn admin(&self) -> &Credentials {
        let common = self.connector.common();
        common.admin.as_ref().unwrap_or(&common.monitor)
    }

    /// The logins Mesa itself uses on this server: their sessions are never listed or
    /// signalled.
    fn own_users(&self) -> Vec<&str> {
        let common = self.connector.common();
        let mut out = vec![common.monitor.user.as_str()];
        if let Some(admin) = &common.admin {
            out.push(admin.user.as_str());
        }
        out
    }

    /// Opens a session as `creds`, runs `work` on it and closes it.
    async fn with_session<T>(
        &self,
        creds: &Credentials,
        access: Access,
        deadline: &Deadline,
        work: impl AsyncFnOnce(&mut Session) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let mut session = self
            .connector
            .open(creds, access, Purpose::Admin, deadline)
            .await?;
        let result = work(&mut session).await;
        session.close().await;
        result
    }

    /// A read as the monitoring login (health, sessions, the inspector).
    async fn monitor_read<T>(
        &self,
        deadline: &Deadline,
        work: impl AsyncFnOnce(&mut Session) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        self.with_session(self.monitor(), Access::ReadOnly, deadline, work)
            .await
    }

    /// Runs a scheduled collection's `work` on the monitoring login's read-only session.
    /// With [`SessionMode::Kept`] (the default) the session outlives the collection, unless
    /// it failed, ended meanwhile, or is older than [`KEPT_SESSION_LIFETIME`].
    pub async fn collection_session<T>(
        &self,
        deadline: Deadline,
        work: impl AsyncFnOnce(&mut Session, &Deadline) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let open = || {
            self.connector.open(
                self.monitor(),
                Access::ReadOnly,
                Purpose::Collection,
                &deadline,
            )
        };
        if self.limits.session == SessionMode::Ephemeral {
            let mut session = open().await?;
            let result = work(&mut session, &deadline).await;
            session.close().await;
            return result;
        }
        let mut slot = deadline
            .bound(self.kept.lock())
            .await
            .map_err(|why| deadline.error(why, "waiting for the kept collection session"))?;
        let reused = match slot.take() {
            Some(kept)
                if kept.opened.elapsed() < KEPT_SESSION_LIFETIME && kept.session.usable() =>
            {
                Some(kept)
            }
            Some(kept) => {
                kept.session.close().await;
                None
            }
            None => None,
        };
        let mut kept = match reused {
            Some(kept) => kept,
            None => Kept {
                session: open().await?,
                opened: tokio::time::Instant::now(),
            },
        };
        match work(&mut kept.session, &deadline).await {
            Ok(value) if kept.session.usable() => {
                *slot = Some(kept);
                Ok(value)
            }
            other => {
                kept.session.close().await;
                other
            }
        }
    }

    /// Closes the kept collection session, if any (reload, shutdown).
    pub async fn close_kept(&self) {
        if let Some(kept) = self.kept.lock().await.take() {
            kept.session.close().await;
        }
    }
}

/// A statement text fit for the admin API and logs: every quoted literal masked
/// (`redact.rs`).
pub fn redact_query(text: &str) -> String {
    redact::query_text(text)
}

impl Inspector for MysqlGateway {
    async fn databases(&self, deadline: Deadline) -> Result<Vec<Database>, GatewayError> {
        self.monitor_read(&deadline, async |s| inspect::databases(s, &deadline).await)
            .await
    }

    async fn tables(
        &self,
        database: &ObjectName,
        deadline: Deadline,
    ) -> Result<Vec<Table>, GatewayError> {
        self.monitor_read(&deadline, async |s| {
            inspect::tables(s, database.as_str(), &deadline).await
        })
        .await
    }

    async fn columns(
        &self,
        database: &ObjectName,
        schema: &ObjectName,
        table: &ObjectName,
        deadline: Deadline,
    ) -> Result<Vec<Column>, GatewayError> {
        let not_found = || GatewayError::NotFound {
            what: format!("table {schema}.{table} in database {database}"),
        };
        // MySQL has no schemas inside a database: a table's schema is its database.
        if schema.as_str() != database.as_str() {
            return Err(not_found());
        }
        self.monitor_read(&deadline, async |s| {
            inspect::columns(s, database.as_str(), table.as_str(), &deadline).await
        })
        .await?
        .ok_or_else(not_found)
    }
}

/// Why the lifecycle calls on Mesa's own accounts are refused on this driver.
const NO_MARK: &str = "MySQL and MariaDB keep no mark Mesa can set on an account, so it cannot tell the accounts it created from the others; list, revoke and rotate them with your own tooling (MariaDB and MySQL enforce a created account's password expiry themselves)";

impl Administrator for MysqlGateway {
    async fn server_health(&self, deadline: Deadline) -> Result<ServerHealth, GatewayError> {
        self.monitor_read(&deadline, async |s| sessions::health(s, &deadline).await)
            .await
    }

    async fn sessions(
        &self,
        filter: SessionFilter,
        deadline: Deadline,
    ) -> Result<Vec<ClientSession>, GatewayError> {
        self.monitor_read(&deadline, async |s| {
            sessions::list(s, filter, &self.own_users(), &deadline).await
        })
        .await
    }

    async fn terminate(&self, backend: BackendRef, deadline: Deadline) -> Result<(), GatewayError> {
        self.with_session(self.admin(), Access::ReadWrite, &deadline, async |s| {
            sessions::kill(
                s,
                backend,
                sessions::Kill::Connection,
                &self.own_users(),
                &deadline,
            )
            .await
        })
        .await
    }

    async fn cancel(&self, backend: BackendRef, deadline: Deadline) -> Result<(), GatewayError> {
        self.with_session(self.admin(), Access::ReadWrite, &deadline, async |s| {
            sessions::kill(
                s,
                backend,
                sessions::Kill::Query,
                &self.own_users(),
                &deadline,
            )
            .await
        })
        .await
    }

    async fn create_user(
        &self,
        user: NewUser,
        deadline: Deadline,
    ) -> Result<CreatedUser, GatewayError> {
        let plan = users::plan(user, &self.spec.account_host)?;
        self.with_session(self.admin(), Access::ReadWrite, &deadline, async |s| {
            users::create(s, plan, &deadline).await
        })
        .await
    }

    async fn managed_users(&self, _deadline: Deadline) -> Result<Vec<ManagedRole>, GatewayError> {
        Err(GatewayError::Refused {
            reason: NO_MARK.to_owned(),
        })
    }

    async fn drop_user(
        &self,
        _name: &RoleName,
        _deadline: Deadline,
    ) -> Result<DroppedRole, GatewayError> {
        Err(GatewayError::Refused {
            reason: NO_MARK.to_owned(),
        })
    }

    async fn rotate_password(
        &self,
        _name: &RoleName,
        _password: Option<crate::secret::Secret>,
        _deadline: Deadline,
    ) -> Result<Option<crate::secret::Secret>, GatewayError> {
        Err(GatewayError::Refused {
            reason: NO_MARK.to_owned(),
        })
    }

    async fn signal_matching(
        &self,
        request: &BulkSignal,
        deadline: Deadline,
    ) -> Result<Vec<BulkSession>, GatewayError> {
        self.with_session(self.admin(), Access::ReadWrite, &deadline, async |s| {
            sessions::signal_matching(s, request, &self.own_users(), &deadline).await
        })
        .await
    }

    /// Nothing to do on MySQL: the server itself refuses an expired password anything but a
    /// password change (`PASSWORD EXPIRE INTERVAL`), and without a mark on the account Mesa
    /// drops nothing it cannot prove it created.
    async fn reap(
        &self,
        _drop_after: Duration,
        _deadline: Deadline,
    ) -> Result<Vec<Reaped>, GatewayError> {
        Ok(Vec::new())
    }
}
