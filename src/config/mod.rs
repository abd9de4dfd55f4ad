//! Configuration: the YAML file (DESIGN.md §3.2) parsed, then validated into typed settings.
//!
//! Loading is two steps: `yaml::parse` turns text into a generic tree, and `validate` walks it
//! into [`Config`], collecting every problem with its path (`targets[1].port: ...`) instead of
//! stopping at the first. Unknown keys are errors. Secrets are read here (from an environment
//! variable or a file, never inline) and wrapped in [`Secret`].

mod admin;
mod databases;
mod drivers;
pub(crate) mod reader;
mod targets;
mod types;
pub(crate) mod yaml;

pub use admin::decode_sha256;
pub use targets::MAX_SECRET_FILE_BYTES;
pub use types::*;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use reader::Problem;
use reader::{Fields, Problems};

use crate::collectors::{Options as CollectorOptions, SelectionError};
use crate::gateway::Driver;
pub use crate::gateway::postgres::{ChannelBinding, SslMode};
use crate::secret::Secret;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not valid.
    #[error("{}", InvalidList { path, problems })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

struct InvalidList<'a> {
    path: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for InvalidList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Reads and validates the config file, taking secrets from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// As [`load`], with an explicit environment lookup (tests).
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_str(&text, &base, env).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Validates config text; relative paths resolve against `base`.
pub fn parse_str(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    let tree = match yaml::parse(text) {
        Ok(tree) => tree,
        Err(message) => {
            p.add("", message);
            return Err(p.0);
        }
    };
    if tree.is_null() {
        p.add("", "the file is empty; at least one target is required");
        return Err(p.0);
    }
    let config = validate(tree, base, env, &mut p);
    match config {
        Some(mut config) if p.0.is_empty() => {
            config.warnings = p.1;
            Ok(config)
        }
        _ => Err(p.0),
    }
}

const TOP_KEYS: &[&str] = &["collection", "web", "admin", "targets"];
const COLLECTION_KEYS: &[&str] = &[
    "interval",
    "timeout",
    "connect_timeout",
    "statement_timeout",
    "lock_timeout",
    "collectors",
    "max_tables",
    "max_indexes",
    "max_statements",
    "databases",
    "session",
    "queries",
];
const WEB_KEYS: &[&str] = &["listen_address", "config_file", "max_connections"];

fn validate(
    tree: Value,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<Config> {
    let mut top = Fields::new(tree, "", TOP_KEYS, p)?;
    let defaults = match top.section("collection", COLLECTION_KEYS, p) {
        Some(mut f) => collection(&mut f, &CollectionSettings::default(), None, base, p),
        None => CollectionSettings::default(),
    };
    check_collection(&defaults, "collection", p);
    let web = web(top.section("web", WEB_KEYS, p), base, p);
    let mut targets = Vec::new();
    match top.list("targets", p) {
        None if !top.has("targets") => p.add("targets", "at least one target is required"),
        None => {}
        Some(items) if items.is_empty() => p.add("targets", "at least one target is required"),
        Some(items) => {
            let mut names = HashSet::new();
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("targets[{i}]");
                if let Some(name) = item.get("name").and_then(Value::as_str)
                    && !names.insert(name.to_owned())
                {
                    p.add(
                        format!("{path}.name"),
                        format!("duplicate target name {name:?}; names must be unique"),
                    );
                }
                if let Some(t) = targets::target(item, &path, &defaults, base, env, p) {
                    targets.push(t);
                }
            }
        }
    }
    let known: HashSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let admin = admin::admin(top.section("admin", admin::ADMIN_KEYS, p), base, &known, p);
    Some(Config {
        collection: defaults,
        web: web?,
        admin: admin?,
        targets,
        warnings: Vec::new(),
        shard: crate::shard::Shard::SINGLE,
    })
}

