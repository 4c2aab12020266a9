//! Parsers for server query logs. Each reads one (decompressed) stream and hands
//! [`Captured`] statements, skipped records and ignored non-statement entries to a
//! [`Sink`]. They stream: the only state kept between records is what the format
//! needs to pair lines (statements waiting for their duration, per open session),
//! so memory is bounded by the number of concurrent sessions, not the log length.

use std::collections::BTreeMap;
use std::io;

use crate::corpus::CorpusError;

pub mod events;
pub mod mysql;
pub mod pg;

/// One statement found in a log, with what the log says about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Captured {
    /// The statement's text.
    pub sql: String,
    /// 1-based line of the record that carries the statement.
    pub line: u64,
    /// The user, as the log names them.
    pub user: Option<String>,
    /// The database it ran in.
    pub database: Option<String>,
    /// The session (connection, thread, process) it ran in.
    pub session: Option<String>,
    /// RFC 3339 when the log's time could be read as one; the log's text otherwise.
    pub captured_at: Option<String>,
    /// Its duration, when the log reports one.
    pub duration_ms: Option<f64>,
    /// The engine's own query id (PostgreSQL `query_id`, Trino `queryId`, ...).
    pub query_id: Option<String>,
    /// Other attributes the log gives (application, host, ...).
    pub attrs: BTreeMap<String, String>,
    /// Only from JSON Lines exports: an explicit record id ...
    pub id: Option<String>,
    /// ... tenant ...
    pub tenant: Option<String>,
    /// ... and tags.
    pub tags: Vec<String>,
}

/// Where parsers put what they find.
pub trait Sink {
    /// A statement to keep.
    fn statement(&mut self, c: Captured) -> Result<(), CorpusError>;
    /// A record that should have been a statement but cannot be used.
    fn skip(&mut self, line: u64, reason: String);
    /// A log entry that is not a statement (connections, checkpoints, protocol
    /// steps, ...): counted, not reported one by one.
    fn ignore(&mut self, what: &'static str);
    /// An attribute of a statement (user, duration, ...) that could not be read:
    /// the attribute is dropped and counted, the statement is kept.
    fn dropped_attribute(&mut self, line: u64, what: &'static str) {
        let _ = (line, what);
    }
}

/// Why a parser stopped early.
#[derive(Debug)]
pub enum LogError {
    /// The input could not be read any further (I/O or decompression error) after
    /// this many lines.
    Read {
        /// Lines read before it failed.
        line: u64,
        /// What failed.
        error: io::Error,
    },
    /// The sink failed (the corpus could not be written).
    Sink(CorpusError),
}

impl From<CorpusError> for LogError {
    fn from(e: CorpusError) -> Self {
        LogError::Sink(e)
    }
}

pub(crate) fn read_err(line: u64) -> impl FnOnce(io::Error) -> LogError {
    move |error| LogError::Read { line, error }
}

/// The next line as text: its number, the text (decoded lossily when it is not
/// UTF-8) and, then, why it is not UTF-8 (the caller skips what holds it).
pub(crate) type TextLine<'l> = (u64, std::borrow::Cow<'l, str>, Option<String>);

pub(crate) fn next_text<R: io::BufRead>(lines: &mut crate::input::Lines<R>) -> Result<Option<TextLine<'_>>, LogError> {
    let next = lines.line() + 1;
    let line = match lines.advance() {
        Ok(Some(line)) => line,
        Ok(None) => return Ok(None),
        Err(e) => return Err(read_err(next)(e)),
    };
    if let Some(len) = lines.oversized() {
        return Ok(Some((line, std::borrow::Cow::Borrowed(""), Some(oversized(len)))));
    }
    let bytes = lines.current();
    Ok(Some(match utf8(bytes) {
        Ok(t) => (line, std::borrow::Cow::Borrowed(t), None),
        Err(reason) => (line, String::from_utf8_lossy(bytes), Some(reason)),
    }))
}

/// The skip reason of a record over the record-size limit.
pub(crate) fn oversized(len: u64) -> String {
    format!(
        "record too large: {len} bytes, over the maximum record size of {} bytes; raise --max-record-size to read it",
        crate::input::max_record()
    )
}

/// Runs `f` on every non-empty line decoded as JSON into `T`; lines that are not
/// UTF-8 or not such JSON are skipped with their reason.
pub(crate) fn json_lines<T: serde::de::DeserializeOwned, R: io::BufRead>(
    reader: R,
    sink: &mut dyn Sink,
    mut f: impl FnMut(u64, T, &mut dyn Sink) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut lines = crate::input::Lines::new(reader);
    while let Some((line, text, bad)) = next_text(&mut lines)? {
        if let Some(reason) = bad {
            sink.skip(line, reason);
            continue;
        }
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(text) {
            Ok(v) => f(line, v, sink)?,
            Err(e) => sink.skip(line, format!("malformed JSON: {e}")),
        }
    }
    Ok(())
}

