//! Building corpora from input files: `.sql` scripts, JSON Lines and server query
//! logs (PostgreSQL csvlog/jsonlog, MySQL/MariaDB slow and general logs, Trino
//! query-completed events, Spark event logs), plain or gzip/zstd compressed.
//!
//! Ingest streams: records go to a [`CorpusWriter`] as they are read; logs are read
//! line by line and `.sql` scripts block by block (memory bounded by the longest
//! statement; the one per-statement state is the id map of `.sql`/JSONL records,
//! a few dozen bytes per distinct statement). A record that cannot be used
//! is counted in the [`IngestReport`] with file, line and reason, written to
//! `skipped.jsonl` in the output corpus, and skipped; the rest of the input is still
//! ingested. Log entries that are not statements (connections, checkpoints,
//! protocol steps) are counted by kind.
//!
//! Record ids are stable: `.sql` and JSON Lines records are named by their text
//! (repeats get `-2`, `-3`, ...); log records by file, position and text, so the same
//! log ingested again gives the same ids without remembering every statement.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::corpus::{CorpusError, CorpusWriter};
use crate::fingerprint::{Fingerprinter, TemplateId};
use crate::input;
use crate::logs::{self, Captured, LogError, Sink};
use crate::record::{QueryRecord, Source};
use crate::split::SplitOptions;

/// Input formats of `corpus ingest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IngestFormat {
    /// Detect from the content (and the `.sql` extension).
    Auto,
    Sql,
    Jsonl,
    PgCsvlog,
    PgJsonlog,
    MysqlSlow,
    MysqlGeneral,
    TrinoEvents,
    SparkEvents,
}

const FORMATS: [(IngestFormat, &str); 9] = [
    (IngestFormat::Auto, "auto"),
    (IngestFormat::Sql, "sql"),
    (IngestFormat::Jsonl, "jsonl"),
    (IngestFormat::PgCsvlog, "pg-csvlog"),
    (IngestFormat::PgJsonlog, "pg-jsonlog"),
    (IngestFormat::MysqlSlow, "mysql-slow"),
    (IngestFormat::MysqlGeneral, "mysql-general"),
    (IngestFormat::TrinoEvents, "trino-events"),
    (IngestFormat::SparkEvents, "spark-events"),
];

impl IngestFormat {
    pub fn name(self) -> &'static str {
        FORMATS.iter().find(|f| f.0 == self).map_or("auto", |f| f.1)
    }

    /// The sqlparser dialect statements of this format are written in.
    pub fn dialect(self) -> &'static str {
        match self {
            IngestFormat::PgCsvlog | IngestFormat::PgJsonlog => "postgres",
            IngestFormat::MysqlSlow | IngestFormat::MysqlGeneral => "mysql",
            _ => "generic",
        }
    }

    /// Whether records are named by position (logs) rather than by text alone.
    fn is_log(self) -> bool {
        !matches!(self, IngestFormat::Auto | IngestFormat::Sql | IngestFormat::Jsonl)
    }
}

impl std::str::FromStr for IngestFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FORMATS.iter().find(|f| f.1 == s).map(|f| f.0).ok_or_else(|| {
            let names: Vec<&str> = FORMATS.iter().map(|f| f.1).collect();
            format!("unknown input format `{s}`; expected one of: {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for IngestFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub format: IngestFormat,
    pub split: SplitOptions,
    /// Tags added to every record.
    pub tags: Vec<String>,
    /// sqlparser dialect for fingerprints (and the manifest); None: from the format.
    pub dialect: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            format: IngestFormat::Auto,
            split: SplitOptions::default(),
            tags: Vec::new(),
            dialect: None,
        }
    }
}

/// One piece of input that was not ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedInput {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

/// How many skipped records the report keeps one by one (all are counted, and all
/// are written to the corpus's `skipped.jsonl`).
pub const SKIPPED_KEPT: usize = 1000;

