//! MySQL and MariaDB slow query log and general query log.
//!
//! Slow log: an entry is a `# Time:` / `# User@Host:` / `# Thread_id: .. Schema:`
//! / `# Query_time: ..` header and a body of `use db;`, `SET timestamp=N;` and
//! one or more statements. `use` and `SET timestamp` are metadata, not statements;
//! `# administrator command:` entries are not statements. When a body holds several
//! statements (a multi-statement `COM_QUERY`), each becomes a record; the entry's
//! `Query_time` goes to the first and every one carries `block_statements`.
//!
//! General log: `[time] <thread> <command>\t<argument>` lines; `Query` and
//! `Execute` are statements (continuation lines belong to the statement above),
//! `Connect` and `Init DB` give each thread its user and database.

use std::collections::HashMap;
use std::io::BufRead;

use super::{Captured, LogError, Sink, next_text, normalize_time};
use crate::input::Lines;
use crate::split::{SplitOptions, split_statements};

fn server_header(line: &str) -> bool {
    (line.contains(", Version: ") && line.trim_end().ends_with("started with:"))
        || line.starts_with("Tcp port: ")
        || (line.starts_with("Time") && line.contains("Id Command") && line.contains("Argument"))
}

#[derive(Default)]
struct SlowEntry {
    start_line: u64,
    time: Option<String>,
    user: Option<String>,
    session: Option<String>,
    schema: Option<String>,
    duration_ms: Option<f64>,
    rows_sent: Option<String>,
    rows_examined: Option<String>,
    body: String,
    body_line: u64,
    admin: bool,
    bad: Option<String>,
    /// Header attributes that could not be read (dropped, the statement kept).
    dropped: Vec<&'static str>,
}

impl SlowEntry {
    /// Marks where the entry starts (its first line) and the time it inherits.
    fn begin(&mut self, line: u64, time: &Option<String>) {
        if self.start_line == 0 {
            self.start_line = line;
            self.time.clone_from(time);
        }
    }

    fn is_empty(&self) -> bool {
        self.user.is_none()
            && self.body.is_empty()
            && self.duration_ms.is_none()
            && self.bad.is_none()
            && self.dropped.is_empty()
    }
}

/// Reads a slow query log.
pub fn read_slow<R: BufRead>(reader: R, sink: &mut dyn Sink) -> Result<(), LogError> {
    let mut lines = Lines::new(reader);
    let mut entry = SlowEntry::default();
    // MariaDB writes `# Time:` only when the second changes; MySQL writes `use` only
    // when the database changes: both carry over to later entries.
    let mut last_time: Option<String> = None;
    let mut last_time_raw = String::new();
    let mut last_db: Option<String> = None;
    let mut stamps = StampCache::default();
    while let Some((line, text, bad)) = next_text(&mut lines)? {
        let text = text.as_ref();
        if entry.body.is_empty() && server_header(text) {
            flush_slow(&mut entry, &mut last_db, &mut stamps, sink)?;
            sink.ignore("mysql: server header lines");
            continue;
        }
        if let Some(t) = text.strip_prefix("# Time: ") {
            flush_slow(&mut entry, &mut last_db, &mut stamps, sink)?;
            if t != last_time_raw {
                last_time = Some(normalize_time(t));
                last_time_raw = t.to_string();
            }
            continue;
        }
        if let Some(u) = text.strip_prefix("# User@Host: ") {
            flush_slow(&mut entry, &mut last_db, &mut stamps, sink)?;
            entry.begin(line, &last_time);
            match user_at_host(u) {
                Some(user) => entry.user = Some(user),
                None => entry.dropped.push("mysql-slow: unreadable User@Host (user dropped)"),
            }
            if let Some((_, id)) = u.split_once("Id:") {
                entry.session = id.split_whitespace().next().map(str::to_string);
            }
            continue;
        }
        if text.starts_with("# administrator command:") {
            entry.admin = true;
            continue;
        }
        if entry.body.is_empty() && text.starts_with("# ") {
            entry.begin(line, &last_time);
            slow_header_fields(&text[2..], &mut entry);
            continue;
        }
        if text.is_empty() && bad.is_none() && entry.body.is_empty() {
            continue;
        }
        entry.begin(line, &last_time);
        if entry.body.is_empty() {
            entry.body_line = line;
        } else {
            entry.body.push('\n');
        }
        if let Some(reason) = bad {
            entry.bad.get_or_insert(reason);
        }
        entry.body.push_str(text);
    }
    flush_slow(&mut entry, &mut last_db, &mut stamps, sink)
}

