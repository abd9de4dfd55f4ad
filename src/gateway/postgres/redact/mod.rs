//! Redaction of secrets in the query text `pg_stat_activity` and `pg_stat_statements` show.
//!
//! A session running `ALTER ROLE app PASSWORD 'hunter2'` (or psql's `\password`, which sends a
//! SCRAM verifier) shows that text to anyone who may read its query; neither the admin API nor
//! a metric label may pass it on. Redaction is by token ([`lex`]): the statement is split into
//! comments, literals of every form (`'..'`, `E'..'`, `U&'..'`, `B/X/N'..'`, `$tag$..$tag$`),
//! quoted identifiers and words, and then, each replaced by `[redacted]`:
//!
//! - the literal (or word) after the keyword `PASSWORD`, `SSLPASSWORD` or the identifier
//!   `"password"`, with any `=`, `:=` or `TO`, whitespace and comments in between, and the
//!   literals that continue it across a line break (`'abc'\n'def'`);
//! - inside every literal, dollar quote and comment, read as text: a connection string's
//!   `password=` value, a URI's `user:secret@`, any SCRAM verifier and MD5 hash ([`patterns`]),
//!   and, read again as SQL, everything above (`EXECUTE 'ALTER ROLE x PASSWORD ''s'''`), to a
//!   depth of [`MAX_DEPTH`];
//! - from the first token that never ends (an unterminated literal, quoted identifier, comment
//!   or dollar quote: text cut by `track_activity_query_size`, or not SQL) to the end of the
//!   text, since nothing after it can be told apart.
//!
//! The patterns are first looked for in the whole text. Then it is lexed twice, with and
//! without backslash escapes in plain literals (`standard_conforming_strings` of the session
//! that ran it is unknown); when the two readings disagree, everything between their common
//! start and end is redacted.

mod lex;
mod patterns;

use lex::{Escapes, Kind, Quoting, Token, token_at};

/// What replaces a secret.
pub(crate) const MASK: &str = "[redacted]";
/// How deep literals inside literals are read again as SQL.
const MAX_DEPTH: usize = 4;

/// `text` with every secret it may hold replaced by `[redacted]` (see the module docs).
pub(crate) fn query_text(text: String) -> String {
    let scanned = patterns::redact(&text);
    let standard = redact(&scanned, Escapes::Standard, 0, false);
    let backslash = redact(&scanned, Escapes::Backslash, 0, false);
    let out = if standard == backslash {
        standard
    } else {
        union(&standard, &backslash)
    };
    if out == text { text } else { out }
}

/// Two redactions of one text that disagree: what both show at their start and end, and one
/// mask for everything between. Where either redacted a secret, the two differ, so the secret
/// falls in the masked middle.
fn union(a: &str, b: &str) -> String {
    let prefix: usize = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum();
    let room = a.len().min(b.len()) - prefix;
    let suffix: usize = a[prefix..]
        .chars()
        .rev()
        .zip(b[prefix..].chars().rev())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .scan(0usize, |total, n| {
            *total += n;
            (*total <= room).then_some(n)
        })
        .sum();
    format!("{}{MASK}{}", &a[..prefix], &a[a.len() - suffix..])
}

/// Where the lexer stands relative to a password keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// No secret expected.
    Nothing,
    /// After `PASSWORD`: a literal is the secret.
    Value,
    /// After `PASSWORD =` (or `:=`, `TO`): a literal, word or number is the secret.
    ValueAfterAssign,
    /// After a redacted literal: a literal continuing it is the secret too.
    Continuation,
    /// Right after a redaction: whatever touches it (no space between) is part of the secret.
    Adjacent,
}

