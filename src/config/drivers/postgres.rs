//! The PostgreSQL keys of a target: `sslmode`, `sslrootcert` and `channel_binding`, with
//! libpq's rules (verify-ca needs a root certificate; channel binding needs TLS).

use std::path::Path;

use super::DriverKeys;
use crate::config::reader::{Fields, Problems};
use crate::gateway::postgres::{ChannelBinding, PostgresSpec, SslMode};

/// PostgreSQL's part of the target block.
pub(super) const KEYS: DriverKeys = DriverKeys {
    keys: &["sslmode", "sslrootcert", "channel_binding"],
    default_port: 5432,
    default_database: "postgres",
};

/// Reads the PostgreSQL keys of `f`; `None` after reporting a problem.
pub(super) fn parse(f: &mut Fields, base: &Path, p: &mut Problems) -> Option<PostgresSpec> {
    let sslmode = match f.string("sslmode", p) {
        None => Some(SslMode::Prefer),
        Some(s) => match s.parse() {
            Ok(mode) => Some(mode),
            Err(()) => {
                p.add(
                    f.path_of("sslmode"),
                    format!("unknown sslmode {s:?}; expected one of: {}", SslMode::NAMES),
                );
                None
            }
        },
    };
    let sslrootcert = f.path("sslrootcert", base, p);
    if let Some(cert) = sslrootcert.as_deref().filter(|c| !c.is_file()) {
        p.add(
            f.path_of("sslrootcert"),
            format!("{} is not a readable file", cert.display()),
        );
    }
    // libpq refuses the system store below verify-full: with any public CA trusted and no
    // host name check, anyone's certificate for any host would pass.
    if sslmode == Some(SslMode::VerifyCa) && sslrootcert.is_none() {
        p.add(
            f.path_of("sslmode"),
            "verify-ca needs sslrootcert (the CA that signs this server's certificate); without it any certificate from any public CA for any host would be accepted. Set sslrootcert, or use verify-full to check the host name against the system's CAs",
        );
    }
    let channel_binding = match f.string("channel_binding", p) {
        None => sslmode.map(|m| ChannelBinding::default_for(m, sslrootcert.is_some())),
        Some(s) => match s.parse() {
            Ok(ChannelBinding::Require) if sslmode == Some(SslMode::Disable) => {
                p.add(
                    f.path_of("channel_binding"),
                    "require needs TLS, but sslmode is disable",
                );
                None
            }
            Ok(cb) => Some(cb),
            Err(()) => {
                p.add(
                    f.path_of("channel_binding"),
                    format!(
                        "unknown channel_binding {s:?}; expected one of: {}",
                        ChannelBinding::NAMES
                    ),
                );
                None
            }
        },
    };
    Some(PostgresSpec {
        sslmode: sslmode?,
        sslrootcert,
        channel_binding: channel_binding?,
    })
}
