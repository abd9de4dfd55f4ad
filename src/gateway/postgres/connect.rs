//! Ephemeral PostgreSQL connections: open, run under a deadline, close.
//!
//! Mesa never pools. Each gateway call opens one connection through [`Connector::open`], runs
//! its statements with [`Conn::run`], and closes it with [`Conn::close`]. The connection
//! future is polled inside the caller's task (never spawned), so when a call returns, its
//! connection is gone. A per-target semaphore caps concurrent connections at
//! [`MAX_CONNECTIONS_PER_TARGET`]; waiting for a slot counts against the deadline.
//!
//! Every session starts with `search_path` set to [`SAFE_SEARCH_PATH`] (see `sql.rs`).
//!
//! Timeouts live on both sides: startup parameters set `statement_timeout`, `lock_timeout` and
//! `idle_in_transaction_session_timeout` on the server, and the client deadline sends a cancel
//! request before dropping the connection, because dropping a future does not stop a query
//! that is already running on the server.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_postgres::config::{ChannelBinding as PgChannelBinding, SslMode as PgSslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{CancelToken, Client, Config as PgConfig};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::classify::classify;
use super::hold::{Abandoned, Hold, Permits, Startup, finish_abandoned};
use crate::gateway::{Credentials, Deadline, Expiry, GatewayError, Limits};

/// The origin spec's cap: at most two connections per target from this process, so a
/// collection and one admin call can overlap but Mesa never eats a small pool.
pub const MAX_CONNECTIONS_PER_TARGET: usize = 2;
/// Of those, admin calls and database visits together may hold at most this many at once:
/// the rest is the server collection's, so a burst of slow admin reads or a database that
/// hangs a visit can never make a collection wait for a slot (and miss its deadline). The
/// scheduler runs at most one collection and one visit per target at a time.
pub const MAX_ADMIN_CONNECTIONS_PER_TARGET: usize = 1;

/// Who a connection is for; decides which slots it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The scheduled collection.
    Collection,
    /// A visit to one database of the server (its database-scoped collectors).
    Visit,
    /// An admin API call (inspection, sessions, signals, create user).
    Admin,
}
/// How long a cancel request may take; it is one small packet on a fresh connection.
pub const CANCEL_TIMEOUT: Duration = Duration::from_millis(1000);
/// TCP keepalive: probe an idle connection after 30 s, every 10 s, give up after 3 misses, so
/// a black-holed server is noticed within a minute even without a deadline.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;
/// `search_path` of every Mesa session: only the system catalog, and the session's own
/// temporary schema last (PostgreSQL never searches it for functions or operators). No schema
/// a database user can create objects in is ever on it.
pub const SAFE_SEARCH_PATH: &str = "pg_catalog,pg_temp";
/// Settings every Mesa session starts with, whatever a database owner attached to its database
/// (`ALTER DATABASE ... SET`) or an administrator to a role: each one changes how Mesa's
/// statements behave. Values are written for the startup packet's `options` (a space is
/// escaped with a backslash). Beside these: `search_path`, the timeouts and
/// `default_transaction_read_only` (see `startup_options`). Not here:
/// `session_replication_role` (only a superuser may set it, and it acts on triggers of
/// writes, which Mesa's sessions never fire: CREATE ROLE fires none).
pub const PINNED_SETTINGS: &[(&str, &str)] = &[
    // A failed collector's statement would end the whole session (pg_up 0).
    ("exit_on_error", "off"),
    // With zero costs, JIT made a collection 50 times slower.
    ("jit", "off"),
    // The collection names its own isolation level; admin statements expect the default.
    ("default_transaction_isolation", "read\\ committed"),
    ("default_transaction_deferrable", "off"),
    // debug5 would stream server chatter at Mesa on every statement.
    ("client_min_messages", "warning"),
    // Text Mesa reads back (dates, intervals, floats) in one known form.
    ("DateStyle", "ISO,\\ MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "1"),
    // Off makes a query on a table with row security fail instead of filtering.
    ("row_security", "on"),
    // Mesa's literals (the SCRAM verifier, identifiers) are written for standard strings.
    ("standard_conforming_strings", "on"),
    ("transform_null_equals", "off"),
    // Catalog reads need no parallel workers, and a tenant's value would spend the server's.
    ("max_parallel_workers_per_gather", "0"),
    ("plan_cache_mode", "auto"),
];
/// Pinned settings that only newer servers have (and so only there can a tenant set them), as
/// for [`PINNED_SETTINGS`]. A server that refuses one at startup (42704, naming it) gets a
/// second startup without them, and the target's later sessions leave them out.
pub const NEWER_PINNED_SETTINGS: &[(&str, &str)] = &[
    // PostgreSQL 14 on. Would end Mesa's session between two statements.
    ("idle_session_timeout", "0"),
];
/// `application_name` on every connection, so DBAs can see (and filter) Mesa's sessions.
pub const APPLICATION_NAME: &str = "mesa";

type TlsStream = <MakeRustlsConnect as MakeTlsConnect<TcpStream>>::Stream;
type Connection = tokio_postgres::Connection<TcpStream, TlsStream>;

/// Whether the session may write. Monitoring sessions are read-only on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `default_transaction_read_only=on`.
    ReadOnly,
    /// Writes allowed (CREATE ROLE).
    ReadWrite,
}

