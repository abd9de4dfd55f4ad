//! Turns a `mysql_async` error into a [`GatewayError`] with the right [`FailureReason`].
//! Server errors are classified by MySQL's error number ([`reason_of_code`]), which also
//! travels as the error's `code` (MariaDB and MySQL send the generic SQLSTATE `HY000` for
//! most of them, so the number is what a DBA can look up).

use mysql_async::{DriverError, Error, IoError};

use crate::gateway::{FailureReason, GatewayError};

/// What a TLS failure says when the server offers no TLS at all (`ssl_mode: preferred` then
/// connects without).
pub(super) const NO_TLS: &str = "the server offers no TLS";

/// Classifies a MySQL/MariaDB error number.
pub(crate) fn reason_of_code(code: u16) -> FailureReason {
    match code {
        // ER_ACCESS_DENIED_ERROR, ER_MUST_CHANGE_PASSWORD_LOGIN, ER_ACCOUNT_HAS_BEEN_LOCKED
        // (MySQL, MariaDB)
        1045 | 1862 | 3118 | 4151 => FailureReason::AuthFailed,
        // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS, ER_USER_LIMIT_REACHED
        1040 | 1203 | 1226 => FailureReason::TooManyConnections,
        // ER_DBACCESS_DENIED_ERROR, ER_KILL_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR,
        // ER_COLUMNACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR,
        // ER_OPTION_PREVENTS_STATEMENT (read-only), ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
        1044 | 1095 | 1142 | 1143 | 1227 | 1290 | 1792 => FailureReason::PermissionDenied,
        // ER_LOCK_WAIT_TIMEOUT, ER_QUERY_INTERRUPTED, ER_STATEMENT_TIMEOUT (MariaDB),
        // ER_QUERY_TIMEOUT (MySQL), ER_LOCK_WAIT_TIMEOUT for metadata
        1205 | 1317 | 1969 | 3024 => FailureReason::Timeout,
        // ER_BAD_DB_ERROR, ER_NO_SUCH_THREAD, ER_NO_SUCH_TABLE, ER_NONEXISTING_GRANT
        1049 | 1094 | 1146 | 1141 => FailureReason::NotFound,
        // ER_CANNOT_USER (CREATE USER of an account that exists)
        1396 => FailureReason::AlreadyExists,
        // ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED, CR_SERVER_GONE_ERROR, CR_SERVER_LOST
        1053 | 1927 | 2006 | 2013 => FailureReason::Unreachable,
        _ => FailureReason::QueryFailed,
    }
}

/// Classifies `err` from a connection to `endpoint`.
pub(crate) fn classify(err: Error, endpoint: &str) -> GatewayError {
    let unreachable = |detail: String, err: Error| GatewayError::Unreachable {
        endpoint: endpoint.to_owned(),
        detail,
        source: Some(Box::new(err)),
    };
    match err {
        Error::Server(ref e) => GatewayError::Server {
            reason: reason_of_code(e.code),
            code: e.code.to_string(),
            message: e.message.clone(),
            source: Box::new(err),
        },
        Error::Io(IoError::Tls(ref e)) => GatewayError::Tls {
            endpoint: endpoint.to_owned(),
            detail: e.to_string(),
            source: Some(Box::new(err)),
        },
        // tokio-rustls reports a failed handshake (an untrusted certificate) as an I/O error
        // around rustls' own.
        Error::Io(IoError::Io(ref e))
            if e.get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            GatewayError::Tls {
                endpoint: endpoint.to_owned(),
                detail: e.to_string(),
                source: Some(Box::new(err)),
            }
        }
        Error::Io(IoError::Io(ref e)) => {
            let detail = e.to_string();
            unreachable(detail, err)
        }
        Error::Driver(DriverError::NoClientSslFlagFromServer) => GatewayError::Tls {
            endpoint: endpoint.to_owned(),
            detail: format!("{NO_TLS} (set ssl_mode: preferred or disabled to connect without)"),
            source: Some(Box::new(err)),
        },
        Error::Driver(DriverError::ConnectionClosed) => {
            unreachable("the server closed the connection".to_owned(), err)
        }
        Error::Driver(
            DriverError::UnknownAuthPlugin { .. }
            | DriverError::CleartextPluginDisabled
            | DriverError::MysqlOldPasswordDisabled,
        ) => GatewayError::Authentication {
            endpoint: endpoint.to_owned(),
            detail: format!(
                "{err}: the account's authentication plugin is not one Mesa speaks (mysql_native_password, caching_sha2_password)"
            ),
            source: Some(Box::new(err)),
        },
        other => GatewayError::Driver {
            detail: other.to_string(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::reason_of_code;
    use crate::gateway::FailureReason;

    #[test]
    fn the_codes_a_dba_meets_most_are_classified() {
        assert_eq!(reason_of_code(1045), FailureReason::AuthFailed);
        assert_eq!(reason_of_code(1040), FailureReason::TooManyConnections);
        assert_eq!(reason_of_code(1095), FailureReason::PermissionDenied);
        assert_eq!(reason_of_code(1969), FailureReason::Timeout);
        assert_eq!(reason_of_code(3024), FailureReason::Timeout);
        assert_eq!(reason_of_code(1094), FailureReason::NotFound);
        assert_eq!(reason_of_code(1396), FailureReason::AlreadyExists);
        assert_eq!(reason_of_code(1064), FailureReason::QueryFailed);
    }
}
