//! Turns a tokio-postgres error into a [`GatewayError`] with the right [`FailureReason`].
//!
//! Server errors are classified by SQLSTATE. tokio-postgres keeps its other error kinds
//! private, so TLS and client-side authentication failures are recognised by the kind's fixed
//! text, which this module's tests pin.

use crate::gateway::{FailureReason, GatewayError};

/// Prefix tokio-postgres prints for `Kind::Tls`.
const TLS_PREFIX: &str = "error performing TLS handshake";
/// Prefix tokio-postgres prints for `Kind::Authentication`.
const AUTH_PREFIX: &str = "authentication error";

/// Classifies `err` from a connection to `endpoint`.
pub(crate) fn classify(err: tokio_postgres::Error, endpoint: &str) -> GatewayError {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code().to_owned();
        return GatewayError::Server {
            reason: FailureReason::from_sqlstate(&code),
            message: db.message().to_owned(),
            code,
            source: Box::new(err),
        };
    }
    let text = err.to_string();
    if err.is_closed() {
        return GatewayError::Unreachable {
            endpoint: endpoint.to_owned(),
            detail: "the server closed the connection".to_owned(),
            source: Some(Box::new(err)),
        };
    }
    if text.starts_with(TLS_PREFIX) {
        return GatewayError::Tls {
            endpoint: endpoint.to_owned(),
            detail: text,
            source: Some(Box::new(err)),
        };
    }
    if text.starts_with(AUTH_PREFIX) {
        return GatewayError::Authentication {
            endpoint: endpoint.to_owned(),
            detail: text,
            source: Some(Box::new(err)),
        };
    }
    let io = std::error::Error::source(&err)
        .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
    if io {
        return GatewayError::Unreachable {
            endpoint: endpoint.to_owned(),
            detail: text,
            source: Some(Box::new(err)),
        };
    }
    GatewayError::Driver {
        detail: text,
        source: Box::new(err),
    }
}
