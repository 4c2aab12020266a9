//! The YAML config (`sqlflight.yaml`): corpus, catalog, engine profiles, defaults.
//! Errors name the file, line and column, and say what to do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlflight_corpora::bundled::Workload;
use sqlflight_corpora::{Catalog, Corpus, DdlSource, TableFormat, TableSource};
use sqlflight_engines::EngineSpec;

/// The config file as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// A corpus directory, or `bundled:tpch` / `bundled:tpcds`.
    #[serde(default)]
    pub corpus: Option<String>,
    #[serde(default)]
    pub catalog: Option<CatalogSpec>,
    #[serde(default)]
    pub engines: BTreeMap<String, EngineSpec>,
    #[serde(default)]
    pub baseline: Option<String>,
    #[serde(default)]
    pub candidate: Option<String>,
    #[serde(default)]
    pub playback: Option<PlaybackSpec>,
    #[serde(default)]
    pub flight: Option<FlightSpec>,
    /// Cross-engine runs: a query one engine cannot parse or plan is a dialect
    /// failure (`skipped`, reason `dialect_failure`), not a regression.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dialect_failures: bool,
}

/// The `flight:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightSpec {
    /// Timed runs per side after the warm-up.
    #[serde(default)]
    pub repeat: Option<usize>,
    /// `false`: a results-only flight (each query once per side, results
    /// compared, no timed runs or performance verdicts). Default `true`.
    #[serde(default)]
    pub timing: Option<bool>,
    /// Per-query time limit, e.g. `30s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Per-query memory limit, e.g. `2GiB`.
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Queries in flight at once.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Total time budget, e.g. `10m`.
    #[serde(default)]
    pub budget: Option<String>,
    /// Extra baseline runs when results differ.
    #[serde(default)]
    pub reruns: Option<usize>,
    #[serde(default)]
    pub tolerance: Option<sqlflight_diffing::FloatTolerance>,
    #[serde(default)]
    pub perf: Option<sqlflight_flighting::PerfPolicy>,
    /// Known differences file (YAML list of {query_id|template_id, class, reason}).
    #[serde(default)]
    pub accepted: Option<String>,
    /// File holding the secret that seals result digests (the environment
    /// variable `SQLFLIGHT_DIGEST_KEY` takes precedence). Without a key, digests
    /// are sealed unkeyed.
    #[serde(default)]
    pub digest_key_file: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSpec {
    /// DDL file(s); defaults to the corpus's own schema.
    #[serde(default)]
    pub ddl: Option<OneOrMany>,
    #[serde(default)]
    pub setup: Vec<String>,
    #[serde(default)]
    pub tables: BTreeMap<String, TableSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TableSpec {
    Path(String),
    Full {
        path: String,
        #[serde(default)]
        format: Option<TableFormat>,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackSpec {
    #[serde(default)]
    pub jobs: Option<usize>,
    /// Per-compile time limit, e.g. `30s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// More compiles per side of a query whose plans differ, to tell a plan
    /// change from a plan the engine does not determine (0 to 20, default 2).
    #[serde(default)]
    pub plan_rechecks: Option<usize>,
}

/// A config error with its place in the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}\n  fix: {fix}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub fix: String,
}

/// A loaded config: the parsed file plus where it lives and its text (to point
/// at lines in later errors).
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub file: ConfigFile,
    pub path: Option<PathBuf>,
    pub text: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the config: {e}"),
            fix: "check the path given to -c".into(),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = parse_yaml(path, text, fix_for)?;
        let cfg = Config {
            file,
            path: Some(path.to_path_buf()),
            text: text.to_string(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// An error pointing at the first occurrence of `needle` in the file.
    pub fn error_at(&self, needle: &str, message: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        let (line, column) = self
            .text
            .lines()
            .enumerate()
            .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
            .unwrap_or((0, 0));
        self.error_at_place(line, column, message.into(), fix.into())
    }

    /// An error at `line`:`column` of this config's file.
    fn error_at_place(&self, line: usize, column: usize, message: String, fix: String) -> ConfigError {
        ConfigError {
            file: self
                .path
                .as_ref()
                .map_or("<command line>".into(), |p| p.display().to_string()),
            line,
            column,
            message,
            fix,
        }
    }

    /// Resolves a path written in the config relative to the config's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        match &self.path {
            Some(c) if p.is_relative() => c.parent().unwrap_or(Path::new(".")).join(p),
            _ => p.to_path_buf(),
        }
    }

    pub fn timeout(&self) -> Result<Option<Duration>, ConfigError> {
        match self.file.playback.as_ref().and_then(|p| p.timeout.as_deref()) {
            None => Ok(None),
            Some(t) => humantime::parse_duration(t).map(Some).map_err(|e| {
                self.error_at(
                    "timeout",
                    format!("timeout `{t}`: {e}"),
                    "write a duration such as 30s, 2m or 500ms",
                )
            }),
        }
    }
}

/// Parses a byte size: `2GiB`, `512MiB`, `64KiB`, `1GB`, `1000000`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("size `{s}`: expected a number with an optional unit, e.g. 2GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        other => {
            return Err(format!(
                "size `{s}`: unknown unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    Ok((n * mult) as usize)
}

impl Config {
    /// A duration from the config, located on error.
    pub fn duration(&self, key: &str, value: Option<&str>) -> Result<Option<Duration>, ConfigError> {
        match value {
            None => Ok(None),
            Some(t) => humantime::parse_duration(t).map(Some).map_err(|e| {
                self.error_at(
                    key,
                    format!("{key} `{t}`: {e}"),
                    "write a duration such as 30s, 2m or 500ms",
                )
            }),
        }
    }

    /// A byte size from the config, located on error.
    pub fn size(&self, key: &str, value: Option<&str>) -> Result<Option<usize>, ConfigError> {
        match value {
            None => Ok(None),
            Some(t) => parse_size(t)
                .map(Some)
                .map_err(|e| self.error_at(key, e, "write a size such as 512MiB or 2GiB")),
        }
    }
}

/// Reads a known-differences file, with located errors.
pub fn load_accepted(path: &Path) -> Result<Vec<sqlflight_flighting::AcceptedDifference>, ConfigError> {
    load_yaml(
        path,
        "known-differences file",
        "check the path of `flight.accepted` / --accepted",
        |_| "each entry needs `class` and `query_id` or `template_id` (optional `reason`)".into(),
    )
}

/// Reads and parses a YAML file; errors name file, line and column. `what` names
/// the file in a read error, `read_fix` says what to do then, `fix` turns a parse
/// error message into advice.
pub fn load_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    read_fix: &str,
    fix: fn(&str) -> String,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the {what}: {e}"),
        fix: read_fix.into(),
    })?;
    parse_yaml(path, &text, fix)
}

