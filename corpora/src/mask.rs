//! Masking: a shareable copy of a corpus whose literals are replaced by
//! consistent, type-preserving pseudonyms.
//!
//! Every literal token (numbers, strings of every quoting style, dollar-quoted,
//! hex and byte strings) is replaced by a pseudonym derived with HMAC-SHA256 under
//! a secret key: the same literal maps to the same pseudonym everywhere in the
//! corpus (equalities and joins survive, `42` and `'42'` agree), numbers stay
//! numbers with the same digit count and scale, dates, times and timestamps stay
//! valid ones in the same format, interval strings keep their units, other strings
//! keep their length and character classes (letters, digits) with punctuation such
//! as LIKE's `%` and `_` in place. A pseudonym never equals its literal. Comments
//! (which can hold anything, optimizer hints too) are dropped. Order is not
//! preserved (that would leak), so range predicates select different rows.
//!
//! Besides the SQL: record ids are re-derived under the key (an id is a hash of
//! the raw text), users, tenants and sessions are pseudonymized, and only numeric
//! or enumerated attributes are kept (error texts can quote values). Without the
//! key, no original literal can be recovered. Statements the tokenizer cannot read
//! are left out and counted: masking never passes text through unmasked.
//!
//! Literals without a letter or digit (`''`, `'%'`, `' '`) and the keywords `TRUE`,
//! `FALSE`, `NULL` carry nothing to hide and are kept.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sqlparser::ast::DollarQuotedString;
use sqlparser::dialect::Dialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::corpus::{Corpus, CorpusError, CorpusManifest, CorpusWriter};
use crate::record::QueryRecord;

/// Attributes a masked corpus keeps (numbers and enumerations only).
const KEPT_ATTRS: [&str; 7] = [
    "rows_sent",
    "rows_examined",
    "cpu_ms",
    "queued_ms",
    "block_statements",
    "state",
    "parameters",
];

/// The keyed pseudonym generator.
pub struct Masker {
    /// HMAC-SHA256 already keyed; cloned for every derivation.
    mac: Hmac<Sha256>,
}

/// What a mask run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct MaskReport {
    /// Records read.
    pub records: u64,
    /// Records written masked.
    pub masked: u64,
    /// Literals replaced.
    pub literals: u64,
    /// Records left out because their text could not be tokenized.
    pub left_out: Vec<String>,
}

/// Errors of masking one statement.
#[derive(Debug, thiserror::Error)]
#[error("cannot tokenize the statement: {0}")]
pub struct MaskError(String);

impl Masker {
    /// A masker under `key` (at least 16 bytes).
    pub fn new(key: &[u8]) -> Result<Self, String> {
        if key.len() < 16 {
            return Err(format!("the masking key has {} bytes; use at least 16", key.len()));
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|e| format!("the masking key: {e}"))?;
        Ok(Masker { mac })
    }

