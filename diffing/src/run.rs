//! The run directory format: `manifest.json` and `outcomes.jsonl`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format name of run manifests.
pub const RUN_FORMAT: &str = "sqlflight-run";
/// Version of the run format this build writes.
pub const RUN_VERSION: u32 = 1;

/// Who an engine is: kind, the version it reports, and the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Engine kind, e.g. `datafusion`.
    pub engine: String,
    /// Version the engine reports about itself.
    pub version: String,
    /// Profile name from the config (`baseline`, `candidate`, ...).
    pub profile: String,
    /// Profile settings.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Optimizer rules the profile disabled.
    #[serde(default)]
    pub disabled_rules: Vec<String>,
}

impl EngineInfo {
    /// `datafusion 55.2.0 (candidate: prefer_hash_join=false, -push_down_limit)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
            .collect();
        parts.extend(self.disabled_rules.iter().map(|r| format!("-{r}")));
        if parts.is_empty() {
            format!("{} {} ({})", self.engine, self.version, self.profile)
        } else {
            format!(
                "{} {} ({}: {})",
                self.engine,
                self.version,
                self.profile,
                parts.join(", ")
            )
        }
    }
}

/// The corpus a run replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusInfo {
    /// The corpus's name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Where the corpus was read from, if from a directory.
    pub path: Option<String>,
    /// Hash of the corpus's queries (resume and partitions must match it).
    pub hash: String,
    /// Queries in the corpus.
    pub queries: u64,
}

/// `K/N`: this run holds the templates whose hash falls in partition K of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSpec {
    /// This partition (0-based).
    pub k: u32,
    /// Of this many.
    pub n: u32,
}

impl std::str::FromStr for PartitionSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("partition `{s}` must be K/N with 1 <= K <= N, e.g. 1/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(PartitionSpec { k, n })
    }
}

impl std::fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// Where a run stands.
pub enum RunStatus {
    /// Started and not finished (still running, or killed: resume it).
    Running,
    /// Stopped before the end on purpose (time budget, Ctrl-C): resume it.
    Stopped,
    /// Every selected query has its outcome.
    Complete,
}

/// `manifest.json` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Always `sqlflight-run`.
    pub format: String,
    /// Version of the run format.
    pub version: u32,
    /// `playback` (or `flight`).
    pub kind: String,
    /// The sqlflight version that wrote it.
    pub tool_version: String,
    /// The corpus replayed.
    pub corpus: CorpusInfo,
    /// The baseline engine as it reported itself.
    pub baseline: EngineInfo,
    /// The candidate engine as it reported itself.
    pub candidate: EngineInfo,
    /// The resolved configuration the run was made with.
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The share of the corpus the run covers.
    pub partition: Option<PartitionSpec>,
    /// Queries of the corpus this run covers (after partitioning).
    pub selected: u64,
    /// Workers the run used.
    pub jobs: usize,
    /// Per-query compile timeout in milliseconds.
    pub timeout_ms: u64,
    /// When the run started (RFC 3339).
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When it finished or stopped (RFC 3339).
    pub finished_at: Option<String>,
    /// Running, stopped or complete.
    pub status: RunStatus,
    /// How many times the run was resumed.
    #[serde(default)]
    pub resumed: u32,
    /// Why the run stopped early (status `stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<StopReason>,
    /// Version of the result digests in a flight run's outcomes
    /// ([`crate::digest::DIGEST_VERSION`]); digests of different versions are never
    /// compared. Absent in playback runs and in flight runs written before it was
    /// recorded (version 1): read it with [`RunManifest::digest_version`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_version: Option<u32>,
    /// Id of the key the flight's digests are sealed with
    /// ([`crate::digest::DigestKey::id`]); absent when unkeyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_key_id: Option<String>,
    /// A results-only flight (`flight.timing: false`): results compared, no timed
    /// runs and no performance verdicts. Gates with performance rules fail on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub results_only: bool,
    /// Outcome counts per class, written when the run completes.
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
}

/// Why a run stopped before its end (status `stopped`); it can be resumed.
///
/// Stored in the manifest as its text (`interrupted`, `time budget of 10s used
/// up`), so runs written before it was typed read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum StopReason {
    /// Ctrl-C (or a stop flag set by the caller): in-flight queries finished.
    Interrupted,
    /// The run's time budget was used up (the budget as people read it).
    Budget(String),
    /// Any other reason, as recorded.
    Other(String),
}

impl StopReason {
    const INTERRUPTED: &str = "interrupted";

    /// The reason for a used-up time budget.
    pub fn budget(budget: std::time::Duration) -> StopReason {
        StopReason::Budget(format!("{budget:?}"))
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Interrupted => f.write_str(Self::INTERRUPTED),
            StopReason::Budget(b) => write!(f, "time budget of {b} used up"),
            StopReason::Other(s) => f.write_str(s),
        }
    }
}

impl From<String> for StopReason {
    fn from(s: String) -> StopReason {
        if s == StopReason::INTERRUPTED {
            return StopReason::Interrupted;
        }
        match s
            .strip_prefix("time budget of ")
            .and_then(|r| r.strip_suffix(" used up"))
        {
            Some(b) => StopReason::Budget(b.to_string()),
            None => StopReason::Other(s),
        }
    }
}

impl From<StopReason> for String {
    fn from(r: StopReason) -> String {
        r.to_string()
    }
}

impl RunManifest {
    /// The result-digest version of a flight run's digests (runs written before
    /// versions were recorded are version 1); `None` for playback runs.
    pub fn digest_version(&self) -> Option<u32> {
        match self.digest_version {
            Some(v) => Some(v),
            None if self.kind == "flight" => Some(1),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StopReason;

    #[test]
    fn stop_reasons_read_back_as_written_and_as_older_runs_wrote_them() {
        let budget = StopReason::budget(std::time::Duration::from_secs(10));
        for r in [
            StopReason::Interrupted,
            budget.clone(),
            StopReason::Other("merged from incomplete runs or missing partitions".into()),
        ] {
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<StopReason>(&text).unwrap(), r, "{text}");
        }
        // The text older manifests hold.
        assert_eq!(
            serde_json::to_string(&budget).unwrap(),
            "\"time budget of 10s used up\""
        );
        let old: StopReason = serde_json::from_str("\"interrupted\"").unwrap();
        assert_eq!(old, StopReason::Interrupted);
    }
}
