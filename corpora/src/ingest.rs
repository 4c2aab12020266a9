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
    /// `.sql` scripts, split into statements.
    Sql,
    /// JSON Lines, one statement record per line.
    Jsonl,
    /// PostgreSQL `csvlog`.
    PgCsvlog,
    /// PostgreSQL `jsonlog`.
    PgJsonlog,
    /// MySQL / MariaDB slow query log.
    MysqlSlow,
    /// MySQL / MariaDB general query log.
    MysqlGeneral,
    /// Trino query-completed events (JSON Lines).
    TrinoEvents,
    /// Spark event logs (SQL execution start events).
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
    /// The name `--format` takes.
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

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The input format (`Auto`: detected per file).
    pub format: IngestFormat,
    /// How `.sql` scripts are split into statements.
    pub split: SplitOptions,
    /// Tags added to every record.
    pub tags: Vec<String>,
    /// sqlparser dialect for fingerprints (and the manifest); None: from the format.
    pub dialect: Option<String>,
    /// Largest record read (a log line, a statement); longer ones are skipped and
    /// counted with file and line.
    pub max_record: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            format: IngestFormat::Auto,
            split: SplitOptions::default(),
            tags: Vec::new(),
            dialect: None,
            max_record: input::DEFAULT_MAX_RECORD,
        }
    }
}

/// One piece of input that was not ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedInput {
    /// The file.
    pub file: String,
    /// The 1-based line where the record starts.
    pub line: u64,
    /// Why it was skipped.
    pub reason: String,
}

/// How many skipped records the report keeps one by one (all are counted, and all
/// are written to the corpus's `skipped.jsonl`).
pub const SKIPPED_KEPT: usize = 1000;