/// The user of a `# User@Host:` header: `user[priv_user] @ host [ip]` (MySQL and
/// MariaDB), `[priv_user] @ host [ip]` (no login user), `user @ host` (others).
fn user_at_host(u: &str) -> Option<String> {
    let (who, _) = u.split_once('@').unwrap_or((u, ""));
    let (login, rest) = who.split_once('[').unwrap_or((who, ""));
    let plausible = |s: &str| {
        !s.is_empty()
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']' | '@'))
    };
    let login = login.trim();
    if plausible(login) {
        return Some(login.to_string());
    }
    let privileged = rest.split(']').next().unwrap_or("").trim();
    plausible(privileged).then(|| privileged.to_string())
}

/// Reads `Key: value  Key: value` header fields; a value that cannot be read is
/// dropped (and counted), never the entry.
fn slow_header_fields(s: &str, e: &mut SlowEntry) {
    let mut words = s.split_ascii_whitespace().peekable();
    while let Some(key) = words.next() {
        let Some(key) = key.strip_suffix(':') else { continue };
        let Some(&value) = words.peek().filter(|v| !v.ends_with(':')) else {
            continue;
        };
        words.next();
        match key {
            "Query_time" => match value.parse::<f64>() {
                Ok(secs) if secs.is_finite() && secs >= 0.0 => e.duration_ms = Some(secs * 1000.0),
                _ => e.dropped.push("mysql-slow: unreadable Query_time (duration dropped)"),
            },
            "Schema" => e.schema = Some(value.to_string()),
            "Thread_id" | "Id" => e.session = Some(value.to_string()),
            "Rows_sent" => e.rows_sent = Some(value.to_string()),
            "Rows_examined" => e.rows_examined = Some(value.to_string()),
            _ => {}
        }
    }
}

/// `SET timestamp=N` (and MySQL's `SET last_insert_id=.., insert_id=.., timestamp=..`).
fn set_timestamp(stmt: &str) -> Option<Option<i64>> {
    let rest = stmt.strip_prefix("SET ").or_else(|| stmt.strip_prefix("set "))?;
    let mut ts = None;
    for part in rest.split(',') {
        let (k, v) = part.split_once('=')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "timestamp" => ts = v.trim().split('.').next()?.parse().ok(),
            "insert_id" | "last_insert_id" => {}
            _ => return None,
        }
    }
    Some(ts)
}

fn use_db(stmt: &str) -> Option<String> {
    let rest = stmt.strip_prefix("use ").or_else(|| stmt.strip_prefix("USE "))?;
    let db = rest.trim().trim_matches('`');
    (!db.is_empty() && !db.contains(char::is_whitespace)).then(|| db.to_string())
}

/// The last `SET timestamp` and its RFC 3339 text (consecutive entries share
/// seconds, so formatting once per second is enough).
#[derive(Default)]
struct StampCache {
    epoch: i64,
    text: Option<String>,
}

impl StampCache {
    fn get(&mut self, epoch: i64) -> Option<String> {
        if self.text.is_none() || self.epoch != epoch {
            self.epoch = epoch;
            self.text = super::epoch_ms(epoch * 1000);
        }
        self.text.clone()
    }
}

fn flush_slow(
    e: &mut SlowEntry,
    last_db: &mut Option<String>,
    stamps: &mut StampCache,
    sink: &mut dyn Sink,
) -> Result<(), LogError> {
    // The body buffer is kept for the next entry (its allocation is reused).
    let mut body = std::mem::take(&mut e.body);
    let taken = std::mem::take(e);
    let r = flush_entry(taken, &body, last_db, stamps, sink);
    body.clear();
    e.body = body;
    r
}

