//! Errors of the admin API as RFC 9457 `application/problem+json`.
//!
//! Every failure leaves through [`Problem`]; gateway errors map to HTTP in exactly one place,
//! `From<GatewayError>`. The `detail` a client sees is written for it; the full error chain
//! (which may name hosts and server messages) goes to the log only. No body ever carries SQL
//! text, a connection string, a password or a verifier.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::gateway::{FailureReason, GatewayError};

/// The content type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Short kebab-case slug; the `type` is `urn:mesa:problem:<slug>`.
    pub slug: &'static str,
    /// Human-readable explanation for the client.
    pub detail: String,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<u64>,
    /// Ask for bearer credentials (401).
    pub challenge: bool,
    /// The gateway's failure reason, for metrics and the audit trail.
    pub reason: Option<FailureReason>,
    /// SQLSTATE, for the audit trail.
    pub sqlstate: Option<String>,
    /// Extension members of the body (RFC 9457 section 3.2), e.g. what a role owns.
    pub extensions: Vec<(&'static str, serde_json::Value)>,
}

impl Problem {
    /// A problem with a status, slug and detail.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            retry_after: None,
            challenge: false,
            reason: None,
            sqlstate: None,
            extensions: Vec::new(),
        }
    }

    /// The same problem with an extension member `key`.
    pub fn with(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.extensions.push((key, value));
        self
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        }
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 421: the target is configured, but another shard's replica collects and serves it.
    pub fn misdirected(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected-request",
            detail,
        )
    }

    /// 422: the request was understood but its values are invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", detail)
    }

    /// 400: the request could not be parsed.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-request", detail)
    }

    /// 503: the audit trail cannot record a mutation, so it is refused.
    pub fn audit_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit-unavailable",
            "the audit log cannot be written; mutations are refused until it can (reads still work)",
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "too many requests for this token; retry later",
            )
        }
    }

    /// The outcome label for `mesa_admin_requests_total`.
    pub fn outcome(&self) -> &'static str {
        outcome(self.status)
    }
}

/// The outcome label of a response status.
pub fn outcome(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "ok",
        400 | 413 | 422 => "invalid",
        401 => "unauthorized",
        403 => "forbidden",
        404 | 405 => "not_found",
        409 => "conflict",
        429 => "rate_limited",
        504 => "timeout",
        _ => "unavailable",
    }
}

impl From<GatewayError> for Problem {
    fn from(e: GatewayError) -> Self {
        let reason = e.reason();
        let sqlstate = e.sqlstate().map(str::to_owned);
        let mut extensions = Vec::new();
        let (status, slug, detail) = match (&e, reason) {
            (GatewayError::NotManaged { role }, _) => (
                StatusCode::CONFLICT,
                "not-managed",
                format!(
                    "role {role} was not created by Mesa (it carries no mark of Mesa's); Mesa leaves it untouched"
                ),
            ),
            (GatewayError::OwnsObjects { role, owned }, _) => {
                extensions.push(("owned", serde_json::json!(owned)));
                (
                    StatusCode::CONFLICT,
                    "owns-objects",
                    format!(
                        "role {role} owns objects or holds privileges, so it was not dropped; it can no longer log in and its sessions were ended. Reassign or drop what it owns, then try again: {}",
                        owned.join("; ")
                    ),
                )
            }
            (GatewayError::TooMany { matched, max }, _) => {
                extensions.push(("matched", serde_json::json!(matched)));
                (
                    StatusCode::CONFLICT,
                    "too-many-matches",
                    format!(
                        "{matched} sessions match, more than max_count {max}; nothing was signalled. Narrow the filter or raise max_count (at most 1000)"
                    ),
                )
            }
            (GatewayError::UnsafeGrant { role, why }, _) => (
                StatusCode::FORBIDDEN,
                "unsafe-grant",
                format!("role {role} may not be granted: {why}; nothing was created"),
            ),
            (_, FailureReason::InvalidInput) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                e.to_string(),
            ),
            (GatewayError::NotFound { what }, _) => (
                StatusCode::NOT_FOUND,
                "not-found",
                format!("{what} not found"),
            ),
            (_, FailureReason::NotFound) => (
                StatusCode::NOT_FOUND,
                "not-found",
                "the database or object does not exist".to_owned(),
            ),
            (GatewayError::Refused { reason }, _) => {
                (StatusCode::CONFLICT, "refused", reason.clone())
            }
            (_, FailureReason::AlreadyExists) => (
                StatusCode::CONFLICT,
                "already-exists",
                "the role already exists".to_owned(),
            ),
            (_, FailureReason::PermissionDenied) => (
                StatusCode::FORBIDDEN,
                "permission-denied",
                "PostgreSQL denied the action to the role Mesa connects as".to_owned(),
            ),
            (_, FailureReason::Timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the database did not answer in time".to_owned(),
            ),
            (_, FailureReason::Unreachable) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unreachable",
                "the database is unreachable".to_owned(),
            ),
            (_, FailureReason::TooManyConnections) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-connections",
                "the database has no free connection slot for Mesa".to_owned(),
            ),
            (_, FailureReason::AuthFailed) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database-auth-failed",
                "the database rejected Mesa's credentials".to_owned(),
            ),
            (_, FailureReason::Tls) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database-tls",
                "TLS with the database failed".to_owned(),
            ),
            (_, FailureReason::Refused | FailureReason::QueryFailed | FailureReason::Decode) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database-error",
                "the database could not complete the request".to_owned(),
            ),
        };
        tracing::info!(reason = %reason, error = %e, "admin request failed at the database");
        Self {
            reason: Some(reason),
            sqlstate,
            extensions,
            ..Self::new(status, slug, detail)
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "type": format!("urn:mesa:problem:{}", self.slug),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        for (key, value) in self.extensions {
            body[key] = value;
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mesa\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
