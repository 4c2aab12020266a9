//! JUnit XML: one test case per query in query-id order, its class name the
//! template, regressions as failures, skips as skipped; streamed.

use std::fmt::Write;

use sqlflight_diffing::{OutcomeClass, OutcomeRecord, SideResult};

use crate::tally::Outcomes;
use crate::{ReportError, RunView};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 forbids most control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// Renders the runs as one `<testsuites>` document, a `<testsuite>` per run.
pub fn junit(runs: &[RunView]) -> String {
    let mut buf = Vec::new();
    // Writing into memory cannot fail, nor can reading in-memory runs.
    let _ = write_junit(runs, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// Streams the runs as one `<testsuites>` document, a `<testsuite>` per run
/// and a `<testcase>` per query in query-id order (its class name is the
/// template): one scan of each run for the counts the header needs, one for the
/// cases. Returns the regressions.
pub fn write_junit<R: Outcomes>(runs: &[R], w: &mut dyn std::io::Write) -> Result<usize, ReportError> {
    // (outcomes, regressions, skipped) per run.
    let mut counts = Vec::with_capacity(runs.len());
    for r in runs {
        let (mut fails, mut skips) = (0usize, 0usize);
        r.scan(&mut |o| {
            fails += o.is_regression() as usize;
            skips += (o.class == OutcomeClass::Skipped) as usize;
            Ok(())
        })?;
        counts.push((r.len(), fails, skips));
    }
    let total: usize = counts.iter().map(|c| c.0).sum();
    let failures: usize = counts.iter().map(|c| c.1).sum();
    writeln!(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        w,
        "<testsuites name=\"sqlflight\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\">"
    )?;
    for (r, (n, fails, skips)) in runs.iter().zip(counts) {
        let m = r.manifest();
        writeln!(
            w,
            "  <testsuite name=\"{} {}\" tests=\"{n}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skips}\" timestamp=\"{}\">",
            esc(&m.kind),
            esc(&m.corpus.name),
            esc(m
                .started_at
                .trim_end_matches('Z')
                .split('.')
                .next()
                .unwrap_or(&m.started_at)),
        )?;
        writeln!(
            w,
            "    <properties><property name=\"baseline\" value=\"{}\"/><property name=\"candidate\" value=\"{}\"/></properties>",
            esc(&m.baseline.describe()),
            esc(&m.candidate.describe())
        )?;
        let mut x = String::new();
        r.scan(&mut |o| {
            x.clear();
            case(&mut x, o);
            w.write_all(x.as_bytes())?;
            Ok(())
        })?;
        writeln!(w, "  </testsuite>")?;
    }
    w.write_all(b"</testsuites>\n")?;
    Ok(failures)
}

/// One `<testcase>`.
fn case(x: &mut String, o: &OutcomeRecord) {
    let secs = match &o.candidate {
        Some(SideResult::Ok { elapsed_us, .. } | SideResult::Error { elapsed_us, .. }) => *elapsed_us as f64 / 1e6,
        None => 0.0,
    };
    let _ = write!(
        x,
        "    <testcase classname=\"template.{}\" name=\"{}\" time=\"{secs:.6}\"",
        esc(&o.template_id),
        esc(&o.query_id)
    );
    if o.is_regression() {
        let mut body = String::new();
        if let Some(d) = &o.detail {
            let _ = writeln!(body, "detail: {d}");
        }
        if let Some(SideResult::Error { error_class, error, .. }) = &o.candidate {
            let _ = writeln!(body, "candidate {error_class} error: {error}");
        }
        let perf = o.flight.as_ref().and_then(|f| f.perf.as_ref());
        if let Some(p) = perf {
            let _ = writeln!(body, "time ratio ×{:.3} ({:?})", p.ratio, p.verdict);
        }
        // An undecided slowdown keeps its result class; its failure says so.
        let (kind, detail) = match perf {
            Some(p) if p.undecided_slowdown && !o.class.is_regression() => {
                ("undecided_slowdown".to_string(), Some(p.describe()))
            }
            _ => (o.class.to_string(), o.detail.clone()),
        };
        let _ = writeln!(
            x,
            ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
            kind,
            esc(&format!("{kind} {}", detail.as_deref().unwrap_or(""))),
            esc(&body)
        );
    } else if o.class == OutcomeClass::Skipped {
        let _ = writeln!(
            x,
            ">\n      <skipped message=\"{}\"/>\n    </testcase>",
            esc(o.skip_reason.as_deref().unwrap_or(""))
        );
    } else {
        let _ = writeln!(x, "/>");
    }
}
