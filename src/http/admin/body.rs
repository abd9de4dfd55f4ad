//! The JSON bodies of the admin API, parsed at the edge into the gateway's types.
//!
//! Syntax errors are 400, wrong shapes and invalid values 422; unknown fields are refused.
//! serde's messages name the field and the expected type and never echo values, so a
//! password sent in the wrong place is not reflected back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::problem::Problem;
use crate::gateway::{BulkSignal, NewUser, SessionMatch, SignalMode};
use crate::secret::Secret;

/// The body of `POST .../users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    name: String,
    /// Absent: one is generated. `null` is refused like any other non-string.
    #[serde(default, deserialize_with = "present")]
    password: Option<String>,
    #[serde(default)]
    superuser: bool,
    #[serde(default = "yes")]
    login: bool,
    /// A duration such as `8h`: the role's `VALID UNTIL` is the server's now plus this.
    #[serde(default, deserialize_with = "present")]
    valid_for: Option<String>,
    /// Roles to grant, each in the target's `admin.grantable_roles`.
    #[serde(default)]
    member_of: Vec<String>,
    #[serde(default, deserialize_with = "present_u32")]
    connection_limit: Option<u32>,
}

/// The body of `POST .../sessions/terminate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    filter: serde_json::Value,
    #[serde(default)]
    mode: ModeBody,
    max_count: u32,
    #[serde(default)]
    dry_run: bool,
}

/// `filter` of a bulk request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    #[serde(default, deserialize_with = "present")]
    state: Option<String>,
    #[serde(default, deserialize_with = "present")]
    state_for_longer_than: Option<String>,
    #[serde(default, deserialize_with = "present")]
    usename: Option<String>,
    #[serde(default, deserialize_with = "present")]
    application_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    datname: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ModeBody {
    #[default]
    Terminate,
    Cancel,
}

/// The optional body of `POST .../users/{name}/password`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default, deserialize_with = "present")]
    password: Option<String>,
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

/// A field that, when present, must be a whole number (`null` refused).
fn present_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    u32::deserialize(d).map(Some)
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
        let mut user = NewUser::new(
            &body.name,
            body.password.map(Secret::new),
            body.superuser,
            body.login,
        )?;
        if let Some(text) = &body.valid_for {
            let valid_for = humantime::parse_duration(text).map_err(|_| {
                Problem::invalid("valid_for must be a duration such as \"8h\" or \"30m\"")
            })?;
            user = user.with_expiry(valid_for)?;
        }
        user = user.with_memberships(&body.member_of)?;
        if let Some(limit) = body.connection_limit {
            user = user.with_connection_limit(limit)?;
        }
        Ok(user)
    }
}

/// Parses a bulk terminate or cancel request; also returns its filter as given, for the
/// audit record.
pub fn bulk(bytes: &[u8]) -> Result<(BulkSignal, serde_json::Value), Problem> {
    let body: BulkBody = json(bytes)?;
    let filter: FilterBody = serde_json::from_value(body.filter.clone())
        .map_err(|e| Problem::invalid(format!("invalid filter: {e}")))?;
    let state_for_longer_than = filter
        .state_for_longer_than
        .map(|text| {
            humantime::parse_duration(&text).map_err(|_| {
                Problem::invalid("filter.state_for_longer_than must be a duration such as \"10m\"")
            })
        })
        .transpose()?;
    let mode = match body.mode {
        ModeBody::Terminate => SignalMode::Terminate,
        ModeBody::Cancel => SignalMode::Cancel,
    };
    let request = BulkSignal::new(
        SessionMatch {
            state: filter.state,
            state_for_longer_than,
            usename: filter.usename,
            application_name: filter.application_name,
            datname: filter.datname,
        },
        mode,
        body.max_count,
        body.dry_run,
    )?;
    Ok((request, body.filter))
}

/// Parses the optional body of a password rotation: the chosen password, if any.
pub fn rotate(bytes: &[u8]) -> Result<Option<Secret>, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let body: RotateBody = json(bytes)?;
    match body.password {
        None => Ok(None),
        Some(text) => {
            let password = Secret::new(text);
            crate::gateway::validate::check_password(&password)?;
            Ok(Some(password))
        }
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
            (
                br#"{"name": "x", "password": null}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                br#"{"name": "x", "valid_for": "soon"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                br#"{"name": "x", "member_of": ["ok", "ok"]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                br#"{"name": "x", "connection_limit": -1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (br#"{"name": "x""#, StatusCode::BAD_REQUEST),
            (b"", StatusCode::BAD_REQUEST),
        ] {
            let p = create_user(body)
                .and_then(CreateUser::validate)
                .expect_err("refused");
            assert_eq!(p.status, status, "{}", String::from_utf8_lossy(body));
        }
        let (bulk_request, filter) = bulk(
            br#"{"filter": {"state": "idle in transaction", "state_for_longer_than": "10m"}, "max_count": 50, "dry_run": true}"#,
        )
        .expect("valid");
        assert_eq!(bulk_request.mode, SignalMode::Terminate);
        assert_eq!(
            bulk_request.filter.state_for_longer_than,
            Some(Duration::from_secs(600))
        );
        assert!(bulk_request.dry_run && filter["state"] == "idle in transaction");
        for bad in [
            &br#"{"filter": {"state": "idle"}}"#[..],
            br#"{"filter": {}, "max_count": 5}"#,
            br#"{"filter": {"state": "idle"}, "max_count": 0}"#,
            br#"{"filter": {"state": "idle"}, "max_count": 1001}"#,
            br#"{"filter": {"state": "idle"}, "max_count": 5, "mode": "kill"}"#,
            br#"{"filter": {"state_for_longer_than": "a while"}, "max_count": 5}"#,
            br#"{"filter": {"pid": 1}, "max_count": 5}"#,
            br#"{"filter": {"state": null}, "max_count": 5}"#,
        ] {
            let p = bulk(bad).expect_err("refused");
            assert_eq!(
                p.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                String::from_utf8_lossy(bad)
            );
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
