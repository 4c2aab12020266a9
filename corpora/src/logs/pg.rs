//! PostgreSQL `csvlog` and `jsonlog` (PostgreSQL 15+).
//!
//! Statements come from `log_statement` (`statement: ...`, `execute <name>: ...`
//! with a `parameters: $1 = '...'` detail) and `log_min_duration_statement`
//! (`duration: 1.234 ms  statement: ...`, or a bare `duration: 1.234 ms` after a
//! statement that was already logged, which is paired with it per session).
//! Extended-protocol `parse` and `bind` steps are not statements of their own: the
//! `execute` is. Parameters are substituted into the text so the statement can be
//! replayed; the template is the same either way.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use serde::Deserialize;

use super::{Captured, LogError, Sink, normalize_time, read_err, utf8};
use crate::lex::{line_end, skip_block_comment, skip_quoted};

/// One log entry, from either format.
#[derive(Debug, Default)]
struct Entry {
    line: u64,
    time: Option<String>,
    user: Option<String>,
    database: Option<String>,
    session: Option<String>,
    severity: String,
    message: String,
    detail: Option<String>,
    query_id: Option<String>,
    application: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Reads a `csvlog` stream (multi-line statements are quoted CSV fields).
pub fn read_csvlog<R: Read>(reader: R, sink: &mut dyn Sink) -> Result<(), LogError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(reader);
    let mut rec = csv::ByteRecord::new();
    let mut asm = Assembler::default();
    loop {
        let line = csv.position().line();
        match csv.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(_) => {
                    let csv::ErrorKind::Io(io) = e.into_kind() else {
                        unreachable!()
                    };
                    return Err(read_err(line)(io));
                }
                _ => {
                    sink.skip(line, format!("malformed csvlog record: {e}"));
                    continue;
                }
            },
        }
        // PostgreSQL 13 writes 23 columns, 14 adds leader_pid and query_id.
        if rec.len() < 23 {
            sink.skip(
                line,
                format!("malformed csvlog record: {} fields, expected 23 to 26", rec.len()),
            );
            continue;
        }
        let field = |i: usize| rec.get(i).map(utf8).transpose();
        let decoded = (|| -> Result<Entry, String> {
            let s = |i: usize| -> Result<String, String> { Ok(field(i)?.unwrap_or("").to_string()) };
            Ok(Entry {
                line,
                time: non_empty(&s(0)?),
                user: non_empty(&s(1)?),
                database: non_empty(&s(2)?),
                session: non_empty(&s(5)?).or(non_empty(&s(3)?)),
                severity: s(11)?,
                message: s(13)?,
                detail: non_empty(&s(14)?),
                application: non_empty(&s(22)?),
                query_id: non_empty(&s(25)?).filter(|q| q != "0"),
            })
        })();
        match decoded {
            Ok(e) => asm.feed(e, sink)?,
            Err(reason) => sink.skip(line, reason),
        }
    }
    asm.finish(sink)
}

#[derive(Deserialize)]
struct JsonEntry {
    timestamp: Option<String>,
    user: Option<String>,
    dbname: Option<String>,
    pid: Option<i64>,
    session_id: Option<String>,
    error_severity: Option<String>,
    message: Option<String>,
    detail: Option<String>,
    application_name: Option<String>,
    query_id: Option<i64>,
}

/// Reads a `jsonlog` stream (one JSON object per line).
pub fn read_jsonlog<R: BufRead>(reader: R, sink: &mut dyn Sink) -> Result<(), LogError> {
    let mut asm = Assembler::default();
    super::json_lines::<JsonEntry, R>(reader, sink, |line, j, sink| {
        let (Some(severity), Some(message)) = (j.error_severity, j.message) else {
            sink.skip(
                line,
                "malformed jsonlog record: no `error_severity` or `message`".into(),
            );
            return Ok(());
        };
        asm.feed(
            Entry {
                line,
                time: j.timestamp,
                user: j.user,
                database: j.dbname,
                session: j.session_id.or(j.pid.map(|p| p.to_string())),
                severity,
                message,
                detail: j.detail,
                application: j.application_name,
                query_id: j.query_id.filter(|&q| q != 0).map(|q| q.to_string()),
            },
            sink,
        )
    })?;
    asm.finish(sink)
}

/// Pairs statements with later bare `duration:` entries of the same session.
#[derive(Default)]
struct Assembler {
    pending: HashMap<String, Captured>,
}

enum Message<'a> {
    Statement {
        duration: Option<f64>,
        sql: &'a str,
        execute: bool,
    },
    Duration(f64),
    ProtocolStep,
    Other,
}

