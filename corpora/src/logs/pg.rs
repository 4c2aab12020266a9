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
///
/// Records are assembled line by line (a record ends at a line end outside
/// quotes) and never hold more than the record-size limit
/// ([`crate::input::max_record`]): a record over it, or a quote that is never
/// closed, is skipped with its first line, and reading resumes at the next line
/// of that record that starts like a csvlog record (a timestamp), so one bad
/// quote costs one record, not the rest of the file.
pub fn read_csvlog<R: Read>(reader: R, sink: &mut dyn Sink) -> Result<(), LogError> {
    let mut lines = crate::input::Lines::new(std::io::BufReader::with_capacity(256 * 1024, reader));
    let max = crate::input::max_record();
    let mut asm = Assembler::default();
    let mut r = CsvRecords::default();
    loop {
        let next = match r.replay.pop_front() {
            Some(l) => Some(Ok(l)),
            None => lines
                .advance()
                .map_err(read_err(lines.line() + 1))?
                .map(|n| match lines.oversized() {
                    Some(len) => Err((n, len)),
                    None => Ok((n, lines.current().to_vec())),
                }),
        };
        match next {
            None => {
                if let Some((first, _)) = r.rec.first() {
                    sink.skip(
                        *first,
                        "malformed csvlog record: a quoted field is never closed".to_string(),
                    );
                    r.abandon();
                    continue;
                }
                r.resynced(sink);
                break;
            }
            Some(Err((n, len))) => {
                if let Some((first, _)) = r.rec.first() {
                    let why = format!("malformed csvlog record: cut by line {n}, which is over the record size limit");
                    sink.skip(*first, why);
                    r.abandon();
                }
                r.resynced(sink);
                sink.skip(n, super::oversized(len));
            }
            Some(Ok((n, line))) => {
                if r.rec.is_empty() && line.is_empty() {
                    continue;
                }
                if let Some((_, last, count)) = &mut r.resync {
                    // After a damaged record: its remaining lines, up to the
                    // next line that starts a record, are one skip.
                    if !starts_record(&line) {
                        *last = n;
                        *count += 1;
                        continue;
                    }
                    r.resynced(sink);
                }
                r.size += line.len() + 1;
                r.in_quote ^= memchr::memchr_iter(b'"', &line).count() % 2 == 1;
                r.rec.push((n, line));
                if r.size > max {
                    sink.skip(r.rec[0].0, super::oversized(r.size as u64));
                    r.abandon();
                    continue;
                }
                if r.in_quote {
                    continue;
                }
                match r.entry() {
                    Ok(e) => {
                        r.clear();
                        asm.feed(e, sink)?;
                    }
                    Err(why) => {
                        sink.skip(r.rec[0].0, why);
                        // A record cut short swallows the next one's first line:
                        // read again from there.
                        r.abandon();
                    }
                }
            }
        }
    }
    asm.finish(sink)
}

/// The csvlog record being assembled from lines, and the lines to read again
/// after a damaged one.
#[derive(Default)]
struct CsvRecords {
    rec: Vec<(u64, Vec<u8>)>,
    size: usize,
    in_quote: bool,
    replay: std::collections::VecDeque<(u64, Vec<u8>)>,
    /// Skipping the rest of a damaged record: (first line, last line, lines).
    resync: Option<(u64, u64, u64)>,
    joined: Vec<u8>,
    fields: FieldSplitter,
}

impl CsvRecords {
    fn clear(&mut self) {
        self.rec.clear();
        self.size = 0;
        self.in_quote = false;
    }

    /// Drops the current record (already reported) and reads again from its
    /// next line that starts a record; without one, skips on to the next.
    fn abandon(&mut self) {
        match self.rec.iter().skip(1).position(|(_, l)| starts_record(l)) {
            Some(i) => {
                for l in self.rec.drain(i + 1..).rev() {
                    self.replay.push_front(l);
                }
            }
            None => {
                if let Some(&(n, _)) = self.rec.get(1) {
                    let last = self.rec.last().map_or(n, |l| l.0);
                    self.resync = Some((n, last, self.rec.len() as u64 - 1));
                } else {
                    self.resync = Some((0, 0, 0));
                }
            }
        }
        self.clear();
    }

    /// Ends a resync, reporting the lines it skipped.
    fn resynced(&mut self, sink: &mut dyn Sink) {
        if let Some((first, last, count)) = self.resync.take()
            && count > 0
        {
            let first = if first == 0 { last + 1 - count } else { first };
            sink.skip(
                first,
                format!("damaged csvlog record: its other {count} lines (to line {last}), up to the next record"),
            );
        }
    }

    /// The entry of the complete record (quotes balanced), or why not.
    fn entry(&mut self) -> Result<Entry, String> {
        self.joined.clear();
        for (i, (_, l)) in self.rec.iter().enumerate() {
            if i > 0 {
                self.joined.push(b'\n');
            }
            self.joined.extend_from_slice(l);
        }
        self.fields.split(&self.joined);
        csv_entry(self.rec[0].0, &self.fields)
    }
}

/// Whether a line starts like a csvlog record: its `log_time`
/// (`2023-11-21 10:00:00`).
fn starts_record(line: &[u8]) -> bool {
    let d = |i: usize| line.get(i).is_some_and(u8::is_ascii_digit);
    let at = |i: usize, c: u8| line.get(i) == Some(&c);
    (0..4).all(d)
        && at(4, b'-')
        && d(5)
        && d(6)
        && at(7, b'-')
        && d(8)
        && d(9)
        && at(10, b' ')
        && d(11)
        && d(12)
        && at(13, b':')
}