fn flush_entry(
    e: SlowEntry,
    body: &str,
    last_db: &mut Option<String>,
    stamps: &mut StampCache,
    sink: &mut dyn Sink,
) -> Result<(), LogError> {
    if e.is_empty() && body.is_empty() && !e.admin {
        return Ok(());
    }
    if let Some(reason) = e.bad {
        sink.skip(e.start_line, reason);
        return Ok(());
    }
    if e.admin {
        sink.ignore("mysql: administrator commands");
        return Ok(());
    }
    if body.trim().is_empty() {
        sink.skip(e.start_line, "slow-log entry without a statement".into());
        return Ok(());
    }
    for what in &e.dropped {
        sink.dropped_attribute(e.start_line, what);
    }
    let mut time = e.time;
    let mut statements = Vec::new();
    for st in split_statements(
        body,
        SplitOptions {
            backslash_escapes: true,
        },
    ) {
        if let Some(db) = use_db(&st.text) {
            *last_db = Some(db);
        } else if let Some(ts) = set_timestamp(&st.text) {
            if let Some(t) = ts.and_then(|s| stamps.get(s)) {
                time = Some(t);
            }
        } else {
            statements.push(st);
        }
    }
    if statements.is_empty() {
        sink.ignore("mysql: entries with only USE / SET timestamp");
        return Ok(());
    }
    let n = statements.len();
    let mut database = e.schema.filter(|s| !s.is_empty()).or_else(|| last_db.clone());
    let (mut user, mut session, mut rows_sent, mut rows_examined) = (e.user, e.session, e.rows_sent, e.rows_examined);
    for (k, st) in statements.into_iter().enumerate() {
        // Every statement of a block gets the entry's facts; the last one takes them.
        let last = k + 1 == n;
        let share = |o: &mut Option<String>| if last { o.take() } else { o.clone() };
        let mut c = Captured {
            sql: st.text,
            line: e.body_line + st.line - 1,
            user: share(&mut user),
            database: share(&mut database),
            session: share(&mut session),
            captured_at: share(&mut time),
            duration_ms: if k == 0 { e.duration_ms } else { None },
            ..Captured::default()
        };
        if let Some(r) = share(&mut rows_sent) {
            c.attrs.insert("rows_sent".into(), r);
        }
        if let Some(r) = share(&mut rows_examined) {
            c.attrs.insert("rows_examined".into(), r);
        }
        if n > 1 {
            c.attrs.insert("block_statements".into(), n.to_string());
        }
        sink.statement(c)?;
    }
    Ok(())
}

/// Commands of the general log (`COM_*` names as the server prints them).
const COMMANDS: [&str; 36] = [
    "Sleep",
    "Quit",
    "Init DB",
    "Query",
    "Field List",
    "Create DB",
    "Drop DB",
    "Refresh",
    "Shutdown",
    "Statistics",
    "Processlist",
    "Connect",
    "Kill",
    "Debug",
    "Ping",
    "Time",
    "Delayed insert",
    "Change user",
    "Binlog Dump",
    "Table Dump",
    "Connect Out",
    "Register Slave",
    "Prepare",
    "Execute",
    "Long Data",
    "Close stmt",
    "Reset stmt",
    "Set option",
    "Fetch",
    "Daemon",
    "Reset connection",
    "Error",
    "Bulk_execute",
    "Slave_worker",
    "Slave_IO",
    "Slave_SQL",
];

/// `(time, thread, command, argument)` of a general-log entry line.
fn general_entry(line: &str) -> Option<(Option<&str>, &str, &'static str, &str)> {
    let (prefix, rest) = match line.split_once('\t') {
        Some((p, r)) => (p.trim(), r),
        None => return None,
    };
    let time = if prefix.is_empty() {
        None
    } else if prefix.starts_with(|c: char| c.is_ascii_digit()) {
        Some(prefix)
    } else {
        return None;
    };
    let rest = rest.trim_start_matches(['\t', ' ']);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || rest.as_bytes().get(digits) != Some(&b' ') {
        return None;
    }
    let thread = &rest[..digits];
    let after = &rest[digits + 1..];
    let (command, argument) = match after.split_once('\t') {
        Some((c, a)) => (c, a),
        None => (after.trim_end(), ""),
    };
    let command = COMMANDS.iter().find(|c| **c == command)?;
    Some((time, thread, command, argument))
}