fn classify(msg: &str) -> Result<Message<'_>, String> {
    let (duration, rest) = match msg.strip_prefix("duration: ") {
        Some(r) => {
            let (num, rest) = r
                .split_once(" ms")
                .ok_or_else(|| format!("malformed duration: `{}`", r.chars().take(40).collect::<String>()))?;
            let d: f64 = num.trim().parse().map_err(|_| format!("malformed duration: `{num}`"))?;
            (Some(d), rest.trim_start())
        }
        None => (None, msg),
    };
    if let Some(sql) = rest.strip_prefix("statement: ") {
        return Ok(Message::Statement {
            duration,
            sql,
            execute: false,
        });
    }
    if let Some(r) = rest.strip_prefix("execute ")
        && let Some((_, sql)) = r.split_once(": ")
    {
        return Ok(Message::Statement {
            duration,
            sql,
            execute: true,
        });
    }
    if rest.starts_with("parse ") || rest.starts_with("bind ") {
        return Ok(Message::ProtocolStep);
    }
    match duration {
        Some(d) if rest.is_empty() => Ok(Message::Duration(d)),
        _ => Ok(Message::Other),
    }
}

impl Assembler {
    fn feed(&mut self, e: Entry, sink: &mut dyn Sink) -> Result<(), LogError> {
        if e.severity != "LOG" {
            sink.ignore("postgresql: messages other than LOG");
            return Ok(());
        }
        let msg = match classify(&e.message) {
            Ok(m) => m,
            Err(reason) => {
                sink.skip(e.line, reason);
                return Ok(());
            }
        };
        let key = e.session.clone().unwrap_or_default();
        match msg {
            Message::Statement { duration, sql, execute } => {
                if let Some(prev) = self.pending.remove(&key) {
                    sink.statement(prev)?;
                }
                let mut c = Captured {
                    sql: sql.trim().to_string(),
                    line: e.line,
                    user: e.user,
                    database: e.database,
                    session: e.session,
                    captured_at: e.time.as_deref().map(normalize_time),
                    duration_ms: duration,
                    query_id: e.query_id,
                    ..Captured::default()
                };
                if let Some(app) = e.application {
                    c.attrs.insert("application".into(), app);
                }
                if execute
                    && let Some(params) = e.detail.as_deref().and_then(|d| {
                        d.strip_prefix("parameters: ")
                            .or_else(|| d.strip_prefix("Parameters: "))
                    })
                {
                    match parse_parameters(params) {
                        Some(values) => c.sql = substitute(&c.sql, &values),
                        None => {
                            c.attrs.insert("parameters".into(), "unparsed".into());
                        }
                    }
                }
                if c.sql.is_empty() {
                    sink.skip(e.line, "empty statement".into());
                } else if duration.is_some() {
                    sink.statement(c)?;
                } else {
                    self.pending.insert(key, c);
                }
            }
            Message::Duration(d) => match self.pending.remove(&key) {
                Some(mut prev) => {
                    prev.duration_ms = Some(d);
                    sink.statement(prev)?;
                }
                None => sink.ignore("postgresql: durations of unlogged steps"),
            },
            Message::ProtocolStep => sink.ignore("postgresql: parse/bind steps (the execute is the statement)"),
            Message::Other => {
                if e.message.starts_with("disconnection:")
                    && let Some(prev) = self.pending.remove(&key)
                {
                    sink.statement(prev)?;
                }
                sink.ignore("postgresql: other LOG messages")
            }
        }
        Ok(())
    }

    /// Emits statements still waiting for a duration, in log order.
    fn finish(mut self, sink: &mut dyn Sink) -> Result<(), LogError> {
        let mut rest: Vec<Captured> = self.pending.drain().map(|(_, c)| c).collect();
        rest.sort_by_key(|c| c.line);
        for c in rest {
            sink.statement(c)?;
        }
        Ok(())
    }
}

/// Parses `$1 = '42', $2 = NULL, $3 = 'it''s'` into values by position (the
/// literal text as logged). None when the detail does not have that shape.
fn parse_parameters(s: &str) -> Option<Vec<Option<String>>> {
    let b = s.as_bytes();
    let mut out: Vec<Option<String>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            return None;
        }
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: usize = s[start..i].parse().ok()?;
        i += s[i..].strip_prefix(" = ").map(|_| 3)?;
        let value = if s[i..].starts_with("NULL") {
            i += 4;
            "NULL".to_string()
        } else if b.get(i) == Some(&b'\'') {
            let end = skip_quoted(b, i + 1, b'\'', false);
            let v = s[i..end].to_string();
            i = end;
            v
        } else {
            return None;
        };
        if n == 0 {
            return None;
        }
        if out.len() < n {
            out.resize(n, None);
        }
        out[n - 1] = Some(value);
        if s[i..].starts_with(", ") {
            i += 2;
        } else if i < b.len() {
            return None;
        }
    }
    Some(out)
}

