//! Redaction of the statement texts the processlist shows.
//!
//! MySQL writes a password as a quoted literal in many places (`IDENTIFIED BY '..'`,
//! `PASSWORD('..')`, `MASTER_PASSWORD = '..'`, `AES_ENCRYPT(x, '..')`), in single or double
//! quotes, with backslash escapes or doubled quotes. Rather than list them, every quoted
//! literal is replaced by `'[redacted]'`; identifiers in backticks stay. A literal that never
//! ends (the processlist cuts long texts) masks everything after its quote.

/// What replaces a literal.
const MASK: &str = "'[redacted]'";

/// `text` with every quoted literal masked.
pub(super) fn query_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                if !skip_quoted(&mut chars, c) {
                    out.push_str(MASK);
                    return out;
                }
                out.push_str(MASK);
            }
            '`' => {
                let start = out.len();
                out.push('`');
                let mut closed = false;
                while let Some((_, d)) = chars.next() {
                    out.push(d);
                    if d == '`' {
                        if chars.peek().is_some_and(|(_, n)| *n == '`') {
                            chars.next();
                            out.push('`');
                        } else {
                            closed = true;
                            break;
                        }
                    }
                }
                if !closed {
                    out.truncate(start);
                    out.push_str(MASK);
                    return out;
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Skips a literal opened by `quote` up to its closing quote; `false` when it never closes.
fn skip_quoted(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, quote: char) -> bool {
    while let Some((_, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            if chars.peek().is_some_and(|(_, n)| *n == quote) {
                chars.next();
            } else {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::query_text;

    #[test]
    fn every_literal_is_masked_whatever_its_quotes_and_escapes() {
        let cases = [
            (
                "CREATE USER a@b IDENTIFIED BY 'hunter2'",
                "CREATE USER a@b IDENTIFIED BY '[redacted]'",
            ),
            (
                "SET PASSWORD FOR x = PASSWORD(\"s3cret\")",
                "SET PASSWORD FOR x = PASSWORD('[redacted]')",
            ),
            (
                "select 'it''s', 'a\\'b' , 1",
                "select '[redacted]', '[redacted]' , 1",
            ),
            ("select `we'ird` from t", "select `we'ird` from t"),
            ("select `a``b`, 'x'", "select `a``b`, '[redacted]'"),
            (
                "ALTER USER u IDENTIFIED BY 'cut off",
                "ALTER USER u IDENTIFIED BY '[redacted]'",
            ),
            ("select `never closed 'pw'", "select '[redacted]'"),
            ("SELECT 1", "SELECT 1"),
        ];
        for (input, want) in cases {
            assert_eq!(query_text(input), want, "{input}");
        }
    }
}