/// Opens connections to one server.
pub struct Connector {
    host: String,
    port: u16,
    limits: Limits,
    tls: MakeRustlsConnect,
    ssl_mode: PgSslMode,
    channel_binding: PgChannelBinding,
    slots: Arc<Semaphore>,
    admin_slots: Arc<Semaphore>,
    /// The server refused one of [`NEWER_PINNED_SETTINGS`] at startup: later sessions leave
    /// them out.
    older_server: AtomicBool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint())
            .field("limits", &self.limits)
            .field("ssl_mode", &self.ssl_mode)
            .field("channel_binding", &self.channel_binding)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for `host:port` with the given limits and TLS.
    pub fn new(
        host: String,
        port: u16,
        limits: Limits,
        tls: MakeRustlsConnect,
        ssl_mode: PgSslMode,
        channel_binding: PgChannelBinding,
    ) -> Self {
        Self {
            host,
            port,
            limits,
            tls,
            ssl_mode,
            channel_binding,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_TARGET)),
            admin_slots: Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS_PER_TARGET)),
            older_server: AtomicBool::new(false),
        }
    }

    /// The session limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `host:port`, for messages. Never contains credentials.
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Opens one connection to `dbname` as `creds`, within the connect timeout and `deadline`.
    /// An admin connection or a visit first takes the spare slot, then a shared one.
    /// The spare slot's permit alone (admin calls and database visits share it), for a visit
    /// that runs on the kept collection session: while it holds the session, no admin call
    /// takes the slot the collection would need to open another.
    pub async fn spare_permit(
        &self,
        deadline: &Deadline,
    ) -> Result<OwnedSemaphorePermit, GatewayError> {
        deadline
            .permit(
                &self.admin_slots,
                "waiting for the spare connection slot (admin calls and database visits)",
            )
            .await
    }

    pub async fn open(
        &self,
        creds: &Credentials,
        dbname: &str,
        access: Access,
        purpose: Purpose,
        deadline: &Deadline,
    ) -> Result<Conn, GatewayError> {
        let admin_permit = match purpose {
            Purpose::Collection => None,
            Purpose::Visit | Purpose::Admin => Some(self.spare_permit(deadline).await?),
        };
        let permit = deadline
            .permit(&self.slots, "waiting for a connection slot")
            .await?;
        let connect_deadline = deadline.capped(self.limits.connect_timeout);
        let mut abandoned = None;
        let started = match self
            .start_session(
                creds,
                dbname,
                access,
                deadline,
                &connect_deadline,
                &mut abandoned,
            )
            .await
        {
            // An older server refuses the whole startup over a setting it lacks (13 has no
            // idle_session_timeout): once, note it and start again without the newer ones.
            Err(GatewayError::Server { code, message, .. })
                if code == "42704"
                    && NEWER_PINNED_SETTINGS
                        .iter()
                        .any(|(name, _)| message.contains(name))
                    && !self.older_server.swap(true, Ordering::Relaxed) =>
            {
                self.start_session(
                    creds,
                    dbname,
                    access,
                    deadline,
                    &connect_deadline,
                    &mut abandoned,
                )
                .await
            }
            other => other,
        };
        let permits = Permits::new(permit, admin_permit);
        let (client, connection, addr, watch) = match started {
            Ok(session) => session,
            Err(e) => {
                if let Some(abandoned) = abandoned {
                    finish_abandoned(abandoned, permits);
                }
                return Err(e);
            }
        };
        Ok(Conn {
            driver: Driver {
                cancel: client.cancel_token(),
                connection: Some(Box::pin(connection)),
                addr,
                host: self.host.clone(),
                tls: self.tls.clone(),
                endpoint: self.endpoint(),
                hold: Hold::new(watch, permits),
            },
            client,
        })
    }

    /// TCP, TLS, startup and authentication of one session.
    async fn start_session(
        &self,
        creds: &Credentials,
        dbname: &str,
        access: Access,
        deadline: &Deadline,
        connect_deadline: &Deadline,
        abandoned: &mut Option<Abandoned<Connection>>,
    ) -> Result<(Client, Connection, SocketAddr, Option<std::net::TcpStream>), GatewayError> {
        let (stream, addr) = self
            .tcp(connect_deadline, connect_deadline.at() == deadline.at())
            .await?;

        let mut config = PgConfig::new();
        config
            .user(&creds.user)
            .dbname(dbname)
            .application_name(APPLICATION_NAME)
            .options(self.startup_options(access))
            .ssl_mode(self.ssl_mode)
            .channel_binding(self.channel_binding);
        if let Some(password) = &creds.password {
            config.password(password.expose());
        }
        let mut make_tls = self.tls.clone();
        let tls = match <MakeRustlsConnect as MakeTlsConnect<TcpStream>>::make_tls_connect(
            &mut make_tls,
            &self.host,
        ) {
            Ok(tls) => tls,
            Err(never) => match never {},
        };
        // A second descriptor of the socket, kept for the connection's life: with it Mesa sees
        // the server close its side, which tells when the backend is gone (see `hold`).
        let watch = stream
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::net::TcpStream::from);
        let mut startup: Startup<Connection> =
            Box::pin(async move { config.connect_raw(stream, tls).await });
        let (client, connection) = match connect_deadline.bound(&mut startup).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(classify(e, &self.endpoint())),
            Err(why) => {
                // The caller lets it finish in the background, holding the slot until the
                // server's backend is gone.
                *abandoned = Some(Abandoned { startup, watch });
                return Err(expired(why, STARTUP_PHASE, connect_deadline));
            }
        };
        Ok((client, connection, addr, watch))
    }

    fn startup_options(&self, access: Access) -> String {
        let ms = |d: Duration| d.as_millis().max(1);
        // search_path first: a startup parameter overrides `ALTER DATABASE/ROLE ... SET
        // search_path`, so a database owner's schema is never searched for the names Mesa
        // sends (sql.rs explains the rule; this is its root). The same holds for every setting
        // after it: startup options win over what a tenant attached to its database or role,
        // and they apply before any statement runs.
        let mut options = format!(
            "-c search_path={SAFE_SEARCH_PATH} -c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            ms(self.limits.statement_timeout),
            ms(self.limits.lock_timeout),
            ms(self.limits.idle_in_transaction_timeout),
        );
        let newer: &[(&str, &str)] = if self.older_server.load(Ordering::Relaxed) {
            &[]
        } else {
            NEWER_PINNED_SETTINGS
        };
        for (name, value) in PINNED_SETTINGS.iter().chain(newer) {
            options.push_str(" -c ");
            options.push_str(name);
            options.push('=');
            options.push_str(value);
        }
        options.push_str(match access {
            Access::ReadOnly => " -c default_transaction_read_only=on",
            Access::ReadWrite => " -c default_transaction_read_only=off",
        });
        options
    }

    /// Resolves and connects TCP, trying each address in turn like libpq. Any failure here
    /// means the server is unreachable.
    /// When `caller_deadline` is set, the deadline is the caller's (shorter than the connect
    /// timeout), so running out of time is a `timeout`, not a sign the host is unreachable.
    async fn tcp(
        &self,
        deadline: &Deadline,
        caller_deadline: bool,
    ) -> Result<(TcpStream, SocketAddr), GatewayError> {
        let unreachable =
            |detail: String, source: Option<std::io::Error>| GatewayError::Unreachable {
                endpoint: self.endpoint(),
                detail,
                source: source.map(|e| Box::new(e) as _),
            };
        let attempt = async {
            let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| unreachable(format!("cannot resolve host: {e}"), Some(e)))?;
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => return Ok((stream, addr)),
                    Err(e) => last = Some(e),
                }
            }
            Err(match last {
                Some(e) => unreachable(e.to_string(), Some(e)),
                None => unreachable("host resolved to no address".to_owned(), None),
            })
        };
        let connected = match deadline.bound(attempt).await {
            Ok(connected) => connected,
            Err(why) if caller_deadline || why == Expiry::Cancelled => {
                return Err(expired(why, "TCP connect", deadline));
            }
            Err(_) => {
                return Err(unreachable(
                    format!("TCP connect timed out after {:?}", deadline.budget()),
                    None,
                ));
            }
        };
        let (stream, addr) = connected?;
        let keepalive = TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_RETRIES);
        let sock = SockRef::from(&stream);
        // Best effort: a socket without keepalive still works and is bounded by deadlines.
        let _ = sock.set_tcp_keepalive(&keepalive);
        let _ = stream.set_nodelay(true);
        Ok((stream, addr))
    }
}

