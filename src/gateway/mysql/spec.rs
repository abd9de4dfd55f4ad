//! The MySQL/MariaDB part of a target ([`MysqlSpec`]): TLS as the MySQL client's `ssl-mode`
//! spells it, the CA bundle, and an optional Unix socket. The config's MySQL parser
//! (`config/drivers/mysql.rs`) builds it from the target's keys.

use std::path::PathBuf;
use std::str::FromStr;

/// A MySQL/MariaDB target's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlSpec {
    /// TLS mode.
    pub ssl_mode: SslMode,
    /// CA bundle that signs the server's certificate (`verify_ca`, `verify_identity`).
    pub ssl_ca: Option<PathBuf>,
    /// A Unix socket to connect through instead of `host:port`.
    pub socket: Option<PathBuf>,
    /// The host part of the accounts create user makes (`'name'@'host'`).
    pub account_host: AccountHost,
}

/// The host part of an account Mesa creates: a host name, an IP address or an IP with a
/// netmask. MySQL's wildcards (`%`, `_`) only when the config says `allow_wildcard_host`: an
/// account for `%` logs in from anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountHost(String);

impl AccountHost {
    /// The default: the server's own machine only.
    pub fn localhost() -> Self {
        Self("localhost".to_owned())
    }

    /// Validates `raw`; the error says what is wrong.
    pub fn parse(raw: &str, allow_wildcard: bool) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 255 {
            return Err("must be 1 to 255 characters".to_owned());
        }
        if let Some(c) = raw.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '/' | '%' | '_'))
        }) {
            return Err(format!(
                "{c:?} is not allowed; a host name, an IP address or an IP/netmask"
            ));
        }
        if !allow_wildcard && raw.contains(['%', '_']) {
            return Err(format!(
                "{raw:?} holds a MySQL wildcard (% or _), which lets the account log in from many hosts; set allow_wildcard_host: true to allow it"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The host as MySQL spells it (unquoted).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The MySQL client's `--ssl-mode` values, in Mesa's snake case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only; for local development.
    Disabled,
    /// TLS when the server offers it, unverified (the MySQL client's default).
    Preferred,
    /// TLS required, unverified.
    Required,
    /// TLS with a chain to `ssl_ca`.
    VerifyCa,
    /// TLS with a trusted chain and a certificate for the host name.
    VerifyIdentity,
}

impl SslMode {
    /// The accepted spellings, for messages.
    pub const NAMES: &'static str = "disabled, preferred, required, verify_ca, verify_identity";
}

impl FromStr for SslMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "disabled" => Ok(Self::Disabled),
            "preferred" => Ok(Self::Preferred),
            "required" => Ok(Self::Required),
            "verify_ca" => Ok(Self::VerifyCa),
            "verify_identity" => Ok(Self::VerifyIdentity),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AccountHost, SslMode};

    #[test]
    fn account_hosts_are_names_or_addresses_and_wildcards_only_when_allowed() {
        for ok in [
            "localhost",
            "10.0.0.5",
            "db-1.example.com",
            "10.0.0.0/255.0.0.0",
            "::1",
        ] {
            assert_eq!(
                AccountHost::parse(ok, false).map(|h| h.0),
                Ok(ok.to_owned())
            );
        }
        for bad in ["", "a'b", "a b", "x\\y", "h\"", "a;b"] {
            assert!(AccountHost::parse(bad, true).is_err(), "{bad}");
        }
        for wild in ["%", "10.0.0.%", "app_host"] {
            let err = AccountHost::parse(wild, false).expect_err(wild);
            assert!(err.contains("allow_wildcard_host"), "{err}");
            assert!(AccountHost::parse(wild, true).is_ok(), "{wild}");
        }
    }

    #[test]
    fn every_listed_name_parses_and_nothing_else() {
        for name in SslMode::NAMES.split(", ") {
            assert!(name.parse::<SslMode>().is_ok(), "{name}");
        }
        for bad in ["DISABLED", "verify-ca", "prefer", ""] {
            assert!(bad.parse::<SslMode>().is_err(), "{bad}");
        }
    }
}
