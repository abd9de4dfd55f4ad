//! The MySQL/MariaDB keys of a target: `ssl_mode`, `ssl_ca` and `socket`, with the MySQL
//! client's rules (verify_ca needs a CA bundle), and the host part of the accounts create
//! user makes (`account_host`, no wildcard unless `allow_wildcard_host`).

use std::path::Path;

use super::DriverKeys;
use crate::config::reader::{Fields, Problems};
use crate::gateway::mysql::{AccountHost, MysqlSpec, SslMode};

/// MySQL's part of the target block. No database is needed for server-wide statements
/// (`information_schema` and `SHOW` work in none), so the default is none.
pub(super) const KEYS: DriverKeys = DriverKeys {
    keys: &[
        "ssl_mode",
        "ssl_ca",
        "socket",
        "account_host",
        "allow_wildcard_host",
    ],
    default_port: 3306,
    default_database: "",
};

/// Reads the MySQL keys of `f`; `None` after reporting a problem.
pub(super) fn parse(f: &mut Fields, base: &Path, p: &mut Problems) -> Option<MysqlSpec> {
    let ssl_mode = match f.string("ssl_mode", p) {
        None => Some(SslMode::Preferred),
        Some(s) => match s.parse() {
            Ok(mode) => Some(mode),
            Err(()) => {
                p.add(
                    f.path_of("ssl_mode"),
                    format!(
                        "unknown ssl_mode {s:?}; expected one of: {}",
                        SslMode::NAMES
                    ),
                );
                None
            }
        },
    };
    let ssl_ca = f.path("ssl_ca", base, p);
    if let Some(cert) = ssl_ca.as_deref().filter(|c| !c.is_file()) {
        p.add(
            f.path_of("ssl_ca"),
            format!("{} is not a readable file", cert.display()),
        );
    }
    // As the MySQL client: verifying the chain without a CA of the server's would trust any
    // public CA's certificate for any host.
    if ssl_mode == Some(SslMode::VerifyCa) && ssl_ca.is_none() {
        p.add(
            f.path_of("ssl_mode"),
            "verify_ca needs ssl_ca (the CA that signs this server's certificate); without it any certificate from any public CA for any host would be accepted. Set ssl_ca, or use verify_identity to check the host name against the built-in CAs",
        );
    }
    let socket = f.path("socket", base, p);
    let allow_wildcard = f.bool("allow_wildcard_host", p).unwrap_or(false);
    let account_host = match f.string("account_host", p) {
        None => Some(AccountHost::localhost()),
        Some(raw) => match AccountHost::parse(&raw, allow_wildcard) {
            Ok(host) => Some(host),
            Err(problem) => {
                p.add(f.path_of("account_host"), problem);
                None
            }
        },
    };
    Some(MysqlSpec {
        ssl_mode: ssl_mode?,
        ssl_ca,
        socket,
        account_host: account_host?,
    })
}
