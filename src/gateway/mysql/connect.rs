//! Connections to one MySQL/MariaDB server: the connection cap with its spare slot, the
//! session settings every connection pins, TLS as `ssl_mode` says, and the deadline of each
//! statement (server-side `max_statement_time` / `max_execution_time`, then `KILL QUERY` from a
//! second connection when Mesa's own deadline passes first).

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Row, SslOpts};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::classify::{NO_TLS, classify};
use super::spec::{MysqlSpec, SslMode};
use crate::gateway::{CommonSpec, Credentials, Deadline, GatewayError, Limits};

/// At most this many connections to one target at once: the collection's and one for admin
/// calls (as for PostgreSQL targets).
pub const MAX_CONNECTIONS_PER_TARGET: usize = 2;
/// Of those, how many admin calls may hold: the rest is the collection's, always free for it.
const MAX_ADMIN_CONNECTIONS_PER_TARGET: usize = 1;
/// How long the `KILL QUERY` of a statement past its deadline may take.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a graceful close (`COM_QUIT`) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// What a connection is for: a collection takes a shared slot; an admin call first takes the
/// spare slot, so it never takes the one the collection needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The scheduled collection.
    Collection,
    /// An admin API call.
    Admin,
}

/// Whether the session may write. Monitoring sessions are read-only on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `SET SESSION TRANSACTION READ ONLY`.
    ReadOnly,
    /// Writes allowed (CREATE USER, KILL).
    ReadWrite,
}

/// Which server family answers: the statement deadline's variable differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB: `max_statement_time` (seconds, every statement).
    Mariadb,
    /// MySQL: `max_execution_time` (milliseconds, `SELECT` only).
    Mysql,
}

