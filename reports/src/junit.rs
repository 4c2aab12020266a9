//! JUnit XML: one test case per query, grouped by template (the class name),
//! regressions as failures, skips as skipped.

use std::fmt::Write;

use sqlflight_diffing::{OutcomeClass, SideResult};

use crate::RunView;

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
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total: usize = runs.iter().map(|r| r.outcomes.len()).sum();
    let failures: usize = runs
        .iter()
        .map(|r| r.outcomes.iter().filter(|o| o.is_regression()).count())
        .sum();
    let _ = writeln!(
        x,
        "<testsuites name=\"sqlflight\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\">"
    );
    for r in runs {
        let m = &r.manifest;
        let fails = r.outcomes.iter().filter(|o| o.is_regression()).count();
        let skips = r.outcomes.iter().filter(|o| o.class == OutcomeClass::Skipped).count();
        let mut outcomes: Vec<_> = r.outcomes.iter().collect();
        outcomes.sort_by(|a, b| (&a.template_id, &a.query_id).cmp(&(&b.template_id, &b.query_id)));
        let _ = writeln!(
            x,
            "  <testsuite name=\"{} {}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skips}\" timestamp=\"{}\">",
            esc(&m.kind),
            esc(&m.corpus.name),
            r.outcomes.len(),
            esc(m
                .started_at
                .trim_end_matches('Z')
                .split('.')
                .next()
                .unwrap_or(&m.started_at)),
        );
        let _ = writeln!(
            x,
            "    <properties><property name=\"baseline\" value=\"{}\"/><property name=\"candidate\" value=\"{}\"/></properties>",
            esc(&m.baseline.describe()),
            esc(&m.candidate.describe())
        );
        for o in outcomes {
            let secs = match &o.candidate {
                Some(SideResult::Ok { elapsed_us, .. } | SideResult::Error { elapsed_us, .. }) => {
                    *elapsed_us as f64 / 1e6
                }
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
        let _ = writeln!(x, "  </testsuite>");
    }
    x.push_str("</testsuites>\n");
    x
}
