//! Secrets recognised in free text, wherever they stand: the content of a literal, a dollar
//! quote or a comment, read as text rather than SQL.
//!
//! - the value after `password=` or `sslpassword=` in a connection string
//!   (`dblink('host=h password=x')`, spaces around `=` allowed, the value quoted or not), and
//!   the literal after a `password` keyword (`''`-doubled quotes of any nesting depth counted);
//! - the secret of a URI's user info (`postgresql://user:secret@host`);
//! - any SCRAM verifier (`SCRAM-SHA-256$...`) and MD5 hash (`md5` and 32 hex digits).
//!
//! A value cut off by the end of the text is redacted to the end.

use super::MASK;
use super::lex::dollar_quote;

const SCRAM_PREFIX: &[u8] = b"SCRAM-SHA-256$";

/// `text` with every secret above replaced by `[redacted]`.
pub(super) fn redact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // `copied` is where the next unredacted run starts; every cut is at an ASCII byte, so
    // slices stay on character boundaries.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let secret = if let Some(after) = password_keyword_at(bytes, i) {
            password_value(bytes, after)
        } else if bytes[i..].starts_with(b"://") {
            uri_secret(bytes, i + 3)
        } else if bytes[i..].starts_with(SCRAM_PREFIX) {
            Some((i, token_end(bytes, i)))
        } else if is_md5_hash(bytes, i) {
            Some((i, i + 35))
        } else {
            None
        };
        match secret {
            Some((start, end)) if start >= copied => {
                out.push_str(&text[copied..start]);
                out.push_str(MASK);
                copied = end;
                i = end.max(i + 1);
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return text.to_owned();
    }
    out.push_str(&text[copied..]);
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Where a `password` or `sslpassword` keyword at `i` ends (after a closing `"` when quoted).
fn password_keyword_at(bytes: &[u8], i: usize) -> Option<usize> {
    let end = [b"sslpassword".as_slice(), b"password".as_slice()]
        .into_iter()
        .find(|word| keyword_at(bytes, i, word))
        .map(|word| i + word.len())?;
    let quoted = i > 0 && bytes[i - 1] == b'"' && bytes.get(end) == Some(&b'"');
    Some(if quoted { end + 1 } else { end })
}

/// Whether `word` (lower case) stands at `i` as a whole word, in any case.
fn keyword_at(bytes: &[u8], i: usize, word: &[u8]) -> bool {
    bytes.len() >= i + word.len()
        && bytes[i..i + word.len()].eq_ignore_ascii_case(word)
        && (i == 0 || !is_ident(bytes[i - 1]))
        && bytes.get(i + word.len()).is_none_or(|b| !is_ident(*b))
}

/// Skips whitespace and comments (`-- ...` to the line's end, `/* ... */`).
fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    loop {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if bytes[i.min(bytes.len())..].starts_with(b"--") {
            i = (i..bytes.len())
                .find(|&j| bytes[j] == b'\n')
                .unwrap_or(bytes.len());
        } else if bytes[i.min(bytes.len())..].starts_with(b"/*") {
            i = (i + 2..bytes.len().saturating_sub(1))
                .find(|&j| &bytes[j..j + 2] == b"*/")
                .map_or(bytes.len(), |j| j + 2);
        } else {
            return i;
        }
    }
}

/// The span of the secret after a `password` keyword that ends at `after`, if one follows.
fn password_value(bytes: &[u8], after: usize) -> Option<(usize, usize)> {
    let mut i = skip_space(bytes, after);
    if bytes.get(i) == Some(&b':') && bytes.get(i + 1) == Some(&b'=') {
        i += 1;
    }
    let assigned = bytes.get(i) == Some(&b'=');
    if assigned {
        i = skip_space(bytes, i + 1);
    }
    match bytes.get(i)? {
        b'\'' => Some((i, quoted_run_end(bytes, i))),
        b'E' | b'e' | b'N' | b'n' if bytes.get(i + 1) == Some(&b'\'') => {
            Some((i, quoted_run_end(bytes, i + 1)))
        }
        b'U' | b'u' if bytes.get(i + 1) == Some(&b'&') && bytes.get(i + 2) == Some(&b'\'') => {
            Some((i, quoted_run_end(bytes, i + 2)))
        }
        // A dollar quote: to its closing tag, or to the end of the text.
        b'$' if let Some((body, close)) = dollar_quote(bytes, i) => {
            Some((i, close.map_or(bytes.len(), |c| c + (body - i))))
        }
        // `password=value` in a connection string.
        _ if assigned => Some((i, token_end(bytes, i))),
        _ => None,
    }
}

/// The end of a quoted value at `start`, whose opening run of `n` quotes says how deep it is
/// nested in literals (`'x'`, `''x''` inside one literal, `x` inside two): inside
/// it, an escaped quote is a run of `2n`, and the value ends at the first run whose length
/// is an odd multiple of `n`. A backslash may escape the byte after it (`E'..'`, or with
/// `standard_conforming_strings` off): the later of the two ends. Unterminated: the end of
/// the text.
fn quoted_run_end(bytes: &[u8], start: usize) -> usize {
    // Whether a backslash escapes depends on the session's standard_conforming_strings:
    // the longer reading redacts more, never less.
    quoted_run_end_as(bytes, start, true).max(quoted_run_end_as(bytes, start, false))
}

fn quoted_run_end_as(bytes: &[u8], start: usize, backslash: bool) -> usize {
    // The whole opening run: `''` may also be an empty value, but the longer reading
    // redacts more, never less.
    let n = bytes[start..].iter().take_while(|b| **b == b'\'').count();
    let mut i = start + n;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b'\'' => {
                let run = bytes[i..].iter().take_while(|b| **b == b'\'').count();
                if run >= n && (run / n) % 2 == 1 {
                    return i + run.min(n * ((run / n) | 1));
                }
                i += run;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The secret of a URI's user info after `://` at `i` (`user:secret@host`), if any.
fn uri_secret(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    // The user info ends at the last `@` before the host part ends (a secret may hold `@`
    // percent-encoded, but an unencoded one is common enough to redact through).
    let host_end = (i..bytes.len())
        .find(|&j| {
            bytes[j].is_ascii_whitespace() || matches!(bytes[j], b'/' | b'\'' | b'"' | b'?' | b'#')
        })
        .unwrap_or(bytes.len());
    let at = (i..host_end).rev().find(|&j| bytes[j] == b'@')?;
    let colon = (i..at).find(|&j| bytes[j] == b':')?;
    Some((colon + 1, at))
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
