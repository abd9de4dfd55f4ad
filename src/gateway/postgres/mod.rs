//! The PostgreSQL driver of the gateway.
//!
//! Layout: `connect` opens ephemeral connections under deadlines and the per-target cap;
//! `tls` maps `sslmode` onto rustls; `sql` holds every statement; `inspect`, `admin` and
//! `collect` map rows to the model; `classify` maps errors to reasons. This file wires them
//! into the gateway traits and holds the decisions (not found, refused, permission denied).

mod admin;
mod administrator;
mod bulk;
mod classify;
mod connect;
mod hold;
mod inspect;
mod redact;
mod roles;
pub mod spec;
pub mod sql;
mod text;
mod tls;

use tokio_postgres::Client;

pub use connect::{
    APPLICATION_NAME, Access, MAX_ADMIN_CONNECTIONS_PER_TARGET, MAX_CONNECTIONS_PER_TARGET, Purpose,
};

use self::connect::{Conn, Connector};
pub use self::spec::{ChannelBinding, PostgresSpec, SslMode};
pub(crate) use self::text::TextColumns;
use super::spec::{KEPT_SESSION_LIFETIME, SessionMode};
use super::{Column, Database, Deadline, GatewayError, Inspector, ObjectName, Table};
use super::{CommonSpec, Credentials, Limits};

/// tokio-postgres' spelling of the config's channel binding.
fn channel_binding(cb: ChannelBinding) -> tokio_postgres::config::ChannelBinding {
    match cb {
        ChannelBinding::Disable => tokio_postgres::config::ChannelBinding::Disable,
        ChannelBinding::Prefer => tokio_postgres::config::ChannelBinding::Prefer,
        ChannelBinding::Require => tokio_postgres::config::ChannelBinding::Require,
    }
}

/// Gateway to one PostgreSQL server.
#[derive(Debug)]
pub struct PostgresGateway {
    connector: Connector,
    database: String,
    monitor: Credentials,
    admin: Option<Credentials>,
    /// The collection session kept between collections ([`SessionMode::Kept`]).
    kept: tokio::sync::Mutex<Option<KeptSession>>,
}

/// A collection session kept open, when it was opened, and the statements prepared on it.
struct KeptSession {
    conn: Conn,
    opened: tokio::time::Instant,
    prepared: StatementCache,
}

/// Statements prepared on one session, by SQL text, for the collectors to reuse: on a kept
/// session the server parses and plans a collection's statements once, not every interval,
/// and the collection skips the round trip that prepared them. Only statements that read
/// `pg_catalog` alone belong here (their names cannot be redirected); a statement checked
/// against a relation's OID is prepared afresh every time.
#[derive(Default)]
pub struct StatementCache(
    std::collections::HashMap<std::borrow::Cow<'static, str>, tokio_postgres::Statement>,
);

impl StatementCache {
    /// The statement prepared for `sql`, if any.
    pub fn get(&self, sql: &str) -> Option<tokio_postgres::Statement> {
        self.0.get(sql).cloned()
    }

    /// Keeps `statement`, prepared for `sql`.
    pub fn keep(
        &mut self,
        sql: std::borrow::Cow<'static, str>,
        statement: tokio_postgres::Statement,
    ) {
        self.0.insert(sql, statement);
    }

    /// Forgets the statement prepared for `sql` (it failed: prepared afresh next time).
    pub fn forget(&mut self, sql: &str) {
        self.0.remove(sql);
    }
}

impl KeptSession {
    /// Whether it may be used again: younger than [`KEPT_SESSION_LIFETIME`] and still open.
    fn fit(&mut self) -> bool {
        self.opened.elapsed() < KEPT_SESSION_LIFETIME && self.conn.alive()
    }
}

impl std::fmt::Debug for KeptSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptSession")
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

impl PostgresGateway {
    /// Builds the gateway for a target; loads its TLS roots.
    pub fn new(
        target: &CommonSpec,
        pg: &PostgresSpec,
        limits: Limits,
    ) -> Result<Self, GatewayError> {
        let (tls, ssl_mode) = tls::connector(pg.sslmode, pg.sslrootcert.as_deref())?;
        Ok(Self {
            connector: Connector::new(
                target.host.clone(),
                target.port,
                limits,
                tls,
                ssl_mode,
                channel_binding(pg.channel_binding),
            ),
            database: target.database.clone(),
            monitor: target.monitor.clone(),
            admin: target.admin.clone(),
            kept: tokio::sync::Mutex::new(None),
        })
    }

