//! The HTML report: one self-contained file (inline CSS, SVG and a little
//! JavaScript; no network, no external assets) with an outcome breakdown chart, a
//! candidate-vs-baseline latency scatter (log scales, diagonal, regressions
//! highlighted), a ratio histogram, a sortable and filterable table of queries,
//! and side-by-side plan diffs. Large runs are paginated: the table embeds up to
//! [`TABLE_ROWS`] regressions and as many other queries, and says so.

use std::fmt::Write;

use sqlflight_diffing::{OutcomeClass, RunManifest};

use crate::RunView;
use crate::tally::Tally;

pub use crate::tally::{SCATTER_POINTS, TABLE_ROWS};

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:22px}h2{margin-top:28px;font-size:17px}\
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{cursor:pointer;background:#f4f4f4}.reg{color:#b00020;font-weight:600}.ok{color:#1b5e20}\
.diff td{font:12px/1.3 monospace;white-space:pre;border:none;padding:0 6px}.del{background:#fdd}.add{background:#dfd}\
svg text{font:11px sans-serif}#filter{padding:4px;width:320px}.meta td{border:none;padding:1px 8px}";

const SCRIPT: &str = r##"
(function(){
  var t=document.getElementById('queries'); if(!t) return;
  var f=document.getElementById('filter');
  function apply(){var q=f.value.toLowerCase();var n=0;
    Array.prototype.forEach.call(t.tBodies[0].rows,function(r){var show=r.textContent.toLowerCase().indexOf(q)>=0;r.style.display=show?'':'none';if(show)n++;});
    document.getElementById('shown').textContent=n;}
  f.addEventListener('input',apply);
  Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){th.addEventListener('click',function(){
    var rows=Array.prototype.slice.call(t.tBodies[0].rows);var asc=th.getAttribute('data-asc')!=='1';
    rows.sort(function(a,b){var x=a.cells[i].getAttribute('data-v')||a.cells[i].textContent,y=b.cells[i].getAttribute('data-v')||b.cells[i].textContent;
      var nx=parseFloat(x),ny=parseFloat(y);var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});
    rows.forEach(function(r){t.tBodies[0].appendChild(r);});th.setAttribute('data-asc',asc?'1':'0');});});
  var m=location.hash.match(/filter=([^&]*)/); if(m){f.value=decodeURIComponent(m[1]);}
  apply();
})();
"##;

fn bar_chart(out: &mut String, counts: &[(OutcomeClass, usize)]) {
    let max = counts.iter().map(|c| c.1).max().unwrap_or(1).max(1) as f64;
    let h = 22 * counts.len() + 10;
    let _ = write!(
        out,
        r##"<svg id="breakdown" width="620" height="{h}" role="img" aria-label="outcomes per class">"##
    );
    for (i, (c, n)) in counts.iter().enumerate() {
        let y = 5 + i * 22;
        let w = (*n as f64 / max * 400.0).max(1.0);
        let color = if c.is_regression() { "#d32f2f" } else { "#5c8ac7" };
        let _ = write!(
            out,
            r##"<text x="0" y="{}">{}</text><rect class="bar" x="170" y="{y}" width="{w:.1}" height="16" fill="{color}"><title>{} {}</title></rect><text x="{:.1}" y="{}">{n}</text>"##,
            y + 12,
            c.as_str(),
            c.as_str(),
            n,
            175.0 + w,
            y + 12
        );
    }
    out.push_str("</svg>");
}

