//! Apache Flink from PyPI: each `apache-flink` release in its own virtual
//! environment (provisioned like the other PyPI engines), run by the shipped
//! Python worker as a local mini-cluster in batch or streaming mode
//! (`workers/sqlflight_worker.py flink batch|streaming N`).
//!
//! What the worker does, and why:
//! - One table environment per worker process (one JVM, 0.5-0.9 GB), started
//!   after the settings arrived, so every Flink option applies (they are given
//!   to the mini-cluster's configuration); the REST endpoint and the Python
//!   gateway are on loopback. The worker starts one long-lived mini-cluster and
//!   submits every job to it (`execution.target: remote` at its address), not a
//!   new mini-cluster per job (Flink's local default): 0.5 s per small job
//!   instead of 1.5 s, and the worker can cancel the running job itself.
//! - Catalog tables are read through Flink's filesystem connector. The package
//!   ships the CSV format but no Parquet reader (that needs Hadoop jars that are
//!   not on PyPI), and Flink's CSV format has no header option; so the host
//!   converts every catalog file (Parquet, or CSV with a header) once to
//!   header-less CSV under `<cache>/data/flink-csv/`, keyed by the file's path,
//!   size and modification time, and declares it with the column types read
//!   from the file (`CREATE TEMPORARY TABLE ... WITH ('connector' =
//!   'filesystem', ...)` among the setup statements). The conversion is in
//!   Rust, not in the worker: the pyarrow that old Flink releases pin cannot
//!   read every Parquet file (1.20's pyarrow 11 has no view types). NULL is
//!   written as `__sqlflight_null__`.
//! - Compile = `EXPLAIN`: the optimized physical plan (the logical side) and the
//!   optimized execution plan (the physical side), one operator per line.
//! - Execute = the collected result as Arrow, built in the JVM by Flink's own
//!   Arrow collection (`ArrowUtils.collectAsPandasDataFrame`, behind
//!   `Table.to_pandas`). In streaming mode the result of a bounded query is a
//!   changelog (`+I`, `-U`, `+U`, `-D`): it is folded there into the final table
//!   (a hash multiset, retractions applied) before it is returned, with no
//!   Python call per changelog row, so a streaming
//!   result compares with a batch result (as a multiset: the worker announces
//!   `unordered_results`). `TIMESTAMP_LTZ` columns are cast to `TIMESTAMP` (the
//!   wall-clock time in the session's time zone): pyflink cannot pickle
//!   `java.time.Instant`.
//! - Errors: `SqlParserException` = parse, `ValidationException` and planner
//!   refusals (`TableException`, e.g. a sort on a non-time attribute in
//!   streaming) = plan, job failures = execution; every message names the mode.
//!   A timeout cancels the job, and the worker is then replaced: the cancel
//!   runs on a second py4j connection (another Java thread), after which the
//!   planner's thread-local Calcite metadata providers can be missing for
//!   later queries. The timer thread never holds the last reference to a py4j
//!   object for the same reason. A lost JVM is a `crash`.
//!
//! Never: bind beyond loopback, or write protocol frames anywhere but the
//! protocol pipe (the JVM inherits a stdout that points at stderr).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::FormatOptions;
use serde::{Deserialize, Serialize};
use sqlflight_corpora::{Catalog, TableSource};

use crate::python;
use crate::{BuildError, server, worker};

/// How a NULL is written in the converted CSV files (`csv.null-literal`).
pub const NULL_LITERAL: &str = "__sqlflight_null__";
/// Bumped when the converted layout changes (old conversions are then redone).
const LAYOUT: &str = "flink-csv-v1";

/// Parallelism of the mini-cluster when the profile does not say.
pub const DEFAULT_PARALLELISM: u32 = 2;
/// Most parallelism a profile may ask for.
pub const MAX_PARALLELISM: u32 = 256;

/// How Flink runs a query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlinkMode {
    /// A bounded batch job: the result is a table.
    #[default]
    Batch,
    /// A streaming job: the result is a changelog, folded into its final table.
    Streaming,
}

