//! A small SQL lexer for redaction: it splits a statement text into whitespace, comments,
//! string literals of every form, quoted identifiers, words and single other bytes, the way
//! PostgreSQL's scanner does for the purpose of finding where each literal starts and ends.
//!
//! It never interprets what it does not need: numbers and operators are single `Other` bytes
//! or runs. Every token boundary falls on an ASCII byte, so slices are valid UTF-8.

/// How backslashes inside plain `'...'` literals are read: a session with
/// `standard_conforming_strings = off` reads `\'` as an escaped quote. Redaction lexes both
/// ways, since it cannot know the session's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Escapes {
    /// `standard_conforming_strings = on` (the default): only `''` escapes a quote.
    Standard,
    /// Backslash escapes in plain literals too.
    Backslash,
}

/// How a literal's body is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quoting {
    /// `''` escapes a quote (`'..'`, `U&'..'`, `B'..'`, `X'..'`, `N'..'`).
    Doubled,
    /// `''` and `\'` escape a quote, `\\` a backslash (`E'..'`, or any with [`Escapes::Backslash`]).
    Backslash,
    /// `$tag$..$tag$`: nothing is escaped.
    Dollar,
}

/// A token's kind; positions are byte offsets into the lexed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Whitespace; `newline` when it holds a line break (string continuation needs one).
    Space { newline: bool },
    /// `-- ...` or `/* ... */` (nested); `body` is the text between the markers.
    Comment { body: (usize, usize) },
    /// A string literal; `body` is between the opening and closing delimiters.
    Literal {
        body: (usize, usize),
        quoting: Quoting,
    },
    /// `"..."`; `body` is between the quotes, `""` still doubled.
    QuotedIdent { body: (usize, usize) },
    /// A keyword or unquoted identifier.
    Word,
    /// Anything else: a digit run, an operator byte, a parameter `$1`.
    Other,
    /// A literal, quoted identifier, comment or dollar quote that never ends: the text from
    /// here to the end cannot be tokenised.
    Unterminated,
}

/// A token: its kind and its span `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