/// What an ingest read, kept and skipped.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    pub files: u64,
    /// Files per detected format.
    pub formats: BTreeMap<String, u64>,
    /// Files in input directories whose format was not recognized (not read).
    pub unrecognized_files: Vec<String>,
    /// The dialect fingerprints were computed in.
    pub dialect: String,
    /// Statement records found: kept + skipped.
    pub records_read: u64,
    pub kept: u64,
    /// Distinct templates among the kept records.
    pub templates: u64,
    pub skipped_total: u64,
    /// The first [`SKIPPED_KEPT`] skipped records, with file, line and reason.
    pub skipped: Vec<SkippedInput>,
    /// Skipped records by reason (the reason's text up to the first `:`).
    pub skipped_counts: BTreeMap<String, u64>,
    /// Log entries that are not statements, by kind.
    pub ignored: BTreeMap<String, u64>,
}

impl IngestReport {
    /// Skipped counts by reason (the reason's text up to the first `:`).
    pub fn skipped_by_reason(&self) -> BTreeMap<String, u64> {
        self.skipped_counts.clone()
    }
}

/// Lists the files under the inputs (directories recursively, sorted) with their
/// formats, and the path each is named by in record ids (relative to its input).
fn expand_inputs(
    inputs: &[PathBuf],
    format: IngestFormat,
    report: &mut IngestReport,
) -> Result<Vec<(PathBuf, String, IngestFormat)>, CorpusError> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = fs::metadata(input).map_err(|e| CorpusError::io(input, e))?;
        if meta.is_dir() {
            let mut stack = vec![input.clone()];
            let mut files = Vec::new();
            while let Some(d) = stack.pop() {
                for entry in fs::read_dir(&d).map_err(|e| CorpusError::io(&d, e))? {
                    let p = entry.map_err(|e| CorpusError::io(&d, e))?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        files.push(p);
                    }
                }
            }
            files.sort();
            for p in files {
                let rel = p.strip_prefix(input).unwrap_or(&p).display().to_string();
                match detect(&p, format)? {
                    Some(f) => out.push((p, rel, f)),
                    None => report.unrecognized_files.push(p.display().to_string()),
                }
            }
        } else {
            let f = detect(input, format)?.ok_or_else(|| CorpusError::Invalid {
                path: input.clone(),
                message: "cannot tell the input format from the content; pass --format (sql, jsonl, pg-csvlog, \
                          pg-jsonlog, mysql-slow, mysql-general, trino-events, spark-events)"
                    .into(),
            })?;
            let rel = input
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            out.push((input.clone(), rel, f));
        }
    }
    Ok(out)
}

/// The format of a file: as given, or detected from the first 64 KiB of its
/// (decompressed) content.
pub fn detect(p: &Path, format: IngestFormat) -> Result<Option<IngestFormat>, CorpusError> {
    if format != IngestFormat::Auto {
        return Ok(Some(format));
    }
    let name = input::logical_name(p).to_ascii_lowercase();
    if name.ends_with(".sql") {
        return Ok(Some(IngestFormat::Sql));
    }
    let head = input::head(p, 64 * 1024)?;
    Ok(sniff(&head, &name))
}

fn sniff(head: &[u8], name: &str) -> Option<IngestFormat> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next()?;
    if first.trim_start().starts_with('{') {
        let has = |k: &str| first.contains(k);
        return Some(if has("\"Event\"") {
            IngestFormat::SparkEvents
        } else if has("\"metadata\"") && (has("\"queryId\"") || has("\"query\"")) {
            IngestFormat::TrinoEvents
        } else if has("\"error_severity\"") {
            IngestFormat::PgJsonlog
        } else {
            IngestFormat::Jsonl
        });
    }
    let all = || text.lines();
    if all().any(|l| l.starts_with("# User@Host:") || l.starts_with("# Query_time:")) {
        return Some(IngestFormat::MysqlSlow);
    }
    if all().any(|l| l.contains("\tQuery\t") || l.contains("\tConnect\t") || l.contains(" Query\t"))
        || (first.contains(", Version: ") && text.contains("Id Command"))
    {
        return Some(IngestFormat::MysqlGeneral);
    }
    // csvlog: `2023-11-21 10:00:00.123 UTC,"user",...`
    let b = first.as_bytes();
    if b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b' '
        && let Some(comma) = first.find(',')
        && logs::normalize_time(&first[..comma]) != first[..comma]
    {
        return Some(IngestFormat::PgCsvlog);
    }
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
        return Some(IngestFormat::Jsonl);
    }
    None
}

