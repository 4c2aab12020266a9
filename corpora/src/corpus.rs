//! The corpus format: a directory with `manifest.json` and `queries.jsonl` (one
//! [`QueryRecord`] per line), and optionally the schema DDL the queries need.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::QueryRecord;

/// The only format name a manifest may carry.
pub const FORMAT: &str = "sqlflight-corpus";
/// The manifest version this build writes and reads.
pub const VERSION: u32 = 1;

/// Errors reading or writing corpora.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The directory has no `manifest.json`.
    #[error("{path}: not a corpus directory (no manifest.json); build one with `sqlflight corpus ingest`")]
    NotACorpus {
        /// The directory.
        path: PathBuf,
    },
    /// A manifest or record is not valid JSON for its type.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The corpus is not usable as it is (e.g. a new corpus over an old one).
    #[error("{path}: {message}")]
    Invalid {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Input that is not UTF-8.
    #[error(
        "{path}: not valid UTF-8 at byte offset {offset} (line {line}); re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`"
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first bad byte.
        offset: usize,
        /// Its 1-based line.
        line: usize,
    },
    /// Generating data (TPC-H, TPC-DS) failed.
    #[error("{path}: {message}")]
    Generate {
        /// Where the data was being written.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl CorpusError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        CorpusError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `manifest.json` of a corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusManifest {
    /// Always `sqlflight-corpus`.
    pub format: String,
    /// The corpus format's version.
    pub version: u32,
    /// The corpus's name.
    pub name: String,
    /// What it holds, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// File holding the records, relative to the corpus directory.
    #[serde(default = "default_queries")]
    pub queries: String,
    /// Schema DDL file, relative to the corpus directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The SQL dialect its statements are parsed in.
    #[serde(default = "default_dialect")]
    pub dialect: String,
    /// Number of records, written by [`CorpusWriter`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// When it was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

fn default_queries() -> String {
    "queries.jsonl".into()
}
fn default_dialect() -> String {
    "generic".into()
}

impl CorpusManifest {
    /// A manifest for a new corpus named `name` (dialect `generic`, created now).
    pub fn new(name: impl Into<String>) -> Self {
        CorpusManifest {
            format: FORMAT.into(),
            version: VERSION,
            name: name.into(),
            description: None,
            queries: default_queries(),
            schema: None,
            dialect: default_dialect(),
            count: None,
            created_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
    }
}

/// A corpus in memory: its manifest, records, schema text and content hash.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Its manifest.
    pub manifest: CorpusManifest,
    /// Its records, in file order.
    pub records: Vec<QueryRecord>,
    /// Schema DDL text, if the corpus carries one.
    pub schema: Option<String>,
    /// Where it was read from (None for bundled or in-memory corpora).
    pub dir: Option<PathBuf>,
    /// BLAKE3 of the records (and schema), hex: identifies the corpus in run manifests.
    pub hash: String,
}

impl Corpus {
    /// Builds a corpus from records in memory.
    pub fn from_records(manifest: CorpusManifest, records: Vec<QueryRecord>, schema: Option<String>) -> Self {
        let mut hasher = blake3::Hasher::new();
        for r in &records {
            // serde_json of a record cannot fail: only strings, numbers and vectors.
            let line = serde_json::to_string(r).unwrap_or_default();
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        if let Some(s) = &schema {
            hasher.update(b"\0schema\0");
            hasher.update(s.as_bytes());
        }
        let hash = hasher.finalize().to_hex().to_string();
        Corpus {
            manifest,
            records,
            schema,
            dir: None,
            hash,
        }
    }

    /// Reads and checks a corpus directory's manifest.
    pub fn read_manifest(dir: &Path) -> Result<CorpusManifest, CorpusError> {
        let mpath = dir.join("manifest.json");
        if !mpath.is_file() {
            return Err(CorpusError::NotACorpus {
                path: dir.to_path_buf(),
            });
        }
        let text = fs::read_to_string(&mpath).map_err(|e| CorpusError::io(&mpath, e))?;
        let manifest: CorpusManifest = serde_json::from_str(&text).map_err(|e| CorpusError::Json {
            path: mpath.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if manifest.format != FORMAT || manifest.version > VERSION {
            return Err(CorpusError::Invalid {
                path: mpath,
                message: format!(
                    "format `{}` version {} is not `{FORMAT}` version <= {VERSION}; was it written by a newer sqlflight?",
                    manifest.format, manifest.version
                ),
            });
        }
        Ok(manifest)
    }

    /// Streams a corpus's records one at a time (memory independent of its size):
    /// what `corpus stats`, `sample` and `mask` use.
    pub fn stream(dir: &Path) -> Result<(CorpusManifest, RecordStream), CorpusError> {
        let manifest = Corpus::read_manifest(dir)?;
        let path = dir.join(&manifest.queries);
        let file = File::open(&path).map_err(|e| CorpusError::io(&path, e))?;
        let stream = RecordStream {
            lines: BufReader::with_capacity(256 * 1024, file).lines(),
            path,
            line: 0,
        };
        Ok((manifest, stream))
    }

    /// Reads a corpus directory. A record line that is not valid is an error naming
    /// file, line and column: a corpus is sqlflight's own format, so damage is not
    /// skipped silently.
    pub fn open(dir: &Path) -> Result<Corpus, CorpusError> {
        let (manifest, stream) = Corpus::stream(dir)?;
        let qpath = stream.path.clone();
        let mut records = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for rec in stream {
            let (line, rec) = rec?;
            if !seen.insert(rec.id.clone()) {
                return Err(CorpusError::Invalid {
                    path: qpath,
                    message: format!("line {line}: duplicate query id `{}`", rec.id),
                });
            }
            records.push(rec);
        }
        let schema = match &manifest.schema {
            Some(s) => {
                let p = dir.join(s);
                Some(fs::read_to_string(&p).map_err(|e| CorpusError::io(&p, e))?)
            }
            None => None,
        };
        let mut c = Corpus::from_records(manifest, records, schema);
        c.dir = Some(dir.to_path_buf());
        Ok(c)
    }

    /// Path of the schema file, for corpora read from disk.
    pub fn schema_path(&self) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(self.manifest.schema.as_ref()?))
    }

    /// Writes this corpus to `dir` (which must not already hold a corpus).
    pub fn write_to(&self, dir: &Path) -> Result<(), CorpusError> {
        let mut w = CorpusWriter::create(dir, self.manifest.clone())?;
        if let Some(s) = &self.schema {
            w.set_schema(s)?;
        }
        for r in &self.records {
            w.write(r)?;
        }
        w.finish()?;
        Ok(())
    }
}

/// The records of a corpus, read one line at a time, with their line numbers.
pub struct RecordStream {
    lines: std::io::Lines<BufReader<File>>,
    path: PathBuf,
    line: usize,
}

impl Iterator for RecordStream {
    type Item = Result<(usize, QueryRecord), CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(l) => l,
                Err(e) => return Some(Err(CorpusError::io(&self.path, e))),
            };
            self.line += 1;
            if line.trim().is_empty() {
                continue;
            }
            return Some(match serde_json::from_str::<QueryRecord>(&line) {
                Ok(mut rec) => {
                    if rec.template_id.is_none() {
                        rec.template_id = Some(rec.template());
                    }
                    Ok((self.line, rec))
                }
                Err(e) => Err(CorpusError::Json {
                    path: self.path.clone(),
                    line: self.line,
                    column: e.column(),
                    message: e.to_string(),
                }),
            });
        }
    }
}

