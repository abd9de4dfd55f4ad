//! The one place YAML is parsed.
//!
//! `serde_yaml` is archived by its author, so Mesa uses `serde-saphyr`, a maintained serde
//! deserializer built on a pure-Rust YAML 1.2 parser that enforces budgets (events, aliases,
//! nesting depth) against alias bombs. Swapping the parser means changing this function only.

use serde_json::Value;

/// Largest config file accepted; real configs are a few KiB even for 1000 targets.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Parses YAML text into a generic tree; the message says where parsing failed.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "the file is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?"
        ));
    }
    let mut options = serde_saphyr::Options::default();
    // YAML 1.2 booleans only: `y`, `no`, `on` stay strings (the "Norway problem").
    options.strict_booleans = true;
    serde_saphyr::from_str_with_options::<Value>(text, options)
        .map_err(|e| format!("invalid YAML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn rejects_alias_bombs() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(parse(&doc).is_err(), "10^12 expansion must hit the budget");
    }

    #[test]
    fn parses_plain_yaml() {
        let v = parse("a: 1\nb: [x, y]\nc: no\n").expect("valid");
        assert_eq!(v["c"], "no");
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"][1], "y");
    }
}

#[cfg(test)]
mod duplicate_tests {
    #[test]
    fn duplicate_keys_are_errors() {
        assert!(super::parse("a: 1\na: 2\n").is_err());
    }
}