/// Gives `.sql` and JSON Lines records a stable id derived from their text: the
/// same input ingested again gets the same ids; repeated statements get `-2`, `-3`,
/// ... in input order.
#[derive(Default)]
struct IdAssigner {
    /// Times each id was given, keyed by a hash of the id (a few bytes per distinct
    /// statement instead of its text). Two ids sharing a hash only cost one of them
    /// a needless `-n` suffix: ids stay unique.
    seen: HashMap<u64, u32>,
}

impl IdAssigner {
    fn id_for(&mut self, sql: &str) -> String {
        let base = format!("q-{}", &blake3::hash(sql.as_bytes()).to_hex()[..12]);
        self.unique(base)
    }
    fn unique(&mut self, base: String) -> String {
        let n = self
            .seen
            .entry(xxhash_rust::xxh3::xxh3_64(base.as_bytes()))
            .or_insert(0);
        *n += 1;
        if *n == 1 { base } else { format!("{base}-{n}") }
    }
}

/// Everything one ingest shares across files.
struct Shared<'a> {
    writer: &'a mut CorpusWriter,
    report: &'a mut IngestReport,
    fingerprints: Fingerprinter,
    ids: IdAssigner,
    templates: HashSet<TemplateId>,
    skipped_out: Option<BufWriter<File>>,
    tags: Vec<String>,
}

/// The sink for one file.
struct FileSink<'s, 'a> {
    shared: &'s mut Shared<'a>,
    file: String,
    rel: String,
    by_position: bool,
    ordinal: u64,
}

impl FileSink<'_, '_> {
    fn id_for(&mut self, explicit: Option<String>, sql: &str) -> String {
        if let Some(id) = explicit {
            return self.shared.ids.unique(id);
        }
        if self.by_position {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(self.rel.as_bytes());
            h.update(&[0]);
            h.update(&self.ordinal.to_le_bytes());
            h.update(sql.as_bytes());
            format!("q-{:016x}", h.digest())
        } else {
            self.shared.ids.id_for(sql)
        }
    }
}

impl Sink for FileSink<'_, '_> {
    fn statement(&mut self, c: Captured) -> Result<(), CorpusError> {
        self.ordinal += 1;
        self.shared.report.records_read += 1;
        let id = self.id_for(c.id, &c.sql);
        let template = self.shared.fingerprints.fingerprint(&c.sql).id;
        let mut rec = QueryRecord::with_template(id, c.sql, template);
        rec.source = Some(Source {
            file: self.file.clone(),
            line: c.line,
        });
        rec.user = c.user;
        rec.database = c.database;
        rec.session = c.session;
        rec.captured_at = c.captured_at;
        rec.duration_ms = c.duration_ms;
        rec.query_id = c.query_id;
        rec.attrs = c.attrs;
        rec.tenant = c.tenant;
        rec.tags = c.tags;
        rec.tags.extend(self.shared.tags.iter().cloned());
        self.shared.writer.write(&rec)?;
        self.shared.templates.insert(template);
        self.shared.report.kept += 1;
        Ok(())
    }