/// One pass over `text`. `nested`: the text is a literal's content, where a token that never
/// ends is more likely prose (`it's`) than a cut statement; only a secret is redacted to the
/// end there, and otherwise lexing goes on after the stray delimiter.
fn redact(text: &str, escapes: Escapes, depth: usize, nested: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut expect = Expect::Nothing;
    let mut i = 0;
    while i < text.len() {
        // What an earlier pass redacted stands for the secret it replaced.
        if text[i..].starts_with(MASK) {
            out.push_str(MASK);
            expect = Expect::Adjacent;
            i += MASK.len();
            continue;
        }
        let token = token_at(text, i, escapes);
        let raw = &text[token.start..token.end];
        match token.kind {
            Kind::Space { newline } => {
                out.push_str(raw);
                // Continuation needs a line break; any other space keeps the expectation.
                if matches!(expect, Expect::Continuation | Expect::Adjacent) {
                    expect = if newline {
                        Expect::Continuation
                    } else {
                        Expect::Nothing
                    };
                }
            }
            Kind::Word | Kind::QuotedIdent { .. } if expect == Expect::Adjacent => {
                out.push_str(MASK);
            }
            Kind::Other
                if expect == Expect::Adjacent && raw.bytes().all(|c| c.is_ascii_alphanumeric()) =>
            {
                out.push_str(MASK);
            }
            Kind::Comment { body } => {
                out.push_str(&text[token.start..body.0]);
                out.push_str(&content(&text[body.0..body.1], escapes, depth));
                out.push_str(&text[body.1..token.end]);
            }
            Kind::Literal { body, quoting } => {
                if expect == Expect::Nothing {
                    out.push_str(&literal(text, &token, body, quoting, escapes, depth));
                } else {
                    out.push_str(MASK);
                    expect = Expect::Continuation;
                }
            }
            Kind::QuotedIdent { body } => {
                out.push_str(raw);
                expect = if is_password_keyword(&text[body.0..body.1]) {
                    Expect::Value
                } else {
                    Expect::Nothing
                };
            }
            Kind::Word => {
                if expect == Expect::ValueAfterAssign {
                    out.push_str(MASK);
                    expect = Expect::Nothing;
                } else {
                    out.push_str(raw);
                    expect = if is_password_keyword(raw) {
                        Expect::Value
                    } else if expect == Expect::Value && raw.eq_ignore_ascii_case("to") {
                        Expect::ValueAfterAssign
                    } else {
                        Expect::Nothing
                    };
                }
            }
            Kind::Other => match (expect, raw) {
                (Expect::Value, "=") => {
                    out.push_str(raw);
                    expect = Expect::ValueAfterAssign;
                }
                (Expect::Value, ":") => out.push_str(raw),
                (Expect::ValueAfterAssign, _) => {
                    out.push_str(MASK);
                    expect = Expect::Nothing;
                }
                _ => {
                    out.push_str(raw);
                    expect = Expect::Nothing;
                }
            },
            Kind::Unterminated => {
                if nested && expect == Expect::Nothing {
                    // A stray delimiter in prose: keep it and lex on after it.
                    out.push_str(&text[i..i + 1]);
                    i += 1;
                    continue;
                }
                out.push_str(MASK);
                return out;
            }
        }
        i = token.end;
    }
    out
}

/// Whether an identifier names a password.
fn is_password_keyword(word: &str) -> bool {
    word.eq_ignore_ascii_case("password") || word.eq_ignore_ascii_case("sslpassword")
}

/// A literal not preceded by a password keyword: its content redacted as text and as SQL,
/// written back in its own quoting; the original when nothing changed.
fn literal(
    text: &str,
    token: &Token,
    body: (usize, usize),
    quoting: Quoting,
    escapes: Escapes,
    depth: usize,
) -> String {
    let raw = &text[token.start..token.end];
    let decoded = decode(&text[body.0..body.1], quoting);
    let redacted = content(&decoded, escapes, depth);
    if redacted == decoded {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    out.push_str(&text[token.start..body.0]);
    out.push_str(&encode(&redacted, quoting));
    out.push_str(&text[body.1..token.end]);
    out
}

/// The text of a literal's body, escapes undone (only the quote and backslash escapes that
/// decide where a nested literal ends).
fn decode(body: &str, quoting: Quoting) -> String {
    match quoting {
        Quoting::Dollar => body.to_owned(),
        Quoting::Doubled => body.replace("''", "'"),
        Quoting::Backslash => {
            let mut out = String::with_capacity(body.len());
            let mut chars = body.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(q @ ('\'' | '\\')) => out.push(q),
                        Some(other) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => out.push('\\'),
                    },
                    '\'' => {
                        // `''`: one quote.
                        out.push('\'');
                        let _ = chars.next();
                    }
                    c => out.push(c),
                }
            }
            out
        }
    }
}

/// `decode` undone.
fn encode(text: &str, quoting: Quoting) -> String {
    match quoting {
        Quoting::Dollar => text.to_owned(),
        Quoting::Doubled => text.replace('\'', "''"),
        Quoting::Backslash => text.replace('\\', "\\\\").replace('\'', "''"),
    }
}

/// The content of a literal or comment: patterns redacted, then read again as SQL.
fn content(text: &str, escapes: Escapes, depth: usize) -> String {
    let text = patterns::redact(text);
    if depth >= MAX_DEPTH {
        return text;
    }
    redact(&text, escapes, depth + 1, true)
}

#[cfg(test)]
mod tests;
