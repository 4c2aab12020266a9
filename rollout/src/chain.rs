//! The audit log as a hash chain, verified without the store: each entry's
//! hash covers every column and the previous entry's hash, so an edited,
//! deleted, inserted or reordered entry breaks every link after it. The store
//! writes and reads the rows (`audit`, triggers refuse UPDATE and DELETE);
//! [`verify_chain`] checks any list of them, e.g. an exported log.

use serde::Serialize;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit row as hashed: every column but the hash itself, the previous
/// entry's hash included, so an edited, deleted, inserted or reordered entry
/// breaks every link after it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ChainRow {
    /// The entry's id.
    pub id: i64,
    /// The rollout it belongs to.
    pub rollout_id: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// The phase before.
    pub from_phase: i64,
    /// The phase after.
    pub to_phase: i64,
    /// The status after.
    pub status: String,
    /// Why, when given.
    pub reason: Option<String>,
    /// The evidence JSON exactly as stored.
    pub evidence: Option<String>,
    /// The previous entry's hash (the empty string for the first).
    pub prev_hash: String,
}

impl ChainRow {
    /// blake3 of the row's canonical JSON (fields in declaration order), as hex.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&canonical).to_hex().to_string()
    }
}

/// An exported audit entry: the row and its hash (`rollout audit --export`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ChainEntry {
    /// The row as hashed.
    #[serde(flatten)]
    pub row: ChainRow,
    /// Its hash ([`ChainRow::hash`]).
    pub hash: String,
}

/// What checking the chain found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    /// Entries checked.
    pub entries: usize,
    /// The last entry's hash: compare it with one kept elsewhere to detect a
    /// truncated log.
    pub head: Option<String>,
    /// The first broken link: the entry's position (1-based) and what is wrong.
    pub first_break: Option<(usize, String)>,
}

/// Checks a sequence of entries (from the store or an export): ids follow one
/// another, each entry names its predecessor's hash, each hash matches its row.
pub fn verify_chain(entries: &[ChainEntry]) -> ChainReport {
    let mut prev_hash = GENESIS.to_string();
    let mut prev_id: Option<i64> = None;
    let mut first_break = None;
    for (i, e) in entries.iter().enumerate() {
        let pos = i + 1;
        let problem = if let Some(p) = prev_id
            && e.row.id != p + 1
        {
            Some(if e.row.id > p + 1 {
                format!(
                    "entry {pos} has id {} after id {p}: entries {}..={} were deleted",
                    e.row.id,
                    p + 1,
                    e.row.id - 1
                )
            } else {
                format!(
                    "entry {pos} has id {} after id {p}: entries were reordered or duplicated",
                    e.row.id
                )
            })
        } else if e.row.prev_hash != prev_hash {
            Some(format!(
                "entry {pos} (id {}) does not follow the entry before it: an entry before it was edited, deleted or inserted",
                e.row.id
            ))
        } else if e.row.hash() != e.hash {
            Some(format!(
                "entry {pos} (id {}, {} by {}) was edited after it was written",
                e.row.id, e.row.action, e.row.actor
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            first_break = Some((pos, p));
            break;
        }
        prev_hash = e.hash.clone();
        prev_id = Some(e.row.id);
    }
    ChainReport {
        entries: entries.len(),
        head: entries.last().map(|e| e.hash.clone()),
        first_break,
    }
}
