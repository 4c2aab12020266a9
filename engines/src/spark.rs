//! Apache Spark from PyPI: each `pyspark` release in local mode in its own
//! virtual environment (provisioned like the other PyPI engines), run by the
//! shipped Python worker (`workers/sqlflight_worker.py spark local[N]`); and any
//! Spark Connect server (a cluster, a Kyuubi gateway, Sail) through the
//! `pyspark-client` package in the same worker (`spark-connect sc://host:port`).
//!
//! Why a Python client for Spark Connect and not a Rust crate: the Rust clients
//! (`spark-connect-rs`, `apache-spark-connect`) pin their own arrow release,
//! which is not the one DataFusion uses here (two arrows compiled, batches not
//! interchangeable without a copy through IPC), and lag the protocol; the
//! reference client is maintained with Spark itself, and the worker protocol
//! already moves Arrow IPC, so the cost is one process per side.
//!
//! What the worker does, and why:
//! - One local session per worker process (one JVM each, about 0.4 GB), bound to
//!   loopback, UI off, a private warehouse and scratch directory; `settings` are
//!   session configuration given before the JVM starts, so static settings
//!   (`spark.driver.memory`) work too.
//! - Compile = the optimized logical plan and the physical plan (with adaptive
//!   execution, the initial plan under `AdaptiveSparkPlan`), from the query
//!   execution, rendered one operator per line as the plan-facts parser reads
//!   them, with expression ids (`#123L`), `plan_id=` and other per-session
//!   counters removed: the same query compiles to the same text in every worker,
//!   whatever ran before. Commands (DDL, `INSERT`) are compiled through `EXPLAIN`,
//!   never run.
//! - Execute = the Arrow collection path (`_collect_as_arrow`, what `toArrow()`
//!   uses on 4.x).
//! - Errors are classified from Spark's exception types and error classes:
//!   `ParseException` = parse, `AnalysisException` = plan, `INTERNAL_ERROR*` =
//!   internal, `OutOfMemoryError` = resource, a cancelled job = timeout, a lost
//!   JVM = crash (the worker exits and the host starts a new one).
//! - Timeouts cancel the running job (a job group per query, cancelled shortly
//!   before the host's deadline), so a slow query does not cost a JVM start.
//!
//! Spark Connect: the server's version is the engine's version; settings are set
//! on the remote session; queries are planned with `explain` (commands through
//! `EXPLAIN`, since `sql()` runs commands eagerly); results arrive as Arrow
//! (`toArrow`); a timeout interrupts the query's tag; a lost connection is a
//! fatal `crash` (a new worker reconnects). Catalog table paths must be readable
//! by the server.
//!
//! Never: download at run time (`spark.jars.packages` and friends are refused),
//! bind beyond loopback, or write protocol frames anywhere but the protocol pipe
//! (the JVM inherits a stdout that points at stderr).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::BuildError;
use crate::python;

/// Worker threads of a local session when the profile does not say (`local[2]`).
pub const DEFAULT_CORES: u32 = 2;
/// Most worker threads a profile may ask for.
pub const MAX_CORES: u32 = 256;

/// Settings that make Spark fetch code at run time: refused.
const DOWNLOADING: [&str; 4] = [
    "spark.jars.packages",
    "spark.jars.repositories",
    "spark.jars.ivy",
    "spark.jars.ivySettings",
];

/// The Python packages a `pyspark` release needs for the Arrow result path,
/// besides itself (measured: 3.5.9 and 4.0.5 both run with the newest pyarrow
/// and NumPy 2 on this path, which never goes through pandas' converters).
pub fn extras(_version: &str) -> Vec<&'static str> {
    vec!["pyarrow", "pandas"]
}

/// `(major, minor)` of a release number such as `3.5.9`.
fn release(version: &str) -> Option<(u32, u32)> {
    let mut it = version.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.chars().take_while(char::is_ascii_digit).collect::<String>();
    Some((major, minor.parse().ok()?))
}

/// Refuses settings that make Spark fetch code at run time.
fn refuse_downloads(profile: &str, settings: &BTreeMap<String, String>) -> Result<(), BuildError> {
    match settings.keys().find(|k| DOWNLOADING.contains(&k.as_str())) {
        Some(key) => Err(BuildError::Setting {
            profile: profile.into(),
            key: key.clone(),
            message: "Spark would download packages at run time; put the jars on the machine and use `spark.jars` with local paths".into(),
        }),
        None => Ok(()),
    }
}

