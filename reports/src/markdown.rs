//! The Markdown summary of a playback run.

use std::fmt::Write;

use sqlflight_diffing::{OutcomeClass, OutcomeRecord, RunManifest};

use crate::RunView;
use crate::tally::{Tally, TallyAcc};

/// Plan changes that share a change signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeGroup {
    /// The change signature (what changed, with ids and numbers removed).
    pub signature: String,
    /// Query ids, sorted.
    pub queries: Vec<String>,
}

/// Groups plan changes by change signature, largest group first.
pub fn change_groups(outcomes: &[OutcomeRecord]) -> Vec<ChangeGroup> {
    let mut acc = TallyAcc::new(false);
    outcomes
        .iter()
        .filter(|o| o.class == OutcomeClass::PlanChanged)
        .for_each(|o| acc.add(o));
    acc.finish(None).change_groups
}

/// Counts per class, in report order, zero counts left out.
pub fn counts(outcomes: &[OutcomeRecord]) -> Vec<(OutcomeClass, usize)> {
    OutcomeClass::ALL
        .iter()
        .map(|c| (*c, outcomes.iter().filter(|o| o.class == *c).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A fenced block that no content can close early.
pub(crate) fn fenced(out: &mut String, lang: &str, body: &str) {
    let mut fence = "```".to_string();
    while body.contains(&fence) {
        fence.push('`');
    }
    let _ = writeln!(out, "{fence}{lang}\n{}\n{fence}", body.trim_end());
}

/// The Markdown heading marker of `level` (1 to 6).
pub fn heading(level: usize) -> String {
    "#".repeat(level.clamp(1, 6))
}

/// Renders the report.
pub fn run_markdown(run: &RunView) -> String {
    run_markdown_with(run, None)
}

/// Renders the report; `flight` is a flight run of the same corpus, whose
/// measurements rank the plan facts by impact.
pub fn run_markdown_with(run: &RunView, flight: Option<&RunView>) -> String {
    run_markdown_at(run, flight, 1)
}

/// Renders the report as a section whose title is a heading of `level` (1: a
/// document of its own; 2: one run among others, as in the demo's report).
pub fn run_markdown_at(run: &RunView, flight: Option<&RunView>, level: usize) -> String {
    markdown_of(&run.manifest, &Tally::of(run, flight), level)
}

/// Renders the report of a run from its [`Tally`], as a section at `level`.
pub fn markdown_of(m: &RunManifest, t: &Tally, level: usize) -> String {
    let mut out = String::new();
    header_section(&mut out, m, t, level);
    outcomes_section(&mut out, t, level + 1);
    t.facts.markdown(&mut out, level + 1);
    regressions_section(&mut out, t, level + 1);
    performance_section(&mut out, m, t, level + 1);
    analysis_markdown(&mut out, &t.analysis, level + 1);
    explained_section(&mut out, t, level + 1);
    other_failures_section(&mut out, t, level + 1);
    skipped_section(&mut out, t, level + 1);
    out
}

/// Title, verdict, the run's identity table, stop and completeness notes.
fn header_section(out: &mut String, m: &RunManifest, t: &Tally, level: usize) {
    let h1 = heading(level);
    let _ = writeln!(out, "{h1} sqlflight {}: {}\n", m.kind, m.corpus.name);
    if t.total == 0 {
        let _ = writeln!(out, "**Verdict: nothing was verified** (0 queries in this run).\n");
    } else if t.regressions == 0 {
        let _ = writeln!(out, "**Verdict: no regressions** in {} queries.\n", t.total);
    } else {
        let _ = writeln!(
            out,
            "**Verdict: {} regression{}** in {} queries.\n",
            t.regressions,
            if t.regressions == 1 { "" } else { "s" },
            t.total
        );
    }
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| corpus | {} ({} queries, hash `{}`) |",
        m.corpus.name,
        m.corpus.queries,
        &m.corpus.hash[..m.corpus.hash.len().min(16)]
    );
    let _ = writeln!(out, "| baseline | {} |", m.baseline.describe());
    let _ = writeln!(out, "| candidate | {} |", m.candidate.describe());
    if let Some(p) = m.partition {
        let _ = writeln!(out, "| partition | {p} ({} queries selected) |", m.selected);
    }
    let _ = writeln!(
        out,
        "| coverage | {} of {} queries verified (not skipped), {} of {} templates exercised |",
        t.verified, m.selected, t.templates_verified, t.templates
    );
    let _ = writeln!(
        out,
        "| run | started {}, finished {}{} |",
        m.started_at,
        m.finished_at.as_deref().unwrap_or("(not finished)"),
        if m.resumed > 0 {
            format!(", resumed {} time(s)", m.resumed)
        } else {
            String::new()
        }
    );
    if let Some(reason) = &m.stopped_reason {
        let _ = writeln!(
            out,
            "\n> **Stopped early:** {reason}. Continue with `--resume --out <this run>`."
        );
    }
    if (t.total as u64) < m.selected {
        let _ = writeln!(
            out,
            "\n> **Incomplete:** {} of {} selected queries have an outcome.",
            t.total, m.selected
        );
    }
}

/// Outcomes per class.
fn outcomes_section(out: &mut String, t: &Tally, level: usize) {
    let h2 = heading(level);
    let _ = writeln!(out, "\n{h2} Outcomes\n\n| class | queries |\n|---|---:|");
    for (c, n) in &t.counts {
        let mark = if c.is_regression() { " ⚠" } else { "" };
        let _ = writeln!(out, "| `{c}`{mark} | {n} |");
    }
}

/// Every regression with both sides and the candidate's error.
fn regressions_section(out: &mut String, t: &Tally, level: usize) {
    let (h2, h3) = (heading(level), heading(level + 1));
    if !t.regression_rows.is_empty() {
        let _ = writeln!(out, "\n{h2} Regressions\n");
        for r in &t.regression_rows {
            let _ = writeln!(
                out,
                "{h3} `{}` {} (template `{}`)\n",
                r.class, r.query_id, r.template_id
            );
            let _ = writeln!(out, "- baseline: {}\n- candidate: {}\n", r.baseline, r.candidate);
            if let Some(e) = &r.error {
                fenced(out, "text", e);
                out.push('\n');
            }
        }
    }
}

/// The corpus-wide timing figures and the ten largest ratios.
fn performance_section(out: &mut String, m: &RunManifest, t: &Tally, level: usize) {
    let h2 = heading(level);
    if m.results_only {
        let _ = writeln!(
            out,
            "\n{h2} Performance\n\nNot measured: a results-only flight (`flight.timing: false`) runs each query once per side and compares results only.\n"
        );
    }
    if let Some(p) = &t.perf.summary {
        let _ = writeln!(out, "\n{h2} Performance\n");
        let _ = writeln!(
            out,
            "{} queries timed: geometric mean ratio **×{:.3}**, total {:.1} ms → {:.1} ms (×{:.3}); {} faster, {} slower, {} same, {} inconclusive, {} too short to time; {} slowdown regression(s) ({} undecided); {} decided at a false discovery rate of 5%.\n",
            p.queries,
            p.geomean_ratio,
            p.total_baseline_ms,
            p.total_candidate_ms,
            p.total_ratio(),
            p.faster,
            p.slower,
            p.same,
            p.inconclusive,
            p.too_short,
            p.regressions,
            p.undecided_slowdowns,
            p.discoveries_fdr05
        );
        let _ = writeln!(
            out,
            "| query | baseline ms | candidate ms | ratio | p | q | verdict | peak memory (B/C) |\n|---|---:|---:|---:|---:|---:|---|---|"
        );
        let med = |s: Option<f64>| s.map_or("-".into(), |x| format!("{x:.1}"));
        let mem = |s: Option<u64>| s.map_or("-".into(), |x| format!("{:.1} MiB", x as f64 / 1048576.0));
        let num = |s: Option<f64>| s.map_or("-".into(), |x| format!("{x:.3}"));
        for r in &t.perf.slowest {
            let _ = writeln!(
                out,
                "| {} | {} | {} | ×{:.2} | {} | {} | {} | {} / {} |",
                r.query_id,
                med(r.baseline_ms),
                med(r.candidate_ms),
                r.ratio,
                num(r.p_value),
                num(r.q_value),
                r.verdict,
                mem(r.baseline_peak),
                mem(r.candidate_peak),
            );
        }
    }
}

/// Nondeterministic, accepted and tolerated outcomes, with why.
fn explained_section(out: &mut String, t: &Tally, level: usize) {
    let h2 = heading(level);
    if !t.explained.is_empty() {
        let _ = writeln!(
            out,
            "\n{h2} Nondeterministic, accepted and tolerated\n\n| query | class | why |\n|---|---|---|"
        );
        for x in &t.explained {
            let _ = writeln!(out, "| {} | `{}` | {} |", x.query_id, x.class, x.why);
        }
    }
}

/// Failures that are not regressions.
fn other_failures_section(out: &mut String, t: &Tally, level: usize) {
    let h2 = heading(level);
    if !t.other_failures.is_empty() {
        let _ = writeln!(
            out,
            "\n{h2} Other failures\n\n| query | class | baseline | candidate |\n|---|---|---|---|"
        );
        for x in &t.other_failures {
            let _ = writeln!(out, "| {} | `{}` | {} | {} |", x.query_id, x.class, x.why, x.candidate);
        }
    }
}

/// Skipped queries grouped by reason (`write_statement: INSERT` → `write_statement`).
fn skipped_section(out: &mut String, t: &Tally, level: usize) {
    let h2 = heading(level);
    if !t.skipped.is_empty() {
        let _ = writeln!(out, "\n{h2} Skipped\n\n| reason | queries | examples |\n|---|---:|---|");
        for (reason, (n, ids)) in &t.skipped {
            let more = if ids.len() < *n {
                format!(", … {} more", n - ids.len())
            } else {
                String::new()
            };
            let _ = writeln!(out, "| `{reason}` | {n} | {}{more} |", ids.join(", "));
        }
    }
}

fn ratio(x: Option<f64>) -> String {
    x.map_or("-".into(), |r| format!("×{r:.2}"))
}

/// The analyses: ratio percentiles, templates and tenants by impact.
fn analysis_markdown(out: &mut String, a: &crate::analysis::Analysis, level: usize) {
    let h = heading(level);
    let hot: Vec<_> = a.by_template.iter().filter(|g| g.regressions > 0).take(10).collect();
    if a.ratios.is_none() && hot.is_empty() && a.by_tenant.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{h} Analysis\n");
    if let Some(r) = &a.ratios {
        let _ = writeln!(
            out,
            "Time ratio candidate/baseline over {} timed queries: p50 ×{:.3}, p90 ×{:.3}, p99 ×{:.3}, max ×{:.3}.\n",
            r.queries, r.p50, r.p90, r.p99, r.max
        );
    }
    let table = |out: &mut String, title: &str, rows: &[&crate::analysis::GroupStats]| {
        let _ = writeln!(
            out,
            "{title}\n\n| {} | queries | regressions | slower | p50 ratio | p90 ratio | regression slowdown | impact |\n|---|---:|---:|---:|---:|---:|---:|---:|",
            if title.contains("tenant") { "tenant" } else { "template" }
        );
        for g in rows {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {:.2} |",
                g.key,
                g.queries,
                g.regressions,
                g.slower,
                ratio(g.p50_ratio),
                ratio(g.p90_ratio),
                ratio(g.regression_slowdown),
                g.impact
            );
        }
        let _ = writeln!(out);
    };
    if !hot.is_empty() {
        table(out, "Top templates by impact (regressions × slowdown):", &hot);
    }
    if !a.by_tenant.is_empty() {
        let rows: Vec<_> = a.by_tenant.iter().take(20).collect();
        let more = a.by_tenant.len().saturating_sub(rows.len());
        let title = if more > 0 {
            format!("Per tenant (top 20 of {} by impact):", a.by_tenant.len())
        } else {
            "Per tenant:".to_string()
        };
        table(out, &title, &rows);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
}
