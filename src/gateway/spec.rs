//! What the gateway needs to reach one server, independent of where it came from: the
//! [`TargetSpec`]. The config layer builds it (`TargetConfig::spec`); the gateway never reads
//! the config, so the dependency runs one way (config -> gateway) and the gateway stays the
//! bottom layer a MySQL driver will share.

use std::path::PathBuf;
use std::str::FromStr;
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
}

/// One server as the gateway reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Which driver speaks to it.
    pub driver: Driver,
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
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA bundle for verification.
    pub sslrootcert: Option<PathBuf>,
    /// SCRAM channel binding.
    pub channel_binding: ChannelBinding,
    /// Timeouts of every session.
    pub limits: Limits,
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only; for local development.
    Disable,
    /// TLS when the server offers it, unverified.
    Prefer,
    /// TLS required; verified against `sslrootcert` only when one is given.
    Require,
    /// TLS with a trusted chain.
    VerifyCa,
    /// TLS with a trusted chain and matching host name.
    VerifyFull,
}

impl SslMode {
    /// The accepted spellings, for messages.
    pub const NAMES: &'static str = "disable, prefer, require, verify-ca, verify-full";
}

/// libpq's `channel_binding`: whether SCRAM must bind the login to the TLS channel
/// (`SCRAM-SHA-256-PLUS`), so a man in the middle cannot relay the authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    /// Never bind.
    Disable,
    /// Bind when the server offers it (libpq's default).
    Prefer,
    /// Refuse to log in without binding.
    Require,
}

impl ChannelBinding {
    /// The accepted spellings, for messages.
    pub const NAMES: &'static str = "disable, prefer, require";

    /// Mesa's default: `require` whenever the server is authenticated by its certificate
    /// (`verify-ca`, `verify-full`, or `require` with `sslrootcert`), because then binding is
    /// what stops an active attacker from downgrading the login and relaying it; `prefer`
    /// otherwise, as libpq.
    pub fn default_for(sslmode: SslMode, has_rootcert: bool) -> Self {
        match sslmode {
            SslMode::VerifyCa | SslMode::VerifyFull => Self::Require,
            SslMode::Require if has_rootcert => Self::Require,
            SslMode::Require | SslMode::Prefer | SslMode::Disable => Self::Prefer,
        }
    }
}

impl FromStr for ChannelBinding {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            _ => Err(()),
        }
    }
}

impl FromStr for SslMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err(()),
        }
    }
}