/// One open connection: the client and the driver that polls its connection future.
pub struct Conn {
    driver: Driver,
    client: Client,
}

/// Everything of a connection except the client, so statements can borrow the client while
/// the driver polls the connection.
pub struct Driver {
    connection: Option<Pin<Box<Connection>>>,
    cancel: CancelToken,
    addr: SocketAddr,
    host: String,
    tls: MakeRustlsConnect,
    endpoint: String,
    // The slots, released only once the server has closed its side of the socket (the
    // backend is gone), so the cap counts backends on the server.
    hold: Hold,
}

impl Conn {
    /// The client, for statements, and the driver, to run them.
    pub fn split(&mut self) -> (&Client, &mut Driver) {
        (&self.client, &mut self.driver)
    }

    /// `server_version_num` from the `server_version` the server reported at startup
    /// (`15.18 (Debian ...)` is 150018; `9.6.24` is 90624); 0 if it cannot be read.
    pub fn server_version_num(&self) -> u32 {
        self.driver
            .connection
            .as_ref()
            .and_then(|c| c.parameter("server_version"))
            .map_or(0, version_num)
    }

    /// Whether the connection still looks open: polled once without waiting, it has not
    /// ended (the server closes an idle session it terminates, restarts or times out).
    pub fn alive(&mut self) -> bool {
        let Some(connection) = self.driver.connection.as_mut() else {
            return false;
        };
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if connection.as_mut().poll(&mut cx).is_pending() {
            true
        } else {
            self.driver.connection = None;
            false
        }
    }