/// Decodes a record's bytes; `None` when they are not UTF-8 (the caller skips
/// the record, naming the column of the first bad byte).
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: invalid byte at column {}", e.valid_up_to() + 1))
}

/// Reads a log timestamp (`2023-11-21 10:00:00.123 UTC`, `2023-11-21T10:00:00Z`,
/// MySQL's `231121 10:00:00`, epoch seconds or milliseconds) as RFC 3339 UTC.
/// Times with a zone abbreviation other than UTC/GMT keep the log's text.
pub(crate) fn normalize_time(s: &str) -> String {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true);
    }
    let (body, zone) = match s.rsplit_once(' ') {
        Some((b, z)) if z.chars().all(|c| c.is_ascii_alphabetic()) => (b, Some(z)),
        Some((b, z)) if z.starts_with(['+', '-']) => (b, Some(z)),
        _ => (s, None),
    };
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%y%m%d %H:%M:%S", "%y%m%d %k:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(body, fmt) {
            match zone {
                None | Some("UTC" | "GMT" | "Z") => {
                    return t.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true);
                }
                Some(z) if z.starts_with(['+', '-']) => {
                    let z = if z.len() == 3 {
                        format!("{z}00")
                    } else {
                        z.replace(':', "")
                    };
                    if let Ok(t) = DateTime::parse_from_str(&format!("{body} {z}"), &format!("{fmt} %z")) {
                        return t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true);
                    }
                }
                _ => {}
            }
        }
    }
    s.to_string()
}

/// Epoch milliseconds as RFC 3339 UTC.
pub(crate) fn epoch_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// Whether a text starts like a SQL statement (used where logs mix SQL with other
/// descriptions, e.g. Spark's job descriptions).
pub(crate) fn looks_like_sql(s: &str) -> bool {
    const FIRST: [&str; 30] = [
        "select", "with", "insert", "update", "delete", "merge", "create", "drop", "alter", "truncate", "explain",
        "show", "describe", "desc", "set", "use", "cache", "uncache", "refresh", "analyze", "values", "from", "table",
        "msck", "load", "reset", "replace", "call", "grant", "revoke",
    ];
    let mut t = s.trim_start();
    // Leading comments and parentheses.
    loop {
        if let Some(r) = t.strip_prefix("--") {
            t = r.split_once('\n').map_or("", |x| x.1).trim_start();
        } else if let Some(r) = t.strip_prefix("/*") {
            t = r.split_once("*/").map_or("", |x| x.1).trim_start();
        } else if let Some(r) = t.strip_prefix('(') {
            t = r.trim_start();
        } else {
            break;
        }
    }
    let word: String = t
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    FIRST.contains(&word.as_str())
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A sink that keeps everything, for parser tests.
    #[derive(Default, Debug)]
    pub struct Collect {
        pub statements: Vec<Captured>,
        pub skipped: Vec<(u64, String)>,
        pub ignored: BTreeMap<&'static str, u64>,
        pub dropped: Vec<(u64, &'static str)>,
    }

    impl Sink for Collect {
        fn statement(&mut self, c: Captured) -> Result<(), CorpusError> {
            self.statements.push(c);
            Ok(())
        }
        fn skip(&mut self, line: u64, reason: String) {
            self.skipped.push((line, reason));
        }
        fn ignore(&mut self, what: &'static str) {
            *self.ignored.entry(what).or_insert(0) += 1;
        }
        fn dropped_attribute(&mut self, line: u64, what: &'static str) {
            self.dropped.push((line, what));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(
            normalize_time("2023-11-21 10:00:00.123 UTC"),
            "2023-11-21T10:00:00.123Z"
        );
        assert_eq!(normalize_time("2023-11-21 10:00:00 +01"), "2023-11-21T09:00:00Z");
        assert_eq!(normalize_time("231121 9:05:01"), "2023-11-21T09:05:01Z");
        assert_eq!(
            normalize_time("2023-11-21T10:00:00.5+00:00"),
            "2023-11-21T10:00:00.500Z"
        );
        assert_eq!(normalize_time("2023-11-21 10:00:00 CET"), "2023-11-21 10:00:00 CET");
        assert_eq!(epoch_ms(1_700_560_800_000).as_deref(), Some("2023-11-21T10:00:00Z"));
    }

    #[test]
    fn sql_or_not() {
        assert!(looks_like_sql("  /* c */ (SELECT 1)"));
        assert!(looks_like_sql("with x as (select 1) select * from x"));
        assert!(!looks_like_sql("count at NativeMethodAccessorImpl.java:0"));
        assert!(!looks_like_sql("collect at <console>:23"));
    }
}
