//! The JSON bodies of the admin API, parsed at the edge into the gateway's types.
//!
//! Syntax errors are 400, wrong shapes and invalid values 422; unknown fields are refused.
//! serde's messages name the field and the expected type and never echo values, so a
//! password sent in the wrong place is not reflected back.

use std::time::SystemTime;

use serde::Deserialize;

use super::problem::Problem;
use crate::gateway::NewUser;
use crate::secret::Secret;

/// The body of `POST .../users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    superuser: bool,
    #[serde(default = "yes")]
    login: bool,
}

fn yes() -> bool {
    true
}

/// The optional body of terminate and cancel.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    /// `backend_start` as `/sessions` lists it; pins the backend so a reused pid is never hit.
    #[serde(default)]
    backend_start: Option<String>,
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => Problem::invalid(format!("invalid body: {e}")),
            Category::Syntax | Category::Eof | Category::Io => {
                Problem::malformed(format!("the body is not valid JSON: {e}"))
            }
        }
    })
}

/// A create-user request of the right shape, not yet validated: the caller checks the
/// `create_superuser` scope first (authorisation before validation), then calls
/// [`CreateUser::validate`].
pub struct CreateUser(CreateUserBody);

impl CreateUser {
    /// Whether a superuser is asked for.
    pub fn superuser(&self) -> bool {
        self.0.superuser
    }

    /// The validated [`NewUser`].
    pub fn validate(self) -> Result<NewUser, Problem> {
        let body = self.0;
        Ok(NewUser::new(
            &body.name,
            body.password.map(Secret::new),
            body.superuser,
            body.login,
        )?)
    }
}

/// Parses a create-user body.
pub fn create_user(bytes: &[u8]) -> Result<CreateUser, Problem> {
    json(bytes).map(CreateUser)
}

/// A terminate or cancel request: the pinned `backend_start` as given and as a time, if any.
/// An empty body pins nothing.
pub fn signal(bytes: &[u8]) -> Result<Option<(String, SystemTime)>, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let body: SignalBody = json(bytes)?;
    body.backend_start
        .map(|raw| {
            humantime::parse_rfc3339(&raw)
                .map(|t| (raw, t))
                .map_err(|_| {
                    Problem::invalid(
                        "backend_start must be an RFC 3339 time in UTC, as /sessions lists it (e.g. 2026-11-27T04:28:46.123456Z)",
                    )
                })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn bodies_parse_into_types_or_the_right_status() {
        let user = create_user(br#"{"name": "report_reader", "login": false}"#)
            .and_then(CreateUser::validate)
            .expect("valid");
        assert_eq!(user.name.as_str(), "report_reader");
        assert!(!user.login && !user.superuser && user.password.is_none());
        for (body, status) in [
            (
                &br#"{"name": "Report"}"#[..],
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                br#"{"name": "x", "admin": true}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                br#"{"name": "x", "password": "short"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (br#"{"name": 7}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (br#"{"name": "x""#, StatusCode::BAD_REQUEST),
            (b"", StatusCode::BAD_REQUEST),
        ] {
            let p = create_user(body)
                .and_then(CreateUser::validate)
                .expect_err("refused");
            assert_eq!(p.status, status, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(signal(b"").expect("empty"), None);
        assert_eq!(signal(b" \n").expect("blank"), None);
        let (text, _) = signal(br#"{"backend_start": "2026-11-27T04:28:46.123456Z"}"#)
            .expect("valid")
            .expect("pinned");
        assert_eq!(text, "2026-11-27T04:28:46.123456Z");
        for bad in [&br#"{"backend_start": "now"}"#[..], br#"{"pid": 1}"#, b"42"] {
            assert!(signal(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