    /// Closes gracefully (Terminate message); the connection's [`Hold`] keeps its slots until
    /// the server has closed its side of the socket, which it does only as the backend exits
    /// (tokio-postgres's connection ends as soon as Terminate is sent, not when the backend is
    /// gone): released earlier, a new connection would make three on the server for that
    /// moment.
    pub async fn close(self) {
        let Conn { driver, client } = self;
        drop(client);
        let Driver {
            connection, hold, ..
        } = driver;
        hold.close(async move {
            // Ok or Err, the connection is finished either way; nothing to report.
            if let Some(connection) = connection {
                let _ = connection.await;
            }
        })
        .await;
    }
}

impl Driver {
    /// Runs `work` (statements on the split-off client) until it finishes, the connection
    /// fails, or `deadline` passes. On the deadline a cancel request is sent so the server
    /// stops the statement too; the connection is then unusable and only fit to close (with
    /// `Conn::close`, which waits for the server to end the session).
    pub async fn run<T>(
        &mut self,
        deadline: &Deadline,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, GatewayError> {
        let Some(connection) = self.connection.as_mut() else {
            return Err(self.lost("the connection was already closed"));
        };
        tokio::pin!(work);
        let step = tokio::select! {
            biased;
            result = &mut work => Step::Done(result),
            ended = connection => Step::Ended(ended),
            why = deadline.expired() => Step::Expired(why),
        };
        match step {
            Step::Done(result) => result.map_err(|e| classify(e, &self.endpoint)),
            Step::Ended(ended) => {
                self.connection = None;
                Err(match ended {
                    Ok(()) => self.lost("the server closed the connection"),
                    Err(e) => classify(e, &self.endpoint),
                })
            }
            Step::Expired(why) => {
                self.cancel_on_server().await;
                // The connection is kept for `Conn::close`, which ends the session gracefully
                // and waits (`Hold::close`) for the server to close it: dropping the
                // socket here would release the connection slot while the server's backend
                // still runs (until it notices), so a new connection could briefly make
                // three. Callers never reuse a connection after an error.
                Err(expired(why, "query", deadline))
            }
        }
    }

    fn lost(&self, detail: &str) -> GatewayError {
        GatewayError::Unreachable {
            endpoint: self.endpoint.clone(),
            detail: detail.to_owned(),
            source: None,
        }
    }

    /// Sends PostgreSQL's cancel request on a fresh TCP connection to the same address.
    fn cancel_on_server(&self) -> impl Future<Output = ()> + Send + 'static {
        // Owned copies: the connection half of a driver is not `Sync`, so the future must not
        // borrow it.
        let (cancel, addr, host) = (self.cancel.clone(), self.addr, self.host.clone());
        let (mut make_tls, endpoint) = (self.tls.clone(), self.endpoint.clone());
        async move {
            let send = async {
                let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                let tls = match <MakeRustlsConnect as MakeTlsConnect<TcpStream>>::make_tls_connect(
                    &mut make_tls,
                    &host,
                ) {
                    Ok(tls) => tls,
                    Err(never) => match never {},
                };
                cancel
                    .cancel_query_raw(stream, tls)
                    .await
                    .map_err(|e| e.to_string())
            };
            match timeout(CANCEL_TIMEOUT, send).await {
                Ok(Ok(())) => tracing::debug!(%endpoint, "sent cancel request"),
                Ok(Err(e)) => tracing::warn!(%endpoint, error = %e, "cancel request failed"),
                Err(_) => tracing::warn!(%endpoint, "cancel request timed out"),
            }
        }
    }
}

