//! The JSON bodies of the admin API, parsed at the edge into the gateway's types.
//!
//! Syntax errors are 400, wrong shapes and invalid values 422; unknown fields are refused.
//! serde's messages name the field and the expected type and never echo values, so a
//! password sent in the wrong place is not reflected back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Absent pins nothing; `null` is refused like any other non-string (the API's schema
    /// says string), never read as "no pin".
    #[serde(default, deserialize_with = "present")]
    backend_start: Option<String>,
}

/// A field that, when present, must be a string (`null` included in what is refused).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
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
        .map(|raw| match rfc3339(&raw) {
            Some(t) => Ok((raw, t)),
            None => Err(Problem::invalid(
                "backend_start must be an RFC 3339 date-time, as /sessions lists it (e.g. 2026-11-27T04:28:46.123456Z)",
            )),
        })
        .transpose()
}

/// An RFC 3339 date-time: `T`/`t`, `Z`/`z` or a `±HH:MM` offset, fractions to the
/// nanosecond. A well-formed time before 1970 is valid input that names no backend: it
/// becomes the epoch itself, at which no backend ever started.
fn rfc3339(raw: &str) -> Option<SystemTime> {
    let bytes = raw.as_bytes();
    let (body, offset) = match bytes.last()? {
        b'Z' | b'z' => (&raw[..raw.len() - 1], 0_i64),
        _ if bytes.len() > 6 && matches!(bytes[bytes.len() - 6], b'+' | b'-') => {
            let (body, zone) = raw.split_at(raw.len() - 6);
            if !zone.is_ascii() {
                return None;
            }
            let (hours, minutes) = zone[1..].split_once(':')?;
            let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
            if hours > 23 || minutes > 59 || zone[1..3].contains(['+', '-']) {
                return None;
            }
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            (body, sign * (hours * 3600 + minutes * 60))
        }
        _ => return None,
    };
    if !body.is_ascii() || body.len() < 19 || !matches!(bytes[10], b'T' | b't') {
        return None;
    }
    let utc = format!("{}T{}Z", &body[..10], &body[11..]);
    let year: u32 = body.get(..4)?.parse().ok()?;
    let local = if year < 1970 {
        // Checked in a leap year, so a 29 February of any year passes the calendar test.
        humantime::parse_rfc3339(&format!("1972{}", &utc[4..])).ok()?;
        return Some(UNIX_EPOCH);
    } else {
        humantime::parse_rfc3339(&utc).ok()?
    };
    let shift = Duration::from_secs(offset.unsigned_abs());
    // A positive offset means local time is ahead of UTC.
    if offset >= 0 {
        Some(
            local
                .checked_sub(shift)
                .filter(|t| *t >= UNIX_EPOCH)
                .unwrap_or(UNIX_EPOCH),
        )
    } else {
        local.checked_add(shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn rfc3339_times_in_every_spelling() {
        let at = |raw: &str| rfc3339(raw).map(|t| humantime::format_rfc3339_micros(t).to_string());
        let want = Some("2026-11-27T04:28:46.123456Z".to_owned());
        assert_eq!(at("2026-11-27T04:28:46.123456Z"), want);
        assert_eq!(at("2026-11-27t04:28:46.123456z"), want);
        assert_eq!(at("2026-11-27T06:28:46.123456+02:00"), want);
        assert_eq!(at("2026-11-26T23:58:46.123456-04:30"), want);
        assert_eq!(rfc3339("0262-03-17T14:21:18Z"), Some(UNIX_EPOCH));
        assert_eq!(rfc3339("1964-02-29T00:00:00+01:00"), Some(UNIX_EPOCH));
        assert_eq!(rfc3339("1965-02-30T00:00:00Z"), None);
        assert_eq!(rfc3339("1970-01-01T00:30:00+01:00"), Some(UNIX_EPOCH));
    }

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
        for bad in [
            &br#"{"backend_start": "now"}"#[..],
            br#"{"pid": 1}"#,
            b"42",
            br#"{"backend_start": "2026-13-01T00:00:00Z"}"#,
            br#"{"backend_start": "2026-11-27 04:28:46Z"}"#,
            br#"{"backend_start": "2026-11-27T04:28:46+24:00"}"#,
            br#"{"backend_start": "2026-11-27T04:28:46"}"#,
            br#"{"backend_start": null}"#,
        ] {
            assert!(signal(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