impl FlinkMode {
    /// The mode's name in profiles (`batch`, `streaming`).
    pub fn as_str(self) -> &'static str {
        match self {
            FlinkMode::Batch => "batch",
            FlinkMode::Streaming => "streaming",
        }
    }
}

/// `(major, minor)` of a release number such as `2.2.1`.
fn release(version: &str) -> Option<(u32, u32)> {
    let mut it = version.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.chars().take_while(char::is_ascii_digit).collect::<String>();
    Some((major, minor.parse().ok()?))
}

/// Checks the profile and provisions the release: how to run its worker.
pub fn launch(
    profile: &str,
    version: &str,
    mode: FlinkMode,
    parallelism: Option<u32>,
) -> Result<worker::Launch, BuildError> {
    let other = |message: String| BuildError::Other {
        profile: profile.into(),
        message,
    };
    match release(version) {
        Some(v) if v >= (1, 18) => {}
        _ => {
            return Err(other(format!(
                "Flink version `{version}`: sqlflight runs apache-flink releases from 1.18 on (e.g. \"1.20.3\", \"2.2.1\"), the ones published for this Python"
            )));
        }
    }
    let parallelism = parallelism.unwrap_or(DEFAULT_PARALLELISM);
    if !(1..=MAX_PARALLELISM).contains(&parallelism) {
        return Err(other(format!(
            "`parallelism: {parallelism}` is out of range; give 1 to {MAX_PARALLELISM}"
        )));
    }
    python::java().map_err(|message| BuildError::Provision {
        profile: profile.into(),
        message,
    })?;
    let provision = |e: python::ProvisionError| BuildError::Provision {
        profile: profile.into(),
        message: e.to_string(),
    };
    let python: PathBuf = python::ensure_venv("apache-flink", version, &[]).map_err(provision)?;
    let script = python::worker_script().map_err(provision)?;
    Ok(worker::Launch {
        program: python,
        args: vec![
            script.display().to_string(),
            "flink".into(),
            mode.as_str().into(),
            parallelism.to_string(),
        ],
        env: BTreeMap::new(),
    })
}

/// The Flink type of an Arrow column type (what the converted CSV declares).
fn flink_type(t: &DataType) -> Result<String, String> {
    use DataType as D;
    Ok(match t {
        D::Boolean => "BOOLEAN".into(),
        D::Int8 => "TINYINT".into(),
        D::Int16 | D::UInt8 => "SMALLINT".into(),
        D::Int32 | D::UInt16 => "INT".into(),
        D::Int64 | D::UInt32 => "BIGINT".into(),
        D::UInt64 => "DECIMAL(20, 0)".into(),
        D::Float16 | D::Float32 => "FLOAT".into(),
        D::Float64 => "DOUBLE".into(),
        D::Utf8 | D::LargeUtf8 | D::Utf8View => "STRING".into(),
        D::Date32 | D::Date64 => "DATE".into(),
        D::Time32(_) | D::Time64(_) => "TIME".into(),
        D::Decimal32(p, s) | D::Decimal64(p, s) | D::Decimal128(p, s) | D::Decimal256(p, s) if *p <= 38 => {
            format!("DECIMAL({p}, {s})")
        }
        D::Timestamp(unit, tz) => {
            use datafusion::arrow::datatypes::TimeUnit as U;
            let p = match unit {
                U::Second => 0,
                U::Millisecond => 3,
                U::Microsecond => 6,
                U::Nanosecond => 9,
            };
            if tz.is_some() {
                format!("TIMESTAMP_LTZ({p})")
            } else {
                format!("TIMESTAMP({p})")
            }
        }
        D::Dictionary(_, v) => flink_type(v)?,
        other => return Err(format!("column type {other} has no Flink CSV equivalent")),
    })
}