/// How [`Driver::run`] ended.
enum Step<T> {
    Done(Result<T, tokio_postgres::Error>),
    Ended(Result<(), tokio_postgres::Error>),
    Expired(Expiry),
}

/// The error for a wait that `deadline` ended.
fn expired(why: Expiry, phase: &'static str, deadline: &Deadline) -> GatewayError {
    deadline.error(why, phase)
}

/// The phase of a session's startup packet and authentication, as errors name it.
const STARTUP_PHASE: &str = "startup and authentication";

/// Parses a `server_version` parameter into `server_version_num` form.
pub(crate) fn version_num(text: &str) -> u32 {
    let numeric: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    if major >= 10 {
        major * 10_000 + minor
    } else {
        major * 10_000 + minor * 100 + parts.next().unwrap_or(0)
    }
}

#[cfg(test)]
mod version_tests {
    use super::version_num;

    #[test]
    fn server_version_parameters_parse_like_server_version_num() {
        assert_eq!(version_num("15.18 (Debian 15.18-0+deb12u1)"), 150_018);
        assert_eq!(version_num("17.0"), 170_000);
        assert_eq!(version_num("13.2"), 130_002);
        assert_eq!(version_num("9.6.24"), 90_624);
        assert_eq!(version_num("18beta1"), 180_000);
        assert_eq!(version_num("garbage"), 0);
    }
}
