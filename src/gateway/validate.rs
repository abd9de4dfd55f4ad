//! The typed edge: input is parsed once, where it enters (the admin API), into types that can
//! only hold valid values, and the gateway takes those types. Nothing downstream re-checks.
//!
//! DDL such as `CREATE ROLE` takes no bind parameters, so a [`RoleName`] must be proven
//! harmless before it is spliced into a statement; Mesa also quotes it. Other names
//! ([`ObjectName`]: databases, schemas, tables) travel as bind parameters or startup
//! parameters, and are only checked for the limits PostgreSQL itself enforces, so a hopeless
//! request fails fast without a connection. [`Pid`] and [`SessionLimit`] are ranges.

use std::fmt;
use std::time::Duration;

use super::error::GatewayError;
use super::model::{BulkSignal, NewUser, SessionMatch, SignalMode};
use crate::secret::Secret;

/// PostgreSQL truncates identifiers to `NAMEDATALEN - 1` = 63 bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;
/// Shortest password a caller may choose. 16 characters keeps an offline guess against a
/// leaked SCRAM verifier out of reach even for plain lowercase text.
pub const MIN_PASSWORD_CHARS: usize = 16;
/// Longest password accepted; far above any real need, and keeps hashing cheap.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Length of a generated password: 32 characters of a 62-symbol alphabet is ~190 bits.
pub const GENERATED_PASSWORD_CHARS: usize = 32;