/// The collection keys of `f` over `inherit`; `driver` is the target's (its collector names are
/// checked against that driver's catalogue), `None` for the shared `collection` section.
fn collection(
    f: &mut Fields,
    inherit: &CollectionSettings,
    driver: Option<Driver>,
    base: &Path,
    p: &mut Problems,
) -> CollectionSettings {
    let interval = f.duration("interval", p).unwrap_or(inherit.interval);
    // Queries files are postgres_exporter's SQL: a MySQL target takes none, and does not
    // inherit the shared section's.
    let queries = if driver == Some(Driver::Mysql) {
        if f.has("queries") {
            p.add(
                f.path_of("queries"),
                "queries files hold PostgreSQL SQL (postgres_exporter's format) and run on PostgreSQL targets only",
            );
        }
        std::sync::Arc::default()
    } else if f.has("queries") {
        queries(f, base, p)
    } else {
        inherit.queries.clone()
    };
    CollectionSettings {
        interval,
        timeout: f.duration("timeout", p).unwrap_or(inherit.timeout),
        connect_timeout: f
            .duration("connect_timeout", p)
            .unwrap_or(inherit.connect_timeout),
        statement_timeout: f
            .duration("statement_timeout", p)
            .unwrap_or(inherit.statement_timeout),
        lock_timeout: f
            .duration("lock_timeout", p)
            .unwrap_or(inherit.lock_timeout),
        collectors: collectors(f, inherit.collectors, driver, interval, p),
        databases: databases::databases(f, &inherit.databases, p),
        session: match f.string("session", p).as_deref() {
            None => inherit.session,
            Some("kept") => SessionMode::Kept,
            Some("ephemeral") => SessionMode::Ephemeral,
            Some(other) => {
                p.add(
                    f.path_of("session"),
                    format!("expected kept or ephemeral, found {other:?}"),
                );
                inherit.session
            }
        },
        queries,
    }
}

/// `queries: [path, ...]`: postgres_exporter queries files, read and checked now (a problem
/// in one is a config problem: `--check-config` exits 64 and a reload keeps the running set).
fn queries(
    f: &mut Fields,
    base: &Path,
    p: &mut Problems,
) -> std::sync::Arc<crate::collectors::custom::QuerySet> {
    let key = f.path_of("queries");
    let Some(paths) = f.strings("queries", p) else {
        return std::sync::Arc::default();
    };
    let paths: Vec<PathBuf> = paths.iter().map(|path| base.join(path)).collect();
    let builtin = |name: &str| crate::collectors::postgres::is_builtin_family(name);
    match crate::collectors::custom::load_files(&paths, &builtin) {
        Ok(set) => {
            for q in &set.queries {
                if crate::collectors::names(None).contains(&q.name) {
                    p.add(
                        key.clone(),
                        format!(
                            "{}: {}: the name of a built-in collector; rename the query",
                            q.origin, q.name
                        ),
                    );
                }
            }
            std::sync::Arc::new(set)
        }
        Err(errors) => {
            for e in errors {
                p.add(key.clone(), e.to_string());
            }
            std::sync::Arc::default()
        }
    }
}

/// Largest `max_tables` / `max_statements`: beyond this a target alone would make a scrape
/// of hundreds of thousands of series.
pub const MAX_GUARD: u32 = 10_000;

/// The keys of a collector given as a mapping.
const COLLECTOR_KEYS: &[&str] = &["enabled", "interval"];

