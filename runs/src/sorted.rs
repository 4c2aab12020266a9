//! A run's outcomes in query-id order, read in bounded memory: [`OutcomeFile`].
//!
//! `outcomes.jsonl` is appended in completion order (parallel workers, resumes),
//! and a query id may appear twice after a crash between two writes; readers
//! want each query once, in id order, and the first line of a repeated id. A run
//! of ten million outcomes is gigabytes of JSON, so nothing here holds the run:
//!
//! 1. One pass reads only the query ids and checks whether the file is already
//!    in strictly increasing id order (a run written by one worker, a merged
//!    run, every run this tool rewrote). Then the file itself is the source.
//! 2. Otherwise an external merge sort: lines are sorted in chunks of
//!    [`SORT_CHUNK_BYTES`], each chunk spilled to a temporary file, and the chunks
//!    merged (k-way, ties to the earlier chunk, so the first line of an id wins)
//!    into one sorted temporary file, deleted when the [`OutcomeFile`] is dropped.
//!
//! Memory: one chunk plus one read buffer per chunk file, whatever the run's
//! size; disk: one copy of the outcome lines in the temporary directory
//! (`TMPDIR`) when the journal is out of order. A damaged line is reported with
//! its line number in `outcomes.jsonl`, as [`crate::read_run`] does.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sqlflight_diffing::OutcomeRecord;

use crate::journal::{JournalError, OUTCOMES};

/// Bytes of outcome lines sorted in memory at once before a chunk is spilled.
pub const SORT_CHUNK_BYTES: usize = 32 << 20;

/// Read buffer per file.
const BUF: usize = 256 << 10;

#[derive(serde::Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    query_id: Cow<'a, str>,
}

/// A run's outcomes, each query once, in query-id order; read as often as needed
/// with [`OutcomeFile::for_each`].
#[derive(Debug)]
pub struct OutcomeFile {
    source: PathBuf,
    /// The sorted copy (binary records) when the journal is out of order.
    sorted: Option<(tempfile::TempDir, PathBuf)>,
    len: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Calls `f(line_number, line)` for each complete non-blank line of `path`
/// (without its newline); a torn last line (no newline) is ignored, as every
/// reader of a run does.
fn lines<E: From<JournalError>>(path: &Path, mut f: impl FnMut(usize, &[u8]) -> Result<(), E>) -> Result<(), E> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e).into()),
    };
    let mut r = BufReader::with_capacity(BUF, file);
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        line.clear();
        r.read_until(b'\n', &mut line).map_err(io(path))?;
        if line.last() != Some(&b'\n') {
            return Ok(());
        }
        n += 1;
        line.pop();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        f(n, &line)?;
    }
}

fn id_of<'a>(path: &Path, line_no: usize, line: &'a [u8]) -> Result<Cow<'a, str>, JournalError> {
    serde_json::from_slice::<IdOnly>(line)
        .map(|x| x.query_id)
        .map_err(|e| JournalError::Corrupt {
            path: path.to_path_buf(),
            line: line_no,
            message: e.to_string(),
        })
}

/// One spilled record: `line_no: u64, id_len: u32, json_len: u32, id, json`.
fn write_record(w: &mut impl Write, line_no: usize, id: &[u8], json: &[u8]) -> std::io::Result<()> {
    w.write_all(&(line_no as u64).to_le_bytes())?;
    w.write_all(&(id.len() as u32).to_le_bytes())?;
    w.write_all(&(json.len() as u32).to_le_bytes())?;
    w.write_all(id)?;
    w.write_all(json)
}

/// Reads one spilled record into `id` and `json`; `None` at the end.
fn read_record(r: &mut impl Read, id: &mut Vec<u8>, json: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut head = [0u8; 16];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]) as usize;
    let line_no = u64::from_le_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]) as usize;
    id.resize(word(8), 0);
    r.read_exact(id)?;
    json.resize(word(12), 0);
    r.read_exact(json)?;
    Ok(Some(line_no))
}

/// One chunk of lines being sorted in memory.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    /// (id start, id end, json end, line number); the json starts at id end.
    entries: Vec<(usize, usize, usize, usize)>,
}

impl Chunk {
    fn push(&mut self, line_no: usize, id: &str, json: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(id.as_bytes());
        let mid = self.bytes.len();
        self.bytes.extend_from_slice(json);
        self.entries.push((start, mid, self.bytes.len(), line_no));
    }

    /// Sorts by id (stable: the first line of an id stays first), drops later
    /// lines of an id, writes the chunk and empties it.
    fn spill(&mut self, path: &Path) -> Result<usize, JournalError> {
        let b = &self.bytes;
        self.entries.sort_by(|x, y| b[x.0..x.1].cmp(&b[y.0..y.1]));
        let mut w = BufWriter::with_capacity(BUF, File::create(path).map_err(io(path))?);
        let mut last: Option<&[u8]> = None;
        let mut n = 0;
        for &(s, m, e, line_no) in &self.entries {
            if last == Some(&b[s..m]) {
                continue;
            }
            last = Some(&b[s..m]);
            write_record(&mut w, line_no, &b[s..m], &b[m..e]).map_err(io(path))?;
            n += 1;
        }
        w.flush().map_err(io(path))?;
        self.bytes.clear();
        self.entries.clear();
        Ok(n)
    }
}