/// Reads a general query log.
pub fn read_general<R: BufRead>(reader: R, sink: &mut dyn Sink) -> Result<(), LogError> {
    let mut lines = Lines::new(reader);
    // thread -> (user, database)
    let mut threads: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    let mut pending: Option<(Captured, Option<String>)> = None;
    let mut last_time: Option<String> = None;
    let emit = |p: &mut Option<(Captured, Option<String>)>, sink: &mut dyn Sink| -> Result<(), LogError> {
        if let Some((c, bad)) = p.take() {
            match bad {
                Some(reason) => sink.skip(c.line, reason),
                None => sink.statement(c)?,
            }
        }
        Ok(())
    };
    while let Some((line, text, bad)) = next_text(&mut lines)? {
        let text = text.as_ref();
        let Some((time, thread, command, argument)) = general_entry(text) else {
            if server_header(text) {
                emit(&mut pending, sink)?;
                sink.ignore("mysql: server header lines");
            } else if let Some((c, b)) = pending.as_mut() {
                c.sql.push('\n');
                c.sql.push_str(text);
                if b.is_none() {
                    *b = bad;
                }
            } else if !text.trim().is_empty() {
                sink.skip(line, "malformed general-log line: no `<thread> <command>` entry".into());
            }
            continue;
        };
        emit(&mut pending, sink)?;
        if let Some(t) = time {
            last_time = Some(normalize_time(t));
        }
        match command {
            "Query" | "Execute" => {
                let (user, database) = threads.get(thread).cloned().unwrap_or_default();
                let c = Captured {
                    sql: argument.to_string(),
                    line,
                    user,
                    database,
                    session: Some(thread.to_string()),
                    captured_at: last_time.clone(),
                    ..Captured::default()
                };
                pending = Some((c, bad));
            }
            "Connect" | "Change user" => {
                // `app@localhost on shop using TCP/IP` (`as anonymous` may follow the host).
                let t = threads.entry(thread.to_string()).or_default();
                if let Some((user, rest)) = argument.split_once('@') {
                    t.0 = Some(user.to_string());
                    if let Some((_, db)) = rest.split_once(" on ") {
                        let db = db.split(" using ").next().unwrap_or("").trim();
                        t.1 = (!db.is_empty()).then(|| db.to_string());
                    }
                }
                sink.ignore("mysql: connections");
            }
            "Init DB" => {
                threads.entry(thread.to_string()).or_default().1 = Some(argument.trim().to_string());
                sink.ignore("mysql: other commands");
            }
            "Quit" => {
                threads.remove(thread);
                sink.ignore("mysql: connections");
            }
            _ => sink.ignore("mysql: other commands"),
        }
    }
    emit(&mut pending, sink)
}

#[cfg(test)]
mod tests {
    use super::super::testing::Collect;
    use super::*;

    const SLOW: &str = include_str!("../../fixtures/logs/mariadb-slow.log");

    #[test]
    fn slow_log_entries() {
        let mut sink = Collect::default();
        read_slow(SLOW.as_bytes(), &mut sink).unwrap();
        let s = &sink.statements;
        assert_eq!(s.len(), 5, "{s:#?}");
        assert_eq!(
            s[0].sql,
            "select *\n  from t where a = 'x;y' # trailing comment\n  and b = 1"
        );
        assert_eq!(s[0].line, 11);
        assert_eq!(s[0].user.as_deref(), Some("app"));
        assert_eq!(s[0].database.as_deref(), Some("shop"));
        assert_eq!(s[0].session.as_deref(), Some("31"));
        assert_eq!(s[0].duration_ms, Some(0.208));
        assert_eq!(s[0].captured_at.as_deref(), Some("2023-11-21T10:00:00Z"));
        assert_eq!(s[0].attrs.get("rows_examined").map(String::as_str), Some("7"));
        // Multi-statement block: the first carries the time; the database carries over.
        assert_eq!(s[1].sql, "insert into t values (1)");
        assert_eq!(s[1].duration_ms, Some(500.0));
        assert_eq!(s[2].duration_ms, None);
        assert_eq!((s[1].line, s[2].line), (18, 18));
        assert_eq!(s[2].database.as_deref(), Some("shop"));
        assert_eq!(s[2].attrs.get("block_statements").map(String::as_str), Some("2"));
        // An unreadable Query_time costs the duration, not the statement.
        assert_eq!(s[3].sql, "select 1");
        assert_eq!(s[3].duration_ms, None);
        assert_eq!(s[3].user.as_deref(), Some("root"));
        assert_eq!(
            sink.dropped,
            vec![(24, "mysql-slow: unreadable Query_time (duration dropped)")]
        );
        assert_eq!(s[4].sql, "select 2");
        assert_eq!(s[4].session.as_deref(), Some("8"));
        assert_eq!(s[4].captured_at.as_deref(), Some("2023-11-21T10:00:05.000001Z"));
        assert_eq!(sink.skipped.len(), 1, "{:?}", sink.skipped);
        assert_eq!(sink.skipped[0], (27, "slow-log entry without a statement".to_string()));
        assert_eq!(sink.ignored.get("mysql: administrator commands"), Some(&1));
    }

