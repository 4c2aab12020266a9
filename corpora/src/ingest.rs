//! Building corpora from input files: `.sql` scripts and JSON Lines.
//!
//! Ingest streams: records go to a [`CorpusWriter`] as they are read. A record that
//! cannot be used is counted in the [`IngestReport`] with file, line and reason,
//! and skipped; the rest of the input is still ingested.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::corpus::{CorpusError, CorpusWriter};
use crate::record::{QueryRecord, Source};
use crate::split::{SplitOptions, split_statements};

/// Input formats of `corpus ingest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IngestFormat {
    /// Choose by file extension (`.sql`; `.jsonl`, `.ndjson`, `.json`).
    Auto,
    Sql,
    Jsonl,
}

impl std::str::FromStr for IngestFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(IngestFormat::Auto),
            "sql" => Ok(IngestFormat::Sql),
            "jsonl" => Ok(IngestFormat::Jsonl),
            other => Err(format!(
                "unknown input format `{other}`; expected one of: auto, sql, jsonl"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub format: IngestFormat,
    pub split: SplitOptions,
    /// Tags added to every record.
    pub tags: Vec<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            format: IngestFormat::Auto,
            split: SplitOptions::default(),
            tags: Vec::new(),
        }
    }
}

/// One piece of input that was not ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedInput {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

/// What an ingest read, kept and skipped.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    pub files: u64,
    pub records_read: u64,
    pub kept: u64,
    /// Every skipped record, with file, line and reason.
    pub skipped: Vec<SkippedInput>,
}

impl IngestReport {
    /// Skipped counts by reason (the reason's text up to the first `:`).
    pub fn skipped_by_reason(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for s in &self.skipped {
            let key = s.reason.split(':').next().unwrap_or(&s.reason).to_string();
            *m.entry(key).or_insert(0) += 1;
        }
        m
    }
}

/// Lists the files under the inputs (directories recursively, sorted), keeping
/// those whose format can be chosen.
fn expand_inputs(inputs: &[PathBuf], format: IngestFormat) -> Result<Vec<(PathBuf, IngestFormat)>, CorpusError> {
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
                    } else if let Some(f) = detect(&p, format) {
                        files.push((p, f));
                    }
                }
            }
            files.sort();
            out.extend(files);
        } else {
            let f = detect(input, format).ok_or_else(|| CorpusError::Invalid {
                path: input.clone(),
                message: "cannot tell the input format from the file extension; pass --format sql or --format jsonl"
                    .into(),
            })?;
            out.push((input.clone(), f));
        }
    }
    Ok(out)
}

fn detect(p: &Path, format: IngestFormat) -> Option<IngestFormat> {
    match format {
        IngestFormat::Auto => match p.extension()?.to_str()? {
            "sql" => Some(IngestFormat::Sql),
            "jsonl" | "ndjson" | "json" => Some(IngestFormat::Jsonl),
            _ => None,
        },
        f => Some(f),
    }
}

/// Gives each record a stable id derived from its text: the same input ingested
/// again gets the same ids; repeated statements get `-2`, `-3`, ... in input order.
#[derive(Default)]
struct IdAssigner {
    seen: HashMap<String, u32>,
}

impl IdAssigner {
    fn id_for(&mut self, sql: &str) -> String {
        let base = format!("q-{}", &blake3::hash(sql.as_bytes()).to_hex()[..12]);
        self.unique(base)
    }
    fn unique(&mut self, base: String) -> String {
        let n = self.seen.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 { base } else { format!("{base}-{n}") }
    }
}

/// Ingests `inputs` into `writer`.
pub fn ingest(
    inputs: &[PathBuf],
    opts: &IngestOptions,
    writer: &mut CorpusWriter,
) -> Result<IngestReport, CorpusError> {
    let files = expand_inputs(inputs, opts.format)?;
    let mut report = IngestReport::default();
    let mut ids = IdAssigner::default();
    for (path, format) in files {
        report.files += 1;
        match format {
            IngestFormat::Sql | IngestFormat::Auto => ingest_sql(&path, opts, &mut ids, writer, &mut report)?,
            IngestFormat::Jsonl => ingest_jsonl(&path, opts, &mut ids, writer, &mut report)?,
        }
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

fn ingest_sql(
    path: &Path,
    opts: &IngestOptions,
    ids: &mut IdAssigner,
    writer: &mut CorpusWriter,
    report: &mut IngestReport,
) -> Result<(), CorpusError> {
    let text = read_utf8(path)?;
    let file = path.display().to_string();
    for st in split_statements(&text, opts.split) {
        report.records_read += 1;
        let mut rec = QueryRecord::new(ids.id_for(&st.text), st.text);
        rec.source = Some(Source {
            file: file.clone(),
            line: st.line,
        });
        rec.tags = opts.tags.clone();
        writer.write(&rec)?;
        report.kept += 1;
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
}

fn ingest_jsonl(
    path: &Path,
    opts: &IngestOptions,
    ids: &mut IdAssigner,
    writer: &mut CorpusWriter,
    report: &mut IngestReport,
) -> Result<(), CorpusError> {
    let f = fs::File::open(path).map_err(|e| CorpusError::io(path, e))?;
    let mut reader = BufReader::new(f);
    let file = path.display().to_string();
    let mut buf = Vec::new();
    let mut lineno = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| CorpusError::io(path, e))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let skip = |report: &mut IngestReport, reason: String| {
            report.skipped.push(SkippedInput {
                file: file.clone(),
                line: lineno,
                reason,
            })
        };
        let line = match std::str::from_utf8(&buf) {
            Ok(s) => s.trim(),
            Err(e) => {
                report.records_read += 1;
                skip(
                    report,
                    format!("not UTF-8: invalid byte at column {}", e.valid_up_to() + 1),
                );
                continue;
            }
        };
        if line.is_empty() {
            continue;
        }
        report.records_read += 1;
        let loose: LooseRecord = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                skip(report, format!("malformed JSON: {e}"));
                continue;
            }
        };
        let Some(sql) = loose.sql.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
            skip(
                report,
                "no SQL: expected a non-empty `sql` (or `query`, `statement`) field".into(),
            );
            continue;
        };
        let id = match loose.id {
            Some(id) => ids.unique(id),
            None => ids.id_for(&sql),
        };
        let mut rec = QueryRecord::new(id, sql);
        rec.source = Some(Source {
            file: file.clone(),
            line: lineno,
        });
        rec.user = loose.user;
        rec.tenant = loose.tenant;
        rec.database = loose.database;
        rec.captured_at = loose.captured_at;
        rec.duration_ms = loose.duration_ms;
        rec.tags = loose.tags;
        rec.tags.extend(opts.tags.iter().cloned());
        writer.write(&rec)?;
        report.kept += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{Corpus, CorpusManifest};

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
    fn non_utf8_sql_names_file_and_offset() {
        let (r, _d) = run(&[("bad.sql", b"select 1;\nselect '\xe9t\xe9';")]);
        let err = r.unwrap_err().to_string();
        assert!(err.contains("bad.sql"), "{err}");
        assert!(err.contains("byte offset 18"), "{err}");
        assert!(err.contains("line 2"), "{err}");
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