fn scatter(out: &mut String, t: &Tally) {
    let pts = &t.scatter;
    if pts.is_empty() {
        out.push_str("<p>No timings (playback runs compile only).</p>");
        return;
    }
    let total = t.timed;
    if pts.len() < total {
        let _ = write!(
            out,
            "<p>{} of {total} timed queries plotted (every regression up to {}, then an even sample).</p>",
            pts.len(),
            SCATTER_POINTS / 2
        );
    }
    let lo = pts
        .iter()
        .map(|p| p.baseline_ms.min(p.candidate_ms))
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let hi = pts
        .iter()
        .map(|p| p.baseline_ms.max(p.candidate_ms))
        .fold(0.0, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let (size, pad) = (420.0, 40.0);
    let pos = |v: f64| pad + (v.log10() - lo) / (hi - lo) * size;
    let _ = write!(
        out,
        r##"<svg id="scatter" width="{w}" height="{w}" role="img" aria-label="candidate vs baseline median time, log scale"><rect x="{pad}" y="0" width="{size}" height="{size}" fill="none" stroke="#999"/><line x1="{pad}" y1="{size}" x2="{x2}" y2="0" stroke="#aaa" stroke-dasharray="4"/>"##,
        w = size + pad + 10.0,
        x2 = pad + size
    );
    let mut d = lo;
    while d <= hi {
        let p = pos(10f64.powf(d));
        let _ = write!(
            out,
            r##"<text x="{p:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            size + 14.0,
            10f64.powf(d),
            pad - 4.0,
            size - (p - pad) + 4.0,
            10f64.powf(d)
        );
        d += 1.0;
    }
    for p in pts {
        let (b, c) = (p.baseline_ms, p.candidate_ms);
        let color = if p.regression { "#d32f2f" } else { "#5c8ac7" };
        let _ = write!(
            out,
            r##"<circle class="pt" cx="{:.1}" cy="{:.1}" r="{}" fill="{color}" fill-opacity="0.7"><title>{}: {b:.1} ms → {c:.1} ms</title></circle>"##,
            pos(b),
            size - (pos(c) - pad),
            if p.regression { 4 } else { 3 },
            esc(&p.query_id)
        );
    }
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">baseline median ms</text></svg>"##,
        pad + size / 2.0,
        size + 28.0
    );
}

fn histogram(out: &mut String, counts: &[usize]) {
    // Bins of log2(ratio) from 1/8 to 8, quarter steps.
    if counts.iter().all(|&c| c == 0) {
        return;
    }
    let max = *counts.iter().max().unwrap_or(&1) as f64;
    let _ = write!(
        out,
        r##"<svg id="histogram" width="560" height="180" role="img" aria-label="histogram of candidate/baseline time ratios">"##
    );
    for (i, c) in counts.iter().enumerate() {
        let h = *c as f64 / max * 140.0;
        let lo = 2f64.powf(i as f64 / 4.0 - 3.0);
        let color = if lo >= 1.0 { "#e57373" } else { "#81c784" };
        let _ = write!(
            out,
            r##"<rect class="bin" x="{}" y="{:.1}" width="20" height="{h:.1}" fill="{color}"><title>×{lo:.2}–×{:.2}: {c}</title></rect>"##,
            20 + i * 22,
            150.0 - h,
            lo * 2f64.powf(0.25)
        );
    }
    let _ = write!(
        out,
        r##"<text x="20" y="170">×1/8</text><text x="284" y="170">×1</text><text x="530" y="170">×8</text></svg>"##
    );
}