/// Streams records into a new corpus directory; [`CorpusWriter::finish`] writes
/// the manifest last, so a directory with a manifest is always complete.
pub struct CorpusWriter {
    dir: PathBuf,
    manifest: CorpusManifest,
    out: BufWriter<File>,
    count: u64,
}

impl CorpusWriter {
    /// Starts a corpus at `dir` (refused when one is already there).
    pub fn create(dir: &Path, mut manifest: CorpusManifest) -> Result<Self, CorpusError> {
        if dir.join("manifest.json").exists() || dir.join(&manifest.queries).exists() {
            return Err(CorpusError::Invalid {
                path: dir.to_path_buf(),
                message: "already holds a corpus; remove it or choose another --out".into(),
            });
        }
        fs::create_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
        manifest.queries = default_queries();
        let qpath = dir.join(&manifest.queries);
        let out = BufWriter::new(File::create(&qpath).map_err(|e| CorpusError::io(&qpath, e))?);
        Ok(CorpusWriter {
            dir: dir.to_path_buf(),
            manifest,
            out,
            count: 0,
        })
    }

    /// Writes the schema DDL beside the records (`schema.sql`).
    pub fn set_schema(&mut self, ddl: &str) -> Result<(), CorpusError> {
        let p = self.dir.join("schema.sql");
        fs::write(&p, ddl).map_err(|e| CorpusError::io(&p, e))?;
        self.manifest.schema = Some("schema.sql".into());
        Ok(())
    }

