//! The PostgreSQL driver of the gateway.
//!
//! Layout: `connect` opens ephemeral connections under deadlines and the per-target cap;
//! `tls` maps `sslmode` onto rustls; `sql` holds every statement; `inspect`, `admin` and
//! `collect` map rows to the model; `classify` maps errors to reasons. This file wires them
//! into the gateway traits and holds the decisions (not found, refused, permission denied).

mod admin;
mod classify;
mod collect;
mod connect;
mod inspect;
pub mod sql;
mod tls;

use std::time::Duration;

use tokio_postgres::Client;

pub use connect::{APPLICATION_NAME, Access, Credentials, Limits, MAX_CONNECTIONS_PER_TARGET};

use self::admin::{Signal, SignalOutcome};
use self::connect::Connector;
use super::validate;
use super::{
    Administrator, Collection, Collector, Column, CreatedUser, Database, Deadline, GatewayError,
    Inspector, NewUser, ServerHealth, Session, SessionFilter, Table,
};
use crate::config::TargetConfig;

/// Default for the server-side `idle_in_transaction_session_timeout` floor: Mesa never leaves a
/// transaction open, so this only bounds a bug. The effective value is the larger of this and
/// the collection timeout.
const MIN_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Gateway to one PostgreSQL server.
#[derive(Debug)]
pub struct PostgresGateway {
    connector: Connector,
    database: String,
    monitor: Credentials,
    admin: Option<Credentials>,
}

impl PostgresGateway {
    /// Builds the gateway for a configured target; loads its TLS roots.
    pub fn new(target: &TargetConfig) -> Result<Self, GatewayError> {
        let (tls, ssl_mode) = tls::connector(target.sslmode, target.sslrootcert.as_deref())?;
        let c = &target.collection;
        let limits = Limits {
            connect_timeout: c.connect_timeout,
            statement_timeout: c.statement_timeout,
            lock_timeout: c.lock_timeout,
            idle_in_transaction_timeout: c.timeout.max(MIN_IDLE_IN_TRANSACTION_TIMEOUT),
        };
        Ok(Self {
            connector: Connector::new(target.host.clone(), target.port, limits, tls, ssl_mode),
            database: target.database.clone(),
            monitor: Credentials {
                user: target.username.clone(),
                password: target.password.clone(),
            },
            admin: target.admin.as_ref().map(|a| Credentials {
                user: a.username.clone(),
                password: a.password.clone(),
            }),
        })
    }

    /// `host:port` of the server.
    pub fn endpoint(&self) -> String {
        self.connector.endpoint()
    }

    /// Credentials for mutations: the target's `admin` login when configured.
    fn admin_credentials(&self) -> &Credentials {
        self.admin.as_ref().unwrap_or(&self.monitor)
    }

    /// Opens a connection, runs `work` on it under `deadline`, and closes it.
    async fn with_connection<T>(
        &self,
        creds: &Credentials,
        database: &str,
        access: Access,
        deadline: Deadline,
        work: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, GatewayError> {
        let mut conn = self
            .connector
            .open(creds, database, access, &deadline)
            .await?;
        let (client, driver) = conn.split();
        let result = driver.run(&deadline, work(client)).await;
        conn.close().await;
        result
    }

    async fn signal(
        &self,
        signal: Signal,
        pid: i32,
        deadline: Deadline,
    ) -> Result<(), GatewayError> {
        validate::pid(pid)?;
        let outcome = self
            .with_connection(
                self.admin_credentials(),
                &self.database,
                Access::ReadOnly,
                deadline,
                async |client| admin::signal(client, signal, pid).await,
            )
            .await?;
        let verb = match signal {
            Signal::Terminate => "terminate",
            Signal::Cancel => "cancel",
        };
        match outcome {
            None => Err(GatewayError::NotFound {
                what: format!("backend pid {pid}"),
            }),
            Some(SignalOutcome { is_self: true, .. }) => Err(GatewayError::Refused {
                reason: format!("pid {pid} is Mesa's own connection"),
            }),
            Some(SignalOutcome {
                signalled: None,
                backend_type: None,
                ..
            }) => Err(GatewayError::Refused {
                reason: format!(
                    "the admin role cannot see what kind of process pid {pid} is; grant it pg_read_all_stats (or pg_monitor) so Mesa can tell client sessions from server processes"
                ),
            }),
            Some(SignalOutcome {
                signalled: None,
                backend_type: Some(kind),
                ..
            }) => Err(GatewayError::Refused {
                reason: format!(
                    "pid {pid} is a {kind} process, not a client backend; Mesa only signals client sessions"
                ),
            }),
            Some(SignalOutcome {
                signalled: Some(true),
                ..
            }) => Ok(()),
            // PostgreSQL raises 42501 for missing privileges (classified before we get here);
            // `false` means the signal could not be delivered, which in practice is a backend
            // that exited between the check and the signal.
            Some(SignalOutcome {
                signalled: Some(false),
                ..
            }) => Err(GatewayError::NotFound {
                what: format!(
                    "backend pid {pid} (it exited before it could be signalled to {verb})"
                ),
            }),
        }
    }
}

impl Inspector for PostgresGateway {
    async fn databases(&self, deadline: Deadline) -> Result<Vec<Database>, GatewayError> {
        self.with_connection(
            &self.monitor,
            &self.database,
            Access::ReadOnly,
            deadline,
            async |c| inspect::databases(c).await,
        )
        .await
    }

