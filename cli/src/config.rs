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
        Ok(Config {
            file,
            path: Some(path.to_path_buf()),
            text: text.to_string(),
        })
    }

    /// An error pointing at the first occurrence of `needle` in the file.
    pub fn error_at(&self, needle: &str, message: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        let (line, column) = self
            .text
            .lines()
            .enumerate()
            .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
            .unwrap_or((0, 0));
        ConfigError {
            file: self
                .path
                .as_ref()
                .map_or("<command line>".into(), |p| p.display().to_string()),
            line,
            column,
            message: message.into(),
            fix: fix.into(),
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
        "use one of the values the message lists (engine kinds: datafusion, duckdb, datafusion-python, worker)".into()
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