    /// Issue 20, reproduction 7: whatever shape the `# User@Host:` line has, the
    /// statement is kept; a user that cannot be read is dropped and counted.
    #[test]
    fn every_user_at_host_shape_keeps_its_statement() {
        let shapes = [
            ("app[app] @ localhost [127.0.0.1]", Some("app")),
            ("[root] @ localhost []", Some("root")),
            ("root[root] @ localhost []  Id:     8", Some("root")),
            (
                "event_scheduler[event_scheduler] @ localhost []",
                Some("event_scheduler"),
            ),
            ("app @ 10.0.0.7", Some("app")),
            ("[] @  []", None),
            ("@", None),
            ("", None),
            ("\u{1}\u{2} garbage [[[ @@@", None),
        ];
        for (shape, user) in shapes {
            let log =
                format!("# Time: 231121 10:00:00\n# User@Host: {shape}\n# Query_time: 0.5  Lock_time: 0\nselect 42;\n");
            let mut sink = Collect::default();
            read_slow(log.as_bytes(), &mut sink).unwrap();
            assert_eq!(sink.statements.len(), 1, "`{shape}`: {:?}", sink.skipped);
            assert_eq!(sink.statements[0].sql, "select 42");
            assert_eq!(sink.statements[0].duration_ms, Some(500.0));
            assert_eq!(sink.statements[0].user.as_deref(), user, "`{shape}`");
            assert_eq!(sink.dropped.len(), usize::from(user.is_none()), "`{shape}`");
        }
    }

    const GENERAL: &str = include_str!("../../fixtures/logs/mariadb-general.log");

    #[test]
    fn general_log_entries() {
        let mut sink = Collect::default();
        read_general(GENERAL.as_bytes(), &mut sink).unwrap();
        let s = &sink.statements;
        assert_eq!(s.len(), 4, "{s:#?}");
        assert_eq!(s[0].sql, "select *\nfrom t\nwhere a = 1");
        assert_eq!(
            (s[0].line, s[0].user.as_deref(), s[0].database.as_deref()),
            (5, Some("app"), Some("shop"))
        );
        assert_eq!(s[1].sql, "select * from t where a = 5");
        assert_eq!(s[2].sql, "select 2\ngarbage line");
        assert_eq!(
            (s[2].user.as_deref(), s[2].database.as_deref()),
            (Some("bob"), Some("other"))
        );
        assert_eq!(s[2].captured_at.as_deref(), Some("2023-11-21T10:00:01Z"));
        assert_eq!(s[3].sql, "select 3");
        assert_eq!(s[3].captured_at.as_deref(), Some("2023-11-21T10:00:02.500Z"));
        assert_eq!(s[3].user, None);
        assert!(sink.skipped.is_empty());
    }

    #[test]
    fn general_log_garbage_outside_a_statement_is_skipped() {
        let mut sink = Collect::default();
        read_general("\t\t 5 Quit\t\nnot a log line\n".as_bytes(), &mut sink).unwrap();
        assert_eq!(sink.skipped.len(), 1);
        assert_eq!(sink.skipped[0].0, 2);
    }
}
