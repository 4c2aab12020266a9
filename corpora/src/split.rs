//! Splitting SQL text into statements.
//!
//! A hand-written single-pass scanner rather than a SQL tokenizer: it must never
//! fail on input that no dialect's tokenizer accepts (production logs hold every
//! dialect), it is linear in the input (a 5 MB statement splits in milliseconds),
//! and it only needs to know where a `;` is *not* a separator: inside `'strings'`
//! (with `''` doubling, and backslash escapes when asked for or after `E'`),
//! `"quoted identifiers"`, `` `backticks` ``, `-- line comments`, `/* nested block
//! comments */` and PostgreSQL `$tag$ dollar-quoted bodies $tag$`.

use crate::lex::{block_comment_end, line_end, skip_quoted};

/// One statement found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitStatement {
    /// Statement text, trimmed, without the terminating `;`.
    pub text: String,
    /// Byte offset of the statement's first character in the input.
    pub offset: usize,
    /// 1-based line of the statement's first character.
    pub line: u64,
}

/// Options of the splitter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitOptions {
    /// Treat `\` as an escape inside every `'string'` (MySQL); otherwise only in
    /// PostgreSQL `E'...'` strings.
    pub backslash_escapes: bool,
}

/// Splits `input` into statements at top-level semicolons. Fragments holding only
/// whitespace and comments are not statements and are dropped.
pub fn split_statements(input: &str, opts: SplitOptions) -> Vec<SplitStatement> {
    let bytes = input.as_bytes();
    let (frags, _, _) = scan(bytes, opts);
    let mut out = Vec::new();
    // Line numbers in one forward pass over the input.
    let mut line = 1u64;
    let mut pos = 0usize;
    for (start, end) in frags {
        // Fragments are bounded by `;` or the input's ends: char boundaries.
        let frag = &input[start..end];
        let lead = frag.len() - frag.trim_start().len();
        let text = frag.trim();
        if text.is_empty() {
            continue;
        }
        let offset = start + lead;
        line += newlines(&bytes[pos..offset]);
        pos = offset;
        out.push(SplitStatement {
            text: text.to_string(),
            offset,
            line,
        });
    }
    out
}

pub(crate) fn newlines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// The byte ranges between top-level `;` that hold code (not only whitespace and
/// comments), untrimmed, the last one running to the end of `bytes`; and the index
/// after the last top-level `;` (0 when there is none). Everything before that
/// index is final whatever bytes follow, so a stream can split what it has read.
/// Third: where a block comment opens that the input ends inside of (everything
/// after it was read as comment), if one does.
pub(crate) fn scan(bytes: &[u8], opts: SplitOptions) -> (Vec<(usize, usize)>, usize, Option<usize>) {
    let mut open_comment = None;
    let mut frags = Vec::new();
    let mut last_end = 0usize;
    let mut start = 0usize;
    // Whether the current fragment has any byte outside comments and whitespace.
    let mut has_code = false;
    let mut i = 0usize;
    let n = bytes.len();
    while i < n {
        let b = bytes[i];
        match b {
            b';' => {
                if has_code {
                    frags.push((start, i));
                }
                last_end = i + 1;
                has_code = false;
                start = i + 1;
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = line_end(bytes, i + 2);
            }
            b'#' if opts.backslash_escapes => {
                // MySQL line comment.
                i = line_end(bytes, i + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let (end, closed) = block_comment_end(bytes, i);
                if !closed {
                    open_comment = Some(i);
                }
                i = end;
            }
            b'\'' => {
                has_code = true;
                let escapes = opts.backslash_escapes
                    || (i > 0 && matches!(bytes[i - 1], b'E' | b'e') && (i < 2 || !is_ident_byte(bytes[i - 2])));
                i = skip_quoted(bytes, i + 1, b'\'', escapes);
            }
            b'"' => {
                has_code = true;
                i = skip_quoted(bytes, i + 1, b'"', false);
            }
            b'`' => {
                has_code = true;
                i = skip_quoted(bytes, i + 1, b'`', false);
            }
            b'$' => {
                has_code = true;
                match dollar_tag(bytes, i) {
                    Some(tag_end) => {
                        let tag = &bytes[i..tag_end];
                        i = find_subslice(bytes, tag_end, tag).map_or(n, |p| p + tag.len());
                    }
                    None => i += 1,
                }
            }
            _ => {
                if !b.is_ascii_whitespace() {
                    has_code = true;
                }
                i += 1;
            }
        }
    }
    if has_code {
        frags.push((start, n));
    }
    (frags, last_end, open_comment)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// If a dollar-quote opening tag (`$$` or `$tag$`) starts at `i`, returns the index
/// after it. `$1` (a positional parameter) is not a tag.
fn dollar_tag(bytes: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_ident_byte(bytes[i - 1]) {
        return None; // part of an identifier such as a$b
    }
    let mut j = i + 1;
    if bytes.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    (bytes.get(j) == Some(&b'$')).then_some(j + 1)
}

fn find_subslice(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        split_statements(s, SplitOptions::default())
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "select 'a;b' as x; select \"c;d\" from t -- e;f\n; /* g; /* h; */ i; */ select 1;\
                   select $$ j; $$; select $tag$ k;$$; $tag$ ; select $1;";
        assert_eq!(
            texts(sql),
            vec![
                "select 'a;b' as x",
                "select \"c;d\" from t -- e;f",
                "/* g; /* h; */ i; */ select 1",
                "select $$ j; $$",
                "select $tag$ k;$$; $tag$",
                "select $1",
            ]
        );
    }

    #[test]
    fn doubled_quotes_and_escapes() {
        assert_eq!(texts("select 'it''s;'; select 2"), vec!["select 'it''s;'", "select 2"]);
        // A backslash is not an escape in a standard string...
        assert_eq!(texts(r"select 'C:\'; select 2"), vec![r"select 'C:\'", "select 2"]);
        // ...but is in an E'' string.
        assert_eq!(
            texts(r"select E'a\';b'; select 2"),
            vec![r"select E'a\';b'", "select 2"]
        );
        let mysql = split_statements(
            r"select 'a\';b'; select 2",
            SplitOptions {
                backslash_escapes: true,
            },
        );
        assert_eq!(mysql.len(), 2);
    }

    #[test]
    fn comment_only_fragments_are_dropped_and_lines_counted() {
        let sql = "-- header\n\nselect 1;\n-- trailing comment\n;\n\n  select\n2\n";
        let st = split_statements(sql, SplitOptions::default());
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].text, "-- header\n\nselect 1");
        assert_eq!(st[0].line, 1);
        assert_eq!(st[1].text, "select\n2");
        assert_eq!(st[1].line, 7);
        assert_eq!(&sql[st[1].offset..st[1].offset + 6], "select");
    }

    #[test]
    fn unterminated_quote_runs_to_end() {
        assert_eq!(texts("select 'abc; select 2"), vec!["select 'abc; select 2"]);
    }

    #[test]
    fn five_megabyte_statement() {
        let mut sql = String::from("select ");
        while sql.len() < 5 * 1024 * 1024 {
            sql.push_str("'x;y' || ");
        }
        sql.push_str("'end'; select 2;");
        let st = split_statements(&sql, SplitOptions::default());
        assert_eq!(st.len(), 2);
        assert!(st[0].text.len() > 5 * 1024 * 1024 - 10);
        assert_eq!(st[1].text, "select 2");
    }
}