/// Parses YAML text read from `path`, with located errors.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    fix: fn(&str) -> String,
) -> Result<T, ConfigError> {
    check_yaml_shape(path, text)?;
    serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let msg = e.to_string();
        // serde_yaml appends " at line L column C"; the prefix says it already.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        ConfigError {
            file: path.display().to_string(),
            line,
            column,
            fix: fix(&msg),
            message: msg,
        }
    })
}

fn fix_for(msg: &str) -> String {
    if msg.contains("unknown field") {
        "remove or rename the key; the message lists the keys allowed here".into()
    } else if msg.contains("unknown variant") {
        "use one of the values the message lists (engine kinds: datafusion, duckdb, datafusion-python, spark, postgres, mysql, flight-sql, worker)".into()
    } else if msg.contains("invalid type") {
        "give the value the type the message asks for (quote numbers and booleans used as setting values)".into()
    } else {
        "fix the YAML at this place; see the README's Configuration section for the shape".into()
    }
}

/// Loads a corpus named as in the config or on the command line.
pub fn load_corpus(spec: &str, base: &Config) -> anyhow::Result<Corpus> {
    if let Some(name) = spec.strip_prefix("bundled:") {
        let w = Workload::from_name(name)
            .ok_or_else(|| anyhow::anyhow!("unknown bundled corpus `{name}`; bundled corpora are tpch and tpcds"))?;
        return Ok(w.corpus()?);
    }
    let dir = base.resolve(spec);
    Ok(Corpus::open(&dir)?)
}

