//! The run journal: `manifest.json` plus `outcomes.jsonl`, appended one complete
//! line per query as it finishes.
//!
//! Crash safety: a line is written with one `write` call under a lock, so after a
//! kill the file holds complete lines and at most one torn last line. Resume drops
//! the torn line (that query runs again) and skips every query with a complete
//! line, so a resumed run holds exactly the outcomes of an uninterrupted one.
//!
//! A query that takes the whole process down (a stack overflow, an abort, the
//! kernel's out-of-memory killer) must not be retried forever: before a query runs
//! the driver appends its id to `started.jsonl` ([`Journal::mark_started`]). On
//! resume, a query started but without an outcome was in flight when the process
//! died. If it ran *alone* (`solo`) it is the culprit: [`Interrupted::crashed`].
//! Otherwise it is a suspect among its neighbours: [`Interrupted::retry`], to be
//! run again alone before anything else. So every two deaths settle at least one
//! query, and innocent neighbours get their normal outcome.
//!
//! One writer per run directory: [`Journal::open`] takes an exclusive lock on
//! `run.lock` (released when the journal is dropped, or by the kernel when the
//! process dies); a second writer gets [`JournalError::Locked`] naming the holder.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sqlflight_diffing::{OutcomeRecord, RunManifest, RunStatus, StopReason};

/// The run's manifest (engines, corpus, config, status, counts).
pub const MANIFEST: &str = "manifest.json";
/// One outcome per query, appended as each completes.
pub const OUTCOMES: &str = "outcomes.jsonl";
/// Queries started, one `{"query_id", "solo"}` line each, written before they run.
pub const STARTED: &str = "started.jsonl";
/// The lock file of the process writing the run (its content names the holder).
pub const LOCK: &str = "run.lock";

/// Why a run directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file of the run could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A new run was asked for in a directory that holds one.
    #[error("run directory {0} already holds a run; pass --resume to continue it, or choose another --out")]
    AlreadyExists(PathBuf),
    /// `--resume` with other engines, corpus, partition or config than the run's.
    #[error("cannot resume {dir}: it was made with a different {what}; start a new run with another --out")]
    Mismatch {
        /// The run directory.
        dir: PathBuf,
        /// Which identity field differs.
        what: String,
    },
    /// An outcome line that is not an outcome (before the last line).
    #[error("{path}:{line}: damaged outcome line ({message}); the run directory was changed by hand")]
    Corrupt {
        /// `outcomes.jsonl`.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The directory holds no `manifest.json`.
    #[error("{0}: not a run directory (no manifest.json)")]
    NotARun(PathBuf),
    /// Another process is writing the run.
    #[error(
        "run directory {dir} is being written by another sqlflight ({holder}); wait for it to end or stop it, then --resume"
    )]
    Locked {
        /// The run directory.
        dir: PathBuf,
        /// Who holds the lock (pid, host).
        holder: String,
    },
}

/// One line of `started.jsonl`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Started {
    query_id: String,
    /// Run alone (no other query in flight), after an earlier process died.
    #[serde(default)]
    solo: bool,
}

/// What a resumed run learns from queries that were in flight when an earlier
/// process died.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interrupted {
    /// Started alone and never finished: the query took the process down. The
    /// driver records it as `crash` and never runs it again.
    pub crashed: HashSet<String>,
    /// Started beside other queries and never finished: run again, alone, first.
    pub retry: HashSet<String>,
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
    interrupted: Interrupted,
    file: Mutex<File>,
    started: Mutex<File>,
    /// Held (locked) for the journal's lifetime.
    _lock: File,
}