/// A Flink identifier in backquotes.
fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Writes a catalog file as header-less CSV at `out` (through a temporary file,
/// renamed into place) and returns the Flink column list.
fn convert(name: &str, source: &TableSource, out: &Path) -> Result<String, String> {
    let schema = server::table_schema(name, source)?;
    let cols = schema
        .fields()
        .iter()
        .map(|f| Ok(format!("{} {}", quote_ident(f.name()), flink_type(f.data_type())?)))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| format!("{}: {e}", source.path.display()))?;
    if out.is_file() {
        return Ok(cols.join(", "));
    }
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Unique per process and call: both sides of a run convert at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    // Flink's CSV reads `yyyy-MM-dd HH:mm:ss[.f]` timestamps, not ISO 8601's `T`.
    let opts = FormatOptions::default()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    let mut line = String::new();
    let written = server::read_table(name, source, &mut |batch| {
        server::batch_rows_with(batch, &opts, |values| {
            line.clear();
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                match v {
                    None => line.push_str(NULL_LITERAL),
                    Some(v) => {
                        line.push('"');
                        line.push_str(&v.replace('"', "\"\""));
                        line.push('"');
                    }
                }
            }
            line.push('\n');
            w.write_all(line.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
        })
    })
    .and_then(|_| w.flush().map_err(|e| format!("cannot write {}: {e}", tmp.display())))
    .and_then(|_| std::fs::rename(&tmp, out).map_err(|e| format!("cannot write {}: {e}", out.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|_| cols.join(", "))
}

/// The catalog as a Flink session gets it: every data file converted once to
/// header-less CSV under `<cache>/data/flink-csv/` (keyed by the file's path,
/// size and modification time) and declared by a `CREATE TEMPORARY TABLE`
/// through the filesystem connector, run before the catalog's own setup; DDL
/// for the same tables is dropped (the files' types win, as for other engines).
pub fn catalog(profile: &str, catalog: &Catalog) -> Result<Catalog, BuildError> {
    catalog_in(profile, catalog, &python::cache_dir().join("data").join("flink-csv"))
}

/// [`catalog`] with the converted files under `dir`.
pub fn catalog_in(profile: &str, catalog: &Catalog, dir: &Path) -> Result<Catalog, BuildError> {
    let mut setup = Vec::new();
    for (name, source) in &catalog.tables {
        let stamp = server::source_stamp(source);
        let out = dir.join(format!(
            "{}.csv",
            stamp.trim_start_matches("sqlflight:").to_string() + "-" + LAYOUT
        ));
        let cols = convert(name, source, &out).map_err(|message| BuildError::Catalog {
            profile: profile.into(),
            origin: format!("table `{name}`"),
            message,
        })?;
        let path = out.display().to_string().replace('\'', "''");
        setup.push(format!(
            "CREATE TEMPORARY TABLE {} ({cols}) WITH ('connector' = 'filesystem', 'path' = '{path}', \
             'format' = 'csv', 'csv.null-literal' = '{NULL_LITERAL}')",
            quote_ident(name)
        ));
    }
    let ddl = catalog
        .ddl
        .iter()
        .map(|d| sqlflight_corpora::DdlSource {
            origin: d.origin.clone(),
            text: sqlflight_corpora::split::split_statements(&d.text, Default::default())
                .into_iter()
                .filter(|st| !crate::worker::defines_data_table(&st.text, catalog))
                .map(|st| st.text + ";\n")
                .collect(),
        })
        .collect();
    setup.extend(catalog.setup.iter().cloned());
    Ok(Catalog {
        ddl,
        setup,
        tables: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_releases_and_bad_parallelism_are_refused_before_anything_is_installed() {
        for v in ["1.17.2", "1.9.3", "two", ""] {
            let e = launch("p", v, FlinkMode::Batch, None).unwrap_err().to_string();
            assert!(e.contains("from 1.18 on"), "{v}: {e}");
        }
        for p in [0, MAX_PARALLELISM + 1] {
            let e = launch("p", "2.2.1", FlinkMode::Streaming, Some(p))
                .unwrap_err()
                .to_string();
            assert!(e.contains("out of range"), "{e}");
        }
    }

    #[test]
    fn modes_parse_from_config_words() {
        let m: FlinkMode = serde_json::from_str("\"streaming\"").unwrap();
        assert_eq!(m, FlinkMode::Streaming);
        assert!(serde_json::from_str::<FlinkMode>("\"stream\"").is_err());
    }
}