    /// The target's connection limits and server-side timeouts.
    pub fn limits(&self) -> crate::gateway::Limits {
        self.connector.limits()
    }

    /// `host:port` of the server.
    pub fn endpoint(&self) -> String {
        self.connector.endpoint()
    }

    /// Credentials for mutations: the target's `admin` login when configured.
    fn admin_credentials(&self) -> &Credentials {
        self.admin.as_ref().unwrap_or(&self.monitor)
    }

    /// A read of the target's database as the monitoring login (health, sessions, the
    /// inspector's databases, managed roles): [`Self::with_connection`], read-only.
    async fn monitor_read<T>(
        &self,
        deadline: Deadline,
        work: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, GatewayError> {
        self.with_connection(
            &self.monitor,
            &self.database,
            Access::ReadOnly,
            Purpose::Admin,
            deadline,
            work,
        )
        .await
    }

    /// Opens a connection, runs `work` on it under `deadline`, and closes it.
    async fn with_connection<T>(
        &self,
        creds: &Credentials,
        database: &str,
        access: Access,
        purpose: Purpose,
        deadline: Deadline,
        work: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, GatewayError> {
        let mut conn = self
            .connector
            .open(creds, database, access, purpose, &deadline)
            .await?;
        let (client, driver) = conn.split();
        let result = driver.run(&deadline, work(client)).await;
        conn.close().await;
        result
    }
}

impl Inspector for PostgresGateway {
    async fn databases(&self, deadline: Deadline) -> Result<Vec<Database>, GatewayError> {
        self.monitor_read(deadline, async |c| inspect::databases(c).await)
            .await
    }

    async fn tables(
        &self,
        database: &ObjectName,
        deadline: Deadline,
    ) -> Result<Vec<Table>, GatewayError> {
        self.with_connection(
            &self.monitor,
            database.as_str(),
            Access::ReadOnly,
            Purpose::Admin,
            deadline,
            async |c| inspect::tables(c).await,
        )
        .await
    }

    async fn columns(
        &self,
        database: &ObjectName,
        schema: &ObjectName,
        table: &ObjectName,
        deadline: Deadline,
    ) -> Result<Vec<Column>, GatewayError> {
        self.with_connection(
            &self.monitor,
            database.as_str(),
            Access::ReadOnly,
            Purpose::Admin,
            deadline,
            async |c| inspect::columns(c, schema.as_str(), table.as_str()).await,
        )
        .await?
        .ok_or_else(|| GatewayError::NotFound {
            what: format!("table {schema}.{table} in database {database}"),
        })
    }
}

impl PostgresGateway {
    /// Runs a scheduled collection's `work` on one read-only connection to the target's
    /// database as the monitoring login, under `deadline`; `work` also gets the server's
    /// `server_version_num` (from the startup parameters, no round trip). The collectors
    /// layer decides what to send.
    ///
    /// With [`SessionMode::Kept`] (the default) the session outlives the collection: the next
    /// one reuses it, unless it ended meanwhile (a terminated or restarted backend closes its
    /// socket, which the check before reuse sees) or is older than [`KEPT_SESSION_LIFETIME`].
    /// Any error closes it.
    pub async fn collection_session<T>(
        &self,
        deadline: Deadline,
        work: impl AsyncFnOnce(&Client, u32, &mut StatementCache) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, GatewayError> {
        if self.connector.limits().session == SessionMode::Ephemeral {
            return self
                .monitoring_session(&self.database, Purpose::Collection, deadline, work)
                .await;
        }
        // Only the target's scheduler collects, one collection at a time; a visit to the
        // target's own database may hold the session ([`Self::visit_session`]). The collection
        // waits for it (a login refused by a full server would read as the server down). It
        // logs in on a session of its own only when the wait leaves a whole connect timeout
        // before its deadline: a login started with less would mostly be abandoned midway.
        let fallback_at = deadline
            .at()
            .checked_sub(self.connector.limits().connect_timeout)
            .filter(|at| *at > tokio::time::Instant::now());
        let waited = match fallback_at {
            Some(at) => tokio::time::timeout_at(at, self.kept.lock()).await.ok(),
            None => match deadline.bound(self.kept.lock()).await {
                Ok(slot) => Some(slot),
                Err(why) => {
                    return Err(deadline.error(why, "waiting for the kept collection session"));
                }
            },
        };
        let Some(mut slot) = waited else {
            return self
                .monitoring_session(&self.database, Purpose::Collection, deadline, work)
                .await;
        };
        let reused = match slot.take() {
            Some(mut kept) => {
                if kept.fit() {
                    Some(kept)
                } else {
                    kept.conn.close().await;
                    None
                }
            }
            None => None,
        };
        let mut kept = match reused {
            Some(kept) => kept,
            None => self.open_kept(&deadline).await?,
        };
        let version = kept.conn.server_version_num();
        let (client, driver) = kept.conn.split();
        let result = driver
            .run(&deadline, work(client, version, &mut kept.prepared))
            .await;
        match result {
            Ok(value) => {
                *slot = Some(kept);
                Ok(value)
            }
            Err(e) => {
                kept.conn.close().await;
                Err(e)
            }
        }
    }

    async fn open_kept(&self, deadline: &Deadline) -> Result<KeptSession, GatewayError> {
        let conn = self
            .connector
            .open(
                &self.monitor,
                &self.database,
                Access::ReadOnly,
                Purpose::Collection,
                deadline,
            )
            .await?;
        Ok(KeptSession {
            conn,
            opened: tokio::time::Instant::now(),
            prepared: StatementCache::default(),
        })
    }

    /// Closes the kept collection session, if any (reload, shutdown).
    pub async fn close_kept(&self) {
        if let Some(kept) = self.kept.lock().await.take() {
            kept.conn.close().await;
        }
    }

    /// Like [`Self::collection_session`], in `datname` on the spare slot (a database visit:
    /// the server collection's slot stays free).
    ///
    /// A visit to the target's own database works on the kept collection session when it is
    /// idle: no login, and a backend whose catalog caches are warm. It holds the session's
    /// slot meanwhile (a collection that starts waits, see [`Self::collection_session`]).
    pub async fn visit_session<T>(
        &self,
        datname: &str,
        deadline: Deadline,
        work: impl AsyncFnOnce(&Client, u32, &mut StatementCache) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, GatewayError> {
        if datname == self.database && self.connector.limits().session == SessionMode::Kept {
            let spare = self.connector.spare_permit(&deadline).await?;
            // Held, not taken: a collection that starts meanwhile waits for it.
            if let Ok(mut slot) = self.kept.try_lock()
                && let Some(kept) = slot.as_mut()
                && kept.fit()
            {
                let version = kept.conn.server_version_num();
                let (client, driver) = kept.conn.split();
                let result = driver
                    .run(&deadline, work(client, version, &mut kept.prepared))
                    .await;
                if result.is_err()
                    && let Some(kept) = slot.take()
                {
                    kept.conn.close().await;
                }
                drop(spare);
                return result;
            }
            // Released before `open` takes it again.
            drop(spare);
        }
        self.monitoring_session(datname, Purpose::Visit, deadline, work)
            .await
    }

    /// The database collections connect to.
    pub fn database(&self) -> &str {
        &self.database
    }

    async fn monitoring_session<T>(
        &self,
        datname: &str,
        purpose: Purpose,
        deadline: Deadline,
        work: impl AsyncFnOnce(&Client, u32, &mut StatementCache) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, GatewayError> {
        let mut conn = self
            .connector
            .open(&self.monitor, datname, Access::ReadOnly, purpose, &deadline)
            .await?;
        let version = conn.server_version_num();
        let (client, driver) = conn.split();
        let mut prepared = StatementCache::default();
        let result = driver
            .run(&deadline, work(client, version, &mut prepared))
            .await;
        // Its statements go with the session (dropping them sends nothing the closed
        // session could still need).
        drop(prepared);
        conn.close().await;
        result
    }
}

/// A statement text fit for metrics and logs: string literals and anything after a password
/// keyword masked (the rule of the admin API's session list).
pub fn redact_query(text: String) -> String {
    redact::query_text(text)
}

/// Bytes of a text column as text: unchanged when valid UTF-8 without a backslash, otherwise
/// escaped losslessly (`text.rs`).
pub fn escape_text(bytes: &[u8]) -> String {
    text::escape(bytes)
}

/// Classifies a driver error from a connection to `endpoint` (for callers that run their own
/// statements through [`PostgresGateway::collection_session`]).
pub fn classify_error(err: tokio_postgres::Error, endpoint: &str) -> GatewayError {
    classify::classify(err, endpoint)
}