    fn skip(&mut self, line: u64, reason: String) {
        self.shared.report.records_read += 1;
        let s = SkippedInput {
            file: self.file.clone(),
            line,
            reason,
        };
        let r = &mut *self.shared.report;
        r.skipped_total += 1;
        let key = s.reason.split(':').next().unwrap_or(&s.reason).to_string();
        *r.skipped_counts.entry(key).or_insert(0) += 1;
        if self.shared.skipped_out.is_none() {
            let p = self.shared.writer.dir().join("skipped.jsonl");
            self.shared.skipped_out = File::create(p).ok().map(BufWriter::new);
        }
        if let Some(out) = self.shared.skipped_out.as_mut() {
            // Best effort: the report still counts what could not be written.
            let _ = serde_json::to_writer(&mut *out, &s).map(|_| out.write_all(b"\n"));
        }
        if r.skipped.len() < SKIPPED_KEPT {
            r.skipped.push(s);
        }
    }

    fn ignore(&mut self, what: &'static str) {
        *self.shared.report.ignored.entry(what.to_string()).or_insert(0) += 1;
    }
}

/// Ingests `inputs` into `writer`.
pub fn ingest(
    inputs: &[PathBuf],
    opts: &IngestOptions,
    writer: &mut CorpusWriter,
) -> Result<IngestReport, CorpusError> {
    let mut report = IngestReport::default();
    let files = expand_inputs(inputs, opts.format, &mut report)?;
    // The format's dialect when all files agree on one, generic otherwise.
    let dialects: HashSet<&str> = files.iter().map(|f| f.2.dialect()).collect();
    let dialect = opts.dialect.clone().unwrap_or_else(|| match dialects.iter().next() {
        Some(d) if dialects.len() == 1 => d.to_string(),
        _ => "generic".into(),
    });
    writer.set_dialect(&dialect);
    report.dialect = dialect.clone();
    let mut shared = Shared {
        writer,
        report: &mut report,
        fingerprints: Fingerprinter::new(&dialect),
        ids: IdAssigner::default(),
        templates: HashSet::new(),
        skipped_out: None,
        tags: opts.tags.clone(),
    };
    for (path, rel, format) in files {
        shared.report.files += 1;
        *shared.report.formats.entry(format.name().to_string()).or_insert(0) += 1;
        let mut sink = FileSink {
            shared: &mut shared,
            file: path.display().to_string(),
            rel,
            by_position: format.is_log(),
            ordinal: 0,
        };
        let result = match format {
            IngestFormat::Sql | IngestFormat::Auto => ingest_sql(&path, opts.split, &mut sink),
            IngestFormat::Jsonl => ingest_jsonl(&path, &mut sink),
            log => {
                let (reader, _) = input::open(&path)?;
                match log {
                    IngestFormat::PgCsvlog => logs::pg::read_csvlog(reader, &mut sink),
                    IngestFormat::PgJsonlog => logs::pg::read_jsonlog(reader, &mut sink),
                    IngestFormat::MysqlSlow => logs::mysql::read_slow(reader, &mut sink),
                    IngestFormat::MysqlGeneral => logs::mysql::read_general(reader, &mut sink),
                    IngestFormat::TrinoEvents => logs::events::read_trino(reader, &mut sink),
                    _ => logs::events::read_spark(reader, &mut sink),
                }
            }
        };
        match result {
            Ok(()) => {}
            Err(LogError::Sink(e)) => return Err(e),
            Err(LogError::Read { line, error }) => {
                sink.skip(line, format!("unreadable from here on: {error}"));
            }
        }
    }
    shared.report.templates = shared.templates.len() as u64;
    if let Some(mut out) = shared.skipped_out.take() {
        let p = shared.writer.dir().join("skipped.jsonl");
        out.flush().map_err(|e| CorpusError::io(&p, e))?;
    }
    Ok(report)
}

/// Reads a file as UTF-8, naming the byte offset and line of the first bad byte.
pub fn read_utf8(path: &Path) -> Result<String, CorpusError> {
    let bytes = fs::read(path).map_err(|e| CorpusError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        CorpusError::NotUtf8 {
            path: path.to_path_buf(),
            offset,
            line,
        }
    })
}

/// How much of a `.sql` script is read at a time.
const SQL_BLOCK: usize = 1 << 20;