/// Opens connections to one server.
pub struct Connector {
    common: CommonSpec,
    spec: MysqlSpec,
    limits: Limits,
    slots: Arc<Semaphore>,
    admin_slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint())
            .field("limits", &self.limits)
            .field("ssl_mode", &self.spec.ssl_mode)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for the target's endpoint with the given limits and TLS.
    pub fn new(common: &CommonSpec, spec: &MysqlSpec, limits: Limits) -> Self {
        Self {
            common: common.clone(),
            spec: spec.clone(),
            limits,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_TARGET)),
            admin_slots: Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS_PER_TARGET)),
        }
    }

    /// The target's monitoring and admin logins.
    pub fn common(&self) -> &CommonSpec {
        &self.common
    }

    /// `host:port`, or the socket's path, for messages. Never contains credentials.
    pub fn endpoint(&self) -> String {
        match &self.spec.socket {
            Some(path) => path.display().to_string(),
            None if self.common.host.contains(':') => {
                format!("[{}]:{}", self.common.host, self.common.port)
            }
            None => format!("{}:{}", self.common.host, self.common.port),
        }
    }

    /// The session settings a connection pins before its first statement: the statement
    /// deadline on the server, lock waits no longer than it, UTC, a fixed `sql_mode` (so no
    /// tenant-set mode changes how Mesa's statements parse), read-only for monitoring.
    fn settings(&self, flavor: Flavor, access: Access) -> String {
        let statement = self.limits.statement_timeout;
        let lock_secs = self.limits.lock_timeout.as_secs().max(1);
        let deadline = match flavor {
            Flavor::Mariadb => format!("max_statement_time = {:.3}", statement.as_secs_f64()),
            Flavor::Mysql => format!("max_execution_time = {}", statement.as_millis().max(1)),
        };
        let mut sql = format!(
            "SET SESSION {deadline}, lock_wait_timeout = {lock_secs}, \
             innodb_lock_wait_timeout = {lock_secs}, time_zone = '+00:00', \
             sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
        );
        if access == Access::ReadOnly {
            sql.push_str(match flavor {
                Flavor::Mariadb => ", tx_read_only = 1",
                Flavor::Mysql => ", transaction_read_only = 1",
            });
        }
        sql
    }

    fn opts(&self, creds: &Credentials, tls: Option<SslOpts>) -> Opts {
        let database = (!self.common.database.is_empty()).then(|| self.common.database.clone());
        let mut b = OptsBuilder::default()
            .user(Some(creds.user.clone()))
            .pass(creds.password.as_ref().map(|p| p.expose().to_owned()))
            .db_name(database)
            // Never switch to a socket the server names: the target says where to connect.
            .prefer_socket(false)
            .stmt_cache_size(0)
            .ssl_opts(tls)
            .tcp_nodelay(true);
        b = match &self.spec.socket {
            Some(path) => b.socket(Some(path.display().to_string())),
            None => b
                .ip_or_hostname(self.common.host.clone())
                .tcp_port(self.common.port),
        };
        Opts::from(b)
    }

    /// The TLS options `ssl_mode` asks for; `None` for plaintext.
    fn tls(&self) -> Option<SslOpts> {
        let roots = || {
            let base = SslOpts::default();
            match &self.spec.ssl_ca {
                Some(ca) => base
                    .with_root_certs(vec![ca.clone().into()])
                    .with_disable_built_in_roots(true),
                None => base,
            }
        };
        match self.spec.ssl_mode {
            SslMode::Disabled => None,
            // The MySQL client's meaning: encrypted, the certificate not checked.
            SslMode::Preferred | SslMode::Required => {
                Some(SslOpts::default().with_danger_accept_invalid_certs(true))
            }
            SslMode::VerifyCa => Some(roots().with_danger_skip_domain_validation(true)),
            SslMode::VerifyIdentity => Some(roots()),
        }
    }

    /// Opens one connection as `creds` for `purpose`, within the connect timeout and
    /// `deadline`, and pins its session settings.
    pub async fn open(
        &self,
        creds: &Credentials,
        access: Access,
        purpose: Purpose,
        deadline: &Deadline,
    ) -> Result<Session, GatewayError> {
        let admin_permit = match purpose {
            Purpose::Collection => None,
            Purpose::Admin => Some(
                deadline
                    .permit(
                        &self.admin_slots,
                        "waiting for the spare connection slot (admin calls)",
                    )
                    .await?,
            ),
        };
        let permit = deadline
            .permit(&self.slots, "waiting for a connection slot")
            .await?;
        let connect_deadline = deadline.capped(self.limits.connect_timeout);
        let conn = self.connect(creds, &connect_deadline).await?;
        let flavor = flavor_of(conn.server_version());
        let mut session = Session {
            conn: Some(conn),
            flavor,
            endpoint: self.endpoint(),
            kill: KillTarget {
                opts: self.opts(creds, self.tls()),
            },
            _permit: permit,
            _admin_permit: admin_permit,
        };
        session
            .drop_result(&self.settings(flavor, access), &connect_deadline)
            .await?;
        Ok(session)
    }

    /// TCP (or the socket), TLS as `ssl_mode` says, and the login; `preferred` falls back to
    /// plaintext only when the server offers no TLS at all.
    async fn connect(
        &self,
        creds: &Credentials,
        deadline: &Deadline,
    ) -> Result<Conn, GatewayError> {
        match self.attempt(creds, self.tls(), deadline).await {
            Err(GatewayError::Tls { detail, .. })
                if self.spec.ssl_mode == SslMode::Preferred && detail.contains(NO_TLS) =>
            {
                self.attempt(creds, None, deadline).await
            }
            other => other,
        }
    }

    async fn attempt(
        &self,
        creds: &Credentials,
        tls: Option<SslOpts>,
        deadline: &Deadline,
    ) -> Result<Conn, GatewayError> {
        deadline
            .bound(Conn::new(self.opts(creds, tls)))
            .await
            .map_err(|why| deadline.error(why, "connect"))?
            .map_err(|e| classify(e, &self.endpoint()))
    }
}

/// MariaDB numbers its releases from 10 on; MySQL's are 5.x, 8.x and 9.x.
pub(super) fn flavor_of(version: (u16, u16, u16)) -> Flavor {
    if version.0 >= 10 {
        Flavor::Mariadb
    } else {
        Flavor::Mysql
    }
}