impl OutcomeFile {
    /// Opens the outcomes of the run in `dir` (sorting them aside if needed).
    pub fn open(dir: &Path) -> Result<OutcomeFile, JournalError> {
        Self::open_with(dir, SORT_CHUNK_BYTES)
    }

    /// [`OutcomeFile::open`] with chunks of `chunk_bytes` (tests use small chunks
    /// to exercise the merge).
    pub fn open_with(dir: &Path, chunk_bytes: usize) -> Result<OutcomeFile, JournalError> {
        let source = dir.join(OUTCOMES);
        let mut prev: Option<String> = None;
        let (mut in_order, mut len) = (true, 0usize);
        lines::<JournalError>(&source, |n, line| {
            let id = id_of(&source, n, line)?;
            if in_order {
                match &mut prev {
                    Some(p) if p.as_str() >= id.as_ref() => in_order = false,
                    Some(p) => {
                        p.clear();
                        p.push_str(&id);
                    }
                    None => prev = Some(id.into_owned()),
                }
            }
            len += 1;
            Ok(())
        })?;
        if in_order {
            return Ok(OutcomeFile {
                source,
                sorted: None,
                len,
            });
        }
        // Out of order: spill sorted chunks, then merge them.
        let tmp = tempfile::Builder::new()
            .prefix("sqlflight-sort-")
            .tempdir()
            .map_err(io(&std::env::temp_dir()))?;
        let size = std::fs::metadata(&source).map(|m| m.len() as usize).unwrap_or(0);
        // At most 512 chunk files open in the merge.
        let chunk_bytes = chunk_bytes.max(size / 512).max(1);
        let mut chunk = Chunk::default();
        let mut spilled = Vec::new();
        lines::<JournalError>(&source, |n, line| {
            let id = id_of(&source, n, line)?;
            chunk.push(n, &id, line);
            if chunk.bytes.len() >= chunk_bytes {
                let p = tmp.path().join(format!("chunk-{}", spilled.len()));
                chunk.spill(&p)?;
                spilled.push(p);
            }
            Ok(())
        })?;
        if !chunk.entries.is_empty() || spilled.is_empty() {
            let p = tmp.path().join(format!("chunk-{}", spilled.len()));
            let n = chunk.spill(&p)?;
            spilled.push(p);
            if spilled.len() == 1 {
                let path = spilled.remove(0);
                return Ok(OutcomeFile {
                    source,
                    sorted: Some((tmp, path)),
                    len: n,
                });
            }
        }
        drop(chunk);
        let out = tmp.path().join("sorted");
        let len = merge(&spilled, &out)?;
        for p in &spilled {
            let _ = std::fs::remove_file(p);
        }
        Ok(OutcomeFile {
            source,
            sorted: Some((tmp, out)),
            len,
        })
    }

    /// Outcomes (distinct query ids).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the run has no outcome.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the journal was out of id order and was sorted aside.
    pub fn was_sorted(&self) -> bool {
        self.sorted.is_some()
    }

    /// Calls `f` with each outcome, in query-id order, each query once.
    pub fn for_each<E: From<JournalError>>(&self, mut f: impl FnMut(OutcomeRecord) -> Result<(), E>) -> Result<(), E> {
        let parse = |line_no: usize, json: &[u8]| {
            serde_json::from_slice::<OutcomeRecord>(json).map_err(|e| JournalError::Corrupt {
                path: self.source.clone(),
                line: line_no,
                message: e.to_string(),
            })
        };
        match &self.sorted {
            None => lines(&self.source, |n, line| f(parse(n, line)?)),
            Some((_, path)) => {
                let mut r = BufReader::with_capacity(BUF, File::open(path).map_err(io(path))?);
                let (mut id, mut json) = (Vec::new(), Vec::new());
                while let Some(line_no) = read_record(&mut r, &mut id, &mut json).map_err(io(path))? {
                    f(parse(line_no, &json)?)?;
                }
                Ok(())
            }
        }
    }
}