fn side_by_side(out: &mut String, diff: &str) {
    out.push_str(r##"<table class="diff"><tr><th>baseline</th><th>candidate</th></tr>"##);
    let (mut left, mut right): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let flush = |out: &mut String, left: &mut Vec<String>, right: &mut Vec<String>| {
        for i in 0..left.len().max(right.len()) {
            let l = left
                .get(i)
                .map_or(String::new(), |s| format!(r##"<td class="del">{}</td>"##, esc(s)));
            let r = right
                .get(i)
                .map_or(String::new(), |s| format!(r##"<td class="add">{}</td>"##, esc(s)));
            let _ = write!(
                out,
                "<tr>{}{}</tr>",
                if l.is_empty() { "<td></td>".into() } else { l },
                if r.is_empty() { "<td></td>".into() } else { r }
            );
        }
        left.clear();
        right.clear();
    };
    for line in diff.lines() {
        if line.starts_with("---") || line.starts_with("+++") {
            flush(out, &mut left, &mut right);
            if let Some(name) = line.strip_prefix("--- baseline/") {
                let _ = write!(out, r##"<tr><th colspan="2">{} plan</th></tr>"##, esc(name));
            }
        } else if line.starts_with("@@") {
            flush(out, &mut left, &mut right);
            let _ = write!(out, r##"<tr><td colspan="2">…</td></tr>"##);
        } else if let Some(l) = line.strip_prefix('-') {
            left.push(l.to_string());
        } else if let Some(r) = line.strip_prefix('+') {
            right.push(r.to_string());
        } else {
            flush(out, &mut left, &mut right);
            let c = esc(line.strip_prefix(' ').unwrap_or(line));
            let _ = write!(out, "<tr><td>{c}</td><td>{c}</td></tr>");
        }
    }
    flush(out, &mut left, &mut right);
    out.push_str("</table>");
}

/// Renders one run as a self-contained HTML page.
pub fn html_report(run: &RunView) -> String {
    html_report_with(run, None)
}

/// The page; `flight` is a flight run of the same corpus, whose measurements
/// rank the plan facts by impact.
pub fn html_report_with(run: &RunView, flight: Option<&RunView>) -> String {
    html_of(&run.manifest, &Tally::of(run, flight), flight.is_some())
}

/// The page of a run from its [`Tally`]; `with_flight`: the tally's facts carry
/// a flight's measurements.
// Long by design: the page's parts in document order (the charts and tables are functions of their own).
pub fn html_of(m: &RunManifest, t: &Tally, with_flight: bool) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sqlflight {} {}</title><style>{STYLE}</style></head><body>",
        esc(&m.kind),
        esc(&m.corpus.name)
    );
    let _ = write!(out, "<h1>sqlflight {}: {}</h1>", esc(&m.kind), esc(&m.corpus.name));
    let verdict = if t.total == 0 {
        "<p class=\"reg\">Nothing was verified (0 queries).</p>".to_string()
    } else if t.regressions == 0 {
        format!("<p class=\"ok\">No regressions in {} queries.</p>", t.total)
    } else {
        format!(
            "<p class=\"reg\" id=\"verdict\">{} regression(s) in {} queries.</p>",
            t.regressions, t.total
        )
    };
    out.push_str(&verdict);
    let _ = write!(
        out,
        "<table class=\"meta\"><tr><td>baseline</td><td>{}</td></tr><tr><td>candidate</td><td>{}</td></tr><tr><td>corpus</td><td>{} ({} queries)</td></tr><tr><td>run</td><td>{} – {}</td></tr></table>",
        esc(&m.baseline.describe()),
        esc(&m.candidate.describe()),
        esc(&m.corpus.name),
        m.corpus.queries,
        esc(&m.started_at),
        esc(m.finished_at.as_deref().unwrap_or("not finished"))
    );
    out.push_str("<h2>Outcomes</h2>");
    bar_chart(&mut out, &t.counts);
    if let Some(p) = &t.perf.summary {
        let _ = write!(
            out,
            "<h2>Performance</h2><p>{} queries timed: {}.</p>",
            p.queries,
            esc(&p.describe())
        );
        scatter(&mut out, t);
        histogram(&mut out, &t.perf.histogram);
    }
    // The table: regressions first, then others, each up to the page limit.
    let rows = &t.table;
    let _ = write!(
        out,
        "<h2>Queries</h2><p><input id=\"filter\" placeholder=\"filter (query, class, detail…)\"> showing <span id=\"shown\">{}</span> of {} rows{}</p>",
        rows.len(),
        rows.len(),
        if rows.len() < t.total {
            format!(
                " (the page holds up to {TABLE_ROWS} regressions and {TABLE_ROWS} other queries of {}; the full list is in outcomes.jsonl)",
                t.total
            )
        } else {
            String::new()
        }
    );
    out.push_str("<table id=\"queries\"><thead><tr><th>query</th><th>template</th><th>class</th><th>detail</th><th>baseline ms</th><th>candidate ms</th><th>ratio</th></tr></thead><tbody>");
    for x in rows {
        let num = |v: Option<f64>| v.map_or("<td></td>".to_string(), |v| format!("<td data-v=\"{v}\">{v:.2}</td>"));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td>{}{}{}</tr>",
            esc(&x.query_id),
            esc(&x.template_id),
            if x.regression { "reg" } else { "" },
            x.class,
            esc(&x.detail),
            num(x.baseline_ms),
            num(x.candidate_ms),
            num(x.ratio)
        );
    }
    out.push_str("</tbody></table>");
    plan_facts_html(&mut out, &t.facts, with_flight);
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

/// "What changed in the optimizer": the fact table (cosmetic facts collapsed),
/// facts by measured impact when a flight run is given, then one side-by-side
/// diff per fact.
fn plan_facts_html(out: &mut String, t: &crate::facts::FactTable, with_flight: bool) {
    if t.changed == 0 {
        return;
    }
    let real: Vec<_> = t.facts.iter().filter(|r| !r.fact.cosmetic).collect();
    let cosmetic: Vec<_> = t.facts.iter().filter(|r| r.fact.cosmetic).collect();
    let _ = write!(
        out,
        "<h2>What changed in the optimizer</h2><p>{} plan changes: {} named facts, {} cosmetic; {} changes only cosmetic; the top {} facts explain {} of {} changed plans.</p>",
        t.changed,
        real.len(),
        cosmetic.len(),
        t.cosmetic_only,
        crate::facts::TOP.min(real.len()),
        t.covered_by_top,
        t.changed
    );
    if t.empty_folds > 0 {
        let _ = write!(
            out,
            "<p class=\"reg\">{} plan changes replace a scan with an empty result: the engine folds tables it sees as empty. Without data in the catalog these are artifacts; give the tables data to see production plans.</p>",
            t.empty_folds
        );
    }
    if !t.explanation.is_empty() {
        let parts: Vec<String> = t
            .explanation
            .iter()
            .map(|(f, n)| format!("<code>{}</code> ({n})", esc(f)))
            .collect();
        let _ = write!(out, "<p>Explained by: {}.</p>", parts.join(", "));
    }
    let row = |out: &mut String, r: &crate::facts::FactRow| {
        let impact = r.impact.as_ref().map_or(String::new(), |i| {
            format!(
                "<td>{}</td><td>{}</td><td>{}</td>",
                i.slower,
                i.regressions,
                i.median_ratio.map_or("-".into(), |x| format!("×{x:.2}"))
            )
        });
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td data-v=\"{}\">{}</td><td>{}</td>{impact}<td>{}</td></tr>",
            esc(&r.fact.fact),
            r.fact.kind.as_str(),
            r.queries.len(),
            r.queries.len(),
            esc(&r.where_text(3)),
            esc(&r.queries.iter().take(12).cloned().collect::<Vec<_>>().join(", "))
        );
    };
    let head = if with_flight {
        "<th>slower</th><th>regressions</th><th>median ratio</th>"
    } else {
        ""
    };
    if !real.is_empty() {
        let _ = write!(
            out,
            "<table id=\"facts\"><thead><tr><th>fact</th><th>kind</th><th>queries</th><th>where</th>{head}<th>examples</th></tr></thead><tbody>"
        );
        for r in &real {
            row(out, r);
        }
        out.push_str("</tbody></table>");
    }
    if !cosmetic.is_empty() {
        let _ = write!(
            out,
            "<details><summary>{} cosmetic facts (display-only details, ids, logical-only changes)</summary><table><thead><tr><th>fact</th><th>kind</th><th>queries</th><th>where</th>{head}<th>examples</th></tr></thead><tbody>",
            cosmetic.len()
        );
        for r in &cosmetic {
            row(out, r);
        }
        out.push_str("</tbody></table></details>");
    }
    for r in real.iter().take(50) {
        let Some(d) = r.example.as_deref() else {
            continue;
        };
        let _ = write!(
            out,
            "<details><summary><code>{}</code>: side-by-side diff of {}</summary>",
            esc(&r.fact.fact),
            esc(&r.queries[0])
        );
        side_by_side(out, d);
        out.push_str("</details>");
    }
}