/// Replaces `$n` parameters (outside strings, quoted identifiers and comments)
/// with the logged values.
pub(crate) fn substitute(sql: &str, values: &[Option<String>]) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => i = skip_quoted(b, i + 1, b'\'', i > 0 && matches!(b[i - 1], b'e' | b'E')),
            b'"' => i = skip_quoted(b, i + 1, b'"', false),
            b'-' if b.get(i + 1) == Some(&b'-') => i = line_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            b'$' => {
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                if j > i + 1 && !prev_ident {
                    let n: usize = sql[i + 1..j].parse().unwrap_or(0);
                    if let Some(Some(v)) = n.checked_sub(1).and_then(|k| values.get(k)) {
                        out.push_str(&sql[copied..i]);
                        out.push_str(v);
                        copied = j;
                    }
                    i = j;
                } else if j == i + 1 {
                    // $tag$ ... $tag$ dollar quoting.
                    let mut k = i + 1;
                    while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'_') {
                        k += 1;
                    }
                    if b.get(k) == Some(&b'$') && !prev_ident {
                        let tag = &sql[i..=k];
                        let body = k + 1;
                        i = sql[body..].find(tag).map_or(b.len(), |p| body + p + tag.len());
                    } else {
                        i += 1;
                    }
                } else {
                    i = j;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::Collect;
    use super::*;

    const CSV: &str = include_str!("../../fixtures/logs/postgresql-15.csv");

    #[test]
    fn csvlog_pairs_durations_substitutes_parameters_and_skips_bad_records() {
        let mut sink = Collect::default();
        read_csvlog(CSV.as_bytes(), &mut sink).unwrap();
        let s = &sink.statements;
        assert_eq!(s.len(), 3, "{s:#?}");
        assert_eq!(s[0].sql, "select *\nfrom orders\nwhere note = 'a,\"b\"'");
        assert_eq!(s[0].line, 2);
        assert_eq!(s[0].duration_ms, Some(1.5));
        assert_eq!(s[0].user.as_deref(), Some("app"));
        assert_eq!(s[0].database.as_deref(), Some("shop"));
        assert_eq!(s[0].session.as_deref(), Some("655c8000.65"));
        assert_eq!(s[0].query_id.as_deref(), Some("-123"));
        assert_eq!(s[0].captured_at.as_deref(), Some("2023-11-21T10:00:00.200Z"));
        assert_eq!(s[1].sql, "select * from t where a = '42' and b = 'it''s $1'");
        assert_eq!(s[1].duration_ms, Some(0.25));
        assert_eq!(s[1].user.as_deref(), Some("bob"));
        assert_eq!(s[2].sql, "select 2");
        assert_eq!(s[2].duration_ms, None);
        let lines: Vec<u64> = sink.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, vec![8, 9], "{:?}", sink.skipped);
        assert!(sink.skipped[0].1.contains("malformed duration"));
        assert!(sink.skipped[1].1.contains("5 fields"));
    }

    #[test]
    fn jsonlog() {
        let log = include_str!("../../fixtures/logs/postgresql-15.json");
        let mut sink = Collect::default();
        read_jsonlog(log.as_bytes(), &mut sink).unwrap();
        assert_eq!(sink.statements.len(), 1);
        assert_eq!(sink.statements[0].sql, "select NULL::int + 1");
        assert_eq!(sink.statements[0].duration_ms, Some(2.0));
        assert_eq!(sink.statements[0].query_id.as_deref(), Some("5"));
        assert_eq!(sink.skipped.len(), 1);
        assert_eq!(sink.skipped[0].0, 3);
    }

    #[test]
    fn parameters() {
        assert_eq!(
            parse_parameters("$1 = '1', $2 = NULL, $3 = 'a, $2 = ''b'''"),
            Some(vec![
                Some("'1'".into()),
                Some("NULL".into()),
                Some("'a, $2 = ''b'''".into())
            ])
        );
        assert_eq!(parse_parameters("$1 = 1"), None);
        assert_eq!(
            substitute(
                "select $1, '$1', \"$1\", $10, x$1 -- $1\n, $$ $1 $$",
                &[Some("'v'".into())]
            ),
            "select 'v', '$1', \"$1\", $10, x$1 -- $1\n, $$ $1 $$"
        );
    }
}
