//! Log output: logfmt (default) or JSON lines, filtered by `--log.level`.
//!
//! tracing-subscriber has no logfmt formatter, so this file has a small one:
//! `ts=2026-11-26T18:00:00.000Z level=info target=mesa::app msg="..." key=value`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

/// A `--log.level` value that is not a valid filter.
#[derive(Debug, thiserror::Error)]
#[error("invalid --log.level {level:?}: {source}")]
pub struct LogLevelError {
    level: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global subscriber, writing to stderr.
pub fn init(level: &str, format: LogFormat) -> Result<(), LogLevelError> {
    let filter = EnvFilter::try_new(level).map_err(|source| LogLevelError {
        level: level.to_owned(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
    };
    Ok(())
}

/// The logfmt event formatter.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = String::with_capacity(128);
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let _ = write!(
            line,
            "ts={ts} level={} target={}",
            meta.level().as_str().to_ascii_lowercase(),
            meta.target()
        );
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{line}")
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        pair(self.0, field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        pair(self.0, field.name(), &format!("{value:?}"));
    }
}

fn pair(line: &mut String, key: &str, value: &str) {
    let key = if key == "message" { "msg" } else { key };
    line.push(' ');
    line.push_str(key);
    line.push('=');
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '=' && !c.is_control());
    if plain {
        line.push_str(value);
    } else {
        line.push('"');
        for c in value.chars() {
            match c {
                '"' => line.push_str("\\\""),
                '\\' => line.push_str("\\\\"),
                '\n' => line.push_str("\\n"),
                c if c.is_control() => {
                    let _ = write!(line, "\\u{{{:x}}}", u32::from(c));
                }
                c => line.push(c),
            }
        }
        line.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::pair;

    #[test]
    fn quotes_when_needed() {
        let mut s = String::new();
        pair(&mut s, "message", "hello world");
        pair(&mut s, "target", "db1");
        pair(&mut s, "q", "a\"b\n");
        assert_eq!(s, " msg=\"hello world\" target=db1 q=\"a\\\"b\\n\"");
    }
}