fn word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn word_byte(b: u8) -> bool {
    word_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The token at `i` (`i < text.len()`).
pub(super) fn token_at(text: &str, i: usize, escapes: Escapes) -> Token {
    let b = text.as_bytes();
    let at = |kind, end| Token {
        kind,
        start: i,
        end,
    };
    let unterminated = at(Kind::Unterminated, b.len());
    match b[i] {
        c if c.is_ascii_whitespace() => {
            let end = (i..b.len())
                .find(|&j| !b[j].is_ascii_whitespace())
                .unwrap_or(b.len());
            let newline = b[i..end].iter().any(|c| matches!(c, b'\n' | b'\r'));
            at(Kind::Space { newline }, end)
        }
        b'-' if b.get(i + 1) == Some(&b'-') => {
            let end = (i..b.len()).find(|&j| b[j] == b'\n').unwrap_or(b.len());
            at(Kind::Comment { body: (i + 2, end) }, end)
        }
        b'/' if b.get(i + 1) == Some(&b'*') => match block_comment_end(b, i) {
            Some(end) => at(
                Kind::Comment {
                    body: (i + 2, end - 2),
                },
                end,
            ),
            None => unterminated,
        },
        b'\'' => {
            let quoting = match escapes {
                Escapes::Standard => Quoting::Doubled,
                Escapes::Backslash => Quoting::Backslash,
            };
            literal(b, i, i + 1, quoting).unwrap_or(unterminated)
        }
        b'"' => match quoted_end(b, i + 1, Quoting::Doubled, b'"') {
            Some(end) => at(
                Kind::QuotedIdent {
                    body: (i + 1, end - 1),
                },
                end,
            ),
            None => unterminated,
        },
        b'$' => match dollar_quote(b, i) {
            Some((body, Some(close))) => at(
                Kind::Literal {
                    body: (body, close),
                    quoting: Quoting::Dollar,
                },
                close + (body - i),
            ),
            Some((_, None)) => unterminated,
            // `$1` or a lone `$`.
            None => {
                let end = (i + 1..b.len())
                    .find(|&j| !b[j].is_ascii_digit())
                    .unwrap_or(b.len());
                at(Kind::Other, end)
            }
        },
        c if word_start(c) => {
            // Literal prefixes: E'..', U&'..', B'..', X'..', N'..'.
            let prefixed = match (c.to_ascii_uppercase(), b.get(i + 1), b.get(i + 2)) {
                (b'E', Some(b'\''), _) => Some((i + 2, Quoting::Backslash)),
                (b'B' | b'X' | b'N', Some(b'\''), _) => Some((
                    i + 2,
                    match escapes {
                        Escapes::Standard => Quoting::Doubled,
                        Escapes::Backslash => Quoting::Backslash,
                    },
                )),
                (b'U', Some(b'&'), Some(b'\'')) => Some((i + 3, Quoting::Doubled)),
                _ => None,
            };
            if let Some((body, quoting)) = prefixed {
                return literal(b, i, body, quoting).unwrap_or(unterminated);
            }
            if c.eq_ignore_ascii_case(&b'U')
                && b.get(i + 1) == Some(&b'&')
                && b.get(i + 2) == Some(&b'"')
            {
                return match quoted_end(b, i + 3, Quoting::Doubled, b'"') {
                    Some(end) => at(
                        Kind::QuotedIdent {
                            body: (i + 3, end - 1),
                        },
                        end,
                    ),
                    None => unterminated,
                };
            }
            let end = (i..b.len()).find(|&j| !word_byte(b[j])).unwrap_or(b.len());
            at(Kind::Word, end)
        }
        c if c.is_ascii_digit() => {
            let end = (i..b.len())
                .find(|&j| !(b[j].is_ascii_alphanumeric() || b[j] == b'.' || b[j] == b'_'))
                .unwrap_or(b.len());
            at(Kind::Other, end)
        }
        _ => at(Kind::Other, i + 1),
    }
}

/// A literal starting at `start` whose body starts at `body`.
fn literal(b: &[u8], start: usize, body: usize, quoting: Quoting) -> Option<Token> {
    let end = quoted_end(b, body, quoting, b'\'')?;
    Some(Token {
        kind: Kind::Literal {
            body: (body, end - 1),
            quoting,
        },
        start,
        end,
    })
}

/// The end (after the closing `quote`) of a quoted body starting at `i`.
fn quoted_end(b: &[u8], mut i: usize, quoting: Quoting, quote: u8) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\\' if quoting == Quoting::Backslash => i += 2,
            c if c == quote && b.get(i + 1) == Some(&quote) => i += 2,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of a `/* */` comment at `i` (they nest), after its `*/`.
fn block_comment_end(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// A dollar quote at `i` (`$$..$$` or `$tag$..$tag$`, the tag not starting with a digit):
/// where its body starts, and where its closing tag starts (`None`: it never ends). `None`
/// when no dollar quote starts at `i`.
pub(super) fn dollar_quote(b: &[u8], i: usize) -> Option<(usize, Option<usize>)> {
    let body = dollar_tag(b, i)?;
    let tag = &b[i..body];
    let close = b[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map(|p| body + p);
    Some((body, close))
}

/// The end of a dollar-quote tag at `i` (`$$` or `$tag$`, the tag not starting with a digit).
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j).is_some_and(|c| word_start(*c)) {
        while b.get(j).is_some_and(|c| word_byte(*c) && *c != b'$') {
            j += 1;
        }
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, &str)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let t = token_at(text, i, Escapes::Standard);
            out.push((t.kind, &text[t.start..t.end]));
            i = t.end;
        }
        out
    }

    #[test]
    fn every_literal_form_is_one_token() {
        for lit in [
            "'a''b'",
            "E'a\\'b'",
            "U&'d\\0061t''a'",
            "B'101'",
            "X'1F'",
            "N'x'",
            "$$a'b$$",
            "$q$a$$b$q$",
        ] {
            let text = format!("x {lit} y");
            let tokens = kinds(&text);
            assert_eq!(tokens.len(), 5, "{text}: {tokens:?}");
            assert!(
                matches!(tokens[2].0, Kind::Literal { .. }),
                "{text}: {tokens:?}"
            );
            assert_eq!(tokens[2].1, lit);
        }
    }

    #[test]
    fn comments_identifiers_and_parameters() {
        let t = kinds("/* a /* b */ c */\"pass\"\"word\" $1 -- end");
        assert!(matches!(t[0].0, Kind::Comment { .. }), "{t:?}");
        assert_eq!(t[0].1, "/* a /* b */ c */");
        assert!(matches!(t[1].0, Kind::QuotedIdent { .. }), "{t:?}");
        assert_eq!(t[3], (Kind::Other, "$1"));
        assert!(matches!(t[5].0, Kind::Comment { .. }), "{t:?}");
    }

    #[test]
    fn what_never_ends_is_unterminated() {
        for text in ["'abc", "E'a\\'", "\"id", "/* c", "$q$ body"] {
            let t = token_at(text, 0, Escapes::Standard);
            assert_eq!(t.kind, Kind::Unterminated, "{text}");
        }
        // With backslash escapes, `\'` does not end a plain literal.
        let t = token_at("'a\\'b", 0, Escapes::Backslash);
        assert_eq!(t.kind, Kind::Unterminated);
    }
}