    /// `n` pseudo-random bytes for `(domain, text, attempt)`.
    fn stream(&self, domain: &str, text: &str, attempt: u32, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 32);
        let mut block = 0u32;
        while out.len() < n {
            let mut mac = self.mac.clone();
            mac.update(domain.as_bytes());
            mac.update(&[0]);
            mac.update(&attempt.to_le_bytes());
            mac.update(&block.to_le_bytes());
            mac.update(text.as_bytes());
            out.extend_from_slice(&mac.finalize().into_bytes());
            block += 1;
        }
        out.truncate(n);
        out
    }

    /// Derives a pseudonym of `original` (keyed on `key`) with `f` until it
    /// differs from `original`.
    fn distinct(&self, domain: &str, key: &str, original: &str, f: impl Fn(&[u8]) -> String) -> String {
        for attempt in 0..64 {
            let bytes = self.stream(domain, key, attempt, original.len() * 2 + 16);
            let p = f(&bytes);
            if p != original {
                return p;
            }
        }
        // 64 attempts all equal to the original is impossible unless the shape
        // has a single value: fall back to a fixed, different text.
        if original == "1" { "2".into() } else { "1".into() }
    }

    /// A pseudonym for a user, tenant or session name.
    pub fn name(&self, kind: &str, s: &str) -> String {
        let b = self.stream(kind, s, 0, 8);
        format!("{kind}-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
    }

    /// A pseudonym for a record id.
    pub fn id(&self, id: &str) -> String {
        let b = self.stream("id", id, 0, 8);
        format!("m-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
    }

    /// A number of the same shape (sign, digit count, scale, exponent form).
    pub fn number(&self, n: &str) -> String {
        if !n.bytes().any(|b| b.is_ascii_digit()) {
            return n.to_string();
        }
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        self.distinct("num", &digits, n, |bytes| {
            let mut k = 0;
            let mut out = String::with_capacity(n.len());
            let mut leading = true;
            for c in n.chars() {
                if c.is_ascii_digit() {
                    let b = bytes[k];
                    k += 1;
                    // No new leading zeros: `0.5` may stay `0.x`, `123` stays 3 digits.
                    let d = if leading && c != '0' {
                        b'1' + b % 9
                    } else {
                        b'0' + b % 10
                    };
                    out.push(d as char);
                    leading = false;
                } else {
                    if matches!(c, 'e' | 'E') {
                        leading = true;
                    }
                    out.push(c);
                }
            }
            out
        })
    }

    /// A string of the same type: date, time, timestamp, interval, digits, or
    /// letters/digits by class.
    pub fn string(&self, s: &str) -> String {
        if !s.chars().any(char::is_alphanumeric) {
            return s.to_string();
        }
        if s.chars().all(|c| c.is_ascii_digit()) {
            return self.number(s);
        }
        if let Some(p) = self.temporal(s) {
            return p;
        }
        let interval = is_interval(s);
        self.distinct("str", s, s, |bytes| {
            let mut out = String::with_capacity(s.len());
            let mut k = 0;
            let mut next = || {
                let b = bytes[k % bytes.len()];
                k += 1;
                b
            };
            for c in s.chars() {
                if interval && c.is_ascii_alphabetic() {
                    out.push(c);
                } else if c.is_ascii_digit() {
                    out.push((b'0' + next() % 10) as char);
                } else if c.is_ascii_lowercase() {
                    out.push((b'a' + next() % 26) as char);
                } else if c.is_ascii_uppercase() {
                    out.push((b'A' + next() % 26) as char);
                } else if c.is_alphanumeric() {
                    out.push((b'a' + next() % 26) as char);
                } else {
                    out.push(c);
                }
            }
            out
        })
    }

    /// Dates `YYYY-MM-DD`, times `HH:MM:SS[.f]` and timestamps joining them (with
    /// `T` or a space, and any zone suffix kept).
    fn temporal(&self, s: &str) -> Option<String> {
        let b = s.as_bytes();
        let is_date = |x: &[u8]| {
            x.len() >= 10
                && x[..4].iter().all(u8::is_ascii_digit)
                && x[4] == b'-'
                && x[5..7].iter().all(u8::is_ascii_digit)
                && x[7] == b'-'
                && x[8..10].iter().all(u8::is_ascii_digit)
        };
        let is_time = |x: &[u8]| {
            x.len() >= 8
                && x[..2].iter().all(u8::is_ascii_digit)
                && x[2] == b':'
                && x[3..5].iter().all(u8::is_ascii_digit)
                && x[5] == b':'
                && x[6..8].iter().all(u8::is_ascii_digit)
        };
        let (date, time_at) = if is_date(b) {
            (
                true,
                if b.len() > 11 && matches!(b[10], b' ' | b'T') && is_time(&b[11..]) {
                    Some(11)
                } else {
                    None
                },
            )
        } else if is_time(b) {
            (false, Some(0))
        } else {
            return None;
        };
        if date && time_at.is_none() && b.len() != 10 {
            return None;
        }
        Some(self.distinct("time", s, s, |bytes| {
            let mut out = String::with_capacity(s.len());
            if date {
                let days = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % 24_837; // 1970..2037
                let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
                    + chrono::Duration::days(i64::from(days));
                out.push_str(&d.format("%Y-%m-%d").to_string());
            }
            if let Some(t) = time_at {
                if date {
                    out.push(s.as_bytes()[10] as char);
                }
                let secs = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) % 86_400;
                out.push_str(&format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60));
                // Fraction digits masked, any zone suffix kept.
                let rest = &s[t + 8..];
                // The fraction is the leading run of `.` and digits.
                let mut in_fraction = true;
                for (k, c) in rest.chars().enumerate() {
                    in_fraction &= c == '.' || c.is_ascii_digit();
                    if in_fraction && c.is_ascii_digit() {
                        out.push((b'0' + bytes[8 + k % 16] % 10) as char);
                    } else {
                        out.push(c);
                    }
                }
            }
            out
        }))
    }

    /// Masks every literal of one statement; comments are dropped. Returns the text
    /// and the number of literals replaced.
    pub fn mask_sql(&self, sql: &str, dialect: &dyn Dialect) -> Result<(String, u64), MaskError> {
        let tokens = Tokenizer::new(dialect, sql)
            .with_unescape(false)
            .tokenize()
            .map_err(|e| MaskError(e.to_string()))?;
        let mut out = String::with_capacity(sql.len());
        let mut n = 0;
        for t in tokens {
            let masked = match t {
                Token::Number(s, long) => Token::Number(self.number(&s), long),
                Token::SingleQuotedString(s) => Token::SingleQuotedString(self.string(&s)),
                Token::DoubleQuotedString(s) => Token::DoubleQuotedString(self.string(&s)),
                Token::TripleSingleQuotedString(s) => Token::TripleSingleQuotedString(self.string(&s)),
                Token::TripleDoubleQuotedString(s) => Token::TripleDoubleQuotedString(self.string(&s)),
                Token::DollarQuotedString(d) => Token::DollarQuotedString(DollarQuotedString {
                    value: self.string(&d.value),
                    tag: d.tag,
                }),
                Token::SingleQuotedByteStringLiteral(s) => Token::SingleQuotedByteStringLiteral(self.string(&s)),
                Token::DoubleQuotedByteStringLiteral(s) => Token::DoubleQuotedByteStringLiteral(self.string(&s)),
                Token::TripleSingleQuotedByteStringLiteral(s) => {
                    Token::TripleSingleQuotedByteStringLiteral(self.string(&s))
                }
                Token::TripleDoubleQuotedByteStringLiteral(s) => {
                    Token::TripleDoubleQuotedByteStringLiteral(self.string(&s))
                }
                Token::SingleQuotedRawStringLiteral(s) => Token::SingleQuotedRawStringLiteral(self.string(&s)),
                Token::DoubleQuotedRawStringLiteral(s) => Token::DoubleQuotedRawStringLiteral(self.string(&s)),
                Token::TripleSingleQuotedRawStringLiteral(s) => {
                    Token::TripleSingleQuotedRawStringLiteral(self.string(&s))
                }
                Token::TripleDoubleQuotedRawStringLiteral(s) => {
                    Token::TripleDoubleQuotedRawStringLiteral(self.string(&s))
                }
                Token::NationalStringLiteral(s) => Token::NationalStringLiteral(self.string(&s)),
                Token::QuoteDelimitedStringLiteral(mut q) => {
                    q.value = self.string(&q.value);
                    Token::QuoteDelimitedStringLiteral(q)
                }
                Token::NationalQuoteDelimitedStringLiteral(mut q) => {
                    q.value = self.string(&q.value);
                    Token::NationalQuoteDelimitedStringLiteral(q)
                }
                Token::EscapedStringLiteral(s) => Token::EscapedStringLiteral(self.string(&s)),
                Token::UnicodeStringLiteral(s) => Token::UnicodeStringLiteral(self.string(&s)),
                Token::HexStringLiteral(s) => Token::HexStringLiteral(self.hex(&s)),
                Token::Whitespace(Whitespace::SingleLineComment { .. }) => Token::Whitespace(Whitespace::Newline),
                Token::Whitespace(Whitespace::MultiLineComment(_)) => Token::Whitespace(Whitespace::Space),
                other => {
                    out.push_str(&other.to_string());
                    continue;
                }
            };
            if !matches!(masked, Token::Whitespace(_)) {
                n += 1;
            }
            out.push_str(&masked.to_string());
        }
        Ok((out.trim().to_string(), n))
    }

    fn hex(&self, s: &str) -> String {
        self.distinct("hex", s, s, |bytes| {
            s.chars()
                .enumerate()
                .map(|(k, c)| {
                    if c.is_ascii_hexdigit() {
                        char::from_digit(u32::from(bytes[k % bytes.len()] % 16), 16).unwrap_or('0')
                    } else {
                        c
                    }
                })
                .collect()
        })
    }

    /// The masked copy of one record, or None when its text cannot be tokenized.
    pub fn record(&self, r: &QueryRecord, dialect: &dyn Dialect) -> Result<(QueryRecord, u64), MaskError> {
        let (sql, n) = self.mask_sql(&r.sql, dialect)?;
        let mut m = r.clone();
        m.id = self.id(&r.id);
        m.sql = sql;
        m.user = r.user.as_deref().map(|u| self.name("user", u));
        m.tenant = r.tenant.as_deref().map(|u| self.name("tenant", u));
        m.session = r.session.as_deref().map(|u| self.name("session", u));
        m.attrs.retain(|k, _| KEPT_ATTRS.contains(&k.as_str()));
        Ok((m, n))
    }
}

