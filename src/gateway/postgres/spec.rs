//! The PostgreSQL part of a target ([`PostgresSpec`]): TLS as libpq's `sslmode` and
//! `sslrootcert`, and SCRAM channel binding. The config's PostgreSQL parser
//! (`config/drivers/postgres.rs`) builds it from the target's keys.

use std::path::PathBuf;
use std::str::FromStr;

/// A PostgreSQL target's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSpec {
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA bundle for verification.
    pub sslrootcert: Option<PathBuf>,
    /// SCRAM channel binding.
    pub channel_binding: ChannelBinding,
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

/// Each spelling and its value.
const SSLMODES: [(&str, SslMode); 5] = [
    ("disable", SslMode::Disable),
    ("prefer", SslMode::Prefer),
    ("require", SslMode::Require),
    ("verify-ca", SslMode::VerifyCa),
    ("verify-full", SslMode::VerifyFull),
];

/// Each spelling and its value.
const CHANNEL_BINDINGS: [(&str, ChannelBinding); 3] = [
    ("disable", ChannelBinding::Disable),
    ("prefer", ChannelBinding::Prefer),
    ("require", ChannelBinding::Require),
];

/// The value spelled `s` in `table`.
fn spelled<T: Copy>(table: &[(&str, T)], s: &str) -> Result<T, ()> {
    table
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, value)| *value)
        .ok_or(())
}

impl FromStr for ChannelBinding {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        spelled(&CHANNEL_BINDINGS, s)
    }
}

impl FromStr for SslMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        spelled(&SSLMODES, s)
    }
}