/// A `.sql` script, streamed: split into statements block by block, so memory is
/// bounded by the longest statement, not the script. Statements holding bytes that
/// are not UTF-8 are skipped (the rest of the file is not).
fn ingest_sql(path: &Path, split: SplitOptions, sink: &mut FileSink<'_, '_>) -> Result<(), LogError> {
    let (reader, _) = input::open(path)?;
    stream_sql(reader, split, SQL_BLOCK, sink)
}

/// The statements of `reader`, `block` bytes at a time. What follows the last
/// top-level `;` read so far is kept and scanned again with more input; to keep
/// that linear, the tail is only rescanned once at least as many new bytes arrived.
fn stream_sql(mut reader: impl Read, split: SplitOptions, block: usize, sink: &mut dyn Sink) -> Result<(), LogError> {
    let mut buf: Vec<u8> = Vec::new();
    // Line number of buf[0].
    let mut line = 1u64;
    let mut eof = false;
    while !eof {
        // At least as many new bytes as the tail already holds (and a block).
        let need = buf.len().max(block) as u64;
        let got = (&mut reader)
            .take(need)
            .read_to_end(&mut buf)
            .map_err(logs::read_err(line))?;
        eof = (got as u64) < need;
        let (frags, last_end) = crate::split::scan(&buf, split);
        let done = if eof { buf.len() } else { last_end };
        let mut pos = 0usize;
        for (start, end) in frags {
            if end > done {
                break;
            }
            let frag = std::str::from_utf8(&buf[start..end]);
            let lead = match frag {
                Ok(text) => text.len() - text.trim_start().len(),
                Err(_) => buf[start..end].iter().take_while(|b| b.is_ascii_whitespace()).count(),
            };
            line += crate::split::newlines(&buf[pos..start + lead]);
            pos = start + lead;
            match frag.map(str::trim) {
                Ok("") => {}
                Ok(text) => sink.statement(Captured {
                    sql: text.to_string(),
                    line,
                    ..Captured::default()
                })?,
                Err(_) => sink.skip(line, "not UTF-8: the statement holds bytes that are not UTF-8".into()),
            }
        }
        line += crate::split::newlines(&buf[pos..done]);
        buf.drain(..done);
    }
    Ok(())
}

/// A JSON Lines input record: a full [`QueryRecord`], or the common shapes of
/// query exports (`query`/`statement` for the SQL, `timestamp` for the time).
#[derive(Deserialize)]
struct LooseRecord {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, alias = "query", alias = "statement", alias = "query_text")]
    sql: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default, alias = "db", alias = "schema")]
    database: Option<String>,
    #[serde(default, alias = "timestamp", alias = "time")]
    captured_at: Option<String>,
    #[serde(default)]
    duration_ms: Option<f64>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    query_id: Option<String>,
    #[serde(default)]
    attrs: BTreeMap<String, String>,
}

