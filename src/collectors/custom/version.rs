//! `runonserver`: postgres_exporter's server-version range (blang/semver's syntax), and the
//! Mesa-only `min_version`/`max_version` bounds on `server_version_num`.
//!
//! A range is comparators joined by spaces (all must hold) and alternatives joined by `||`
//! (one must hold): `">=14.0.0"`, `">=9.6.0 <14.0.0"`, `"<10.0.0 || >=12.0.0"`. Versions may be
//! shortened (`14`, `14.2`), as postgres_exporter parses the server's own version tolerantly.
//! The server's version is what postgres_exporter makes of `server_version`: 15.18 is
//! `15.18.0`, 9.6.24 is `9.6.24`.

use std::fmt;

/// A version as three numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// The version postgres_exporter sees for `server_version_num`.
    pub fn of_server(num: u32) -> Self {
        if num >= 100_000 {
            Self(num / 10_000, num % 10_000, 0)
        } else {
            Self(num / 10_000, num / 100 % 100, num % 100)
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let mut parts = text.split('.');
        let mut next = || -> Option<u32> {
            match parts.next() {
                None => Some(0),
                Some(p) => p.parse().ok(),
            }
        };
        let v = Self(next()?, next()?, next()?);
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A parsed range: alternatives of conjunctions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range(Vec<Vec<(Op, Version)>>);

impl Range {
    /// Parses `text`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut alternatives = Vec::new();
        for alternative in text.split("||") {
            let mut all = Vec::new();
            for comparator in alternative.split_whitespace() {
                let (op, rest) = [
                    (">=", Op::Ge),
                    ("<=", Op::Le),
                    ("==", Op::Eq),
                    ("!=", Op::Ne),
                    (">", Op::Gt),
                    ("<", Op::Lt),
                    ("=", Op::Eq),
                    ("!", Op::Ne),
                ]
                .iter()
                .find_map(|(p, op)| comparator.strip_prefix(p).map(|rest| (*op, rest)))
                .unwrap_or((Op::Eq, comparator));
                let version = Version::parse(rest).ok_or_else(|| {
                    format!("{comparator:?} is not a version comparison like \">=14.0.0\"")
                })?;
                all.push((op, version));
            }
            if all.is_empty() {
                return Err(format!("{text:?} has an empty alternative"));
            }
            alternatives.push(all);
        }
        Ok(Self(alternatives))
    }

    /// Whether `v` is in the range.
    pub fn contains(&self, v: Version) -> bool {
        self.0.iter().any(|all| {
            all.iter().all(|(op, bound)| match op {
                Op::Lt => v < *bound,
                Op::Le => v <= *bound,
                Op::Gt => v > *bound,
                Op::Ge => v >= *bound,
                Op::Eq => v == *bound,
                Op::Ne => v != *bound,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Range, Version};

    #[test]
    fn server_versions_read_as_postgres_exporter_reads_them() {
        assert_eq!(Version::of_server(150_018), Version(15, 18, 0));
        assert_eq!(Version::of_server(90_624), Version(9, 6, 24));
    }

    #[test]
    fn ranges_hold_as_blang_semver_says() {
        let r = Range::parse(">=14.0.0").expect("valid");
        assert!(r.contains(Version(14, 0, 0)) && r.contains(Version(18, 1, 0)));
        assert!(!r.contains(Version(13, 22, 0)));
        let r = Range::parse(">=9.6.0 <14.0.0").expect("valid");
        assert!(r.contains(Version(13, 5, 0)) && !r.contains(Version(14, 0, 0)));
        let r = Range::parse("<10 || >=16").expect("valid");
        assert!(r.contains(Version(9, 6, 1)) && r.contains(Version(17, 0, 0)));
        assert!(!r.contains(Version(15, 3, 0)));
        assert!(Range::parse(">=fourteen").is_err());
        assert!(Range::parse(">=14 ||").is_err());
    }
}