/// What an ingest read, kept and skipped.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    /// Files read.
    pub files: u64,
    /// Files per detected format.
    pub formats: BTreeMap<String, u64>,
    /// Files in input directories whose format was not recognized (not read).
    pub unrecognized_files: Vec<String>,
    /// The dialect fingerprints were computed in.
    pub dialect: String,
    /// Statement records found: kept + skipped.
    pub records_read: u64,
    /// Records written to the corpus.
    pub kept: u64,
    /// Distinct templates among the kept records.
    pub templates: u64,
    /// Records skipped (every one, including those beyond `skipped`).
    pub skipped_total: u64,
    /// The first [`SKIPPED_KEPT`] skipped records, with file, line and reason.
    pub skipped: Vec<SkippedInput>,
    /// Skipped records by reason (the reason's text up to the first `:`).
    pub skipped_counts: BTreeMap<String, u64>,
    /// Log entries that are not statements, by kind.
    pub ignored: BTreeMap<String, u64>,
    /// Attributes that could not be read, by kind: dropped, their statements kept.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped_attributes: BTreeMap<String, u64>,
    /// The first [`SKIPPED_KEPT`] dropped attributes, with file and line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<SkippedInput>,
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
    bad: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<(PathBuf, String, IngestFormat)>, CorpusError> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = fs::metadata(input).map_err(|e| CorpusError::io(input, e))?;
        if meta.is_dir() {
            let mut stack = vec![input.clone()];
            let mut files = Vec::new();
            // Directories already walked (by identity): a symlink loop ends here.
            let mut seen = HashSet::new();
            while let Some(d) = stack.pop() {
                if let Ok(canon) = fs::canonicalize(&d)
                    && !seen.insert(canon)
                {
                    bad.push((d, "directory already read (a symbolic link loop)".into()));
                    continue;
                }
                let entries = match fs::read_dir(&d) {
                    Ok(e) => e,
                    Err(e) => {
                        bad.push((d, format!("unreadable directory: {e}")));
                        continue;
                    }
                };
                for entry in entries {
                    match entry {
                        Ok(entry) => {
                            let p = entry.path();
                            match fs::metadata(&p) {
                                Ok(m) if m.is_dir() => stack.push(p),
                                Ok(_) => files.push(p),
                                Err(e) => bad.push((p, format!("unreadable file: {e}"))),
                            }
                        }
                        Err(e) => bad.push((d.clone(), format!("unreadable directory entry: {e}"))),
                    }
                }
            }
            files.sort();
            for p in files {
                let rel = p.strip_prefix(input).unwrap_or(&p).display().to_string();
                match detect(&p, format) {
                    Ok(Some(f)) => out.push((p, rel, f)),
                    Ok(None) => report.unrecognized_files.push(p.display().to_string()),
                    Err(e) => bad.push((p, format!("unreadable file: {e}"))),
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

    fn dropped_attribute(&mut self, line: u64, what: &'static str) {
        let r = &mut *self.shared.report;
        *r.dropped_attributes.entry(what.to_string()).or_insert(0) += 1;
        if r.dropped.len() < SKIPPED_KEPT {
            r.dropped.push(SkippedInput {
                file: self.file.clone(),
                line,
                reason: what.to_string(),
            });
        }
    }
}

/// Ingests `inputs` into `writer`.
pub fn ingest(
    inputs: &[PathBuf],
    opts: &IngestOptions,
    writer: &mut CorpusWriter,
) -> Result<IngestReport, CorpusError> {
    let _limit = input::limit_records(opts.max_record);
    let mut report = IngestReport::default();
    let mut bad = Vec::new();
    let files = expand_inputs(inputs, opts.format, &mut report, &mut bad)?;
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
    // Files of input directories that cannot be read: each skipped and counted,
    // the rest of the directory is ingested.
    for (path, reason) in bad {
        let mut sink = FileSink {
            shared: &mut shared,
            file: path.display().to_string(),
            rel: String::new(),
            by_position: false,
            ordinal: 0,
        };
        sink.skip(0, reason);
    }
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
                let reader = match input::open(&path) {
                    Ok((r, _)) => r,
                    Err(e) => {
                        sink.skip(0, format!("unreadable file: {e}"));
                        continue;
                    }
                };
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
    let reader = match input::open(path) {
        Ok((r, _)) => r,
        Err(e) => {
            sink.skip(0, format!("unreadable file: {e}"));
            return Ok(());
        }
    };
    stream_sql(reader, split, SQL_BLOCK, sink)
}

/// The statements of `reader`, `block` bytes at a time. What follows the last
/// top-level `;` read so far is kept and scanned again with more input; to keep
/// that linear, the tail is only rescanned once at least as many new bytes arrived.
fn stream_sql(mut reader: impl Read, split: SplitOptions, block: usize, sink: &mut dyn Sink) -> Result<(), LogError> {
    let max = input::max_record();
    let mut failed: Option<std::io::Error> = None;
    let mut buf: Vec<u8> = Vec::new();
    // Line number of buf[0].
    let mut line = 1u64;
    let mut eof = false;
    while !eof {
        if buf.len() > max {
            // The statement in `buf` is over the limit: skip it, and everything up to
            // the next `;` (found without the scanner's quoting rules: a best effort
            // to find the next statement, in memory independent of the input).
            let start = line
                + buf
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .filter(|&&b| b == b'\n')
                    .count() as u64;
            let mut len = buf.len() as u64;
            loop {
                if let Some(p) = memchr::memchr(b';', &buf) {
                    line += crate::split::newlines(&buf[..=p]);
                    len -= (buf.len() - p - 1) as u64;
                    buf.drain(..=p);
                    break;
                }
                line += crate::split::newlines(&buf);
                buf.clear();
                let got = (&mut reader)
                    .take(block as u64)
                    .read_to_end(&mut buf)
                    .map_err(logs::read_err(line))?;
                len += got as u64;
                if got == 0 {
                    eof = true;
                    break;
                }
            }
            sink.skip(start, logs::oversized(len));
            if eof {
                break;
            }
        }
        // At least as many new bytes as the tail already holds (and a block).
        let need = buf.len().max(block) as u64;
        let before = buf.len();
        let got = match (&mut reader).take(need).read_to_end(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                // A truncated or corrupt stream: what arrived before the damage is
                // split and kept, then the rest of the file is reported unreadable.
                failed = Some(e);
                buf.len() - before
            }
        };
        eof = failed.is_some() || (got as u64) < need;
        let (frags, last_end, open_comment) = crate::split::scan(&buf, split);
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
            if end - start > max {
                sink.skip(line, logs::oversized((end - start) as u64));
                continue;
            }
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
        if eof && let Some(at) = open_comment {
            let at_line = line + crate::split::newlines(&buf[pos.min(at)..at]);
            sink.skip(
                at_line,
                format!(
                    "unterminated block comment: the script ends inside the `/*` opened here, so its last {} bytes \
                     were read as a comment, not as statements; close the comment with `*/`",
                    buf.len() - at
                ),
            );
        }
        line += crate::split::newlines(&buf[pos..done]);
        buf.drain(..done);
    }
    match failed {
        Some(error) => Err(LogError::Read { line, error }),
        None => Ok(()),
    }
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
    let reader = match input::open(path) {
        Ok((r, _)) => r,
        Err(e) => {
            sink.skip(0, format!("unreadable file: {e}"));
            return Ok(());
        }
    };
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
        // general 4 + slow 5 + csvlog 3 + jsonlog 1 + spark 3 + trino 3 kept;
        // skipped: slow 1, csvlog 2, jsonlog 1, spark 3, trino 3.
        assert_eq!((r.kept, r.skipped_total), (19, 10), "{:#?}", r.skipped);
        assert_eq!(r.dropped_attributes.values().sum::<u64>(), 1);
        assert_eq!(r.records_read, 29);
        let by = r.skipped_by_reason();
        assert_eq!(by["malformed JSON"], 3);
        assert_eq!(by["slow-log entry without a statement"], 1);
        assert_eq!(by["malformed csvlog record"], 1);
        let skipped_file = fs::read_to_string(dir.path().join("out/skipped.jsonl")).unwrap();
        assert_eq!(skipped_file.lines().count(), 10);
        let c = Corpus::open(&dir.path().join("out")).unwrap();
        assert_eq!(c.records.len(), 19);
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

/// Issue 20, reproductions 2 and 6: hostile and unlucky input degrades, never
/// aborts an ingest or grows memory with the content.
#[cfg(test)]
mod hostile {
    use std::io::Write;

    use super::*;
    use crate::corpus::{Corpus, CorpusManifest};

    fn ingest_dir(inputs: &[PathBuf], opts: &IngestOptions) -> (IngestReport, Corpus, tempfile::TempDir) {
        let out = tempfile::tempdir().unwrap();
        let mut w = CorpusWriter::create(&out.path().join("c"), CorpusManifest::new("c")).unwrap();
        let r = ingest(inputs, opts, &mut w).unwrap();
        w.finish().unwrap();
        let c = Corpus::open(&out.path().join("c")).unwrap();
        (r, c, out)
    }

    #[cfg(unix)]
    #[test]
    fn bad_files_in_a_directory_are_skipped_not_the_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("good.sql"), "select 1;\nselect 2;\n").unwrap();
        std::os::unix::fs::symlink(d.join("nowhere.sql"), d.join("dangling.sql")).unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink(d, d.join("sub/loop")).unwrap();
        // A gzip cut in the middle of its first block.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..20_000 {
            writeln!(gz, "select {i} from t where x = 'some text {i}';").unwrap();
        }
        let gz = gz.finish().unwrap();
        fs::write(d.join("cut.sql.gz"), &gz[..gz.len() / 3]).unwrap();
        let (r, c, _out) = ingest_dir(&[d.to_path_buf()], &IngestOptions::default());
        assert!(c.records.iter().any(|q| q.sql == "select 1"), "the good file is read");
        let reasons: Vec<String> = r.skipped.iter().map(|s| format!("{}: {}", s.file, s.reason)).collect();
        assert!(
            reasons.iter().any(|s| s.contains("dangling.sql: unreadable file")),
            "{reasons:#?}"
        );
        assert!(reasons.iter().any(|s| s.contains("symbolic link loop")), "{reasons:#?}");
        assert!(reasons.iter().any(|s| s.contains("cut.sql.gz")), "{reasons:#?}");
        // What the truncated gzip held before the cut is kept.
        assert!(
            c.records.iter().any(|q| q.sql.starts_with("select 0 from t")),
            "{}",
            c.records.len()
        );
        assert!(c.records.len() > 2, "statements before the cut are kept");
    }

    #[test]
    fn an_unterminated_comment_at_the_end_of_a_script_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.sql");
        fs::write(
            &f,
            "select 1;\nselect 2;\n/* the rest is commented out\nselect 3;\nselect 4;\n",
        )
        .unwrap();
        let (r, c, _out) = ingest_dir(&[f], &IngestOptions::default());
        assert_eq!(c.records.len(), 2);
        assert_eq!(r.skipped.len(), 1, "{:#?}", r.skipped);
        assert_eq!(r.skipped[0].line, 3);
        assert!(
            r.skipped[0].reason.starts_with("unterminated block comment"),
            "{:?}",
            r.skipped[0]
        );
    }

    #[test]
    fn records_over_the_size_limit_are_skipped_with_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let max = 64 << 10;
        let opts = IngestOptions {
            max_record: max,
            ..IngestOptions::default()
        };
        // A script: a huge statement between two small ones; NUL bytes; a gzip bomb.
        let script = dir.path().join("s.sql");
        let mut text = String::from("select 1;\nselect '");
        text.push_str(&"x".repeat(3 * max));
        text.push_str("';\nselect 2;\n");
        fs::write(&script, text).unwrap();
        let nuls = dir.path().join("nuls.sql");
        fs::write(&nuls, vec![0u8; 10 * max]).unwrap();
        let bomb = dir.path().join("bomb.sql.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..64 {
            gz.write_all(&vec![0u8; 1 << 20]).unwrap();
        }
        fs::write(&bomb, gz.finish().unwrap()).unwrap();
        let (r, c, _out) = ingest_dir(&[script, nuls, bomb], &opts);
        let sql: Vec<&str> = c.records.iter().map(|q| &q.sql[..q.sql.len().min(40)]).collect();
        assert!(sql.contains(&"select 1") && sql.contains(&"select 2"), "{sql:?}");
        assert_eq!(c.records.len(), 2, "{sql:?}");
        let too_large: Vec<&SkippedInput> = r
            .skipped
            .iter()
            .filter(|s| s.reason.starts_with("record too large"))
            .collect();
        assert_eq!(too_large.len(), 3, "{:#?}", r.skipped);
        assert_eq!((too_large[0].line, too_large[1].line, too_large[2].line), (2, 1, 1));
        // Log formats: a line over the limit costs that record only.
        let slow = dir.path().join("slow.log");
        let mut log = String::from("# User@Host: a[a] @ h []\n# Query_time: 1\nselect 'ok';\n");
        log.push_str("# User@Host: a[a] @ h []\n# Query_time: 1\nselect '");
        log.push_str(&"y".repeat(2 * max));
        log.push_str("';\n# User@Host: a[a] @ h []\n# Query_time: 1\nselect 'also ok';\n");
        fs::write(&slow, log).unwrap();
        let (r, c, _out) = ingest_dir(
            &[slow],
            &IngestOptions {
                format: IngestFormat::MysqlSlow,
                ..opts
            },
        );
        assert_eq!(c.records.len(), 2, "{:#?}", r.skipped);
        assert_eq!(r.skipped.len(), 1);
        assert!(
            r.skipped[0].reason.starts_with("record too large"),
            "{:?}",
            r.skipped[0]
        );
    }

    proptest::proptest! {
        // `PROPTEST_CASES` runs it longer (scripts/fuzz.sh).
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..Default::default()
    })]
        /// The `.sql` splitter and every log parser take any bytes: no panic, and
        /// every record they find is kept or skipped, never lost silently.
        #[test]
        fn any_bytes_in_any_format_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096), f in 0usize..8) {
            let format = [
                IngestFormat::Sql, IngestFormat::Jsonl, IngestFormat::PgCsvlog, IngestFormat::PgJsonlog,
                IngestFormat::MysqlSlow, IngestFormat::MysqlGeneral, IngestFormat::TrinoEvents, IngestFormat::SparkEvents,
            ][f];
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("input");
            fs::write(&p, &bytes).unwrap();
            let out = dir.path().join("c");
            let mut w = CorpusWriter::create(&out, CorpusManifest::new("c")).unwrap();
            let r = ingest(&[p], &IngestOptions { format, max_record: 1024, ..IngestOptions::default() }, &mut w).unwrap();
            w.finish().unwrap();
            proptest::prop_assert_eq!(r.records_read, r.kept + r.skipped_total);
        }

        /// Structure-aware: real log records with bytes flipped, cut or repeated.
        #[test]
        fn mutated_real_logs_never_panic(seed_file in 0usize..5, ops in proptest::collection::vec((0usize..100_000, proptest::prelude::any::<u8>(), 0u8..3), 1..16)) {
            let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logs");
            let (name, format) = [
                ("mariadb-slow.log", IngestFormat::MysqlSlow),
                ("mariadb-general.log", IngestFormat::MysqlGeneral),
                ("postgresql-15.csv", IngestFormat::PgCsvlog),
                ("postgresql-15.json", IngestFormat::PgJsonlog),
                ("trino-events.jsonl", IngestFormat::TrinoEvents),
            ][seed_file];
            let mut bytes = fs::read(fixtures.join(name)).unwrap();
            for (at, b, op) in ops {
                if bytes.is_empty() { break; }
                let at = at % bytes.len();
                match op {
                    0 => bytes[at] = b,
                    1 => bytes.truncate(at),
                    _ => { let tail = bytes[at..].to_vec(); bytes.extend_from_slice(&tail[..tail.len().min(512)]); }
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("input");
            fs::write(&p, &bytes).unwrap();
            let out = dir.path().join("c");
            let mut w = CorpusWriter::create(&out, CorpusManifest::new("c")).unwrap();
            let r = ingest(&[p], &IngestOptions { format, ..IngestOptions::default() }, &mut w).unwrap();
            w.finish().unwrap();
            proptest::prop_assert_eq!(r.records_read, r.kept + r.skipped_total);
        }
    }
}