/// Splits one csvlog record into fields, reusing its buffers and the CSV state
/// machine (costly to build) from record to record.
struct FieldSplitter {
    rdr: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    fields: usize,
}

impl Default for FieldSplitter {
    fn default() -> Self {
        FieldSplitter {
            rdr: csv_core::Reader::new(),
            out: vec![0; 4096],
            ends: vec![0; 32],
            fields: 0,
        }
    }
}

impl FieldSplitter {
    /// Splits `input`, one whole record without its final line end.
    fn split(&mut self, input: &[u8]) {
        use csv_core::ReadRecordResult as R;
        self.rdr.reset();
        if self.out.len() < input.len() {
            self.out.resize(input.len(), 0);
        }
        let (mut rest, mut o, mut e) = (input, 0, 0);
        let mut at_end = false;
        loop {
            let (res, nin, nout, nend) = self.rdr.read_record(rest, &mut self.out[o..], &mut self.ends[e..]);
            rest = &rest[nin..];
            o += nout;
            e += nend;
            match res {
                // An empty input tells the reader the record ends here.
                R::InputEmpty if rest.is_empty() && !at_end => at_end = true,
                R::InputEmpty => {
                    if at_end {
                        break;
                    }
                }
                R::OutputFull => self.out.resize(self.out.len() * 2, 0),
                R::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                R::Record | R::End => break,
            }
        }
        self.fields = e;
    }

    fn len(&self) -> usize {
        self.fields
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.fields).then(|| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.out[start..self.ends[i]]
        })
    }
}

/// The entry of one complete csvlog record (split into `rec`), or why it
/// cannot be read.
fn csv_entry(line: u64, rec: &FieldSplitter) -> Result<Entry, String> {
    // PostgreSQL 13 writes 23 columns, 14 adds leader_pid and query_id.
    if rec.len() < 23 {
        return Err(format!(
            "malformed csvlog record: {} fields, expected 23 to 26",
            rec.len()
        ));
    }
    let field = |i: usize| rec.get(i).map(utf8).transpose();
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

    /// A csvlog record (`n`, statement `sql`) as PostgreSQL writes it.
    fn csv_record(n: u32, sql: &str) -> String {
        format!(
            "2023-11-21 10:00:0{n}.000 UTC,\"app\",\"shop\",101,\"127.0.0.1:5000\",655c8000.65,{n},\"SELECT\",\
             2023-11-21 09:59:59 UTC,3/{n},0,LOG,00000,\"statement: {}\",,,,,,,,,\"psql\",client backend,,0\n",
            sql.replace('"', "\"\"")
        )
    }

    #[test]
    fn an_unclosed_quote_costs_one_record_not_the_rest_of_the_log() {
        let mut log = csv_record(1, "select 1");
        // A record cut after the opening quote of its message (a truncated write).
        log.push_str("2023-11-21 10:00:02.000 UTC,\"app\",\"shop\",101,\"127.0.0.1:5000\",655c8000.65,2,\"SELECT\",\"statement: select\n");
        log.push_str(&csv_record(3, "select 3\nfrom \"t\""));
        log.push_str(&csv_record(4, "select 4"));
        // And the last record of the file cut the same way.
        log.push_str("2023-11-21 10:00:05.000 UTC,\"app\",\"statement: select\nfrom t\n");
        let mut sink = Collect::default();
        read_csvlog(log.as_bytes(), &mut sink).unwrap();
        let sql: Vec<&str> = sink.statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            ["select 1", "select 3\nfrom \"t\"", "select 4"],
            "{:?}",
            sink.skipped
        );
        assert_eq!(sink.statements[1].line, 3);
        let lines: Vec<u64> = sink.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [2, 6, 7], "{:?}", sink.skipped);
        assert!(sink.skipped[0].1.contains("21 fields"), "{:?}", sink.skipped);
        assert!(sink.skipped[1].1.contains("never closed"), "{:?}", sink.skipped);
        assert!(sink.skipped[2].1.contains("damaged"), "{:?}", sink.skipped);
    }

    #[test]
    fn records_over_the_size_limit_are_skipped_and_memory_stays_bounded() {
        let _limit = crate::input::limit_records(4096);
        let mut log = csv_record(1, "select 1");
        // One statement of 100 KB over many lines, one line of 100 KB, and an
        // unclosed quote followed by 100 KB of text without a record start.
        log.push_str(&csv_record(2, &"select 2\n".repeat(10_000)));
        log.push_str(&csv_record(3, &format!("select '{}'", "x".repeat(100_000))));
        log.push_str(&csv_record(4, "select 4"));
        log.push_str("2023-11-21 10:00:05.000 UTC,\"app\",\"statement: select\n");
        log.push_str(&"more text\n".repeat(10_000));
        log.push_str(&csv_record(6, "select 6"));
        let mut sink = Collect::default();
        read_csvlog(log.as_bytes(), &mut sink).unwrap();
        let sql: Vec<&str> = sink.statements.iter().map(|s| s.sql.as_str()).collect();
        let head: Vec<&(u64, String)> = sink.skipped.iter().take(8).collect();
        assert_eq!(sql, ["select 1", "select 4", "select 6"], "{head:?}");
        let first: Vec<&(u64, String)> = sink.skipped.iter().take(8).collect();
        let lines: Vec<u64> = sink.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines.len(), 5, "{first:?}");
        assert_eq!((lines[0], lines[2], lines[3]), (2, 10_003, 10_005), "{first:?}");
        assert!(first[1].1.contains("damaged csvlog record:"), "{first:?}");
        assert!(first[4].1.contains("damaged csvlog record:"), "{first:?}");
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