/// Checks the profile and provisions the release: returns the environment's
/// `python` and the worker program.
pub fn provision(
    profile: &str,
    version: &str,
    settings: &BTreeMap<String, String>,
    cores: Option<u32>,
) -> Result<(PathBuf, PathBuf), BuildError> {
    let other = |message: String| BuildError::Other {
        profile: profile.into(),
        message,
    };
    match release(version) {
        Some(v) if v >= (3, 4) => {}
        _ => {
            return Err(other(format!(
                "Spark version `{version}`: sqlflight runs pyspark releases from 3.4 on (e.g. \"3.5.9\", \"4.0.5\")"
            )));
        }
    }
    if let Some(c) = cores
        && !(1..=MAX_CORES).contains(&c)
    {
        return Err(other(format!(
            "`cores: {c}` is out of range; give 1 to {MAX_CORES} worker threads per local session"
        )));
    }
    refuse_downloads(profile, settings)?;
    python::java().map_err(|message| BuildError::Provision {
        profile: profile.into(),
        message,
    })?;
    let provision = |e: python::ProvisionError| BuildError::Provision {
        profile: profile.into(),
        message: e.to_string(),
    };
    let python = python::ensure_venv("pyspark", version, &extras(version)).map_err(provision)?;
    let script = python::worker_script().map_err(provision)?;
    Ok((python, script))
}

/// The `pyspark-client` release used for Spark Connect when the profile does
/// not name one.
pub const DEFAULT_CONNECT_CLIENT: &str = "4.0.4";

/// How to run the worker for a Spark Connect server: the `pyspark-client`
/// environment, the URL checked, the token (if any) handed over in the worker's
/// environment only.
pub fn connect_launch(
    profile: &str,
    url: &str,
    client_version: Option<&str>,
    token_env: Option<&str>,
    settings: &BTreeMap<String, String>,
) -> Result<crate::worker::Launch, BuildError> {
    let other = |message: String| BuildError::Other {
        profile: profile.into(),
        message,
    };
    let rest = url.strip_prefix("sc://").ok_or_else(|| {
        other(format!(
            "url `{url}` is not a Spark Connect URL; write sc://host:port (e.g. sc://spark-gateway:15002)"
        ))
    })?;
    if rest.is_empty() || rest.contains(";token=") || rest.contains("token=") {
        return Err(other(
            "the url must name host:port and carry no token; put the token in an environment variable and name it in `token_env`".into(),
        ));
    }
    let version = client_version.unwrap_or(DEFAULT_CONNECT_CLIENT);
    match release(version) {
        Some(v) if v >= (4, 0) => {}
        _ => {
            return Err(other(format!(
                "client_version `{version}`: the Spark Connect client is the pyspark-client package, 4.0 or newer"
            )));
        }
    }
    refuse_downloads(profile, settings)?;
    let mut env = BTreeMap::new();
    if let Some(name) = token_env {
        let token = std::env::var(name).map_err(|_| {
            other(format!(
                "token_env: the environment variable `{name}` is not set; export it with the server's token"
            ))
        })?;
        env.insert("SQLFLIGHT_SPARK_CONNECT_TOKEN".to_string(), token);
    }
    let provision = |e: python::ProvisionError| BuildError::Provision {
        profile: profile.into(),
        message: e.to_string(),
    };
    let python = python::ensure_venv("pyspark-client", version, &extras(version)).map_err(provision)?;
    let script = python::worker_script().map_err(provision)?;
    Ok(crate::worker::Launch {
        program: python,
        args: vec![script.display().to_string(), "spark-connect".into(), url.to_string()],
        env,
    })
}

/// The environment of a Spark worker: the driver on loopback.
pub fn worker_env() -> BTreeMap<String, String> {
    BTreeMap::from([("SPARK_LOCAL_IP".to_string(), "127.0.0.1".to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_before_3_4_and_downloads_are_refused_before_anything_is_installed() {
        let none = BTreeMap::new();
        for v in ["3.3.4", "2.4.8", "four", ""] {
            let e = provision("p", v, &none, None).unwrap_err().to_string();
            assert!(e.contains("from 3.4 on"), "{e}");
        }
        let e = provision("p", "3.5.9", &none, Some(0)).unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let dl = BTreeMap::from([("spark.jars.packages".to_string(), "x:y:1".to_string())]);
        let e = provision("p", "4.0.5", &dl, None).unwrap_err().to_string();
        assert!(e.contains("download") && e.contains("spark.jars.packages"), "{e}");
    }

    #[test]
    fn connect_urls_without_scheme_or_with_a_token_are_refused() {
        let none = BTreeMap::new();
        for (url, needle) in [
            ("http://h:15002", "sc://host:port"),
            ("sc://", "host:port"),
            ("sc://h:15002/;token=abc", "token_env"),
        ] {
            let e = connect_launch("p", url, None, None, &none).unwrap_err().to_string();
            assert!(e.contains(needle), "{url}: {e}");
            assert!(!e.contains("abc"), "the token is not echoed: {e}");
        }
        let e = connect_launch("p", "sc://h:1", Some("3.5.9"), None, &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("4.0 or newer"), "{e}");
        let e = connect_launch("p", "sc://h:1", None, Some("SQLFLIGHT_TEST_SURELY_UNSET"), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SQLFLIGHT_TEST_SURELY_UNSET"), "{e}");
    }

    #[test]
    fn release_numbers_parse() {
        assert_eq!(release("3.5.9"), Some((3, 5)));
        assert_eq!(release("4.0.0rc1"), Some((4, 0)));
        assert_eq!(release("4"), None);
    }
}