/// How long [`Journal::open`] waits for another writer to let go of a run directory.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Takes the run directory's exclusive lock, or names who holds it.
fn lock_dir(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    // A writer that was just killed may take a moment to be gone: wait a little.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut attempt = f.try_lock();
    while matches!(attempt, Err(fs::TryLockError::WouldBlock)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(25));
        attempt = f.try_lock();
    }
    match attempt {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(JournalError::Locked {
                dir: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "holder unknown".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
    }
    let me = format!(
        "pid {} since {}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    f.set_len(0).map_err(io(&path))?;
    f.rewind().map_err(io(&path))?;
    f.write_all(me.as_bytes()).map_err(io(&path))?;
    Ok(f)
}

impl Journal {
    /// Starts a run in `dir`, or continues the one there when `resume` is set
    /// (a `resume` of a directory without a run starts a new one).
    pub fn open(dir: &Path, mut manifest: RunManifest, resume: bool) -> Result<Journal, JournalError> {
        let mpath = dir.join(MANIFEST);
        let opath = dir.join(OUTCOMES);
        let spath = dir.join(STARTED);
        let mut done = HashSet::new();
        let mut interrupted = Interrupted::default();
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock = lock_dir(dir)?;
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
            for s in read_started(&spath)? {
                if done.contains(&s.query_id) {
                    continue;
                }
                if s.solo {
                    interrupted.retry.remove(&s.query_id);
                    interrupted.crashed.insert(s.query_id);
                } else if !interrupted.crashed.contains(&s.query_id) {
                    interrupted.retry.insert(s.query_id);
                }
            }
            manifest.started_at = old.started_at;
            manifest.resumed = old.resumed + 1;
            manifest.stopped_reason = None;
        } else if spath.exists() {
            // A started list without a run: left from a run that died before its
            // manifest was written; it says nothing about this run.
            fs::remove_file(&spath).map_err(io(&spath))?;
        }
        write_manifest(dir, &manifest)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&opath)
            .map_err(io(&opath))?;
        let started = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spath)
            .map_err(io(&spath))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            manifest,
            done,
            interrupted,
            file: Mutex::new(file),
            started: Mutex::new(started),
            _lock: lock,
        })
    }

    /// Queries in flight when an earlier process of this run died.
    pub fn interrupted(&self) -> &Interrupted {
        &self.interrupted
    }

    /// Records that a query is about to run (`solo`: nothing else in flight), with
    /// one `write`, so that a death while it runs is attributed on resume.
    pub fn mark_started(&self, query_id: &str, solo: bool) -> Result<(), JournalError> {
        let spath = self.dir.join(STARTED);
        let mut line = serde_json::to_vec(&Started {
            query_id: query_id.to_string(),
            solo,
        })
        .map_err(|e| io(&spath)(e.into()))?;
        line.push(b'\n');
        let mut f = self.started.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&line).map_err(io(&spath))
    }

    /// The run's manifest as opened (resumes counted).
    pub fn manifest(&self) -> &RunManifest {
        &self.manifest
    }

    /// Whether the query's outcome is journaled.
    pub fn is_done(&self, query_id: &str) -> bool {
        self.done.contains(query_id)
    }

    /// Outcomes journaled so far.
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
    pub fn stop(
        self,
        finished_at: String,
        reason: StopReason,
    ) -> Result<(RunManifest, Vec<OutcomeRecord>), JournalError> {
        self.close(finished_at, Some(reason))
    }

    /// [`Journal::complete`] in bounded memory: the counts come from one
    /// streaming pass over the outcomes ([`crate::OutcomeFile`]), and no outcome
    /// is returned (for writers of runs too large to hold, and benchmarks).
    pub fn complete_streamed(self, finished_at: String) -> Result<RunManifest, JournalError> {
        let opath = self.dir.join(OUTCOMES);
        {
            let f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            f.sync_all().map_err(io(&opath))?;
        }
        let mut counts = BTreeMap::new();
        crate::OutcomeFile::open(&self.dir)?.for_each::<JournalError>(|o| {
            *counts.entry(o.class.as_str().to_string()).or_insert(0) += 1;
            Ok(())
        })?;
        // The journal (and its run lock) lives until the manifest is written.
        finish(&self.dir, self.manifest.clone(), counts, finished_at, None)
    }

    fn close(
        self,
        finished_at: String,
        stopped: Option<StopReason>,
    ) -> Result<(RunManifest, Vec<OutcomeRecord>), JournalError> {
        let opath = self.dir.join(OUTCOMES);
        {
            let f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            f.sync_all().map_err(io(&opath))?;
        }
        let outcomes = read_outcomes(&opath, false)?;
        let mut counts = BTreeMap::new();
        for o in &outcomes {
            *counts.entry(o.class.as_str().to_string()).or_insert(0) += 1;
        }
        Ok((
            finish(&self.dir, self.manifest.clone(), counts, finished_at, stopped)?,
            outcomes,
        ))
    }
}

/// Writes the closed manifest: counts, finish time, status.
fn finish(
    dir: &Path,
    mut manifest: RunManifest,
    counts: BTreeMap<String, u64>,
    finished_at: String,
    stopped: Option<StopReason>,
) -> Result<RunManifest, JournalError> {
    manifest.counts = counts;
    manifest.finished_at = Some(finished_at);
    manifest.status = if stopped.is_some() {
        RunStatus::Stopped
    } else {
        RunStatus::Complete
    };
    manifest.stopped_reason = stopped;
    write_manifest(dir, &manifest)?;
    Ok(manifest)
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
    if old.results_only != new.results_only {
        return Some("timing setting (a results-only flight resumes only as one)".into());
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

/// The manifest of the run in `dir`.
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

/// Reads `started.jsonl`, cutting off a torn last line (the process died inside
/// the write); unreadable lines are ignored (the file only ever helps resume).
fn read_started(path: &Path) -> Result<Vec<Started>, JournalError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    if complete < bytes.len() {
        let f = OpenOptions::new().write(true).open(path).map_err(io(path))?;
        f.set_len(complete as u64).map_err(io(path))?;
    }
    Ok(bytes[..complete]
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect())
}

/// Reads a run directory (complete or interrupted).
pub fn read_run(dir: &Path) -> Result<(RunManifest, Vec<OutcomeRecord>), JournalError> {
    let m = read_manifest(dir)?;
    let o = read_outcomes(&dir.join(OUTCOMES), false)?;
    Ok((m, o))
}
