//! `corpus sample`: a smaller corpus that keeps the templates of a large one.
//!
//! One streaming pass keeps a uniform reservoir (Algorithm R) of at most
//! `per_template` records per template, so memory is bounded by templates ×
//! `per_template` however long the input. Then `max` slots are shared out: every
//! template gets one record first (when `max` is smaller than the number of
//! templates, which templates get one is a weighted draw without replacement,
//! Efraimidis–Spirakis), and the remaining slots go to templates in proportion to
//! their weight (statement count, or total observed duration) by the D'Hondt
//! method, never more than a template's reservoir holds. The chosen records keep
//! their corpus order. The same corpus and `--seed` give the same sample.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::corpus::{Corpus, CorpusError, CorpusManifest, CorpusWriter};
use crate::fingerprint::TemplateId;
use crate::record::QueryRecord;

/// What a template's share of the sample is proportional to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weight {
    /// The template's number of records.
    Count,
    /// The template's summed duration (statements without one add nothing).
    Duration,
}

impl std::str::FromStr for Weight {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "count" => Ok(Weight::Count),
            "duration" => Ok(Weight::Duration),
            o => Err(format!("unknown weight `{o}`; expected count or duration")),
        }
    }
}

/// How to sample.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// At most this many records per template.
    pub per_template: Option<usize>,
    /// At most this many records in all.
    pub max: Option<usize>,
    /// How the `max` slots are shared among templates.
    pub weight: Weight,
    /// Seed of the random choice (the same seed, the same sample).
    pub seed: u64,
}

/// What a sample run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SampleReport {
    /// Records in the source corpus.
    pub records_read: u64,
    /// Templates among them.
    pub templates: u64,
    /// Records written to the sample.
    pub selected: u64,
    /// Templates with at least one selected record.
    pub templates_selected: u64,
}

struct Reservoir {
    seen: u64,
    weight: f64,
    items: Vec<(u64, QueryRecord)>,
}

#[derive(PartialEq)]
struct Slot {
    priority: f64,
    template: TemplateId,
}
impl Eq for Slot {}
impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .total_cmp(&other.priority)
            .then_with(|| other.template.cmp(&self.template))
    }
}

/// Samples the corpus at `src` into a new corpus at `out`.
// Long by design: the reservoir pass, the allocation of `max` slots (see the module docs) and the write, which share the reservoirs and the seeded random state.
pub fn sample_corpus(src: &Path, out: &Path, opts: &SampleOptions) -> Result<SampleReport, CorpusError> {
    let cap = match (opts.per_template, opts.max) {
        (Some(p), Some(m)) => p.min(m),
        (Some(p), None) => p,
        (None, Some(m)) => m,
        (None, None) => {
            return Err(CorpusError::Invalid {
                path: src.to_path_buf(),
                message: "give --per-template N and/or --max N".into(),
            });
        }
    };
    if cap == 0 {
        return Err(CorpusError::Invalid {
            path: src.to_path_buf(),
            message: "--per-template and --max must be at least 1".into(),
        });
    }
    let (manifest, records) = Corpus::stream(src)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut res: HashMap<TemplateId, Reservoir> = HashMap::new();
    let mut report = SampleReport::default();
    for (index, rec) in records.enumerate() {
        let (_, rec) = rec?;
        report.records_read += 1;
        let r = res.entry(rec.template()).or_insert_with(|| Reservoir {
            seen: 0,
            weight: 0.0,
            items: Vec::new(),
        });
        r.seen += 1;
        r.weight += match opts.weight {
            Weight::Count => 1.0,
            Weight::Duration => rec.duration_ms.unwrap_or(0.0).max(0.0),
        };
        if r.items.len() < cap {
            r.items.push((index as u64, rec));
        } else {
            let j = rng.random_range(0..r.seen);
            if (j as usize) < cap {
                r.items[j as usize] = (index as u64, rec);
            }
        }
    }
    report.templates = res.len() as u64;
    // Deterministic order of templates for the draws below.
    let mut templates: Vec<TemplateId> = res.keys().copied().collect();
    templates.sort();
    let max = opts.max.unwrap_or(usize::MAX);
    let mut alloc: HashMap<TemplateId, usize> = HashMap::new();
    if max < templates.len() {
        // Weighted draw without replacement: key = ln(u) / w, largest keys win.
        let mut keyed: Vec<(f64, TemplateId)> = templates
            .iter()
            .map(|t| {
                let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                let w = res[t].weight;
                (if w > 0.0 { u.ln() / w } else { f64::NEG_INFINITY }, *t)
            })
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, t) in keyed.into_iter().take(max) {
            alloc.insert(t, 1);
        }
    } else {
        let mut left = max - templates.len();
        let mut heap = BinaryHeap::new();
        for t in &templates {
            alloc.insert(*t, 1);
            if res[t].items.len() > 1 {
                heap.push(Slot {
                    priority: res[t].weight / 2.0,
                    template: *t,
                });
            }
        }
        while left > 0 {
            let Some(top) = heap.pop() else { break };
            let n = alloc.entry(top.template).or_insert(0);
            *n += 1;
            left -= 1;
            let r = &res[&top.template];
            if *n < r.items.len() {
                heap.push(Slot {
                    priority: r.weight / (*n as f64 + 1.0),
                    template: top.template,
                });
            }
        }
    }
    let mut chosen: Vec<(u64, QueryRecord)> = Vec::new();
    for t in &templates {
        let n = alloc.get(t).copied().unwrap_or(0);
        if n == 0 {
            continue;
        }
        report.templates_selected += 1;
        let Some(r) = res.remove(t) else { continue };
        // The reservoir is a uniform sample; take a uniform subset of it.
        let mut items = r.items;
        for k in 0..n.min(items.len()) {
            let j = rng.random_range(k..items.len());
            items.swap(k, j);
        }
        items.truncate(n);
        chosen.extend(items);
    }
    chosen.sort_by_key(|c| c.0);
    let mut m = CorpusManifest::new(format!("{} (sample)", manifest.name));
    m.dialect = manifest.dialect.clone();
    m.description = Some(format!(
        "sample of `{}`: {} of {} records, {} of {} templates (per template {:?}, max {:?}, weight {:?}, seed {})",
        manifest.name,
        chosen.len(),
        report.records_read,
        report.templates_selected,
        report.templates,
        opts.per_template,
        opts.max,
        opts.weight,
        opts.seed
    ));
    let mut w = CorpusWriter::create(out, m)?;
    if let Some(schema) = &manifest.schema {
        let ddl = crate::ingest::read_utf8(&src.join(schema))?;
        w.set_schema(&ddl)?;
    }
    for (_, rec) in &chosen {
        w.write(rec)?;
    }
    report.selected = chosen.len() as u64;
    w.finish()?;
    Ok(report)
}