/// Merges sorted chunk files into `out`; ties go to the earlier chunk and later
/// records of an id are dropped. Returns the records written.
fn merge(chunks: &[PathBuf], out: &Path) -> Result<usize, JournalError> {
    struct Head {
        id: Vec<u8>,
        json: Vec<u8>,
        line_no: usize,
    }
    let mut readers = Vec::with_capacity(chunks.len());
    let mut heads: Vec<Option<Head>> = Vec::with_capacity(chunks.len());
    let mut heap = BinaryHeap::new();
    for (i, p) in chunks.iter().enumerate() {
        let mut r = BufReader::with_capacity(BUF / 4, File::open(p).map_err(io(p))?);
        let (mut id, mut json) = (Vec::new(), Vec::new());
        let head = read_record(&mut r, &mut id, &mut json)
            .map_err(io(p))?
            .map(|line_no| Head { id, json, line_no });
        if let Some(h) = &head {
            heap.push(Reverse((h.id.clone(), i)));
        }
        readers.push(r);
        heads.push(head);
    }
    let mut w = BufWriter::with_capacity(BUF, File::create(out).map_err(io(out))?);
    let mut last: Option<Vec<u8>> = None;
    let mut n = 0;
    while let Some(Reverse((id, i))) = heap.pop() {
        let Some(h) = heads[i].take() else { continue };
        if last.as_deref() != Some(id.as_slice()) {
            write_record(&mut w, h.line_no, &h.id, &h.json).map_err(io(out))?;
            n += 1;
            last = Some(id);
        }
        let (mut nid, mut json) = (h.id, h.json);
        if let Some(line_no) = read_record(&mut readers[i], &mut nid, &mut json).map_err(io(&chunks[i]))? {
            heap.push(Reverse((nid.clone(), i)));
            heads[i] = Some(Head { id: nid, json, line_no });
        }
    }
    w.flush().map_err(io(out))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sqlflight_diffing::OutcomeClass;

    fn line(id: &str, tag: usize) -> String {
        let mut o = OutcomeRecord::skipped(id.into(), format!("t{tag}"), "x");
        o.class = OutcomeClass::Match;
        o.skip_reason = None;
        serde_json::to_string(&o).unwrap_or_default()
    }

    fn ids(f: &OutcomeFile) -> Vec<(String, String)> {
        let mut v = Vec::new();
        f.for_each(|o| {
            v.push((o.query_id, o.template_id));
            Ok::<_, JournalError>(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any order, any repeats, any chunk size: each id once, sorted, first line wins.
        #[test]
        fn sorted_unique_first_wins(raw in proptest::collection::vec(0u16..400, 0..300), chunk in 1usize..4000) {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let mut text = String::new();
            let mut expected = std::collections::BTreeMap::new();
            for (k, v) in raw.iter().enumerate() {
                let id = format!("q{v}\u{e9}\\\"\t");
                text.push_str(&line(&id, k));
                text.push('\n');
                expected.entry(id).or_insert(format!("t{k}"));
            }
            // A blank line and a torn last line are ignored.
            text.push_str("\n{\"query_id\":\"torn");
            std::fs::write(dir.path().join(OUTCOMES), text).unwrap_or_else(|e| panic!("{e}"));
            let f = OutcomeFile::open_with(dir.path(), chunk).unwrap_or_else(|e| panic!("{e}"));
            let want: Vec<(String, String)> = expected.into_iter().collect();
            prop_assert_eq!(f.len(), want.len());
            prop_assert_eq!(ids(&f), want);
        }
    }

    #[test]
    fn a_damaged_line_is_named_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let text = format!(
            "{}\n{}\n{{\"query_id\":\"q0\",\"class\":7}}\n",
            line("q2", 0),
            line("q1", 1)
        );
        std::fs::write(dir.path().join(OUTCOMES), text).unwrap_or_else(|e| panic!("{e}"));
        let f = OutcomeFile::open_with(dir.path(), 1).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.was_sorted());
        let e = f.for_each(|_| Ok::<_, JournalError>(())).err().map(|e| e.to_string());
        assert!(e.as_deref().is_some_and(|e| e.contains("outcomes.jsonl:3:")), "{e:?}");
        let bad = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(bad.path().join(OUTCOMES), "not json\n").unwrap_or_else(|e| panic!("{e}"));
        let e = OutcomeFile::open(bad.path()).err().map(|e| e.to_string());
        assert!(e.as_deref().is_some_and(|e| e.contains("outcomes.jsonl:1:")), "{e:?}");
    }

    #[test]
    fn a_sorted_journal_is_read_in_place_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = OutcomeFile::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.is_empty() && !f.was_sorted());
        let text = format!("{}\n{}\n", line("a", 0), line("b", 1));
        std::fs::write(dir.path().join(OUTCOMES), text).unwrap_or_else(|e| panic!("{e}"));
        let f = OutcomeFile::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!f.was_sorted());
        assert_eq!(ids(&f).len(), 2);
        // The caller's error stops the read and comes back as is.
        let mut seen = 0;
        let r = f.for_each(|_| {
            seen += 1;
            Err(JournalError::NotARun(PathBuf::from("stop")))
        });
        assert!(matches!(r, Err(JournalError::NotARun(p)) if p == Path::new("stop")));
        assert_eq!(seen, 1);
    }
}
