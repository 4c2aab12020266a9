//! Reading input files: transparent decompression (gzip, zstd; told by the magic
//! bytes, not the name), line reading that survives non-UTF-8 bytes, and format
//! detection from the content.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::corpus::CorpusError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Read buffer: large enough that the decompressors and the line reader run in
/// long strides.
const BUF: usize = 256 * 1024;

/// Compression of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain.
    None,
    /// gzip (`.gz`).
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

/// Opens `path` for streaming reads, decompressing gzip (also concatenated
/// members, as `logrotate` writes them) and zstd.
pub fn open(path: &Path) -> Result<(Box<dyn BufRead + Send>, Compression), CorpusError> {
    let mut f = File::open(path).map_err(|e| CorpusError::io(path, e))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        let n = f.read(&mut magic[got..]).map_err(|e| CorpusError::io(path, e))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = io::Cursor::new(magic[..got].to_vec());
    let raw = BufReader::with_capacity(BUF, head.chain(f));
    if got >= 2 && magic[..2] == GZIP_MAGIC {
        let d = flate2::bufread::MultiGzDecoder::new(raw);
        Ok((Box::new(BufReader::with_capacity(BUF, d)), Compression::Gzip))
    } else if got == 4 && magic == ZSTD_MAGIC {
        let d = zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| CorpusError::io(path, e))?;
        Ok((Box::new(BufReader::with_capacity(BUF, d)), Compression::Zstd))
    } else {
        Ok((Box::new(raw), Compression::None))
    }
}

/// The file name without compression suffixes (`pg.csv.gz` -> `pg.csv`).
pub fn logical_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".gz", ".zst", ".zstd"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    name
}

/// The largest record ingest reads by default (a log line, a statement):
/// anything longer is skipped and counted, so memory never depends on the input.
pub const DEFAULT_MAX_RECORD: usize = 8 << 20;

thread_local! {
    static MAX_RECORD: std::cell::Cell<usize> = const { std::cell::Cell::new(DEFAULT_MAX_RECORD) };
}

/// The record-size limit in force on this thread (set around an ingest).
pub fn max_record() -> usize {
    MAX_RECORD.with(|m| m.get())
}

/// Sets this thread's record-size limit until the guard is dropped.
pub fn limit_records(max: usize) -> RecordLimit {
    let previous = MAX_RECORD.with(|m| m.replace(max.max(1)));
    RecordLimit { previous }
}

/// Restores the previous record-size limit when dropped.
pub struct RecordLimit {
    previous: usize,
}

impl Drop for RecordLimit {
    fn drop(&mut self) {
        MAX_RECORD.with(|m| m.set(self.previous));
    }
}

/// Reads lines as bytes with their 1-based numbers; a line keeps no `\n` (nor
/// `\r\n`). Bytes are not required to be UTF-8: callers decide per record. A
/// line longer than [`max_record`] is not kept: it reads as empty and
/// [`Lines::oversized`] gives its length, so memory stays bounded (a file of NUL
/// bytes or `/dev/zero` is one endless line).
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    max: usize,
    oversized: Option<u64>,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`, at most [`max_record`] bytes each (longer ones are skipped).
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: Vec::with_capacity(4096),
            line: 0,
            max: max_record(),
            oversized: None,
        }
    }

    /// Number of the last line read (0 before the first).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The length in bytes of the last line read when it was over the limit.
    pub fn oversized(&self) -> Option<u64> {
        self.oversized
    }

    /// Reads the next line; its number, or None at the end of input.
    pub fn advance(&mut self) -> io::Result<Option<u64>> {
        self.buf.clear();
        self.oversized = None;
        let mut total = 0u64;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                break;
            }
            let (len, done) = match memchr::memchr(b'\n', avail) {
                Some(p) => (p + 1, true),
                None => (avail.len(), false),
            };
            total += len as u64;
            if self.oversized.is_none() && self.buf.len() + len <= self.max.saturating_add(2) {
                self.buf.extend_from_slice(&avail[..len]);
            } else {
                self.oversized = Some(total);
                self.buf = Vec::with_capacity(4096);
            }
            self.reader.consume(len);
            if done {
                break;
            }
        }
        if total == 0 {
            return Ok(None);
        }
        self.line += 1;
        if let Some(n) = &mut self.oversized {
            *n = total;
        }
        Ok(Some(self.line))
    }

    /// The last line read, without its line end (empty when it was oversized).
    pub fn current(&self) -> &[u8] {
        let mut end = self.buf.len();
        if end > 0 && self.buf[end - 1] == b'\n' {
            end -= 1;
        }
        if end > 0 && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        &self.buf[..end]
    }

    /// The next line, or None at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        Ok(self.advance()?.map(|n| (n, self.current())))
    }
}

/// Reads up to `limit` bytes from the start of a (decompressed) file.
pub fn head(path: &Path, limit: usize) -> Result<Vec<u8>, CorpusError> {
    let (r, _) = open(path)?;
    let mut out = Vec::with_capacity(limit.min(1 << 20));
    r.take(limit as u64)
        .read_to_end(&mut out)
        .map_err(|e| CorpusError::io(path, e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_plain_gzip_and_zstd_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"line one\r\nline \xff two\n\nlast";
        let plain = dir.path().join("a.log");
        std::fs::write(&plain, text).unwrap();
        let gz = dir.path().join("a.log.gz");
        // Two gzip members, as logrotate's `compress` with `copytruncate` can leave.
        let mut bytes = Vec::new();
        for part in [&text[..12], &text[12..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(part).unwrap();
            bytes.extend(e.finish().unwrap());
        }
        std::fs::write(&gz, bytes).unwrap();
        let zs = dir.path().join("a.log.zst");
        std::fs::write(&zs, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
        let mut seen = Vec::new();
        for (p, c) in [
            (&plain, Compression::None),
            (&gz, Compression::Gzip),
            (&zs, Compression::Zstd),
        ] {
            let (r, got) = open(p).unwrap();
            assert_eq!(got, c);
            let mut lines = Lines::new(r);
            let mut v = Vec::new();
            while let Some((n, l)) = lines.next_line().unwrap() {
                v.push((n, l.to_vec()));
            }
            seen.push(v);
        }
        assert_eq!(seen[0], seen[1]);
        assert_eq!(seen[0], seen[2]);
        assert_eq!(seen[0].len(), 4);
        assert_eq!(seen[0][1], (2, b"line \xff two".to_vec()));
        assert_eq!(logical_name(&gz), "a.log");
    }
}