fn ingest_jsonl(path: &Path, sink: &mut FileSink<'_, '_>) -> Result<(), LogError> {
    let (reader, _) = input::open(path)?;
    logs::json_lines::<LooseRecord, _>(reader, sink, |lineno, loose, sink| {
        let Some(sql) = loose.sql.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
            sink.skip(
                lineno,
                "no SQL: expected a non-empty `sql` (or `query`, `statement`) field".into(),
            );
            return Ok(());
        };
        sink.statement(Captured {
            sql,
            line: lineno,
            user: loose.user,
            database: loose.database,
            session: loose.session,
            captured_at: loose.captured_at,
            duration_ms: loose.duration_ms,
            query_id: loose.query_id,
            attrs: loose.attrs,
            id: loose.id,
            tenant: loose.tenant,
            tags: loose.tags,
        })?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{Corpus, CorpusManifest};
    use crate::split::split_statements;

    fn run(files: &[(&str, &[u8])]) -> (Result<IngestReport, CorpusError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let inp = dir.path().join("in");
        fs::create_dir(&inp).unwrap();
        for (name, body) in files {
            fs::write(inp.join(name), body).unwrap();
        }
        let mut w = CorpusWriter::create(&dir.path().join("out"), CorpusManifest::new("t")).unwrap();
        let r = ingest(&[inp], &IngestOptions::default(), &mut w);
        if r.is_ok() {
            w.finish().unwrap();
        }
        (r, dir)
    }

    #[test]
    fn sql_and_jsonl_with_bad_lines() {
        let (r, dir) = run(&[
            ("a.sql", b"select 1; select 'a;b';\nselect 1;"),
            (
                "b.jsonl",
                b"{\"query\": \"select 2\", \"user\": \"ann\"}\nnot json\n\n{\"user\": \"bob\"}\n{\"sql\":\"select 3\",\"id\":\"mine\"}\n\xff\xfe\n",
            ),
        ]);
        let r = r.unwrap();
        assert_eq!(r.files, 2);
        assert_eq!(r.records_read, 8);
        assert_eq!(r.kept, 5);
        let lines: Vec<u64> = r.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![2, 4, 6]);
        assert!(r.skipped[0].file.ends_with("b.jsonl"));
        let by = r.skipped_by_reason();
        assert_eq!(by.get("malformed JSON"), Some(&1));
        let c = Corpus::open(&dir.path().join("out")).unwrap();
        let ids: Vec<&str> = c.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids[0], ids[2].trim_end_matches("-2"));
        assert!(ids[2].ends_with("-2"));
        assert_eq!(ids[4], "mine");
        assert_eq!(c.records[3].user.as_deref(), Some("ann"));
        assert_eq!(c.records[1].sql, "select 'a;b'");
        assert_eq!(c.records[2].source.as_ref().unwrap().line, 2);
    }

    #[test]
    fn non_utf8_sql_statement_is_skipped_not_the_file() {
        let (r, dir) = run(&[("bad.sql", b"select 1;\nselect '\xe9t\xe9';\nselect 3;")]);
        let r = r.unwrap();
        assert_eq!((r.records_read, r.kept, r.skipped_total), (3, 2, 1));
        assert_eq!(r.skipped[0].line, 2);
        assert!(r.skipped[0].file.ends_with("bad.sql"));
        assert!(r.skipped[0].reason.starts_with("not UTF-8"));
        let written = fs::read_to_string(dir.path().join("out/skipped.jsonl")).unwrap();
        assert!(written.contains("\"line\":2"), "{written}");
    }

    /// A sink that keeps what it is given.
    #[derive(Default)]
    struct Collect {
        kept: Vec<(u64, String)>,
        skipped: Vec<(u64, String)>,
    }

    impl Sink for Collect {
        fn statement(&mut self, c: Captured) -> Result<(), CorpusError> {
            self.kept.push((c.line, c.sql));
            Ok(())
        }
        fn skip(&mut self, line: u64, reason: String) {
            self.skipped.push((line, reason));
        }
        fn ignore(&mut self, _: &'static str) {}
    }

    proptest::proptest! {
        /// Streaming a script in blocks of any size gives exactly the statements
        /// and lines of splitting it whole: block boundaries inside strings,
        /// comments, dollar quotes, multi-byte characters and statements longer
        /// than a block change nothing.
        #[test]
        fn streamed_sql_equals_whole_split(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "select 'a;b'", "\"c;d\"", "-- x;y\n", "/* p; /* q; */ r; */", "$$ s; $$", "$t$ u;$$; $t$",
                "E'a\\';b'", "'it''s;'", ";", ";", "\n", " ", "é", "x", "select 1", "-", "/", "$", "'", "#c;\n", "\\",
            ]), 0..60),
            block in 1usize..24,
            backslash in proptest::bool::ANY,
        ) {
            let text: String = pieces.concat();
            let opts = SplitOptions { backslash_escapes: backslash };
            let whole: Vec<(u64, String)> =
                split_statements(&text, opts).into_iter().map(|s| (s.line, s.text)).collect();
            let mut got = Collect::default();
            stream_sql(text.as_bytes(), opts, block, &mut got).unwrap();
            proptest::prop_assert_eq!(got.kept, whole);
            proptest::prop_assert!(got.skipped.is_empty());
        }
    }

    #[test]
    fn streamed_sql_skips_non_utf8_statements_in_any_block() {
        let text: &[u8] = b"select 1;\n\nselect '\xe9t\xe9';\nselect 'caf\xc3\xa9';";
        for block in [1, 2, 3, 7, 1 << 20] {
            let mut got = Collect::default();
            stream_sql(text, SplitOptions::default(), block, &mut got).unwrap();
            assert_eq!(
                got.kept,
                vec![(1, "select 1".to_string()), (4, "select 'café'".to_string())]
            );
            assert_eq!(got.skipped.len(), 1);
            assert_eq!(got.skipped[0].0, 3);
        }
    }

    /// Every fixture log, plain and compressed, in one directory: formats are
    /// detected from the content and the counts are those of each parser.
    #[test]
    fn fixtures_are_detected_and_counted_plain_or_compressed() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logs");
        let dir = tempfile::tempdir().unwrap();
        let inp = dir.path().join("in");
        fs::create_dir(&inp).unwrap();
        let mut names: Vec<_> = fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for (k, p) in names.iter().enumerate() {
            let bytes = fs::read(p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // Alternate: plain, gzip, zstd.
            match k % 3 {
                0 => fs::write(inp.join(&name), &bytes).unwrap(),
                1 => {
                    use std::io::Write;
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(&bytes).unwrap();
                    fs::write(inp.join(format!("{name}.gz")), e.finish().unwrap()).unwrap();
                }
                _ => fs::write(
                    inp.join(format!("{name}.zst")),
                    zstd::encode_all(&bytes[..], 1).unwrap(),
                )
                .unwrap(),
            }
        }
        fs::write(inp.join("README.txt"), "not a log\n").unwrap();
        let mut w = CorpusWriter::create(&dir.path().join("out"), CorpusManifest::new("t")).unwrap();
        let r = ingest(&[inp], &IngestOptions::default(), &mut w).unwrap();
        w.finish().unwrap();
        let formats: Vec<(&str, u64)> = r.formats.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            formats,
            vec![
                ("mysql-general", 1),
                ("mysql-slow", 1),
                ("pg-csvlog", 1),
                ("pg-jsonlog", 1),
                ("spark-events", 1),
                ("trino-events", 1)
            ]
        );
        assert_eq!(r.unrecognized_files.len(), 1);
        // general 4 + slow 4 + csvlog 3 + jsonlog 1 + spark 3 + trino 3 kept;
        // skipped: slow 2, csvlog 2, jsonlog 1, spark 3, trino 3.
        assert_eq!((r.kept, r.skipped_total), (18, 11), "{:#?}", r.skipped);
        assert_eq!(r.records_read, 29);
        let by = r.skipped_by_reason();
        assert_eq!(by["malformed JSON"], 3);
        assert_eq!(by["slow-log entry without a statement"], 1);
        assert_eq!(by["malformed csvlog record"], 1);
        let skipped_file = fs::read_to_string(dir.path().join("out/skipped.jsonl")).unwrap();
        assert_eq!(skipped_file.lines().count(), 11);
        let c = Corpus::open(&dir.path().join("out")).unwrap();
        assert_eq!(c.records.len(), 18);
        assert_eq!(c.manifest.dialect, "generic");
    }

    #[test]
    fn ids_are_stable_across_ingests() {
        let (_, d1) = run(&[("a.sql", b"select 1; select 2; select 1")]);
        let (_, d2) = run(&[("a.sql", b"select 1; select 2; select 1")]);
        let a = Corpus::open(&d1.path().join("out")).unwrap();
        let b = Corpus::open(&d2.path().join("out")).unwrap();
        let ids = |c: &Corpus| c.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(ids(&a).len(), 3);
    }
}
