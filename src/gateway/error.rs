//! `GatewayError`, the one error type of the gateway layer, and `FailureReason`, its small
//! classification used for metric labels, HTTP status mapping and decisions.
//!
//! The error keeps its cause chained (`#[source]`) for logs; the reason is a `Copy` enum so a
//! label never carries raw server text. No variant holds a password or a connection string:
//! endpoints are `host:port` only.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A boxed cause from a driver (tokio-postgres today), kept for the log.
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// Why a gateway call failed, coarse enough to be a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// No TCP connection (refused, no route, DNS) or the connection dropped.
    Unreachable,
    /// A deadline passed: ours, or the server's `statement_timeout` / `lock_timeout`.
    Timeout,
    /// The server rejected the credentials.
    AuthFailed,
    /// The server or role connection limit is reached.
    TooManyConnections,
    /// The role lacks a privilege (or a signal was refused).
    PermissionDenied,
    /// TLS could not be negotiated or the certificate was not trusted.
    Tls,
    /// The database, table or backend asked for does not exist.
    NotFound,
    /// Mesa refused the action on principle (its own backend, a non-client backend).
    Refused,
    /// The role (or object) to create exists already.
    AlreadyExists,
    /// The request was invalid; nothing was sent to the server.
    InvalidInput,
    /// Anything else the server or driver reported.
    QueryFailed,
    /// The rows came back, but a value could not be read as declared (a user query's NULL or
    /// text in a value column, an undeclared column).
    Decode,
}

impl FailureReason {
    /// Every reason, in label order.
    pub const ALL: [FailureReason; 12] = [
        Self::Unreachable,
        Self::Timeout,
        Self::AuthFailed,
        Self::TooManyConnections,
        Self::PermissionDenied,
        Self::Tls,
        Self::NotFound,
        Self::Refused,
        Self::AlreadyExists,
        Self::InvalidInput,
        Self::QueryFailed,
        Self::Decode,
    ];

    /// The snake_case label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::AuthFailed => "auth_failed",
            Self::TooManyConnections => "too_many_connections",
            Self::PermissionDenied => "permission_denied",
            Self::Tls => "tls",
            Self::NotFound => "not_found",
            Self::Refused => "refused",
            Self::AlreadyExists => "already_exists",
            Self::InvalidInput => "invalid_input",
            Self::QueryFailed => "query_failed",
            Self::Decode => "decode",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every way a gateway call can fail.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// TCP could not be established, or the connection broke.
    #[error("cannot reach {endpoint}: {detail}")]
    Unreachable {
        /// `host:port`.
        endpoint: String,
        /// What failed, for people.
        detail: String,
        /// The underlying I/O or driver error.
        #[source]
        source: Option<Cause>,
    },
    /// A deadline passed while `phase` was running.
    #[error("{phase} did not finish within {limit:?}")]
    Timeout {
        /// What was running: "connect", "startup", "query", "waiting for a connection slot".
        phase: &'static str,
        /// The limit that expired.
        limit: Duration,
    },
    /// The call was cancelled (shutdown or reload) while `phase` was running; server-side work
    /// was cancelled too. Classified as `timeout`.
    #[error("{phase} was cancelled by shutdown")]
    Cancelled {
        /// What was running.
        phase: &'static str,
    },
    /// TLS negotiation failed, or the TLS settings could not be loaded.
    #[error("TLS with {endpoint} failed: {detail}")]
    Tls {
        /// `host:port`, or the certificate path for load errors.
        endpoint: String,
        /// What failed, for people.
        detail: String,
        /// The underlying error.
        #[source]
        source: Option<Cause>,
    },
    /// The server answered with an error.
    #[error("server error {code}: {message}")]
    Server {
        /// Classification of `code`.
        reason: FailureReason,
        /// SQLSTATE.
        code: String,
        /// The server's primary message (never contains statement text).
        message: String,
        /// The driver error.
        #[source]
        source: Cause,
    },
    /// The client could not authenticate (e.g. no password configured but one is required).
    #[error("authentication with {endpoint} failed: {detail}")]
    Authentication {
        /// `host:port`.
        endpoint: String,
        /// What failed.
        detail: String,
        /// The driver error.
        #[source]
        source: Option<Cause>,
    },
    /// The driver failed in a way not covered above (protocol, decoding).
    #[error("driver error: {detail}")]
    Driver {
        /// What failed.
        detail: String,
        /// The driver error.
        #[source]
        source: Cause,
    },
    /// The object asked for does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `backend pid 4242`.
        what: String,
    },
    /// Mesa refused to act.
    #[error("refused: {reason}")]
    Refused {
        /// Why, for people.
        reason: String,
    },
    /// The server would not let the role do this.
    #[error("permission denied: {action}")]
    PermissionDenied {
        /// What was attempted.
        action: String,
    },
    /// The object to create exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What was created.
        what: String,
    },
    /// The request was rejected before any SQL was sent.
    #[error("invalid {field}: {problem}")]
    InvalidInput {
        /// The request field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The role exists, but Mesa did not create it (it carries no mark of Mesa's): Mesa
    /// leaves it as it is.
    #[error("role {role} is not managed by Mesa")]
    NotManaged {
        /// The role.
        role: String,
    },
    /// The role could not be dropped: it owns objects or holds privileges.
    #[error("role {role} owns objects or holds privileges: {}", owned.join("; "))]
    OwnsObjects {
        /// The role.
        role: String,
        /// What the server listed, one entry per line of its detail.
        owned: Vec<String>,
    },
    /// A role asked for in `member_of` would hand out more than data access: it is (or
    /// reaches through its memberships) a superuser, or has CREATEROLE, CREATEDB,
    /// REPLICATION or BYPASSRLS, or a server-file role.
    #[error("role {role} may not be granted: {why}")]
    UnsafeGrant {
        /// The role asked for.
        role: String,
        /// What it has, and through which role.
        why: String,
    },
    /// A bulk call matched more sessions than its `max_count`; nothing was signalled.
    #[error("{matched} sessions match, more than max_count {max}; nothing was signalled")]
    TooMany {
        /// Sessions that matched.
        matched: u32,
        /// The request's `max_count`.
        max: u32,
    },
    /// The operating system's random source failed.
    #[error("random source failed: {detail}")]
    Randomness {
        /// The OS error text.
        detail: String,
    },
}

impl GatewayError {
    /// The coarse classification of this error.
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Unreachable { .. } => FailureReason::Unreachable,
            Self::Timeout { .. } | Self::Cancelled { .. } => FailureReason::Timeout,
            Self::Tls { .. } => FailureReason::Tls,
            Self::Server { reason, .. } => *reason,
            Self::Authentication { .. } => FailureReason::AuthFailed,
            Self::Driver { .. } | Self::Randomness { .. } => FailureReason::QueryFailed,
            Self::NotFound { .. } => FailureReason::NotFound,
            Self::Refused { .. } => FailureReason::Refused,
            Self::PermissionDenied { .. } => FailureReason::PermissionDenied,
            Self::AlreadyExists { .. } => FailureReason::AlreadyExists,
            Self::InvalidInput { .. } => FailureReason::InvalidInput,
            Self::NotManaged { .. } | Self::OwnsObjects { .. } | Self::TooMany { .. } => {
                FailureReason::Refused
            }
            Self::UnsafeGrant { .. } => FailureReason::PermissionDenied,
        }
    }

    /// The server's error code (PostgreSQL's SQLSTATE), when the server sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FailureReason;

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for r in FailureReason::ALL {
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!(seen.insert(r.as_str()));
        }
    }
}
