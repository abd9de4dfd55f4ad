//! Input checks that run before any SQL is sent.
//!
//! DDL such as `CREATE ROLE` takes no bind parameters, so a role name must be proven harmless
//! before it is spliced into a statement; Mesa also quotes it. Other names (databases, schemas,
//! tables) travel as bind parameters or startup parameters, and are only checked for the limits
//! PostgreSQL itself enforces, so a hopeless request fails fast without a connection.

use std::fmt;

use super::error::GatewayError;
use super::model::NewUser;
use crate::secret::Secret;

/// PostgreSQL truncates identifiers to `NAMEDATALEN - 1` = 63 bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;
/// Shortest password a caller may choose. 16 characters keeps an offline guess against a
/// leaked SCRAM verifier out of reach even for plain lowercase text.
pub const MIN_PASSWORD_CHARS: usize = 16;
/// Longest password accepted; far above any real need, and keeps hashing cheap.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Length of a generated password: 32 characters of a 62-symbol alphabet is ~190 bits.
pub const GENERATED_PASSWORD_CHARS: usize = 32;

/// A role name that passed [`RoleName::parse`]: `[A-Za-z_][A-Za-z0-9_]*`, 1..=63 bytes, and not
/// the reserved `pg_` prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// Validates a role name. The rules are stricter than PostgreSQL's quoted identifiers on
    /// purpose: a name that needs no quoting works the same in every client and script.
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
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(
                "may contain only letters A-Z and a-z, digits 0-9 and '_'",
            ));
        }
        if raw.as_bytes()[0].is_ascii_digit() {
            return Err(invalid("must not start with a digit"));
        }
        // PostgreSQL reserves the lowercase prefix; refusing any case avoids look-alikes.
        if raw.len() >= 3 && raw[..3].eq_ignore_ascii_case("pg_") {
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
    /// [`MIN_PASSWORD_CHARS`]..=[`MAX_PASSWORD_BYTES`] without NUL.
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
        })
    }
}

fn check_password(password: &Secret) -> Result<(), GatewayError> {
    let text = password.expose();
    let invalid = |problem: &str| GatewayError::InvalidInput {
        field: "password",
        problem: problem.to_owned(),
    };
    if text.chars().count() < MIN_PASSWORD_CHARS {
        return Err(invalid("must be at least 16 characters"));
    }
    if text.len() > MAX_PASSWORD_BYTES {
        return Err(invalid("must be at most 1024 bytes"));
    }
    if text.contains('\0') {
        return Err(invalid("must not contain NUL"));
    }
    Ok(())
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

/// Checks a database, schema or table name that will travel as a parameter: 1 to 63
/// characters, no NUL (which no PostgreSQL name can hold and no parameter can carry).
pub fn object_name(field: &'static str, raw: &str) -> Result<(), GatewayError> {
    let problem = if raw.is_empty() {
        "must not be empty"
    } else if raw.chars().count() > MAX_OBJECT_NAME_CHARS {
        "must be at most 63 characters"
    } else if raw.contains('\0') {
        "must not contain NUL"
    } else {
        return Ok(());
    };
    Err(GatewayError::InvalidInput {
        field,
        problem: problem.to_owned(),
    })
}

/// Checks a backend pid: PostgreSQL pids are positive 32-bit integers.
pub fn pid(pid: i32) -> Result<(), GatewayError> {
    if pid > 0 {
        Ok(())
    } else {
        Err(GatewayError::InvalidInput {
            field: "pid",
            problem: "must be a positive integer".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["a", "mesa_monitor", "A1_b2", "_x", &"a".repeat(63)] {
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
        assert!(pid(0).is_err());
        assert!(pid(-1).is_err());
        assert!(pid(42).is_ok());
    }
}
