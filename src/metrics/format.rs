//! The exposition format a scraper asks for: OpenMetrics 1.0 when its `Accept` header asks
//! for it (Prometheus does), the classic text format 0.0.4 otherwise (vmagent, Telegraf, the
//! Datadog and OpenTelemetry receivers, `curl`), negotiated as client_golang negotiates.
//!
//! Mesa encodes OpenMetrics once per collection; the classic text is derived from it line by
//! line ([`to_classic`]), once per merged part: only the `# HELP`/`# TYPE` lines of counters
//! change (they name the `_total` samples, as client_golang's classic output does), `# UNIT`
//! and `# EOF` go, and a help text's `\"` is unescaped. Sample lines are the same bytes in
//! both formats, so a series has the same name whichever format a scraper reads.

use axum::http::{HeaderMap, header};

/// A format of the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => super::CONTENT_TYPE,
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The format for a request's `Accept` headers: the first media range, by quality (then as
/// listed), that names a format Mesa serves; OpenMetrics only when asked for by name (with no
/// version or version 0.0.1 or 1.0.0), the classic text otherwise, as client_golang does.
pub fn negotiate(headers: &HeaderMap) -> Format {
    let mut ranges: Vec<(f32, usize, Option<Format>)> = Vec::new();
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version = None;
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().trim_matches('"').to_owned()),
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/openmetrics-text"
                    if version
                        .as_deref()
                        .is_none_or(|v| v == "1.0.0" || v == "0.0.1") =>
                {
                    Some(Format::OpenMetrics)
                }
                "text/plain" => Some(Format::Text),
                _ => None,
            };
            if q > 0.0 {
                ranges.push((q, ranges.len(), format));
            }
        }
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges
        .into_iter()
        .find_map(|(_, _, f)| f)
        .unwrap_or(Format::Text)
}

/// Appends the classic text form of the OpenMetrics text `om` to `out` (see the module docs).
pub fn to_classic(om: &[u8], out: &mut Vec<u8>) {
    out.reserve(om.len());
    let mut lines = om.split_inclusive(|b| *b == b'\n').peekable();
    // The family whose `_created` samples are dropped (a counter's).
    let mut counter: Option<Vec<u8>> = None;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix(b"# HELP ") {
            let (name, text) = split_name(rest);
            // The family's TYPE follows its HELP: the same name in both.
            let suffix = lines
                .peek()
                .and_then(|next| next.strip_prefix(b"# TYPE "))
                .map(split_name)
                .filter(|(n, _)| *n == name)
                .map_or(&b""[..], |(_, kind)| classic(kind).0);
            out.extend_from_slice(b"# HELP ");
            out.extend_from_slice(name);
            out.extend_from_slice(suffix);
            out.push(b' ');
            unescape_quotes(text, out);
        } else if let Some(rest) = line.strip_prefix(b"# TYPE ") {
            let (name, kind) = split_name(rest);
            let (suffix, kind) = classic(kind);
            counter = (kind == b"counter").then(|| name.to_vec());
            out.extend_from_slice(b"# TYPE ");
            out.extend_from_slice(name);
            out.extend_from_slice(suffix);
            out.push(b' ');
            out.extend_from_slice(kind);
            out.push(b'\n');
        } else {
            // OpenMetrics only: units, the end marker, a counter's `_created`.
            let dropped = line.starts_with(b"# UNIT ")
                || line.starts_with(b"# EOF")
                || counter.as_ref().is_some_and(|c| {
                    line.strip_prefix(c.as_slice())
                        .is_some_and(|rest| rest.starts_with(b"_created"))
                });
            if !dropped {
                out.extend_from_slice(line);
            }
        }
    }
}

/// `name rest` split at the first space (`rest` keeps its newline).
fn split_name(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|b| *b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let end = line.len() - usize::from(line.ends_with(b"\n"));
            (&line[..end], b"\n")
        }
    }
}

/// An OpenMetrics type's classic form: the suffix its samples add to the family's name, and
/// the classic type.
fn classic(kind: &[u8]) -> (&'static [u8], &'static [u8]) {
    match kind.trim_ascii() {
        b"counter" => (b"_total", b"counter"),
        b"info" => (b"_info", b"gauge"),
        b"gauge" | b"stateset" => (b"", b"gauge"),
        b"histogram" => (b"", b"histogram"),
        b"summary" => (b"", b"summary"),
        _ => (b"", b"untyped"),
    }
}

/// Copies a help text, `\"` written as `"` (the classic format escapes only `\\` and `\n`).
fn unescape_quotes(text: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < text.len() {
        match (text[i], text.get(i + 1)) {
            (b'\\', Some(b'"')) => {
                out.push(b'"');
                i += 2;
            }
            (b'\\', Some(&next)) => {
                out.push(b'\\');
                out.push(next);
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Format, negotiate, to_classic};
    use axum::http::{HeaderMap, HeaderValue, header};

    fn accept(values: &[&str]) -> Format {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        }
        negotiate(&h)
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        // Prometheus 2.x.
        assert_eq!(
            accept(&[
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ]),
            Format::OpenMetrics
        );
        // Prometheus asked to prefer the classic format, vmagent, Telegraf, curl.
        assert_eq!(
            accept(&[
                "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.9"
            ]),
            Format::Text
        );
        assert_eq!(accept(&["text/plain; version=0.0.4"]), Format::Text);
        assert_eq!(accept(&["*/*"]), Format::Text);
        assert_eq!(accept(&[]), Format::Text);
        assert_eq!(
            accept(&["application/openmetrics-text;q=0", "text/plain;q=0.1"]),
            Format::Text
        );
        assert_eq!(
            accept(&["application/openmetrics-text; version=2.0.0", "*/*"]),
            Format::Text
        );
        assert_eq!(
            accept(&["application/json", "application/openmetrics-text"]),
            Format::OpenMetrics
        );
    }

    #[test]
    fn counters_name_their_samples_and_openmetrics_lines_go() {
        let om = "# HELP pg_stat_database_xact_commit Commits, \\\"cached\\\" \\\\ \\n.\n\
# TYPE pg_stat_database_xact_commit counter\n\
pg_stat_database_xact_commit_total{server=\"a\",datname=\"x\\\"y\"} 3\n\
pg_stat_database_xact_commit_created{server=\"a\"} 1.5e9\n\
# HELP pg_up Up.\n\
# TYPE pg_up gauge\n\
# UNIT pg_up ratio\n\
pg_up{server=\"a\"} 1\n\
# HELP mesa_build Build.\n\
# TYPE mesa_build info\n\
mesa_build_info{version=\"1\"} 1\n\
# TYPE q histogram\n\
q_bucket{le=\"+Inf\"} 1\n\
# EOF\n";
        let mut out = Vec::new();
        to_classic(om.as_bytes(), &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "# HELP pg_stat_database_xact_commit_total Commits, \"cached\" \\\\ \\n.\n\
# TYPE pg_stat_database_xact_commit_total counter\n\
pg_stat_database_xact_commit_total{server=\"a\",datname=\"x\\\"y\"} 3\n\
# HELP pg_up Up.\n\
# TYPE pg_up gauge\n\
pg_up{server=\"a\"} 1\n\
# HELP mesa_build_info Build.\n\
# TYPE mesa_build_info gauge\n\
mesa_build_info{version=\"1\"} 1\n\
# TYPE q histogram\n\
q_bucket{le=\"+Inf\"} 1\n"
        );
    }
}
