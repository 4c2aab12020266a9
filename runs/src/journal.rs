//! The run journal: `manifest.json` plus `outcomes.jsonl`, appended one complete
//! line per query as it finishes.
//!
//! Crash safety: a line is written with one `write` call under a lock, so after a
//! kill the file holds complete lines and at most one torn last line. Resume drops
//! the torn line (that query runs again) and skips every query with a complete
//! line, so a resumed run holds exactly the outcomes of an uninterrupted one.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sqlflight_diffing::{OutcomeRecord, RunManifest, RunStatus};

pub const MANIFEST: &str = "manifest.json";
pub const OUTCOMES: &str = "outcomes.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run directory {0} already holds a run; pass --resume to continue it, or choose another --out")]
    AlreadyExists(PathBuf),
    #[error("cannot resume {dir}: it was made with a different {what}; start a new run with another --out")]
    Mismatch { dir: PathBuf, what: String },
    #[error("{path}:{line}: damaged outcome line ({message}); the run directory was changed by hand")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}: not a run directory (no manifest.json)")]
    NotARun(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An open run directory being written.
pub struct Journal {
    dir: PathBuf,
    manifest: RunManifest,
    done: HashSet<String>,
    file: Mutex<File>,
}

impl Journal {
    /// Starts a run in `dir`, or continues the one there when `resume` is set
    /// (a `resume` of a directory without a run starts a new one).
    pub fn open(dir: &Path, mut manifest: RunManifest, resume: bool) -> Result<Journal, JournalError> {
        let mpath = dir.join(MANIFEST);
        let opath = dir.join(OUTCOMES);
        let mut done = HashSet::new();
        if mpath.exists() || opath.exists() {
            if !resume {
                return Err(JournalError::AlreadyExists(dir.to_path_buf()));
            }
            let old = read_manifest(dir)?;
            if let Some(what) = mismatch(&old, &manifest) {
                return Err(JournalError::Mismatch {
                    dir: dir.to_path_buf(),
                    what,
                });
            }
            for o in read_outcomes(&opath, true)? {
                done.insert(o.query_id);
            }
            manifest.started_at = old.started_at;
            manifest.resumed = old.resumed + 1;
            manifest.stopped_reason = None;
        } else {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        write_manifest(dir, &manifest)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&opath)
            .map_err(io(&opath))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            manifest,
            done,
            file: Mutex::new(file),
        })
    }

    pub fn manifest(&self) -> &RunManifest {
        &self.manifest
    }

    pub fn is_done(&self, query_id: &str) -> bool {
        self.done.contains(query_id)
    }

    pub fn done_count(&self) -> usize {
        self.done.len()
    }

    /// Appends one outcome as one line, written with a single `write` call.
    pub fn append(&self, outcome: &OutcomeRecord) -> Result<(), JournalError> {
        let opath = self.dir.join(OUTCOMES);
        let mut line = serde_json::to_vec(outcome).map_err(|e| io(&opath)(e.into()))?;
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&line).map_err(io(&opath))
    }

    /// Marks the run complete: counts per class, finish time. Returns the final
    /// manifest and all outcomes sorted by query id.
    pub fn complete(self, finished_at: String) -> Result<(RunManifest, Vec<OutcomeRecord>), JournalError> {
        self.close(finished_at, None)
    }

    /// Marks the run stopped early on purpose (`reason`: time budget, Ctrl-C); a
    /// later `--resume` continues it.
    pub fn stop(self, finished_at: String, reason: String) -> Result<(RunManifest, Vec<OutcomeRecord>), JournalError> {
        self.close(finished_at, Some(reason))
    }

    fn close(
        self,
        finished_at: String,
        stopped: Option<String>,
    ) -> Result<(RunManifest, Vec<OutcomeRecord>), JournalError> {
        let opath = self.dir.join(OUTCOMES);
        {
            let f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            f.sync_all().map_err(io(&opath))?;
        }
        let outcomes = read_outcomes(&opath, false)?;
        let mut manifest = self.manifest;
        let mut counts = BTreeMap::new();
        for o in &outcomes {
            *counts.entry(o.class.as_str().to_string()).or_insert(0) += 1;
        }
        manifest.counts = counts;
        manifest.finished_at = Some(finished_at);
        manifest.status = if stopped.is_some() {
            RunStatus::Stopped
        } else {
            RunStatus::Complete
        };
        manifest.stopped_reason = stopped;
        write_manifest(&self.dir, &manifest)?;
        Ok((manifest, outcomes))
    }
}

/// Names the first identity field that differs.
fn mismatch(old: &RunManifest, new: &RunManifest) -> Option<String> {
    if old.kind != new.kind {
        return Some(format!("kind ({} vs {})", old.kind, new.kind));
    }
    if old.corpus.hash != new.corpus.hash {
        return Some("corpus (its content hash differs)".into());
    }
    if old.baseline != new.baseline {
        return Some(format!(
            "baseline engine ({} vs {})",
            old.baseline.describe(),
            new.baseline.describe()
        ));
    }
    if old.candidate != new.candidate {
        return Some(format!(
            "candidate engine ({} vs {})",
            old.candidate.describe(),
            new.candidate.describe()
        ));
    }
    if old.partition != new.partition {
        return Some("--partition".into());
    }
    if old.timeout_ms != new.timeout_ms {
        return Some("timeout".into());
    }
    if old.digest_version() != new.digest_version() {
        return Some(format!(
            "result digest version ({}; this sqlflight computes {})",
            old.digest_version().unwrap_or(0),
            new.digest_version().unwrap_or(0)
        ));
    }
    if old.digest_key_id != new.digest_key_id {
        return Some(format!(
            "result digest key ({}; this flight's is {})",
            old.digest_key_id.as_deref().unwrap_or("none"),
            new.digest_key_id.as_deref().unwrap_or("none")
        ));
    }
    None
}

fn write_manifest(dir: &Path, m: &RunManifest) -> Result<(), JournalError> {
    let path = dir.join(MANIFEST);
    let tmp = dir.join("manifest.json.tmp");
    let text = serde_json::to_string_pretty(m).map_err(|e| io(&path)(e.into()))?;
    fs::write(&tmp, text + "\n").map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

pub fn read_manifest(dir: &Path) -> Result<RunManifest, JournalError> {
    let path = dir.join(MANIFEST);
    if !path.is_file() {
        return Err(JournalError::NotARun(dir.to_path_buf()));
    }
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| JournalError::Corrupt {
        path: path.clone(),
        line: e.line(),
        message: e.to_string(),
    })
}

/// Reads outcome lines. With `repair`, a torn last line (no final newline) is cut
/// off the file; otherwise it is ignored. A damaged complete line is an error. If
/// a query id appears twice, the first line wins.
fn read_outcomes(path: &Path, repair: bool) -> Result<Vec<OutcomeRecord>, JournalError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    if complete < bytes.len() && repair {
        let f = OpenOptions::new().write(true).open(path).map_err(io(path))?;
        f.set_len(complete as u64).map_err(io(path))?;
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let o: OutcomeRecord = serde_json::from_slice(line).map_err(|e| JournalError::Corrupt {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        if seen.insert(o.query_id.clone()) {
            out.push(o);
        }
    }
    out.sort_by(|a, b| a.query_id.cmp(&b.query_id));
    Ok(out)
}

/// Reads a run directory (complete or interrupted).
pub fn read_run(dir: &Path) -> Result<(RunManifest, Vec<OutcomeRecord>), JournalError> {
    let m = read_manifest(dir)?;
    let o = read_outcomes(&dir.join(OUTCOMES), false)?;
    Ok((m, o))
}