/// Builds the catalog: DDL from the config (or the corpus's schema), setup, tables.
pub fn build_catalog(cfg: &Config, corpus: &Corpus) -> anyhow::Result<Catalog> {
    let spec = cfg.file.catalog.clone().unwrap_or_default();
    let mut catalog = Catalog {
        setup: spec.setup.clone(),
        ..Default::default()
    };
    let ddl_files: Vec<String> = match &spec.ddl {
        Some(OneOrMany::One(s)) => vec![s.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
        None => Vec::new(),
    };
    if ddl_files.is_empty()
        && let Some(schema) = &corpus.schema
    {
        let origin = corpus
            .schema_path()
            .map_or(format!("<bundled:{}>/schema.sql", corpus.manifest.name), |p| {
                p.display().to_string()
            });
        catalog.ddl.push(DdlSource {
            origin,
            text: schema.clone(),
        });
    }
    for f in ddl_files {
        let p = cfg.resolve(&f);
        let text = sqlflight_corpora::ingest::read_utf8(&p).map_err(|e| {
            cfg.error_at(
                &f,
                format!("catalog DDL: {e}"),
                "point catalog.ddl at a readable .sql file",
            )
        })?;
        catalog.ddl.push(DdlSource {
            origin: p.display().to_string(),
            text,
        });
    }
    for (name, t) in &spec.tables {
        let (path, format) = match t {
            TableSpec::Path(p) => (p.clone(), None),
            TableSpec::Full { path, format } => (path.clone(), *format),
        };
        let resolved = cfg.resolve(&path);
        let format = format.or_else(|| TableFormat::from_path(&resolved)).ok_or_else(|| {
            cfg.error_at(
                &path,
                format!("table `{name}`: cannot tell the format of `{path}`"),
                "write `{ path: ..., format: parquet }` or `format: csv`",
            )
        })?;
        catalog
            .tables
            .insert(name.clone(), TableSource { path: resolved, format });
    }
    Ok(catalog)
}

/// Largest YAML file sqlflight reads (configs, policies, known differences).
pub const MAX_YAML_BYTES: usize = 1 << 20;
/// Deepest nesting of flow collections (`[`/`{`) or indentation levels accepted.
pub const MAX_YAML_DEPTH: usize = 64;

/// Rejects YAML that no config of sqlflight's looks like before the parser sees it:
/// too large, or nested deeper than [`MAX_YAML_DEPTH`] (a parser's time on such
/// input grows with the depth; 200 KB of nesting took 39 s to reject).
pub fn check_yaml_shape(path: &Path, text: &str) -> Result<(), ConfigError> {
    let err = |line: usize, column: usize, message: String, fix: &str| ConfigError {
        file: path.display().to_string(),
        line,
        column,
        message,
        fix: fix.into(),
    };
    if text.len() > MAX_YAML_BYTES {
        return Err(err(
            1,
            1,
            format!("the file is {} bytes; at most {MAX_YAML_BYTES} are read", text.len()),
            "sqlflight's YAML files are small; check that this is the file you meant",
        ));
    }
    let mut indents: Vec<usize> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start_matches([' ', '-']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        while indents.last().is_some_and(|&l| l >= indent) {
            indents.pop();
        }
        indents.push(indent);
        let mut flow = indents.len();
        let mut quote = None;
        for (c, ch) in line.char_indices() {
            match (quote, ch) {
                (None, '\'' | '"') => quote = Some(ch),
                (Some(q), _) if ch == q => quote = None,
                (None, '#') if c == 0 || line[..c].ends_with(' ') => break,
                (None, '[' | '{') => flow += 1,
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            if flow > MAX_YAML_DEPTH {
                return Err(err(
                    i + 1,
                    c + 1,
                    format!("nested more than {MAX_YAML_DEPTH} levels deep"),
                    "sqlflight's YAML files nest a few levels; flatten the structure",
                ));
            }
        }
    }
    Ok(())
}

/// Line and column (1-based) of the key at `path` in block-style YAML text (the
/// last key of the path), or of the first occurrence of the last key, or 0:0.
pub fn locate_key(text: &str, path: &[&str]) -> (usize, usize) {
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start_matches([' ', '-']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        let Some((key, _)) = body.split_once(':') else { continue };
        let key = key.trim().trim_matches(['"', '\'']);
        while stack.last().is_some_and(|&(l, _)| l >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        if stack.len() == path.len() && stack.iter().zip(path).all(|((_, k), p)| k == p) {
            return (i + 1, indent + 1);
        }
    }
    let last = path.last().copied().unwrap_or_default();
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(&format!("{last}:")).map(|c| (i + 1, c + 1)))
        .unwrap_or((0, 0))
}

impl Config {
    /// An error located at the key `path` (e.g. `["flight", "repeat"]`).
    pub fn error_at_key(&self, path: &[&str], message: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        let (line, column) = locate_key(&self.text, path);
        self.error_at_place(line, column, message.into(), fix.into())
    }

    /// An error of a file this config names (its `line` 0: unreadable) is placed
    /// at the key that names the file.
    pub fn locate_unplaced(&self, e: ConfigError, path: &[&str]) -> ConfigError {
        if e.line != 0 {
            return e;
        }
        let key = path.join(".");
        self.error_at_key(
            path,
            format!("{key}: {}", e.message),
            format!("fix the path in `{key}`"),
        )
    }

    /// Range-checks every setting of the file; the first refusal names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = &self.file;
        if let Some(pb) = &f.playback {
            check_count(self, &["playback", "jobs"], pb.jobs, 1, MAX_JOBS)?;
            check_count(self, &["playback", "plan_rechecks"], pb.plan_rechecks, 0, 20)?;
            self.positive_duration(&["playback", "timeout"], pb.timeout.as_deref())?;
        }
        let Some(fl) = &f.flight else { return Ok(()) };
        check_count(self, &["flight", "repeat"], fl.repeat, 1, MAX_REPEAT)?;
        check_count(self, &["flight", "max_concurrency"], fl.max_concurrency, 1, MAX_JOBS)?;
        check_count(self, &["flight", "reruns"], fl.reruns, 0, MAX_RERUNS)?;
        self.positive_duration(&["flight", "timeout"], fl.timeout.as_deref())?;
        self.positive_duration(&["flight", "budget"], fl.budget.as_deref())?;
        if let Some(m) = self.size("memory_limit", fl.memory_limit.as_deref())?
            && m < MIN_MEMORY_LIMIT
        {
            return Err(self.error_at_key(
                &["flight", "memory_limit"],
                format!("memory_limit {m} bytes is below 1 MiB: no query can run in it"),
                "write a size such as 512MiB or 2GiB, or remove the key for no limit",
            ));
        }
        if let Some(t) = &fl.tolerance {
            check_real(self, &["flight", "tolerance", "relative"], t.relative, 0.0, 1.0)?;
            check_real(self, &["flight", "tolerance", "absolute"], t.absolute, 0.0, f64::MAX)?;
        }
        if let Some(p) = &fl.perf {
            check_real(self, &["flight", "perf", "alpha"], p.alpha, f64::MIN_POSITIVE, 0.5)?;
            check_real(self, &["flight", "perf", "floor_ms"], p.floor_ms, 0.0, 3.6e6)?;
            check_real(self, &["flight", "perf", "min_effect"], p.min_effect, 0.0, 100.0)?;
            // The cap bounds each look's work and memory (pairwise differences of
            // the two sides' runs): at most 1,000 runs a side.
            check_real(self, &["flight", "perf", "max_pairs"], p.max_pairs as f64, 1.0, 500.0)?;
            check_real(
                self,
                &["flight", "perf", "max_measure_ms"],
                p.max_measure_ms,
                1.0,
                8.64e7,
            )?;
            check_real(self, &["flight", "perf", "min_time_ms"], p.min_time_ms, 0.0, 3.6e6)?;
            check_real(self, &["flight", "perf", "max_cv"], p.max_cv, 0.0, 100.0)?;
            check_real(
                self,
                &["flight", "perf", "regression_ratio"],
                p.regression_ratio,
                1.0 + f64::EPSILON,
                1e6,
            )?;
            check_real(
                self,
                &["flight", "perf", "memory_ratio"],
                p.memory_ratio,
                1.0 + f64::EPSILON,
                1e6,
            )?;
            check_real(
                self,
                &["flight", "perf", "memory_floor_mb"],
                p.memory_floor_mb,
                0.0,
                1e9,
            )?;
        }
        Ok(())
    }

    fn positive_duration(&self, path: &[&str], value: Option<&str>) -> Result<(), ConfigError> {
        let key = path.last().copied().unwrap_or_default();
        let Some(raw) = value else { return Ok(()) };
        let d = humantime::parse_duration(raw).map_err(|e| {
            self.error_at_key(
                path,
                format!("{key} `{raw}`: {e}"),
                "write a duration such as 30s, 2m or 500ms",
            )
        })?;
        if d < Duration::from_millis(1) {
            return Err(self.error_at_key(
                path,
                format!("{key} `{raw}` is zero: nothing could run in it"),
                "write a positive duration such as 30s, 2m or 500ms",
            ));
        }
        Ok(())
    }
}

/// Most worker threads or queries in flight accepted.
pub const MAX_JOBS: usize = 4096;
/// Most timed runs per side accepted.
pub const MAX_REPEAT: usize = 1000;
/// Most nondeterminism re-runs accepted.
pub const MAX_RERUNS: usize = 100;
/// Smallest per-query memory limit accepted.
pub const MIN_MEMORY_LIMIT: usize = 1 << 20;

fn check_count(cfg: &Config, path: &[&str], v: Option<usize>, min: usize, max: usize) -> Result<(), ConfigError> {
    match v {
        Some(n) if n < min || n > max => Err(cfg.error_at_key(
            path,
            format!("{} is {n}; it must be between {min} and {max}", path.join(".")),
            format!("write a whole number from {min} to {max}, or remove the key for the default"),
        )),
        _ => Ok(()),
    }
}

fn check_real(cfg: &Config, path: &[&str], v: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= min && v <= max {
        return Ok(());
    }
    let shown = |x: f64| {
        if x == f64::MAX {
            "any".to_string()
        } else {
            format!("{x}")
        }
    };
    Err(cfg.error_at_key(
        path,
        format!(
            "{} is {v}; it must be from {} to {}",
            path.join("."),
            shown(min),
            shown(max)
        ),
        "write a number in that range, or remove the key for the default",
    ))
}

/// Flag value parsers with ranges (clap reports the flag and the fix).
pub mod flags {
    use std::time::Duration;

    /// A data scale factor above 0 and at most 1000 (`--scale`).
    pub fn positive_scale(s: &str) -> Result<f64, String> {
        let x: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
        if !(x > 0.0 && x <= 1000.0) {
            return Err(format!(
                "{x} is out of range: write a scale factor above 0 and at most 1000, e.g. 0.01"
            ));
        }
        Ok(x)
    }

    /// A count of 1 or more (`--jobs`, `--repeat`).
    pub fn positive_count(s: &str) -> Result<usize, String> {
        let n: usize = s.parse().map_err(|_| format!("`{s}` is not a whole number"))?;
        if n == 0 || n > super::MAX_JOBS.max(super::MAX_REPEAT) {
            return Err(format!("{n} is out of range: write a whole number from 1 to 4096"));
        }
        Ok(n)
    }

    /// A per-query memory limit of at least 1 MiB (`--memory-limit`).
    pub fn memory_limit(s: &str) -> Result<usize, String> {
        let n = super::parse_size(s)?;
        if n < super::MIN_MEMORY_LIMIT {
            return Err(format!("{n} bytes is below 1 MiB: write a size such as 512MiB or 2GiB"));
        }
        Ok(n)
    }

    /// A record-size limit from 1 KiB to 1 GiB (`--max-record-size`).
    pub fn record_size(s: &str) -> Result<usize, String> {
        let n = super::parse_size(s)?;
        if !(1 << 10..=1 << 30).contains(&n) {
            return Err(format!(
                "{n} bytes is out of range: write a size from 1KiB to 1GiB, e.g. 64MiB"
            ));
        }
        Ok(n)
    }

    /// A duration of at least 1 ms (`--timeout`, `--budget`).
    pub fn positive_duration(s: &str) -> Result<Duration, String> {
        let d = humantime::parse_duration(s).map_err(|e| format!("{e}: write a duration such as 30s or 2m"))?;
        if d < Duration::from_millis(1) {
            return Err("a zero duration lets nothing run: write a positive duration such as 30s".into());
        }
        Ok(d)
    }
}