/// `collectors: {name: bool | {enabled: bool, interval: duration}}` merged over `inherit`,
/// and the size guards. A collector's interval is at least the block's collection
/// `interval`.
fn collectors(
    f: &mut Fields,
    inherit: CollectorOptions,
    driver: Option<Driver>,
    interval: std::time::Duration,
    p: &mut Problems,
) -> CollectorOptions {
    let mut options = inherit;
    if let Some(value) = f.take("collectors") {
        let path = f.path_of("collectors");
        match value {
            Value::Object(map) => {
                for (name, given) in map {
                    let key = reader::join(&path, &name);
                    let (on, every) = match given {
                        Value::Bool(on) => (on, None),
                        Value::Object(_) => {
                            let Some(mut c) = Fields::new(given, &key, COLLECTOR_KEYS, p) else {
                                continue;
                            };
                            let on = if c.has("enabled") {
                                c.bool("enabled", p).unwrap_or(true)
                            } else {
                                true
                            };
                            let every = c.duration("interval", p);
                            if let Some(every) = every.filter(|e| *e < interval) {
                                p.add(
                                    c.path_of("interval"),
                                    format!(
                                        "must be at least the collection interval ({} < {})",
                                        humantime::format_duration(every),
                                        humantime::format_duration(interval)
                                    ),
                                );
                            }
                            (on, every)
                        }
                        _ => {
                            p.add(
                                key,
                                "expected true or false, or {enabled: true, interval: 5m}",
                            );
                            continue;
                        }
                    };
                    if every.is_some()
                        && crate::collectors::scope_of(driver, &name)
                            == Some(crate::collectors::Scope::Database)
                    {
                        p.add(
                            reader::join(&key, "interval"),
                            "runs in each visited database, every databases.interval; set that instead",
                        );
                        continue;
                    }
                    if every.is_some() && name == crate::collectors::HEALTH {
                        p.add(
                            reader::join(&key, "interval"),
                            "health runs at every collection (pg_up, saturation); it takes no interval",
                        );
                        continue;
                    }
                    if let Some(every) = every {
                        // An unknown name is reported once, by the switch below.
                        let _ = options.intervals.set(driver, &name, every);
                    }
                    match options.selection.set(driver, &name, on) {
                        Ok(()) => {}
                        Err(SelectionError::Unknown) => p.add(
                            key,
                            format!(
                                "unknown collector; expected one of: {}",
                                crate::collectors::names(driver).join(", ")
                            ),
                        ),
                        Err(SelectionError::Required) => p.add(
                            key,
                            "the health collector cannot be switched off: pg_up and the saturation alerts depend on it",
                        ),
                    }
                }
            }
            _ => p.add(
                path,
                "expected a mapping of collector names to true or false (or {enabled, interval})",
            ),
        }
    }
    for (key, slot) in [
        ("max_tables", &mut options.max_tables),
        ("max_indexes", &mut options.max_indexes),
        ("max_statements", &mut options.max_statements),
    ] {
        if let Some(v) = f.take(key) {
            match v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_GUARD).contains(n))
            {
                Some(n) => *slot = n,
                None => p.add(
                    f.path_of(key),
                    format!("expected a whole number from 1 to {MAX_GUARD}"),
                ),
            }
        }
    }
    options
}

fn check_collection(c: &CollectionSettings, path: &str, p: &mut Problems) {
    if let Some(every) = c.databases.interval.filter(|d| *d < c.interval) {
        p.add(
            reader::join(path, "databases.interval"),
            format!(
                "must be at least the collection interval ({} < {})",
                humantime::format_duration(every),
                humantime::format_duration(c.interval)
            ),
        );
    }
    if c.timeout >= c.interval {
        p.add(
            reader::join(path, "timeout"),
            format!(
                "must be less than interval ({} >= {}), so collections of a target never overlap",
                humantime::format_duration(c.timeout),
                humantime::format_duration(c.interval)
            ),
        );
    }
}

fn socket_addr(f: &mut Fields, key: &str, default: &str, p: &mut Problems) -> Option<SocketAddr> {
    let text = f.string(key, p).unwrap_or_else(|| default.to_owned());
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            p.add(
                f.path_of(key),
                format!("invalid address {text:?}; write IP:PORT, e.g. \"127.0.0.1:9930\" or \"[::]:9930\""),
            );
            None
        }
    }
}

fn web(f: Option<Fields>, base: &Path, p: &mut Problems) -> Option<WebSettings> {
    let mut f = f?;
    let max_connections = connection_cap(&mut f, DEFAULT_WEB_MAX_CONNECTIONS, p);
    Some(WebSettings {
        listen_address: socket_addr(&mut f, "listen_address", DEFAULT_WEB_LISTEN, p)?,
        config_file: f.path("config_file", base, p),
        max_connections,
    })
}

/// `max_connections` of a listener: 1 to [`MAX_LISTENER_CONNECTIONS`].
fn connection_cap(f: &mut Fields, default: usize, p: &mut Problems) -> usize {
    match f.take("max_connections") {
        None => default,
        Some(v) => match v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_LISTENER_CONNECTIONS).contains(n))
        {
            Some(n) => n,
            None => {
                p.add(
                    f.path_of("max_connections"),
                    format!("expected a whole number from 1 to {MAX_LISTENER_CONNECTIONS}"),
                );
                default
            }
        },
    }
}

#[cfg(test)]
mod tests;
