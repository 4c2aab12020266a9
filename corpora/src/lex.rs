//! Byte-level scanning helpers shared by the statement splitter and the
//! token-level fingerprint: quoted runs and comments.

/// Skips a quoted run starting after the opening quote; returns the index after
/// the closing quote (or the end of input for an unterminated quote). A doubled
/// quote is part of the run; with `backslash`, `\` escapes the next byte.
pub(crate) fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
    let n = bytes.len();
    while i < n {
        let c = bytes[i];
        if backslash && c == b'\\' {
            i += 2;
        } else if c == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    n
}

/// Skips a (nested) block comment whose `/*` starts at `i`; returns the index
/// after its `*/` (or the end of input).
pub(crate) fn skip_block_comment(bytes: &[u8], i: usize) -> usize {
    block_comment_end(bytes, i).0
}

/// Like [`skip_block_comment`], and whether the comment was closed (`false`: the
/// input ends inside it).
pub(crate) fn block_comment_end(bytes: &[u8], i: usize) -> (usize, bool) {
    let n = bytes.len();
    let mut depth = 1usize;
    let mut i = i + 2;
    while i < n && depth > 0 {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    (i.min(n), depth == 0)
}

/// Index of the next `\n` at or after `from` (or the end of input).
pub(crate) fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from.min(bytes.len())..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(bytes.len(), |p| from + p)
}
