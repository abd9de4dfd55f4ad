//! Users' own SQL as metrics: postgres_exporter's `queries.yaml`, read unchanged.
//!
//! A file maps query names to a query and its columns. Each column is a label (`LABEL`), left
//! out (`DISCARD`), or a value: `GAUGE`, `COUNTER`, `DURATION` (milliseconds in
//! `<query>_<column>_milliseconds`, as postgres_exporter names it; a number as it is, a Go
//! duration string or an `interval` converted) or
//! `MAPPEDMETRIC` (text mapped to numbers by `metric_mapping`). A value column becomes the
//! family `<query>_<column>`, labelled with the label columns (and `server`, and `datname` for
//! a query that runs in each visited database), exactly as postgres_exporter names it.
//!
//! Loading (`load.rs`) turns files into a [`QuerySet`]; every problem names the file, line and
//! key. The driver runs each [`Query`] in the collection's read-only snapshot under a savepoint
//! of its own, always rolled back (see `postgres/custom.rs`); this module turns the rows the
//! driver decoded ([`Cell`]) into families, and fails the query alone on a cell it cannot
//! read.

pub mod check;
mod load;
mod version;

pub use load::{LoadError, load_files};
pub use version::{Range, Version};

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Family, Harvest, Kind, Scope, Value};

/// Default `max_rows`: rows one query may export per run.
pub const DEFAULT_MAX_ROWS: u32 = 1000;
/// Largest `max_rows`.
pub const MAX_MAX_ROWS: u32 = 100_000;

/// A name that lives as long as Mesa: query names are the `collector` label, column names are
/// label names, both `&'static str` in the model. Each distinct name is stored once, so
/// reloading the same files never grows memory.
pub fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// How a column is used.
#[derive(Debug, Clone, PartialEq)]
pub enum Usage {
    /// A label of every value of the row.
    Label,
    /// Read and ignored.
    Discard,
    /// A gauge.
    Gauge,
    /// A counter (`_total` on the OpenMetrics wire).
    Counter,
    /// A duration, exported in milliseconds (postgres_exporter's `DURATION`).
    Duration,
    /// Text mapped to a number (postgres_exporter's `MAPPEDMETRIC` with `metric_mapping`).
    Mapped(Vec<(String, f64)>),
}

/// A declared column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name in the result.
    pub name: &'static str,
    /// How it is used.
    pub usage: Usage,
    /// HELP of its family (`help`, else `description`).
    pub help: String,
    /// Its family's name (value columns).
    pub family: String,
}

impl Column {
    /// Whether the column becomes a family.
    pub fn is_value(&self) -> bool {
        !matches!(self.usage, Usage::Label | Usage::Discard)
    }
}

/// Where a query may run (`role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A primary and a standby.
    Any,
    /// Only a server not in recovery.
    Primary,
    /// Only a standby.
    Replica,
}

/// One query of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Its name: the families' prefix and the `collector` label.
    pub name: &'static str,
    /// The SQL, as written.
    pub sql: String,
    /// `master: true`: once per collection, in the target's database; otherwise in each
    /// visited database.
    pub scope: Scope,
    /// `cache_seconds`: its result is served this long before it runs again.
    pub cache: Option<Duration>,
    /// The declared columns, in file order.
    pub columns: Vec<Column>,
    /// `runonserver`.
    pub range: Option<Range>,
    /// `min_version` / `max_version` (`server_version_num`, inclusive).
    pub min_version: Option<u32>,
    /// See `min_version`.
    pub max_version: Option<u32>,
    /// `role`.
    pub role: Role,
    /// `max_rows`.
    pub max_rows: u32,
    /// `timeout`: its `statement_timeout` (default: the collection's).
    pub timeout: Option<Duration>,
    /// `file:line` of its name, for logs.
    pub origin: String,
}

