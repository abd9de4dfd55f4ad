//! Loading queries files: YAML with line numbers, then every rule checked, every problem
//! reported as `file:line: key: message`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash as _, Hasher as _};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::{Column, DEFAULT_MAX_ROWS, MAX_MAX_ROWS, Query, QuerySet, Range, Role, Usage, intern};
use crate::collectors::Scope;

/// Largest queries file accepted.
const MAX_FILE_BYTES: usize = 1024 * 1024;

/// One problem in a queries file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is the file's as a whole.
    pub line: u64,
    /// `query.metrics[i].column.key`; empty for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A mapping read in file order (YAML mappings are unordered to serde's map types).
struct Ordered<V>(Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Each<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Each<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    out.push(pair);
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        d.deserialize_map(Each(PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    query: Option<Spanned<String>>,
    #[serde(default)]
    metrics: Vec<Ordered<RawColumn>>,
    master: Option<bool>,
    cache_seconds: Option<Spanned<u64>>,
    runonserver: Option<Spanned<String>>,
    min_version: Option<Spanned<u32>>,
    max_version: Option<Spanned<u32>>,
    role: Option<Spanned<String>>,
    max_rows: Option<Spanned<u64>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    usage: Spanned<String>,
    description: Option<String>,
    help: Option<String>,
    metric_mapping: Option<Ordered<f64>>,
    // postgres_exporter ignores a user query's `pg_version` (it reads `runonserver`); so does
    // Mesa, so that a file serves both.
    #[allow(dead_code)]
    pg_version: Option<String>,
}

/// Reads every file of `paths` (in order) into one set; `taken(name)` says whether a family
/// name belongs to Mesa's built-in collectors. Every problem of every file is returned.
pub fn load_files(
    paths: &[PathBuf],
    taken: &dyn Fn(&str) -> bool,
) -> Result<QuerySet, Vec<LoadError>> {
    let mut set = QuerySet::default();
    let mut problems = Vec::new();
    // family name -> where it was first declared
    let mut families: HashMap<String, String> = HashMap::new();
    let mut names: HashMap<&'static str, String> = HashMap::new();
    for path in paths {
        let text = match read_bounded(path) {
            Ok(t) => t,
            Err(message) => {
                problems.push(whole(path, message));
                continue;
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hasher);
        set.sources.push((path.clone(), hasher.finish()));
        let mut file = File {
            path,
            problems: &mut problems,
        };
        for query in file.parse(&text) {
            if let Some(first) = names.get(query.name) {
                file.add(
                    line_of(&query.origin),
                    query.name,
                    format!("a query of this name is declared already, at {first}"),
                );
                continue;
            }
            names.insert(query.name, query.origin.clone());
            let mut clash = false;
            for c in query.columns.iter().filter(|c| c.is_value()) {
                if taken(&c.family) {
                    file.add(
                        line_of(&query.origin),
                        format!("{}.{}", query.name, c.name),
                        format!("makes {}, a family of Mesa's built-in collectors", c.family),
                    );
                    clash = true;
                } else if let Some(first) = families.get(&c.family) {
                    file.add(
                        line_of(&query.origin),
                        format!("{}.{}", query.name, c.name),
                        format!("makes {}, which the query at {first} makes too", c.family),
                    );
                    clash = true;
                } else {
                    families.insert(c.family.clone(), query.origin.clone());
                }
            }
            if !clash {
                set.queries.push(Arc::new(query));
            }
        }
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}

/// The file's text: a regular file of at most [`MAX_FILE_BYTES`] (never `/dev/zero`).
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read it as UTF-8 text: {e}"))?;
    if text.len() > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(text)
}

fn whole(path: &Path, message: String) -> LoadError {
    LoadError {
        file: path.to_owned(),
        line: 0,
        key: String::new(),
        message,
    }
}

fn line_of(origin: &str) -> u64 {
    origin
        .rsplit(':')
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

/// A valid metric or label name (`[a-zA-Z_][a-zA-Z0-9_]*`; no colons, which are for rules).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// HELP text safe on the wire: one line, with backslashes and quotes escaped as OpenMetrics
/// asks.
fn help_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

struct File<'a> {
    path: &'a Path,
    problems: &'a mut Vec<LoadError>,
}

impl File<'_> {
    fn add(&mut self, line: u64, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(LoadError {
            file: self.path.to_owned(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn parse(&mut self, text: &str) -> Vec<Query> {
        let mut options = serde_saphyr::Options::default();
        options.strict_booleans = true;
        let raw: Ordered<RawQuery> = match serde_saphyr::from_str_with_options(text, options) {
            Ok(raw) => raw,
            Err(e) => {
                self.add(0, "", format!("invalid queries file: {e}"));
                return Vec::new();
            }
        };
        raw.0
            .into_iter()
            .filter_map(|(name, raw)| self.query(name, raw))
            .collect()
    }

    fn query(&mut self, name: Spanned<String>, raw: RawQuery) -> Option<Query> {
        let line = name.referenced.line();
        let before = self.problems.len();
        let qname = name.value;
        if !valid_name(&qname) {
            self.add(
                line,
                &qname,
                "not a valid metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*)",
            );
        }
        let scope = if raw.master.unwrap_or(false) {
            Scope::Server
        } else {
            Scope::Database
        };
        let sql = match raw.query {
            Some(q) if !q.value.trim().is_empty() => q.value,
            _ => {
                self.add(
                    line,
                    format!("{qname}.query"),
                    "the query is missing or empty",
                );
                String::new()
            }
        };
        let cache = match raw.cache_seconds {
            Some(s) if s.value > 24 * 3600 => {
                self.add(
                    s.referenced.line(),
                    format!("{qname}.cache_seconds"),
                    "at most 86400 (one day)",
                );
                None
            }
            Some(s) if s.value > 0 => Some(Duration::from_secs(s.value)),
            _ => None,
        };
        let range = raw.runonserver.and_then(|r| match Range::parse(&r.value) {
            Ok(range) => Some(range),
            Err(e) => {
                self.add(r.referenced.line(), format!("{qname}.runonserver"), e);
                None
            }
        });
        let role = match raw.role.as_ref().map(|r| r.value.as_str()) {
            None | Some("any") => Role::Any,
            Some("primary") => Role::Primary,
            Some("replica") => Role::Replica,
            Some(other) => {
                let at = raw.role.as_ref().map_or(line, |r| r.referenced.line());
                self.add(
                    at,
                    format!("{qname}.role"),
                    format!("expected primary, replica or any, found {other:?}"),
                );
                Role::Any
            }
        };
        let max_rows = match raw.max_rows {
            None => DEFAULT_MAX_ROWS,
            Some(m) => match u32::try_from(m.value)
                .ok()
                .filter(|n| (1..=MAX_MAX_ROWS).contains(n))
            {
                Some(n) => n,
                None => {
                    self.add(
                        m.referenced.line(),
                        format!("{qname}.max_rows"),
                        format!("expected a whole number from 1 to {MAX_MAX_ROWS}"),
                    );
                    DEFAULT_MAX_ROWS
                }
            },
        };
        let timeout = raw
            .timeout
            .and_then(|t| match humantime::parse_duration(&t.value) {
                Ok(d)
                    if d >= Duration::from_millis(1)
                        && d <= crate::config::reader::MAX_DURATION =>
                {
                    Some(d)
                }
                _ => {
                    self.add(
                        t.referenced.line(),
                        format!("{qname}.timeout"),
                        format!(
                            "expected a duration from 1ms to 24h like \"2s\", found {:?}",
                            t.value
                        ),
                    );
                    None
                }
            });
        let columns = self.columns(&qname, line, scope, raw.metrics);
        if self.problems.len() > before {
            return None;
        }
        Some(Query {
            name: intern(&qname),
            sql,
            scope,
            cache,
            columns,
            range,
            min_version: raw.min_version.map(|v| v.value),
            max_version: raw.max_version.map(|v| v.value),
            role,
            max_rows,
            timeout,
            origin: format!("{}:{line}", self.path.display()),
        })
    }

    fn columns(
        &mut self,
        qname: &str,
        line: u64,
        scope: Scope,
        metrics: Vec<Ordered<RawColumn>>,
    ) -> Vec<Column> {
        let mut columns: Vec<Column> = Vec::new();
        for (i, item) in metrics.into_iter().enumerate() {
            if item.0.len() != 1 {
                self.add(
                    line,
                    format!("{qname}.metrics[{i}]"),
                    "each item names one column: `- column: {usage: GAUGE, description: ...}`",
                );
            }
            for (cname, raw) in item.0 {
                let at = cname.referenced.line();
                let cname = cname.value;
                let key = format!("{qname}.metrics[{i}].{cname}");
                if !valid_name(&cname) {
                    self.add(
                        at,
                        &key,
                        "not a valid column name for a metric or label ([a-zA-Z_][a-zA-Z0-9_]*)",
                    );
                    continue;
                }
                if columns.iter().any(|c| c.name == cname) {
                    self.add(at, &key, "this column is declared twice");
                    continue;
                }
                let usage = match raw.usage.value.as_str() {
                    "LABEL" => Usage::Label,
                    "DISCARD" => Usage::Discard,
                    "GAUGE" => Usage::Gauge,
                    "COUNTER" => Usage::Counter,
                    "DURATION" => Usage::Duration,
                    "MAPPEDMETRIC" => match raw.metric_mapping {
                        Some(m) if !m.0.is_empty() => {
                            Usage::Mapped(m.0.into_iter().map(|(k, v)| (k.value, v)).collect())
                        }
                        _ => {
                            self.add(
                                at,
                                format!("{key}.metric_mapping"),
                                "MAPPEDMETRIC needs metric_mapping: {text: number, ...}",
                            );
                            continue;
                        }
                    },
                    "HISTOGRAM" => {
                        self.add(raw.usage.referenced.line(), format!("{key}.usage"), "HISTOGRAM is not supported by Mesa; export the buckets as a GAUGE per bucket with an `le` LABEL column");
                        continue;
                    }
                    other => {
                        self.add(raw.usage.referenced.line(), format!("{key}.usage"), format!("unknown usage {other:?}; expected LABEL, DISCARD, GAUGE, COUNTER, DURATION or MAPPEDMETRIC"));
                        continue;
                    }
                };
                if usage == Usage::Label {
                    let added = if scope == Scope::Database {
                        "server and datname (the query runs in each visited database; set master: true to run it once)"
                    } else {
                        "server"
                    };
                    if cname == "server" || (cname == "datname" && scope == Scope::Database) {
                        self.add(at, &key, format!("a label Mesa adds itself: {added}"));
                        continue;
                    }
                    if cname.starts_with("__") {
                        self.add(
                            at,
                            &key,
                            "label names starting with __ are reserved by Prometheus",
                        );
                        continue;
                    }
                }
                let mut family = match usage {
                    Usage::Duration => format!("{qname}_{cname}_milliseconds"),
                    _ => format!("{qname}_{cname}"),
                };
                // On the wire a counter is `<family>_total`: postgres_exporter's
                // `x_total` stays `x_total`.
                if usage == Usage::Counter
                    && let Some(stem) = family.strip_suffix("_total")
                {
                    family = stem.to_owned();
                }
                if let Some(other) = columns.iter().find(|c| c.is_value() && c.family == family) {
                    self.add(
                        at,
                        &key,
                        format!("makes the family {family}, as column {} does", other.name),
                    );
                    continue;
                }
                let help = raw
                    .help
                    .or(raw.description)
                    .unwrap_or_else(|| format!("{cname} from the query {qname}"));
                columns.push(Column {
                    name: intern(&cname),
                    usage,
                    help: help_line(&help),
                    family,
                });
            }
        }
        if !columns.iter().any(Column::is_value) {
            self.add(
                line,
                format!("{qname}.metrics"),
                "declares no GAUGE, COUNTER, DURATION or MAPPEDMETRIC column",
            );
        }
        columns
    }
}
