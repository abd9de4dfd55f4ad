//! What the gateway needs to reach one server, independent of where it came from: the
//! [`TargetSpec`], a part every driver shares ([`CommonSpec`]: endpoint, database, logins)
//! and a driver's own part ([`DriverSpec`], one variant per driver, each defined in
//! its driver's folder). The config layer builds it (the target's driver keys go to that
//! driver's parser, `config/drivers/`); the gateway never reads the config, so the dependency
//! runs one way (config -> gateway) and the gateway stays the bottom layer every driver shares.

use std::time::Duration;

use super::Driver;
use crate::secret::Secret;

/// The floor of the server-side `idle_in_transaction_session_timeout`: Mesa never leaves a
/// transaction open, so this only bounds a bug. The effective value is the larger of this and
/// the collection timeout.
pub const MIN_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Login for a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Role name.
    pub user: String,
    /// Password, if the server asks for one.
    pub password: Option<Secret>,
}

/// Server-side and connect limits for every session of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// TCP connect plus startup and authentication.
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout`.
    pub statement_timeout: Duration,
    /// Server-side `lock_timeout`.
    pub lock_timeout: Duration,
    /// Server-side `idle_in_transaction_session_timeout`.
    pub idle_in_transaction_timeout: Duration,
    /// Whether the collection session is kept between collections.
    pub session: SessionMode,
}

/// How a target's collection session lives (`collection.session`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SessionMode {
    /// One read-only session per target, kept open between collections: no login per
    /// collection (a login costs the server more CPU than the collection's statements). Closed
    /// on any error, on reload and shutdown, and after [`KEPT_SESSION_LIFETIME`].
    #[default]
    Kept,
    /// A new session per collection, closed after it.
    Ephemeral,
}

/// The longest a kept collection session lives before it is closed and opened anew (so a
/// server-side change to the role or its settings is picked up, and no backend grows forever).
pub const KEPT_SESSION_LIFETIME: Duration = Duration::from_secs(600);

/// The part of a target every driver has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSpec {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database for server-wide statements.
    pub database: String,
    /// The monitoring login.
    pub monitor: Credentials,
    /// A separate login for mutations, if any.
    pub admin: Option<Credentials>,
}

/// A driver's own settings for a target; the variant names the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverSpec {
    /// PostgreSQL: TLS and channel binding as libpq spells them.
    Postgres(super::postgres::spec::PostgresSpec),
    /// MySQL/MariaDB: TLS as the MySQL client's `ssl-mode`, a socket.
    Mysql(super::mysql::spec::MysqlSpec),
}

impl DriverSpec {
    /// The driver this spec is for.
    pub fn driver(&self) -> Driver {
        match self {
            Self::Postgres(_) => Driver::Postgres,
            Self::Mysql(_) => Driver::Mysql,
        }
    }
}

/// One server as the gateway reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// What every driver has.
    pub common: CommonSpec,
    /// The driver and its own settings.
    pub driver: DriverSpec,
}
