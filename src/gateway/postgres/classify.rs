//! Turns a tokio-postgres error into a [`GatewayError`] with the right [`FailureReason`].
//!
//! Server errors are classified by SQLSTATE ([`reason_of_sqlstate`], PostgreSQL's table: the
//! neutral [`FailureReason`] knows no driver's codes). tokio-postgres keeps its other error kinds
//! private, so TLS and client-side authentication failures are recognised by the kind's fixed
//! text, which this module's tests pin.

use crate::gateway::{FailureReason, GatewayError};

/// Prefix tokio-postgres prints for `Kind::Tls`.
const TLS_PREFIX: &str = "error performing TLS handshake";
/// Prefix tokio-postgres prints for `Kind::Authentication`.
const AUTH_PREFIX: &str = "authentication error";

/// Classifies a SQLSTATE the server sent.
pub(crate) fn reason_of_sqlstate(code: &str) -> FailureReason {
    match code {
        // invalid_authorization_specification, invalid_password
        "28000" | "28P01" => FailureReason::AuthFailed,
        // too_many_connections (server or role limit)
        "53300" => FailureReason::TooManyConnections,
        "42501" => FailureReason::PermissionDenied,
        // query_canceled (statement_timeout, cancel request), lock_not_available
        // (lock_timeout), idle_in_transaction_session_timeout
        "57014" | "55P03" | "25P03" => FailureReason::Timeout,
        // invalid_catalog_name (no such database), undefined_table, undefined_object
        "3D000" | "42P01" | "42704" => FailureReason::NotFound,
        "42710" => FailureReason::AlreadyExists,
        // admin_shutdown, crash_shutdown, cannot_connect_now: the server is going away
        "57P01" | "57P02" | "57P03" => FailureReason::Unreachable,
        _ => FailureReason::QueryFailed,
    }
}

/// Classifies `err` from a connection to `endpoint`.
pub(crate) fn classify(err: tokio_postgres::Error, endpoint: &str) -> GatewayError {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code().to_owned();
        return GatewayError::Server {
            reason: reason_of_sqlstate(&code),
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

#[cfg(test)]
mod tests {
    use super::reason_of_sqlstate;
    use crate::gateway::FailureReason;

    #[test]
    fn sqlstates_classify() {
        assert_eq!(reason_of_sqlstate("28P01"), FailureReason::AuthFailed);
        assert_eq!(
            reason_of_sqlstate("53300"),
            FailureReason::TooManyConnections
        );
        assert_eq!(reason_of_sqlstate("42501"), FailureReason::PermissionDenied);
        assert_eq!(reason_of_sqlstate("57014"), FailureReason::Timeout);
        assert_eq!(reason_of_sqlstate("42710"), FailureReason::AlreadyExists);
        assert_eq!(reason_of_sqlstate("XX000"), FailureReason::QueryFailed);
    }
}