/// A role name that passed [`RoleName::parse`]: `[a-z_][a-z0-9_]*`, 1..=63 bytes, and not the
/// reserved `pg_` prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// Validates a role name. The rules are stricter than PostgreSQL's quoted identifiers on
    /// purpose: a name that needs no quoting works the same in every client and script. Upper
    /// case is refused because an unquoted `Postgres` in anyone's script means `postgres`:
    /// creating a quoted `"Postgres"` beside it makes a look-alike of another role.
    pub fn parse(raw: &str) -> Result<Self, GatewayError> {
        let invalid = |problem: &str| GatewayError::InvalidInput {
            field: "name",
            problem: problem.to_owned(),
        };
        if raw.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if raw.len() > MAX_IDENTIFIER_BYTES {
            return Err(invalid("must be at most 63 bytes"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "may contain only lower-case letters a-z, digits 0-9 and '_' (as an unquoted identifier reads)",
            ));
        }
        if raw.as_bytes()[0].is_ascii_digit() {
            return Err(invalid("must not start with a digit"));
        }
        if raw.starts_with("pg_") {
            return Err(invalid(
                "names starting with 'pg_' are reserved by PostgreSQL",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The validated name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl NewUser {
    /// Validates a create-user request: the name per [`RoleName::parse`], a chosen password of
    /// [`MIN_PASSWORD_CHARS`]..=[`MAX_PASSWORD_CHARS`] characters without NUL.
    pub fn new(
        name: &str,
        password: Option<Secret>,
        superuser: bool,
        login: bool,
    ) -> Result<Self, GatewayError> {
        let name = RoleName::parse(name)?;
        if let Some(password) = &password {
            check_password(password)?;
        }
        Ok(Self {
            name,
            password,
            superuser,
            login,
            valid_for: None,
            member_of: Vec::new(),
            connection_limit: None,
        })
    }

    /// The same request with an expiry `valid_for` from now: at least a second, at most
    /// [`MAX_VALID_FOR`].
    pub fn with_expiry(mut self, valid_for: Duration) -> Result<Self, GatewayError> {
        if valid_for < Duration::from_secs(1) || valid_for > MAX_VALID_FOR {
            return Err(GatewayError::InvalidInput {
                field: "valid_for",
                problem: "must be from 1s to 100 years".to_owned(),
            });
        }
        self.valid_for = Some(valid_for);
        Ok(self)
    }

    /// The same request with memberships, each a valid role name, at most
    /// [`MAX_MEMBERSHIPS`], no repeats.
    pub fn with_memberships(mut self, roles: &[String]) -> Result<Self, GatewayError> {
        let invalid = |problem: String| GatewayError::InvalidInput {
            field: "member_of",
            problem,
        };
        if roles.len() > MAX_MEMBERSHIPS {
            return Err(invalid(format!("at most {MAX_MEMBERSHIPS} roles")));
        }
        let mut out: Vec<RoleName> = Vec::with_capacity(roles.len());
        for raw in roles {
            let role = RoleName::parse(raw).map_err(|e| match e {
                GatewayError::InvalidInput { problem, .. } => invalid(format!("{raw:?} {problem}")),
                other => other,
            })?;
            if out.contains(&role) {
                return Err(invalid(format!("{raw:?} is listed twice")));
            }
            out.push(role);
        }
        self.member_of = out;
        Ok(self)
    }

    /// The same request with a connection limit of at most [`MAX_CONNECTION_LIMIT`].
    pub fn with_connection_limit(mut self, limit: u32) -> Result<Self, GatewayError> {
        if limit > MAX_CONNECTION_LIMIT {
            return Err(GatewayError::InvalidInput {
                field: "connection_limit",
                problem: format!("must be from 0 to {MAX_CONNECTION_LIMIT}"),
            });
        }
        self.connection_limit = Some(limit);
        Ok(self)
    }
}

/// Longest `valid_for` accepted: a hundred years is "never" with a date on it.
pub const MAX_VALID_FOR: Duration = Duration::from_secs(100 * 366 * 24 * 3600);
/// Most roles one request may grant.
pub const MAX_MEMBERSHIPS: usize = 32;
/// Highest `connection_limit` (PostgreSQL's `max_connections` tops out at 262143).
pub const MAX_CONNECTION_LIMIT: u32 = 262_143;

/// Checks a chosen password: [`MIN_PASSWORD_CHARS`]..=[`MAX_PASSWORD_CHARS`] characters, no NUL.
pub fn check_password(password: &Secret) -> Result<(), GatewayError> {
    let text = password.expose();
    let invalid = |problem: &str| GatewayError::InvalidInput {
        field: "password",
        problem: problem.to_owned(),
    };
    if text.chars().count() < MIN_PASSWORD_CHARS {
        return Err(invalid("must be at least 16 characters"));
    }
    if text.chars().count() > MAX_PASSWORD_CHARS {
        return Err(invalid("must be at most 256 characters"));
    }
    if text.contains('\0') {
        return Err(invalid("must not contain NUL"));
    }
    Ok(())
}

/// The password to set: the caller's choice, or a fresh one, which is also returned (to be
/// shown to the caller once).
pub fn chosen_or_generated(
    chosen: Option<Secret>,
) -> Result<(Secret, Option<Secret>), GatewayError> {
    match chosen {
        Some(chosen) => Ok((chosen, None)),
        None => {
            let fresh = generate_password()?;
            Ok((fresh.clone(), Some(fresh)))
        }
    }
}

/// A fresh password from the operating system's CSPRNG: [`GENERATED_PASSWORD_CHARS`] characters
/// of `[A-Za-z0-9]`, drawn without modulo bias.
pub fn generate_password() -> Result<Secret, GatewayError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 248 = 4 * 62: bytes at or above it are dropped so every symbol is equally likely.
    const LIMIT: u8 = 248;
    let mut out = String::with_capacity(GENERATED_PASSWORD_CHARS);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_PASSWORD_CHARS {
        getrandom::fill(&mut buf).map_err(|e| GatewayError::Randomness {
            detail: e.to_string(),
        })?;
        for b in buf {
            if b < LIMIT && out.len() < GENERATED_PASSWORD_CHARS {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(Secret::new(out))
}

/// Longest database, schema or table name accepted, in characters. PostgreSQL's limit is 63
/// bytes; a longer name in fewer characters cannot exist, so it is simply not found.
pub const MAX_OBJECT_NAME_CHARS: usize = 63;

/// A database, schema or table name that travels as a parameter: 1 to 63 characters, no NUL
/// (which no PostgreSQL name can hold and no parameter can carry).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectName(String);

impl ObjectName {
    /// Checks `raw`; `field` names it in the error (`database`, `schema`, `table`).
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, GatewayError> {
        let problem = if raw.is_empty() {
            "must not be empty"
        } else if raw.chars().count() > MAX_OBJECT_NAME_CHARS {
            "must be at most 63 characters"
        } else if raw.contains('\0') {
            "must not contain NUL"
        } else {
            return Ok(Self(raw.to_owned()));
        };
        Err(GatewayError::InvalidInput {
            field,
            problem: problem.to_owned(),
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A backend process id: PostgreSQL pids are positive 32-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pid(i32);

impl Pid {
    /// Checks a pid.
    pub fn new(pid: i32) -> Result<Self, GatewayError> {
        if pid > 0 {
            Ok(Self(pid))
        } else {
            Err(GatewayError::InvalidInput {
                field: "pid",
                problem: "must be a positive integer".to_owned(),
            })
        }
    }

    /// Parses a pid from text (a path segment).
    pub fn parse(raw: &str) -> Result<Self, GatewayError> {
        raw.parse::<i32>()
            .map_err(|_| GatewayError::InvalidInput {
                field: "pid",
                problem: "must be a positive 32-bit integer".to_owned(),
            })
            .and_then(Self::new)
    }

    /// The pid.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many sessions one page lists: 1..=[`SessionLimit::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit(u32);

impl SessionLimit {
    /// The origin spec's default page size.
    pub const DEFAULT: Self = Self(50);
    /// Largest page; `max_connections` above 1000 is rare and a page that size is unreadable.
    pub const MAX: u32 = 1000;

    /// Checks a limit.
    pub fn new(limit: u32) -> Result<Self, GatewayError> {
        if (1..=Self::MAX).contains(&limit) {
            Ok(Self(limit))
        } else {
            Err(GatewayError::InvalidInput {
                field: "limit",
                problem: format!("must be an integer from 1 to {}", Self::MAX),
            })
        }
    }

    /// The limit.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Most sessions one bulk call may signal.
pub const MAX_BULK: u32 = 1000;

impl BulkSignal {
    /// Validates a bulk request: at least one filter field (a filter on nothing would be every
    /// client session), filter strings of at most 1024 characters without NUL, `max_count` from 1
    /// to [`MAX_BULK`].
    pub fn new(
        filter: SessionMatch,
        mode: SignalMode,
        max_count: u32,
        dry_run: bool,
    ) -> Result<Self, GatewayError> {
        let invalid = |field: &'static str, problem: &str| GatewayError::InvalidInput {
            field,
            problem: problem.to_owned(),
        };
        if filter == SessionMatch::default() {
            return Err(invalid(
                "filter",
                "must set at least one of state, state_for_longer_than, usename, application_name, datname",
            ));
        }
        for (field, value) in [
            ("filter.state", &filter.state),
            ("filter.usename", &filter.usename),
            ("filter.application_name", &filter.application_name),
            ("filter.datname", &filter.datname),
        ] {
            if let Some(v) = value
                && (v.chars().count() > 1024 || v.contains('\0'))
            {
                return Err(invalid(
                    field,
                    "must be at most 1024 characters without NUL",
                ));
            }
        }
        if !(1..=MAX_BULK).contains(&max_count) {
            return Err(invalid("max_count", "must be from 1 to 1000"));
        }
        Ok(Self {
            filter,
            mode,
            max_count,
            dry_run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["a", "mesa_monitor", "a1_b2", "_x", &"a".repeat(63)] {
            assert_eq!(RoleName::parse(ok).expect(ok).as_str(), ok);
        }
    }

    #[test]
    fn rejects_hostile_names() {
        for bad in [
            "",
            "1abc",
            "pg_x",
            "PG_x",
            "a b",
            "a\"b",
            "a;DROP ROLE x",
            "a\n",
            "a\0",
            "é",
            "a-b",
            "Postgres",
            "A1_b2",
            "ALLCAPS",
            &"a".repeat(64),
        ] {
            let err = RoleName::parse(bad).expect_err(bad);
            assert_eq!(err.reason(), crate::gateway::FailureReason::InvalidInput);
        }
    }

    #[test]
    fn generated_passwords_are_long_distinct_and_alphanumeric() {
        let a = generate_password().expect("os randomness");
        let b = generate_password().expect("os randomness");
        assert_eq!(a.expose().len(), GENERATED_PASSWORD_CHARS);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(NewUser::new("bob", Some(Secret::new("short")), false, true).is_err());
        assert!(NewUser::new("bob", Some(Secret::new("x".repeat(16))), false, true).is_ok());
    }

    #[test]
    fn pids_must_be_positive() {
        assert!(Pid::new(0).is_err());
        assert!(Pid::new(-1).is_err());
        assert_eq!(Pid::new(42).map(Pid::get).ok(), Some(42));
        for bad in ["", "0", "-1", "1.5", "2147483648", " 1", "0x10", "abc"] {
            assert!(Pid::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Pid::parse("2147483647").map(Pid::get).ok(), Some(i32::MAX));
    }

    #[test]
    fn object_names_and_limits_have_postgres_bounds() {
        assert!(ObjectName::parse("database", "").is_err());
        assert!(ObjectName::parse("table", &"t".repeat(64)).is_err());
        assert!(ObjectName::parse("schema", "a\0b").is_err());
        assert_eq!(
            ObjectName::parse("table", "Ünïcode name; with spaces")
                .expect("any text")
                .as_str(),
            "Ünïcode name; with spaces"
        );
        assert!(SessionLimit::new(0).is_err());
        assert!(SessionLimit::new(1001).is_err());
        assert_eq!(
            SessionLimit::new(1000).map(SessionLimit::get).ok(),
            Some(1000)
        );
    }
}