    /// Appends one record.
    pub fn write(&mut self, rec: &QueryRecord) -> Result<(), CorpusError> {
        let qpath = self.dir.join(&self.manifest.queries);
        serde_json::to_writer(&mut self.out, rec).map_err(|e| CorpusError::io(&qpath, e.into()))?;
        self.out.write_all(b"\n").map_err(|e| CorpusError::io(&qpath, e))?;
        self.count += 1;
        Ok(())
    }

    /// The corpus directory being written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets the dialect the manifest records (statements are parsed in it).
    pub fn set_dialect(&mut self, dialect: &str) {
        self.manifest.dialect = dialect.to_string();
    }

    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes the records and writes the manifest (with the count) last, so a
    /// corpus with a manifest is complete; returns the directory.
    pub fn finish(mut self) -> Result<PathBuf, CorpusError> {
        let qpath = self.dir.join(&self.manifest.queries);
        self.out.flush().map_err(|e| CorpusError::io(&qpath, e))?;
        self.manifest.count = Some(self.count);
        let mpath = self.dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&self.manifest).map_err(|e| CorpusError::io(&mpath, e.into()))?;
        fs::write(&mpath, text + "\n").map_err(|e| CorpusError::io(&mpath, e))?;
        Ok(self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_open_roundtrips() {
        let dir = tempfile::tempdir().unwrap();
        let recs = vec![QueryRecord::new("a", "select 1"), QueryRecord::new("b", "select 2")];
        let c = Corpus::from_records(
            CorpusManifest::new("t"),
            recs.clone(),
            Some("create table t(a int);".into()),
        );
        c.write_to(&dir.path().join("c")).unwrap();
        let back = Corpus::open(&dir.path().join("c")).unwrap();
        assert_eq!(back.records, recs);
        assert_eq!(back.hash, c.hash);
        assert_eq!(back.schema.as_deref(), Some("create table t(a int);"));
        assert_eq!(back.manifest.count, Some(2));
        // Refuses to overwrite.
        assert!(c.write_to(&dir.path().join("c")).is_err());
    }

    #[test]
    fn damaged_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let c = Corpus::from_records(CorpusManifest::new("t"), vec![QueryRecord::new("a", "select 1")], None);
        c.write_to(dir.path()).unwrap();
        let q = dir.path().join("queries.jsonl");
        let mut text = fs::read_to_string(&q).unwrap();
        text.push_str("{\"id\": \"b\", \"sql\": \n");
        fs::write(&q, text).unwrap();
        let err = Corpus::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("queries.jsonl:2:"), "{err}");
    }
}
