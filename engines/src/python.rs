//! Python-hosted engines (DuckDB, datafusion-python): each version in its own
//! virtual environment under the cache directory, provisioned on first use
//! (`python3 -m venv` + `pip install PACKAGE==VERSION`) and reused afterwards; and
//! the worker program they run, shipped inside this binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The worker program for Python-hosted engines (docs/worker-protocol.md).
pub const WORKER_PY: &str = include_str!("../workers/sqlflight_worker.py");

/// The cache directory: `$SQLFLIGHT_CACHE`, else `$XDG_CACHE_HOME/sqlflight`, else
/// `~/.cache/sqlflight`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SQLFLIGHT_CACHE") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Path::new(&d).join("sqlflight");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join(".cache").join("sqlflight")
}

/// Why an engine release could not be installed into its virtual environment.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Not a release number.
    #[error("version `{0}` is not a release number (expected something like 1.2.0)")]
    BadVersion(String),
    /// No `python3` to make the environment with.
    #[error("python3 was not found ({0}); install Python 3.9 or newer (Debian: apt install python3 python3-venv)")]
    NoPython(String),
    /// `python3 -m venv` failed.
    #[error(
        "`python3 -m venv {dir}` failed: {stderr}\n  fix: install the venv module (Debian: apt install python3-venv)"
    )]
    Venv {
        /// The environment's directory.
        dir: PathBuf,
        /// What it said.
        stderr: String,
    },
    /// `pip install` failed.
    #[error(
        "`pip install {spec}` failed: {stderr}\n  fix: check that version {version} of {package} exists on PyPI for this Python, and that PyPI is reachable"
    )]
    Pip {
        /// What was installed (`duckdb==1.1.3 pyarrow`).
        spec: String,
        /// The engine's package.
        package: String,
        /// Its version.
        version: String,
        /// What pip said.
        stderr: String,
    },
    /// A file of the environment could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ProvisionError + '_ {
    move |source| ProvisionError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The `python` of a virtual environment holding `package==version` (plus
/// `extra` packages), provisioned on first use. Built in a temporary directory
/// and renamed into place, so a concurrent or interrupted install never leaves a
/// half-built environment where a later run would use it.
pub fn ensure_venv(package: &str, version: &str, extra: &[&str]) -> Result<PathBuf, ProvisionError> {
    let valid = !version.is_empty()
        && version.chars().next().is_some_and(|c| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c));
    if !valid {
        return Err(ProvisionError::BadVersion(version.to_string()));
    }
    let venvs = cache_dir().join("venvs");
    let dir = venvs.join(format!("{package}-{version}"));
    let python = dir.join("bin").join("python");
    if python.exists() {
        return Ok(python);
    }
    std::fs::create_dir_all(&venvs).map_err(io(&venvs))?;
    // Unique per process and per call: two threads of one process (two tests,
    // two engines of one config) may provision the same release at once.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = venvs.join(format!(".{package}-{version}.tmp-{}-{seq}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&tmp)
        .output()
        .map_err(|e| ProvisionError::NoPython(e.to_string()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(ProvisionError::Venv {
            dir: dir.clone(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let spec = format!("{package}=={version}");
    let out = Command::new(tmp.join("bin").join("python"))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", &spec])
        .args(extra)
        .output()
        .map_err(io(&tmp))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(ProvisionError::Pip {
            spec,
            package: package.into(),
            version: version.into(),
            stderr: last_lines(&String::from_utf8_lossy(&out.stderr), 6),
        });
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process finished the same environment first; use theirs.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(python)
}

/// The last `n` lines of `s` (trimmed).
pub(crate) fn last_lines(s: &str, n: usize) -> String {
    let l: Vec<&str> = s.trim().lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

/// Writes the shipped worker program into the cache (once per content) and
/// returns its path.
pub fn worker_script() -> Result<PathBuf, ProvisionError> {
    let dir = cache_dir().join("workers");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let hash = xxhash_rust::xxh3::xxh3_64(WORKER_PY.as_bytes());
    let path = dir.join(format!("sqlflight_worker-{hash:016x}.py"));
    if !path.exists() {
        let tmp = dir.join(format!(
            ".worker-{}-{:?}.tmp",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&tmp, WORKER_PY).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    Ok(path)
}

/// Checks once per process that a Java runtime starts (`$JAVA_HOME/bin/java`,
/// else `java` on the path); the error names the Debian package.
pub fn java() -> Result<(), String> {
    static CHECK: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    CHECK
        .get_or_init(|| {
            let java = std::env::var_os("JAVA_HOME")
                .map(|h| PathBuf::from(h).join("bin").join("java"))
                .unwrap_or_else(|| "java".into());
            let fix = "Spark and Flink need a Java 17 runtime: install Debian's openjdk-17-jre-headless \
                       (apt install openjdk-17-jre-headless) or set JAVA_HOME";
            match Command::new(&java).arg("-version").output() {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "`{} -version` failed: {}\n  fix: {fix}",
                    java.display(),
                    last_lines(&String::from_utf8_lossy(&o.stderr), 3)
                )),
                Err(e) => Err(format!("cannot run `{}`: {e}\n  fix: {fix}", java.display())),
            }
        })
        .clone()
}