/// One statement for [`Session::run`].
enum Op<'a> {
    /// Its rows; with parameters, as a prepared statement.
    Rows(&'a str, Option<Params>),
    /// Text protocol, rows dropped.
    Drop(&'a str),
}

/// How to reach the server again to end a statement past its deadline.
struct KillTarget {
    opts: Opts,
}

/// One open connection with its slot. Dropped, it closes (the driver sends `COM_QUIT` in the
/// background); [`Session::close`] waits for that.
pub struct Session {
    conn: Option<Conn>,
    flavor: Flavor,
    endpoint: String,
    kill: KillTarget,
    // Released last, after the connection is closed, so the cap counts real connections.
    _permit: OwnedSemaphorePermit,
    _admin_permit: Option<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &self.endpoint)
            .field("flavor", &self.flavor)
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// MariaDB or MySQL.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The server's connection id of this session (`CONNECTION_ID()`).
    pub fn id(&self) -> Option<u32> {
        self.conn.as_ref().map(Conn::id)
    }

    /// Whether the connection can still run statements.
    pub fn usable(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.is_disconnected())
    }

    /// The rows of `sql` (text protocol: one round trip), by `deadline`.
    pub async fn rows(&mut self, sql: &str, deadline: &Deadline) -> Result<Vec<Row>, GatewayError> {
        self.run(deadline, Op::Rows(sql, None)).await
    }

    /// The rows of `sql` with `params` bound (a prepared statement), by `deadline`.
    pub async fn rows_with(
        &mut self,
        sql: &str,
        params: Params,
        deadline: &Deadline,
    ) -> Result<Vec<Row>, GatewayError> {
        self.run(deadline, Op::Rows(sql, Some(params))).await
    }

    /// Runs `sql` (text protocol), dropping any rows, by `deadline`.
    pub async fn drop_result(
        &mut self,
        sql: &str,
        deadline: &Deadline,
    ) -> Result<(), GatewayError> {
        self.run(deadline, Op::Drop(sql)).await.map(|_| ())
    }

    /// Runs one statement until it finishes, fails or `deadline` passes. Past the deadline
    /// the statement is ended on the server too (`KILL QUERY` from a second, short
    /// connection), and this connection is dropped: it is only fit to close. A fatal error
    /// (the connection broke) drops it too.
    async fn run(&mut self, deadline: &Deadline, op: Op<'_>) -> Result<Vec<Row>, GatewayError> {
        let Some(mut conn) = self.conn.take() else {
            return Err(GatewayError::Unreachable {
                endpoint: self.endpoint.clone(),
                detail: "the connection was already closed".to_owned(),
                source: None,
            });
        };
        let id = conn.id();
        let work = async {
            match op {
                Op::Rows(sql, None) => conn.query::<Row, _>(sql).await,
                Op::Rows(sql, Some(params)) => conn.exec::<Row, _, _>(sql, params).await,
                Op::Drop(sql) => conn.query_drop(sql).await.map(|()| Vec::new()),
            }
        };
        match deadline.bound(work).await {
            Ok(Ok(rows)) => {
                self.conn = Some(conn);
                Ok(rows)
            }
            Ok(Err(e)) => {
                if !e.is_fatal() {
                    self.conn = Some(conn);
                }
                Err(classify(e, &self.endpoint))
            }
            Err(why) => {
                drop(conn);
                kill_query(self.kill.opts.clone(), id).await;
                Err(deadline.error(why, "query"))
            }
        }
    }

    /// Closes gracefully (`COM_QUIT`), waiting up to a short limit.
    pub async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.disconnect()).await;
        }
    }
}

/// Column `i` of `row` as `T`; a value that does not convert is a decode error, never a panic.
pub(super) fn col<T: mysql_async::prelude::FromValue>(
    row: &Row,
    i: usize,
) -> Result<T, GatewayError> {
    match row.get_opt::<T, usize>(i) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(GatewayError::Driver {
            detail: format!("column {i}: {e}"),
            source: Box::new(e),
        }),
        None => Err(GatewayError::Driver {
            detail: format!("column {i} is missing"),
            source: "no such column".into(),
        }),
    }
}

/// Column `i` of `row` as text, whatever its type (bytes that are not UTF-8 read lossily;
/// NULL as empty): what `SHOW` statements return.
pub fn text(row: &Row, i: usize) -> Result<String, GatewayError> {
    col::<Option<Vec<u8>>>(row, i).map(|v| {
        v.map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    })
}

/// Ends the running statement of connection `id` from a new connection with the same login
/// (a login may end its own sessions' statements without any privilege). Best effort: the
/// server's own `max_statement_time` ends it anyway.
async fn kill_query(opts: Opts, id: u32) {
    let work = async move {
        let mut conn = Conn::new(opts).await?;
        conn.query_drop(format!("KILL QUERY {id}")).await?;
        conn.disconnect().await
    };
    if let Ok(Err(e)) = tokio::time::timeout(KILL_TIMEOUT, work).await {
        tracing::debug!(error = %e, id, "KILL QUERY after the deadline failed");
    }
}

#[cfg(test)]
mod tests {
    use super::{Flavor, flavor_of};

    #[test]
    fn mariadb_numbers_from_ten_mysql_below() {
        assert_eq!(flavor_of((10, 11, 19)), Flavor::Mariadb);
        assert_eq!(flavor_of((11, 4, 2)), Flavor::Mariadb);
        assert_eq!(flavor_of((8, 0, 36)), Flavor::Mysql);
        assert_eq!(flavor_of((9, 1, 0)), Flavor::Mysql);
    }
}
