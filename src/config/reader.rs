//! A small walker over the parsed YAML tree that records every problem with its path instead
//! of stopping at the first, and rejects keys it was not told about.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// One thing wrong with the config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `targets[1].port`; empty for the file as a whole.
    pub path: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Problems found so far (`.0`), and warnings (`.1`): things that load but deserve attention.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub Vec<Problem>, pub Vec<Problem>);

/// The longest duration any key accepts: one day. Far above any sensible interval or timeout,
/// and far below what could overflow a clock (`Instant + duration`) or PostgreSQL's
/// millisecond settings (2^31 - 1 ms is 24.8 days).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

impl Problems {
    /// Records a warning: the config loads, but the operator should look.
    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.1.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Joins a parent path and a key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The keys of one YAML mapping, consumed as they are read.
pub(crate) struct Fields {
    map: Map<String, Value>,
    path: String,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl Fields {
    /// Opens a mapping at `path`; reports keys outside `allowed`. A missing or empty section
    /// reads as an empty mapping.
    pub fn new(value: Value, path: &str, allowed: &[&str], p: &mut Problems) -> Option<Self> {
        let map = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                p.add(path, format!("expected a mapping, found {}", kind(&other)));
                return None;
            }
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                p.add(
                    join(path, key),
                    format!("unknown key; expected one of: {}", allowed.join(", ")),
                );
            }
        }
        Some(Self {
            map,
            path: path.to_owned(),
        })
    }

    /// The path of `key` in this mapping.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Takes a key's value; `null` counts as absent.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// A boolean value (`true` or `false`; YAML 1.2 has no other spellings).
    pub fn bool(&mut self, key: &str, p: &mut Problems) -> Option<bool> {
        match self.take(key)? {
            Value::Bool(b) => Some(b),
            _ => {
                p.add(self.path_of(key), "expected true or false");
                None
            }
        }
    }

    /// A string value.
    pub fn string(&mut self, key: &str, p: &mut Problems) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            other => {
                p.add(
                    self.path_of(key),
                    format!("expected a string, found {}", kind(&other)),
                );
                None
            }
        }
    }

    /// A required string value.
    pub fn required_string(&mut self, key: &str, p: &mut Problems) -> Option<String> {
        if !self.has(key) {
            p.add(self.path_of(key), "is required");
            return None;
        }
        self.string(key, p)
    }

    /// A duration written like `500ms`, `15s`, `2m`, at most 24h.
    pub fn duration(&mut self, key: &str, p: &mut Problems) -> Option<Duration> {
        self.duration_upto(key, MAX_DURATION, "24h", p)
    }

    /// A duration of at least a second and at most `max` (spelled `max_text`): lifetimes of
    /// credentials and roles, which run to days.
    pub fn long_duration(
        &mut self,
        key: &str,
        max: Duration,
        max_text: &str,
        p: &mut Problems,
    ) -> Option<Duration> {
        let path = self.path_of(key);
        let d = self.duration_upto(key, max, max_text, p)?;
        if d < Duration::from_secs(1) {
            p.add(path, "must be at least 1s");
            return None;
        }
        Some(d)
    }

    /// A duration above zero and at most `max`.
    fn duration_upto(
        &mut self,
        key: &str,
        max: Duration,
        max_text: &str,
        p: &mut Problems,
    ) -> Option<Duration> {
        let path = self.path_of(key);
        let text = match self.take(key)? {
            Value::String(s) => s,
            other => {
                p.add(
                    path,
                    format!(
                        "expected a duration such as \"15s\", found {}",
                        kind(&other)
                    ),
                );
                return None;
            }
        };
        match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() => {
                p.add(path, "must be greater than zero");
                None
            }
            Ok(d) if d > max => {
                p.add(path, format!("must be at most {max_text}"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                p.add(
                    path,
                    format!(
                        "invalid duration {text:?} ({e}); write e.g. \"500ms\", \"15s\", \"2m\""
                    ),
                );
                None
            }
        }
    }

    /// A TCP port, 1..=65535.
    pub fn port(&mut self, key: &str, p: &mut Problems) -> Option<u16> {
        let path = self.path_of(key);
        let value = self.take(key)?;
        match value.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(port) if port > 0 => Some(port),
            _ => {
                p.add(
                    path,
                    format!("expected a port number 1-65535, found {value}"),
                );
                None
            }
        }
    }

    /// A list value.
    pub fn list(&mut self, key: &str, p: &mut Problems) -> Option<Vec<Value>> {
        match self.take(key)? {
            Value::Array(items) => Some(items),
            other => {
                p.add(
                    self.path_of(key),
                    format!("expected a list, found {}", kind(&other)),
                );
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings(&mut self, key: &str, p: &mut Problems) -> Option<Vec<String>> {
        let path = self.path_of(key);
        let items = self.list(key, p)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) => out.push(s),
                other => p.add(
                    format!("{path}[{i}]"),
                    format!("expected a string, found {}", kind(&other)),
                ),
            }
        }
        Some(out)
    }

    /// A nested mapping.
    pub fn section(&mut self, key: &str, allowed: &[&str], p: &mut Problems) -> Option<Fields> {
        let path = self.path_of(key);
        let value = self.take(key).unwrap_or(Value::Null);
        Fields::new(value, &path, allowed, p)
    }

    /// Whether a key is present (and not null).
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// A path, resolved against `base` when relative.
    pub fn path(&mut self, key: &str, base: &Path, p: &mut Problems) -> Option<PathBuf> {
        let text = self.string(key, p)?;
        if text.is_empty() {
            p.add(self.path_of(key), "must not be empty");
            return None;
        }
        Some(base.join(text))
    }
}