impl Query {
    /// Whether it runs on a server of `version` that is (or is not) in recovery.
    pub fn runs_on(&self, version: u32, in_recovery: bool) -> bool {
        self.range
            .as_ref()
            .is_none_or(|r| r.contains(Version::of_server(version)))
            && self.min_version.is_none_or(|min| version >= min)
            && self.max_version.is_none_or(|max| version <= max)
            && match self.role {
                Role::Any => true,
                Role::Primary => !in_recovery,
                Role::Replica => in_recovery,
            }
    }

    /// The label columns' names.
    pub fn labels(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns
            .iter()
            .filter(|c| c.usage == Usage::Label)
            .map(|c| c.name)
    }
}

/// The queries of every configured file, and what they were read from (two sets are equal
/// when their files' paths and contents are).
#[derive(Debug, Clone, Default)]
pub struct QuerySet {
    /// In file order.
    pub queries: Vec<Arc<Query>>,
    /// `(path, content hash)` of each file.
    sources: Vec<(PathBuf, u64)>,
}

impl PartialEq for QuerySet {
    fn eq(&self, other: &Self) -> bool {
        self.sources == other.sources
    }
}

impl Eq for QuerySet {}

impl QuerySet {
    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// The queries of `scope`.
    pub fn of(&self, scope: Scope) -> impl Iterator<Item = &Arc<Query>> {
        self.queries.iter().filter(move |q| q.scope == scope)
    }
}

/// One cell of a row as the driver decoded it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer type.
    Int(i64),
    /// A float or numeric.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text (escaped when not UTF-8, as every text Mesa reads).
    Text(String),
    /// An `interval`, in milliseconds.
    Interval(f64),
    /// A type Mesa does not read; its name.
    Other(String),
}

/// Why a query's rows could not become families: the column and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The column.
    pub column: String,
    /// What was wrong.
    pub detail: String,
}

/// Checks the result's column names against the declared ones: the position of each declared
/// column in the result. Every declared column must be returned, and nothing else.
pub fn match_columns(query: &Query, returned: &[&str]) -> Result<Vec<usize>, DecodeError> {
    if let Some(extra) = returned
        .iter()
        .find(|r| !query.columns.iter().any(|c| c.name == **r))
    {
        return Err(DecodeError {
            column: (*extra).to_owned(),
            detail: "the query returns this column, but the queries file does not declare it"
                .into(),
        });
    }
    query
        .columns
        .iter()
        .map(|c| {
            let at: Vec<usize> = (0..returned.len())
                .filter(|&i| returned[i] == c.name)
                .collect();
            match at.as_slice() {
                [one] => Ok(*one),
                [] => Err(DecodeError {
                    column: c.name.to_owned(),
                    detail: "declared in the queries file, but the query does not return it".into(),
                }),
                _ => Err(DecodeError {
                    column: c.name.to_owned(),
                    detail: "the query returns two columns of this name".into(),
                }),
            }
        })
        .collect()
}

/// Families of `query` from its rows (cells in result order; `at` from [`match_columns`]),
/// `datname` added to each series when it ran in a visited database, and how many rows were
/// left out over `max_rows` (`omitted`).
pub fn harvest(
    query: &Query,
    at: &[usize],
    rows: &[Vec<Cell>],
    datname: Option<&str>,
    omitted: u64,
) -> Result<Harvest, DecodeError> {
    let values: Vec<(usize, &Column)> = query
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_value())
        .collect();
    let mut families: Vec<Family> = values
        .iter()
        .map(|(_, c)| {
            let kind = match c.usage {
                Usage::Counter => Kind::Counter,
                _ => Kind::Gauge,
            };
            Family::new(c.family.clone(), c.help.clone(), kind)
        })
        .collect();
    for row in rows {
        let mut labels: Vec<(&'static str, String)> = Vec::new();
        for (j, c) in query.columns.iter().enumerate() {
            if c.usage == Usage::Label {
                labels.push((c.name, label_text(c, &row[at[j]])?));
            }
        }
        if let Some(datname) = datname {
            labels.push(("datname", datname.to_owned()));
        }
        for ((j, c), family) in values.iter().zip(families.iter_mut()) {
            if let Some(value) = value(c, &row[at[*j]])? {
                family.push(labels.clone(), value);
            }
        }
    }
    Ok(Harvest {
        families,
        omitted: Some(omitted),
    })
}

