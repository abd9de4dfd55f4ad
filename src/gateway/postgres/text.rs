//! Text columns read as bytes, so that one tenant's bytes never fail a whole read.
//!
//! A database created with `ENCODING 'SQL_ASCII'` stores names and query texts as the client
//! sent them, and the server passes them on unchecked: a role with `CREATEDB` can name a
//! database with bytes that are not UTF-8, and a session there can run a statement that holds
//! them. Read as `String`, such a value fails its row, and so the whole collector or admin read
//! (the database list, the session list). Every text column Mesa reads goes through [`escape`]
//! instead.
//!
//! # The escape (lossless)
//!
//! Valid UTF-8 without a backslash is passed on unchanged. Anything else is escaped: each
//! backslash becomes `\\`, and each byte that is not part of a valid UTF-8 sequence becomes
//! `\xHH` (two lower-case hex digits). A value holding a backslash was escaped, so the original
//! bytes can always be recovered (`\\` is a backslash, `\xHH` a byte); the cost is that a
//! valid text with a backslash shows it doubled.

use std::fmt::Write as _;

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

/// A text column's value, escaped (see the module docs).
struct Text(String);

impl<'a> FromSql<'a> for Text {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(escape(raw)))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// `bytes` as text: unchanged when valid UTF-8 without a backslash, otherwise escaped.
pub fn escape(bytes: &[u8]) -> String {
    if !bytes.contains(&b'\\')
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return text.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Text columns of a row, whatever their bytes.
pub(crate) trait TextColumns {
    /// Column `i` (NOT NULL in the statement) as escaped text.
    fn text(&self, i: usize) -> Result<String, tokio_postgres::Error>;
    /// Column `i` as escaped text, `None` for NULL.
    fn opt_text(&self, i: usize) -> Result<Option<String>, tokio_postgres::Error>;
}

impl TextColumns for Row {
    fn text(&self, i: usize) -> Result<String, tokio_postgres::Error> {
        Ok(self.try_get::<_, Text>(i)?.0)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, tokio_postgres::Error> {
        Ok(self.try_get::<_, Option<Text>>(i)?.map(|t| t.0))
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    /// The escape undone: the original bytes.
    fn unescape(text: &str) -> Vec<u8> {
        if !text.contains('\\') {
            return text.as_bytes().to_vec();
        }
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match (b[i], b.get(i + 1)) {
                (b'\\', Some(b'\\')) => {
                    out.push(b'\\');
                    i += 2;
                }
                (b'\\', Some(b'x')) => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 4;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }

    #[test]
    fn valid_text_passes_and_the_rest_is_escaped() {
        assert_eq!(escape("app_db ✓".as_bytes()), "app_db ✓");
        assert_eq!(escape(b"bad\xff\xfe"), "bad\\xff\\xfe");
        assert_eq!(escape(b"a\\b"), "a\\\\b");
        assert_eq!(escape(b"\\xff"), "\\\\xff");
    }

    proptest::proptest! {
        #[test]
        fn the_escape_is_lossless(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let text = escape(&bytes);
            proptest::prop_assert_eq!(unescape(&text), bytes);
        }
    }
}
