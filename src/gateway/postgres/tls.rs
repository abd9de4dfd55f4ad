//! PostgreSQL's `sslmode` on Mesa's TLS client (`crate::tls::client`), as libpq means it:
//!
//! | sslmode | encrypts | verifies chain | verifies host name |
//! |---|---|---|---|
//! | `disable` | no | - | - |
//! | `prefer` | if the server offers it | no | no |
//! | `require` | yes | only with `sslrootcert` (as libpq) | no |
//! | `verify-ca` | yes | yes (`sslrootcert` required at load) | no |
//! | `verify-full` | yes | yes | yes |
//!
//! Roots come from `sslrootcert` when set, else from the system store (libpq's
//! `sslrootcert=system`, allowed only with `verify-full`).

use std::path::Path;

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::SslMode;
use crate::gateway::GatewayError;
use crate::tls::{ServerVerification, TlsError, client_config};

/// The connector and the protocol-level mode tokio-postgres should use.
pub(crate) fn connector(
    mode: SslMode,
    rootcert: Option<&Path>,
) -> Result<(MakeRustlsConnect, PgSslMode), GatewayError> {
    let verification = match (mode, rootcert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            ServerVerification::None
        }
        (SslMode::Require | SslMode::VerifyCa, _) => ServerVerification::Chain,
        (SslMode::VerifyFull, _) => ServerVerification::Full,
    };
    let config = client_config(verification, rootcert).map_err(tls_setup)?;
    let pg_mode = match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    };
    Ok((MakeRustlsConnect::new(config), pg_mode))
}

fn tls_setup(e: TlsError) -> GatewayError {
    let endpoint = match &e {
        TlsError::Read { path, .. } | TlsError::Pem { path, .. } => path.display().to_string(),
        TlsError::NoSystemRoots => "system trust store".to_owned(),
        TlsError::Rustls(_) | TlsError::ClientCa(_) | TlsError::Config(_) => "rustls".to_owned(),
    };
    GatewayError::Tls {
        endpoint,
        detail: e.to_string(),
        source: Some(Box::new(e)),
    }
}
