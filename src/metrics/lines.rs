//! The sample lines of one family of one target, written straight into a `String`.
//!
//! They are byte for byte what prometheus-client's text encoder writes for the same family
//! (a property test in `families` compares both on random names, label values and numbers),
//! without building a registry, an intermediate exposition and a table of its parts per
//! target per collection: that detour was the largest part of encoding in the profile.

use crate::collectors::{Family, Kind, Value};

/// Appends `value` as a label value: `\`, `"` and newline escaped, as prometheus-client does.
fn label_value(out: &mut String, value: &str) {
    let mut last = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.push_str(&value[last..i]);
        out.push_str(escaped);
        last = i + 1;
    }
    out.push_str(&value[last..]);
}

/// Appends every series of `family`: `name[_total]{server="…",labels…} value`, one per line,
/// with `server` first when given.
pub fn write_family(out: &mut String, family: &Family, server: Option<&str>) {
    let mut ints = itoa::Buffer::new();
    let mut floats = dtoa::Buffer::new();
    for series in &family.series {
        out.push_str(&family.name);
        if family.kind == Kind::Counter {
            out.push_str("_total");
        }
        let mut first = true;
        let mut label = |out: &mut String, key: &str, value: &str| {
            out.push_str(if first { "{" } else { "," });
            first = false;
            out.push_str(key);
            out.push_str("=\"");
            label_value(out, value);
            out.push('"');
        };
        if let Some(server) = server {
            label(out, "server", server);
        }
        for (key, value) in &series.labels {
            label(out, key, value);
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        // Counters never go below zero on the wire (a server counter reset shows as 0).
        match (family.kind, series.value) {
            (Kind::Counter, Value::Int(v)) => {
                out.push_str(ints.format(u64::try_from(v).unwrap_or(0)))
            }
            (Kind::Counter, Value::Float(v)) => out.push_str(floats.format(v.max(0.0))),
            (Kind::Gauge, Value::Int(v)) => out.push_str(ints.format(v)),
            (Kind::Gauge, Value::Float(v)) => out.push_str(floats.format(v)),
        }
        out.push('\n');
    }
}