    async fn tables(&self, database: &str, deadline: Deadline) -> Result<Vec<Table>, GatewayError> {
        validate::object_name("database", database)?;
        self.with_connection(
            &self.monitor,
            database,
            Access::ReadOnly,
            deadline,
            async |c| inspect::tables(c).await,
        )
        .await
    }

    async fn columns(
        &self,
        database: &str,
        schema: &str,
        table: &str,
        deadline: Deadline,
    ) -> Result<Vec<Column>, GatewayError> {
        validate::object_name("database", database)?;
        validate::object_name("schema", schema)?;
        validate::object_name("table", table)?;
        self.with_connection(
            &self.monitor,
            database,
            Access::ReadOnly,
            deadline,
            async |c| inspect::columns(c, schema, table).await,
        )
        .await?
        .ok_or_else(|| GatewayError::NotFound {
            what: format!("table {schema}.{table} in database {database}"),
        })
    }
}

impl Administrator for PostgresGateway {
    async fn server_health(&self, deadline: Deadline) -> Result<ServerHealth, GatewayError> {
        self.with_connection(
            &self.monitor,
            &self.database,
            Access::ReadOnly,
            deadline,
            async |c| admin::server_health(c).await,
        )
        .await
    }

    async fn sessions(
        &self,
        filter: SessionFilter,
        deadline: Deadline,
    ) -> Result<Vec<Session>, GatewayError> {
        if filter.limit == 0 || filter.limit > SessionFilter::MAX_LIMIT {
            return Err(GatewayError::InvalidInput {
                field: "limit",
                problem: format!("must be between 1 and {}", SessionFilter::MAX_LIMIT),
            });
        }
        self.with_connection(
            &self.monitor,
            &self.database,
            Access::ReadOnly,
            deadline,
            async |c| admin::sessions(c, filter).await,
        )
        .await
    }

    async fn terminate(&self, pid: i32, deadline: Deadline) -> Result<(), GatewayError> {
        self.signal(Signal::Terminate, pid, deadline).await
    }

    async fn cancel(&self, pid: i32, deadline: Deadline) -> Result<(), GatewayError> {
        self.signal(Signal::Cancel, pid, deadline).await
    }

    async fn create_user(
        &self,
        user: NewUser,
        deadline: Deadline,
    ) -> Result<CreatedUser, GatewayError> {
        let (password, generated) = match &user.password {
            Some(chosen) => (chosen.clone(), None),
            None => {
                let fresh = validate::generate_password()?;
                (fresh.clone(), Some(fresh))
            }
        };
        let statement = admin::create_role_statement(&user, &password);
        self.with_connection(
            self.admin_credentials(),
            &self.database,
            Access::ReadWrite,
            deadline,
            async |c| c.execute(statement.as_str(), &[]).await,
        )
        .await
        .map_err(|e| match e.sqlstate() {
            Some("42710") => GatewayError::AlreadyExists {
                what: format!("role {}", user.name),
            },
            _ => e,
        })?;
        Ok(CreatedUser {
            name: user.name,
            generated_password: generated,
        })
    }
}

impl Collector for PostgresGateway {
    async fn collect(&self, deadline: Deadline) -> Result<Collection, GatewayError> {
        self.with_connection(
            &self.monitor,
            &self.database,
            Access::ReadOnly,
            deadline,
            async |c| collect::collection(c).await,
        )
        .await
    }
}
