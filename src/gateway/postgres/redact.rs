//! Redaction of secrets in the query text `pg_stat_activity` shows.
//!
//! A session running `ALTER ROLE app PASSWORD 'hunter2'` (or psql's `\password`, which sends a
//! SCRAM verifier) shows that text to anyone who may read its query; the admin API must not
//! pass it on. Redacted, each replaced by `[redacted]`:
//!
//! - the string literal after the keyword `PASSWORD` (`'...'` with `''` escapes, `E'...'` with
//!   backslash escapes, `$tag$...$tag$`), as in `CREATE/ALTER ROLE` and user mappings;
//! - the value after `password=` in a connection string (`dblink('... password=x')`);
//! - any SCRAM verifier (`SCRAM-SHA-256$...`) and MD5 hash (`md5` and 32 hex digits),
//!   wherever they stand.
//!
//! A literal cut off by `track_activity_query_size` is redacted to the end of the text.

const MASK: &str = "[redacted]";
const SCRAM_PREFIX: &[u8] = b"SCRAM-SHA-256$";

/// `text` with every password literal, connection-string password, SCRAM verifier and MD5
/// hash replaced by `[redacted]`.
pub(crate) fn query_text(text: String) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // `copied` is where the next unredacted run starts; every cut is at an ASCII byte, so
    // slices stay on character boundaries.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let secret = if keyword_at(bytes, i, b"password") {
            password_value(bytes, i + b"password".len())
        } else if bytes[i..].starts_with(SCRAM_PREFIX) {
            Some((i, token_end(bytes, i)))
        } else if is_md5_hash(bytes, i) {
            Some((i, i + 35))
        } else {
            None
        };
        match secret {
            Some((start, end)) => {
                out.push_str(&text[copied..start]);
                out.push_str(MASK);
                copied = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return text;
    }
    out.push_str(&text[copied..]);
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Whether `word` (lower case) stands at `i` as a whole word, in any case.
fn keyword_at(bytes: &[u8], i: usize, word: &[u8]) -> bool {
    bytes.len() >= i + word.len()
        && bytes[i..i + word.len()].eq_ignore_ascii_case(word)
        && (i == 0 || !is_ident(bytes[i - 1]))
        && bytes.get(i + word.len()).is_none_or(|b| !is_ident(*b))
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The span of the secret after a `password` keyword that ends at `after`, if one follows.
fn password_value(bytes: &[u8], after: usize) -> Option<(usize, usize)> {
    let i = skip_space(bytes, after);
    match bytes.get(i)? {
        b'=' => {
            let start = skip_space(bytes, i + 1);
            match bytes.get(start) {
                Some(b'\'') => Some((start, conninfo_quoted_end(bytes, start))),
                Some(_) => Some((start, token_end(bytes, start))),
                None => None,
            }
        }
        b'\'' => Some((i, quoted_end(bytes, i + 1, false))),
        b'E' | b'e' if bytes.get(i + 1) == Some(&b'\'') => {
            Some((i, quoted_end(bytes, i + 2, true)))
        }
        b'$' => {
            let tag_end =
                (i + 1..bytes.len()).find(|&j| !is_ident(bytes[j]) || bytes[j] == b'$')?;
            if bytes[tag_end] != b'$' {
                return None;
            }
            let tag = &bytes[i..=tag_end];
            let body = tag_end + 1;
            let end = bytes[body..]
                .windows(tag.len())
                .position(|w| w == tag)
                .map_or(bytes.len(), |p| body + p + tag.len());
            Some((i, end))
        }
        _ => None,
    }
}

/// The end (after the closing quote) of a literal whose body starts at `i`: `''` is an
/// escaped quote, and with `backslash` so is `\'`. Unterminated: the end of the text.
fn quoted_end(bytes: &[u8], mut i: usize, backslash: bool) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of a quoted connection-string value at `start`. Inside a SQL literal its quotes
/// are doubled (`password=''x''`), so the opening run of quotes is counted and the same
/// number is taken after the value.
fn conninfo_quoted_end(bytes: &[u8], start: usize) -> usize {
    let run = bytes[start..].iter().take_while(|b| **b == b'\'').count();
    let body = start + run;
    let Some(close) = (body..bytes.len()).find(|&j| bytes[j] == b'\'') else {
        return bytes.len();
    };
    let closing = bytes[close..]
        .iter()
        .take(run)
        .take_while(|b| **b == b'\'')
        .count();
    close + closing
}

/// The end of an unquoted token: the next whitespace, quote, `)` or `,`.
fn token_end(bytes: &[u8], i: usize) -> usize {
    (i..bytes.len())
        .find(|&j| bytes[j].is_ascii_whitespace() || matches!(bytes[j], b'\'' | b'"' | b')' | b','))
        .unwrap_or(bytes.len())
}

fn is_md5_hash(bytes: &[u8], i: usize) -> bool {
    bytes.len() >= i + 35
        && bytes[i..i + 3].eq_ignore_ascii_case(b"md5")
        && bytes[i + 3..i + 35].iter().all(u8::is_ascii_hexdigit)
        && (i == 0 || !is_ident(bytes[i - 1]))
        && bytes.get(i + 35).is_none_or(|b| !is_ident(*b))
}

#[cfg(test)]
mod tests {
    use super::query_text;

    fn r(s: &str) -> String {
        query_text(s.to_owned())
    }

    #[test]
    fn password_literals_are_redacted() {
        for (given, want) in [
            (
                "ALTER ROLE app PASSWORD 'hunter2'",
                "ALTER ROLE app PASSWORD [redacted]",
            ),
            (
                "create user bob with encrypted password 'it''s secret' login",
                "create user bob with encrypted password [redacted] login",
            ),
            (
                "ALTER USER x PASSWORD E'a\\'b' VALID UNTIL 'infinity'",
                "ALTER USER x PASSWORD [redacted] VALID UNTIL 'infinity'",
            ),
            (
                "ALTER ROLE y PASSWORD $p$x'y$p$;",
                "ALTER ROLE y PASSWORD [redacted];",
            ),
            (
                "ALTER ROLE y PASSWORD $$x$$",
                "ALTER ROLE y PASSWORD [redacted]",
            ),
            (
                "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'pw')",
                "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password [redacted])",
            ),
            (
                "SELECT dblink_connect('host=db user=u password=s3cr3t dbname=x')",
                "SELECT dblink_connect('host=db user=u password=[redacted] dbname=x')",
            ),
            (
                "SELECT dblink_connect('password = ''quoted''')",
                "SELECT dblink_connect('password = [redacted]')",
            ),
            (
                "SELECT 'host=h password=''a b'' user=u'",
                "SELECT 'host=h password=[redacted] user=u'",
            ),
            (
                "UPDATE users SET password = 'plain' WHERE id = 1",
                "UPDATE users SET password = [redacted] WHERE id = 1",
            ),
            (
                "ALTER ROLE cut PASSWORD 'truncated by track_activity_query_si",
                "ALTER ROLE cut PASSWORD [redacted]",
            ),
        ] {
            assert_eq!(r(given), want, "{given}");
        }
    }

    #[test]
    fn verifiers_and_hashes_are_redacted_anywhere() {
        let scram = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";
        assert_eq!(
            r(&format!("ALTER USER u PASSWORD '{scram}'")),
            "ALTER USER u PASSWORD [redacted]"
        );
        assert_eq!(
            r(&format!("SELECT '{scram}' AS v")),
            "SELECT '[redacted]' AS v"
        );
        assert_eq!(
            r("SELECT 'md5d41d8cd98f00b204e9800998ecf8427e'"),
            "SELECT '[redacted]'"
        );
    }

    #[test]
    fn other_text_is_untouched() {
        for same in [
            "SELECT pg_sleep(60)",
            "SELECT password_reset_at FROM users WHERE password IS NULL",
            "SELECT 'passwords' || 'are fine' ",
            "SELECT md5('x'), 'Ünïcode ✓'",
            "",
        ] {
            assert_eq!(r(same), same);
        }
    }
}