fn label_text(column: &Column, cell: &Cell) -> Result<String, DecodeError> {
    Ok(match cell {
        Cell::Null => String::new(),
        Cell::Int(n) => n.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Text(t) => t.clone(),
        Cell::Interval(ms) => ms.to_string(),
        Cell::Other(ty) => {
            return Err(DecodeError {
                column: column.name.to_owned(),
                detail: format!("a label of type {ty} is not read; cast it to text in the query"),
            });
        }
    })
}

/// The value of a value column's cell (`None` for the columns that are not values).
fn value(column: &Column, cell: &Cell) -> Result<Option<Value>, DecodeError> {
    let fail = |detail: String| DecodeError {
        column: column.name.to_owned(),
        detail,
    };
    let number = |cell: &Cell| -> Result<Value, DecodeError> {
        match cell {
            Cell::Int(n) => Ok(Value::Int(*n)),
            Cell::Float(f) => Ok(Value::Float(*f)),
            Cell::Bool(b) => Ok(Value::Int(i64::from(*b))),
            Cell::Null => Err(fail("NULL in a value column".into())),
            Cell::Text(_) | Cell::Interval(_) | Cell::Other(_) => {
                Err(fail(format!("{} is not a number", describe(cell))))
            }
        }
    };
    match &column.usage {
        Usage::Label | Usage::Discard => Ok(None),
        Usage::Gauge | Usage::Counter => number(cell).map(Some),
        // postgres_exporter 0.11 reads a DURATION column as it reads a GAUGE (a number, or
        // text that parses as one: milliseconds, by the family's name). Mesa also reads a Go
        // duration (`'1.5s'`) and an interval, in milliseconds.
        Usage::Duration => match cell {
            Cell::Interval(ms) => Ok(Some(Value::Float(*ms))),
            Cell::Text(t) => t
                .trim()
                .parse::<f64>()
                .ok()
                .or_else(|| go_duration_ms(t))
                .map(|ms| Some(Value::Float(ms)))
                .ok_or_else(|| {
                    fail(format!(
                        "{t:?} is neither a number of milliseconds nor a duration like \"1.5s\""
                    ))
                }),
            other => number(other).map(Some),
        },
        Usage::Mapped(mapping) => match cell {
            Cell::Text(t) => mapping
                .iter()
                .find(|(k, _)| k == t)
                .map(|(_, v)| Some(Value::Float(*v)))
                .ok_or_else(|| fail(format!("{t:?} is not in metric_mapping"))),
            other => Err(fail(format!(
                "a MAPPEDMETRIC column holds text, not {}",
                describe(other)
            ))),
        },
    }
}

fn describe(cell: &Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Int(_) => "an integer".into(),
        Cell::Float(_) => "a number".into(),
        Cell::Bool(_) => "a boolean".into(),
        Cell::Text(t) => format!("the text {t:?}"),
        Cell::Interval(_) => "an interval".into(),
        Cell::Other(ty) => format!("a value of type {ty}"),
    }
}

/// A Go duration (`time.ParseDuration`: `"1h2m3.5s"`, `"300ms"`, `"-1.5h"`, `"0"`) in whole
/// milliseconds, truncated as postgres_exporter's `d / time.Millisecond` truncates.
pub fn go_duration_ms(text: &str) -> Option<f64> {
    let (sign, mut rest) = match text.as_bytes().first()? {
        b'-' => (-1.0, &text[1..]),
        b'+' => (1.0, &text[1..]),
        _ => (1.0, text),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let ns = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += (number * ns).round();
    }
    Some(sign * (total / 1e6).trunc())
}

#[cfg(test)]
mod tests;
