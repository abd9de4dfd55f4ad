//! The `databases` block (globally under `collection`, and per target): which databases of a
//! server are visited, and how often. The target's keys win, key by key.

use std::sync::Arc;

use serde_json::Value;

use super::reader::{Fields, Problems};
use crate::collectors::Databases;
use crate::collectors::databases::{MAX_DATABASES, Pattern};

/// The block's keys.
pub(super) const KEYS: &[&str] = &["discover", "include", "exclude", "interval", "max"];

/// Reads `databases` from `f` over `inherit`.
pub(super) fn databases(f: &mut Fields, inherit: &Databases, p: &mut Problems) -> Databases {
    let mut out = inherit.clone();
    if !f.has("databases") {
        // `databases: null` and an absent block both inherit.
        let _ = f.take("databases");
        return out;
    }
    let Some(mut d) = f.section("databases", KEYS, p) else {
        return out;
    };
    if let Some(discover) = d.bool("discover", p) {
        out.discover = discover;
    }
    for (key, slot) in [("include", &mut out.include), ("exclude", &mut out.exclude)] {
        let path = d.path_of(key);
        if let Some(sources) = d.strings(key, p) {
            let mut patterns = Vec::with_capacity(sources.len());
            for (i, source) in sources.iter().enumerate() {
                match Pattern::new(source) {
                    Ok(pattern) => patterns.push(pattern),
                    Err(e) => p.add(
                        format!("{path}[{i}]"),
                        format!("invalid regular expression {source:?}: {e}"),
                    ),
                }
            }
            *slot = Arc::from(patterns);
        }
    }
    if let Some(interval) = d.duration("interval", p) {
        out.interval = Some(interval);
    }
    if let Some(v) = d.take("max") {
        match v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=MAX_DATABASES).contains(n))
        {
            Some(n) => out.max = n,
            None => p.add(
                d.path_of("max"),
                format!(
                    "expected a whole number from 1 to {MAX_DATABASES}, found {}",
                    shown(&v)
                ),
            ),
        }
    }
    out
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}