/// `1 day`, `2 hours 30 minutes`, `-3.5 second`: numbers followed by units.
fn is_interval(s: &str) -> bool {
    const UNITS: [&str; 16] = [
        "year",
        "month",
        "week",
        "day",
        "hour",
        "minute",
        "min",
        "second",
        "sec",
        "millisecond",
        "ms",
        "microsecond",
        "us",
        "decade",
        "century",
        "mon",
    ];
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return false;
    }
    words.chunks(2).all(|w| {
        let unit = w[1].to_ascii_lowercase();
        let unit = unit.strip_suffix('s').unwrap_or(&unit);
        w[0].trim_start_matches(['+', '-']).parse::<f64>().is_ok() && UNITS.contains(&unit)
    })
}

/// Writes a masked copy of the corpus at `src` to `out`, streaming.
pub fn mask_corpus(src: &Path, out: &Path, key: &[u8]) -> Result<MaskReport, CorpusError> {
    let masker = Masker::new(key).map_err(|message| CorpusError::Invalid {
        path: src.to_path_buf(),
        message,
    })?;
    let (manifest, records) = Corpus::stream(src)?;
    let dialect = crate::analysis::dialect(&manifest.dialect);
    let mut m = CorpusManifest::new(format!("{} (masked)", manifest.name));
    m.dialect = manifest.dialect.clone();
    m.description = Some(format!(
        "literals of `{}` replaced by keyed pseudonyms (sqlflight corpus mask)",
        manifest.name
    ));
    let mut w = CorpusWriter::create(out, m)?;
    w.set_dialect(&manifest.dialect);
    if let Some(schema) = &manifest.schema {
        let p = src.join(schema);
        let ddl = crate::ingest::read_utf8(&p)?;
        let mut masked = String::new();
        for st in crate::split::split_statements(&ddl, crate::split::SplitOptions::default()) {
            let (s, _) = masker.mask_sql(&st.text, &*dialect).map_err(|e| CorpusError::Invalid {
                path: p.clone(),
                message: format!("line {}: {e}", st.line),
            })?;
            masked.push_str(&s);
            masked.push_str(";\n");
        }
        w.set_schema(&masked)?;
    }
    let mut report = MaskReport::default();
    for rec in records {
        let (_, rec) = rec?;
        report.records += 1;
        match masker.record(&rec, &*dialect) {
            Ok((m, n)) => {
                report.literals += n;
                report.masked += 1;
                w.write(&m)?;
            }
            Err(_) => report.left_out.push(rec.id.clone()),
        }
    }
    w.finish()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sqlparser::dialect::{GenericDialect, MySqlDialect, PostgreSqlDialect};

    fn m() -> Masker {
        Masker::new(b"0123456789abcdef-test-key").unwrap()
    }

    #[test]
    fn types_survive_and_equal_literals_agree() {
        let m = m();
        let (sql, n) = m
            .mask_sql(
                "SELECT * FROM t JOIN u ON t.a = 42 -- secret comment\n WHERE u.b = '42' AND d = DATE '2024-03-15' \
                 AND ts < '2024-03-15 10:11:12.345+00' AND x LIKE 'Ab%_c' AND i > now() - INTERVAL '3 days' \
                 AND f = -1.25e3 AND /* hint */ h = X'DEADbeef' AND q = $1 AND z IS NULL",
                &PostgreSqlDialect {},
            )
            .unwrap();
        assert_eq!(n, 8, "{sql}");
        assert!(!sql.contains("secret") && !sql.contains("hint"), "{sql}");
        let p42 = m.number("42");
        assert_eq!(p42.len(), 2);
        assert!(
            sql.contains(&format!("t.a = {p42}")) && sql.contains(&format!("u.b = '{p42}'")),
            "{sql}"
        );
        let date = sql.split("DATE '").nth(1).unwrap().split('\'').next().unwrap();
        assert!(chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(), "{date}");
        assert_ne!(date, "2024-03-15");
        let ts = sql.split("ts < '").nth(1).unwrap().split('\'').next().unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(&ts[..23], "%Y-%m-%d %H:%M:%S%.3f").is_ok(),
            "{ts}"
        );
        assert!(ts.ends_with("+00"));
        assert!(sql.contains("days'"), "{sql}");
        let like = sql.split("LIKE '").nth(1).unwrap().split('\'').next().unwrap();
        assert_eq!(like.len(), 5);
        assert_eq!(&like[2..4], "%_");
        assert!(like[..1].chars().all(|c| c.is_ascii_uppercase()));
        assert!(sql.contains("$1") && sql.contains("IS NULL"));
        // The masked text is valid SQL of the same shape.
        let a = crate::fingerprint::ast_fingerprint(&sql, &PostgreSqlDialect {});
        assert!(a.is_some(), "{sql}");
    }

    #[test]
    fn mysql_strings_and_escapes() {
        let (sql, _) = m()
            .mask_sql(
                "select * from t where a = \"dq secret\" and b = 'it\\'s' and c = 'x''y'",
                &MySqlDialect {},
            )
            .unwrap();
        assert!(!sql.contains("secret"), "{sql}");
        assert!(Parser::parse_sql(&MySqlDialect {}, &sql).is_ok(), "{sql}");
    }

    use sqlparser::parser::Parser;

    proptest! {
        #[test]
        fn never_emits_a_planted_secret(secret in "[a-zA-Z][a-zA-Z0-9]{5,20}", num in 100_000u64..u64::MAX / 2,
                                       day in 0u32..20_000) {
            let date = (chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap() + chrono::Duration::days(i64::from(day)))
                .format("%Y-%m-%d").to_string();
            let sql = format!(
                "select '{secret}', {num}, '{num}', DATE '{date}', 'x {secret} y', $${secret}$$ from t \
                 where a in ('{secret}', {num}) /* {secret} */ -- {num}\n"
            );
            let (out, _) = m().mask_sql(&sql, &PostgreSqlDialect {}).unwrap();
            prop_assert!(!out.contains(&secret), "{}", out);
            prop_assert!(!out.contains(&num.to_string()), "{}", out);
            prop_assert!(!out.contains(&date), "{}", out);
            let (again, _) = m().mask_sql(&sql, &GenericDialect {}).unwrap();
            prop_assert!(!again.contains(&secret));
        }

        #[test]
        fn pseudonyms_keep_shape(n in "[1-9][0-9]{0,12}(\\.[0-9]{1,4})?") {
            let p = m().number(&n);
            prop_assert_eq!(p.len(), n.len());
            prop_assert_ne!(&p, &n);
            prop_assert_eq!(p.find('.'), n.find('.'));
            prop_assert!(!p.starts_with('0'));
        }
    }
}
