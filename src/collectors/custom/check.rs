//! `--check-config --live`: what each user query returns on a server against what its file
//! declares, as rows of a table a person reads.

use super::{Query, Usage};

/// What kind of value a returned column holds (the driver maps its types to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// An integer type.
    Integer,
    /// A float or numeric.
    Float,
    /// A boolean.
    Bool,
    /// Text (and enums).
    Text,
    /// An interval.
    Interval,
    /// Anything else.
    Other,
}

/// A column the server says the statement returns: its name, kind and type name.
#[derive(Debug, Clone)]
pub struct Returned {
    /// The column's name.
    pub name: String,
    /// Its kind.
    pub kind: ColumnKind,
    /// The server's name for its type (`int8`, `text`).
    pub type_name: String,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The query.
    pub query: String,
    /// The column (`-` for the query as a whole).
    pub column: String,
    /// Its declared usage (`-` when undeclared).
    pub declared: String,
    /// The returned type (`-` when not returned).
    pub returned: String,
    /// `ok`, or what disagrees.
    pub verdict: String,
}

impl Line {
    /// Whether the line agrees.
    pub fn ok(&self) -> bool {
        self.verdict == "ok" || self.verdict.starts_with("skipped")
    }
}

fn usage_name(usage: &Usage) -> &'static str {
    match usage {
        Usage::Label => "LABEL",
        Usage::Discard => "DISCARD",
        Usage::Gauge => "GAUGE",
        Usage::Counter => "COUNTER",
        Usage::Duration => "DURATION",
        Usage::Mapped(_) => "MAPPEDMETRIC",
    }
}

fn verdict(usage: &Usage, kind: ColumnKind) -> String {
    use ColumnKind::*;
    let fits = match usage {
        Usage::Discard => true,
        Usage::Label => kind != Other,
        Usage::Gauge | Usage::Counter => matches!(kind, Integer | Float | Bool),
        Usage::Duration => matches!(kind, Integer | Float | Text | Interval),
        Usage::Mapped(_) => kind == Text,
    };
    if fits {
        "ok".into()
    } else {
        match usage {
            Usage::Label => "a label must be text, a number or a boolean: cast it to text".into(),
            Usage::Duration => {
                "DURATION reads milliseconds, text like '1.5s' or an interval".into()
            }
            Usage::Mapped(_) => "MAPPEDMETRIC reads text".into(),
            _ if kind == Text => {
                "text: every value must parse as a number; cast it in the query".into()
            }
            _ => "a value must be a number or a boolean".into(),
        }
    }
}

/// The lines of `query` given what the server returns for it.
pub fn lines(query: &Query, returned: &[Returned]) -> Vec<Line> {
    let mut out: Vec<Line> = query
        .columns
        .iter()
        .map(|c| {
            let found = returned.iter().find(|r| r.name == c.name);
            Line {
                query: query.name.to_owned(),
                column: c.name.to_owned(),
                declared: usage_name(&c.usage).to_owned(),
                returned: found.map_or("-".to_owned(), |r| r.type_name.clone()),
                verdict: match found {
                    None => "declared, not returned".to_owned(),
                    Some(r) => verdict(&c.usage, r.kind),
                },
            }
        })
        .collect();
    for r in returned
        .iter()
        .filter(|r| !query.columns.iter().any(|c| c.name == r.name))
    {
        out.push(Line {
            query: query.name.to_owned(),
            column: r.name.clone(),
            declared: "-".into(),
            returned: r.type_name.clone(),
            verdict: "returned, not declared".into(),
        });
    }
    out
}

/// A line for a query that could not be prepared, with a hint for the usual cause.
pub fn failed(query: &Query, code: Option<&str>, message: &str) -> Line {
    // undefined_table, undefined_function, undefined_object, invalid_schema_name
    let hint = match code {
        Some("42P01" | "42883" | "42704") if !message.contains('.') => {
            "; Mesa's search_path is pg_catalog: schema-qualify your own objects (app.jobs)"
        }
        _ => "",
    };
    Line {
        query: query.name.to_owned(),
        column: "-".into(),
        declared: "-".into(),
        returned: "-".into(),
        verdict: format!(
            "{message}{}{hint}",
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        ),
    }
}

/// The lines as an aligned table with a header.
pub fn table(lines: &[Line]) -> String {
    let header = Line {
        query: "QUERY".into(),
        column: "COLUMN".into(),
        declared: "DECLARED".into(),
        returned: "RETURNED".into(),
        verdict: "VERDICT".into(),
    };
    let all: Vec<&Line> = std::iter::once(&header).chain(lines).collect();
    let width = |f: fn(&Line) -> &str| all.iter().map(|l| f(l).chars().count()).max().unwrap_or(0);
    let (q, c, d, r) = (
        width(|l| &l.query),
        width(|l| &l.column),
        width(|l| &l.declared),
        width(|l| &l.returned),
    );
    let mut out = String::new();
    for l in all {
        out.push_str(&format!(
            "  {:q$}  {:c$}  {:d$}  {:r$}  {}\n",
            l.query, l.column, l.declared, l.returned, l.verdict
        ));
    }
    out
}
