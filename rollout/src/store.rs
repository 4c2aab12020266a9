//! The rollout store: SQLite in WAL mode. Every command is one `BEGIN IMMEDIATE`
//! transaction that re-reads the state, applies one [`crate::machine`] transition
//! and appends its audit entry, so concurrent release managers serialize instead of
//! losing updates, and a process killed mid-command leaves the previous state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

pub use crate::chain::{ChainEntry, ChainReport, ChainRow, GENESIS, verify_chain};
use crate::evidence::{Assessment, Finding, assess, idle};
pub use crate::evidence::{CheckOutcome, EvidenceRun, JudgedRule, Verdict, judge};
use crate::machine::{self, Refusal, RouteTable, State, Status, Unmet};
use crate::policy::Policy;

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
/// Hand-rolled rather than a migration crate so the upgrade runs inside one
/// `BEGIN IMMEDIATE` transaction: two processes opening a new store at once cannot
/// both apply it.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE rollouts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    policy TEXT NOT NULL,
    policy_digest TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'rolled_back')),
    phase INTEGER NOT NULL CHECK (phase >= 0),
    phase_entered_ms INTEGER NOT NULL
);
CREATE TABLE approvals (
    rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
    phase INTEGER NOT NULL,
    approver TEXT NOT NULL,
    note TEXT,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, phase, approver)
);
CREATE TABLE evidence (
    rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
    phase INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    gate TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, phase, run_id)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_phase INTEGER NOT NULL,
    to_phase INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    evidence TEXT
);
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    r#"
DROP TRIGGER audit_append_only_update;
DROP TRIGGER audit_append_only_delete;
ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN hash TEXT;
ALTER TABLE approvals ADD COLUMN key_fingerprint TEXT;
ALTER TABLE approvals ADD COLUMN statement TEXT;
ALTER TABLE approvals ADD COLUMN signature TEXT;
CREATE UNIQUE INDEX approvals_one_key_per_phase ON approvals (rollout_id, phase, key_fingerprint)
    WHERE key_fingerprint IS NOT NULL;
"#,
];

/// Run after the migrations that drop them (version 2 chains the entries
/// written before it, then restores the append-only triggers).
const TRIGGERS: &str = r#"
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Why a store command could not be done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed on the store file.
    #[error("{path}: {source}")]
    Sqlite {
        /// The store file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// There is no store at this path.
    #[error("no rollout store at {0}; create one with `sqlflight rollout init --policy FILE`")]
    Missing(PathBuf),
    /// The store was written by a newer sqlflight.
    #[error(
        "{path}: the store has schema version {found}, newer than this sqlflight ({SCHEMA_VERSION}); use a newer sqlflight"
    )]
    TooNew {
        /// The store file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
    /// The store holds no rollout yet.
    #[error("the store has no rollout yet; create one with `sqlflight rollout init --policy FILE`")]
    NoRollout,
    /// `init` while another rollout is still in progress.
    #[error(
        "rollout `{name}` is still in progress (phase {phase} of {phases}, {status}); roll it back or finish it before starting another"
    )]
    InProgress {
        /// The rollout in progress.
        name: String,
        /// Its phase.
        phase: usize,
        /// Its number of phases.
        phases: usize,
        /// Its status.
        status: &'static str,
    },
    /// The state machine refused the command.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// `advance` with conditions unmet (evidence, bake time, approvals).
    #[error("cannot advance:\n{}", .0.iter().map(|u| format!("  - {u}")).collect::<Vec<_>>().join("\n"))]
    Unmet(Vec<Unmet>),
    /// The stored policy cannot be read back.
    #[error("{path}: the stored policy is unreadable: {message}")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An approval was refused (bad signature, unknown key, key already counted).
    #[error("approval refused: {0}")]
    Approval(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// A rollout as stored: its frozen policy and its state.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The rollout's row id.
    pub id: i64,
    /// The policy frozen at `init`.
    pub policy: Policy,
    /// SHA-256 of the frozen policy (hex).
    pub policy_digest: String,
    /// When it was created (ms since the epoch).
    pub created_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// Where it stands.
    pub state: State,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// The entry's id (increasing).
    pub id: i64,
    /// The rollout it belongs to.
    pub rollout_id: i64,
    /// When, RFC 3339.
    pub at: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Who (OS account or approver).
    pub actor: String,
    /// What (`init`, `advance`, `approve`, `check`, `rollback`, ...).
    pub action: String,
    /// The phase before.
    pub from_phase: usize,
    /// The phase after.
    pub to_phase: usize,
    /// The status after.
    pub status: String,
    /// Why, when given.
    pub reason: Option<String>,
    /// Evidence, approval or judgement details.
    pub evidence: serde_json::Value,
}

/// An approval as given to [`Store::approve`].
#[derive(Debug, Clone)]
pub enum Approval {
    /// A statement from [`Store::statement`] and its `ssh-keygen -Y sign` signature (PEM).
    Signed {
        /// The statement signed.
        statement: String,
        /// The `ssh-keygen -Y sign` signature (PEM).
        signature: String,
    },
    /// An unsigned approval by the OS account running the command.
    Unsigned {
        /// The OS account.
        account: String,
    },
}

impl Approval {
    /// An unsigned approval by `account`.
    pub fn unsigned(account: &str) -> Approval {
        Approval::Unsigned {
            account: account.to_string(),
        }
    }
}

/// The store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 (UTC, milliseconds) of a timestamp in ms.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

impl Store {
    /// Opens the store, creating it if `create` and it does not exist.
    pub fn open(path: &Path, create: bool) -> Result<Store> {
        if !create && !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let flags = if create {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let e = sql(path);
        let mut conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(&e)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(&e)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(&e)?;
        // FULL: a committed audit entry survives power loss, not only a crash.
        conn.pragma_update(None, "synchronous", "FULL").map_err(&e)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(&e)?;
        let too_new = |found: i64| StoreError::TooNew {
            path: path.to_path_buf(),
            found,
        };
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(&e)?;
        if v > SCHEMA_VERSION {
            return Err(too_new(v));
        }
        if v < SCHEMA_VERSION {
            // Re-read under the write lock: another process may have migrated.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&e)?;
            let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(&e)?;
            if v > SCHEMA_VERSION {
                return Err(too_new(v));
            }
            for m in &MIGRATIONS[v as usize..] {
                tx.execute_batch(m).map_err(&e)?;
            }
            if v < 2 {
                chain_unchained(&tx, path)?;
                tx.execute_batch(TRIGGERS).map_err(&e)?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(&e)?;
            tx.commit().map_err(&e)?;
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing store for reading only (the HTTP endpoint).
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let s = Store::open(path, false)?;
        s.conn.pragma_update(None, "query_only", "ON").map_err(sql(path))?;
        Ok(s)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes whenever another connection commits (cheap; no table read).
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(sql(&self.path))
    }

    /// The current (newest) rollout, if any.
    pub fn current(&self) -> Result<Option<Rollout>> {
        load_current(&self.conn, &self.path)
    }

    fn current_required(&self) -> Result<Rollout> {
        self.current()?.ok_or(StoreError::NoRollout)
    }

    /// The routing table of the current rollout (everyone on the baseline of
    /// nothing if there is none).
    pub fn route_table(&self) -> Result<Option<RouteTable>> {
        Ok(self.current()?.map(|r| RouteTable::new(&r.policy, &r.state)))
    }

    /// Starts a rollout. Refused while another one is in progress.
    pub fn init(&mut self, policy: &Policy, actor: &str, now: i64) -> Result<Rollout> {
        let path = self.path.clone();
        let e = sql(&path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        if let Some(r) = load_current(&tx, &path)?
            && r.state.status != Status::RolledBack
            && r.state.phase < r.policy.phases.len()
        {
            return Err(StoreError::InProgress {
                name: r.policy.name,
                phase: r.state.phase,
                phases: r.policy.phases.len(),
                status: r.state.status.as_str(),
            });
        }
        let json = serde_json::to_string(policy).map_err(|err| StoreError::Corrupt {
            path: path.clone(),
            message: err.to_string(),
        })?;
        let digest = blake3::hash(json.as_bytes()).to_hex().to_string();
        tx.execute(
            "INSERT INTO rollouts (name, policy, policy_digest, created_ms, created_by, status, phase, phase_entered_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 'active', 0, ?4)",
            params![policy.name, json, digest, now, actor],
        )
        .map_err(&e)?;
        let id = tx.last_insert_rowid();
        audit(
            &tx,
            &path,
            id,
            now,
            actor,
            "init",
            (0, 0),
            Status::Active,
            Some(&format!(
                "{} → {}, {} phases, policy {}",
                policy.baseline.label(),
                policy.candidate.label(),
                policy.phases.len(),
                &digest[..16]
            )),
            serde_json::Value::Null,
        )?;
        let r = load_current(&tx, &path)?.ok_or(StoreError::NoRollout)?;
        tx.commit().map_err(&e)?;
        Ok(r)
    }

    /// Runs `f` on the current rollout inside one immediate transaction; `f`
    /// returns the audit entry to append (or `None` to write nothing). Returns
    /// `f`'s output and the rollout as the transaction left it.
    fn transact<T>(
        &mut self,
        f: impl FnOnce(&mut Rollout) -> Result<(T, Option<PendingAudit>)>,
        extra: impl FnOnce(&rusqlite::Transaction<'_>, &Rollout, &Path, &T) -> Result<()>,
        now: i64,
    ) -> Result<(T, Rollout)> {
        let path = self.path.clone();
        let e = sql(&path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let mut r = load_current(&tx, &path)?.ok_or(StoreError::NoRollout)?;
        let before = r.state.clone();
        let (out, entry) = f(&mut r)?;
        if r.state.status != before.status
            || r.state.phase != before.phase
            || r.state.phase_entered_ms != before.phase_entered_ms
        {
            tx.execute(
                "UPDATE rollouts SET status = ?1, phase = ?2, phase_entered_ms = ?3 WHERE id = ?4",
                params![
                    r.state.status.as_str(),
                    r.state.phase as i64,
                    r.state.phase_entered_ms,
                    r.id
                ],
            )
            .map_err(&e)?;
        }
        extra(&tx, &r, &path, &out)?;
        if let Some(a) = entry {
            audit(
                &tx,
                &path,
                r.id,
                now,
                &a.actor,
                a.action,
                (before.phase, r.state.phase),
                r.state.status,
                a.reason.as_deref(),
                a.evidence,
            )?;
        }
        tx.commit().map_err(&e)?;
        Ok((out, r))
    }

    /// A state change with nothing to write but the state and its audit entry.
    fn change(
        &mut self,
        actor: &str,
        action: &'static str,
        now: i64,
        apply: impl FnOnce(&mut Rollout) -> Result<Option<String>>,
    ) -> Result<Rollout> {
        let ((), r) = self.transact(
            |r| Ok(((), Some(PendingAudit::new(actor, action, apply(r)?)))),
            |_, _, _, _| Ok(()),
            now,
        )?;
        Ok(r)
    }

    /// Records an approval of the next phase. With allowed signers in the
    /// policy, `approval` must be `Signed` and verify against the rollout as
    /// it is inside the transaction (so evidence recorded meanwhile makes an
    /// older statement stale); without, it must be `Unsigned` (the OS account).
    pub fn approve(&mut self, approval: &Approval, note: Option<&str>, now: i64) -> Result<Rollout> {
        let (_, r) = self.transact(
            |r| {
                let (who, key, mode) = match (&r.policy.signers, approval) {
                    (Some(signers), Approval::Signed { statement, signature }) => {
                        let s = crate::trust::verify_approval(signers, r, statement, signature, now)
                            .map_err(StoreError::Approval)?;
                        (s.identity(), Some(s.fingerprint), "signed")
                    }
                    (Some(_), Approval::Unsigned { .. }) => {
                        return Err(StoreError::Approval(
                            "this rollout's policy lists allowed signers: approve with a signed statement (`sqlflight rollout statement`, `ssh-keygen -Y sign`, then `rollout approve --signature FILE`)".into(),
                        ));
                    }
                    (None, Approval::Unsigned { account }) => (account.clone(), None, "UNSIGNED"),
                    (None, Approval::Signed { .. }) => {
                        return Err(StoreError::Approval(
                            "this rollout's policy has no allowed signers, so a signature cannot be checked; approvals are unsigned (by OS account)".into(),
                        ));
                    }
                };
                machine::approve(&r.policy, &mut r.state, &who)?;
                let target = r.state.phase + 1;
                let reason = format!(
                    "{mode} approval of phase {} ({}){}",
                    target,
                    r.policy.phases[target - 1].name,
                    note.map(|n| format!(": {n}")).unwrap_or_default()
                );
                Ok(((target, who.clone(), key), Some(PendingAudit::new(&who, "approve", Some(reason)))))
            },
            |tx, r, path, (target, who, key)| {
                let (statement, signature) = match approval {
                    Approval::Signed { statement, signature } => (Some(statement.as_str()), Some(signature.as_str())),
                    Approval::Unsigned { .. } => (None, None),
                };
                tx.execute(
                    "INSERT INTO approvals (rollout_id, phase, approver, note, at_ms, key_fingerprint, statement, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![r.id, *target as i64, who, note, now, key, statement, signature],
                )
                .map_err(sql(path))?;
                Ok(())
            },
            now,
        )?;
        Ok(r)
    }

    /// The statement an approval of the next phase signs now.
    pub fn statement(&self, now: i64) -> Result<String> {
        let r = self.current_required()?;
        if r.state.status == Status::RolledBack {
            return Err(StoreError::Refused(Refusal::RolledBack));
        }
        if r.state.phase >= r.policy.phases.len() {
            return Err(StoreError::Refused(Refusal::Complete));
        }
        Ok(crate::trust::statement(&r, now))
    }

    /// Enters the next phase, or lists every unmet condition.
    pub fn advance(&mut self, actor: &str, now: i64) -> Result<Rollout> {
        self.change(actor, "advance", now, |r| {
            machine::advance(&r.policy, &mut r.state, now).map_err(StoreError::Unmet)?;
            Ok(Some(format!("entered `{}`", r.policy.phases[r.state.phase - 1].name)))
        })
    }

    /// Pauses the current rollout (nothing advances until `resume`; routes stay).
    pub fn pause(&mut self, actor: &str, reason: Option<&str>, now: i64) -> Result<Rollout> {
        self.change(actor, "pause", now, |r| {
            machine::pause(&mut r.state)?;
            Ok(reason.map(str::to_string))
        })
    }

    /// Resumes a paused rollout.
    pub fn resume(&mut self, actor: &str, reason: Option<&str>, now: i64) -> Result<Rollout> {
        self.change(actor, "resume", now, |r| {
            machine::resume(&mut r.state)?;
            Ok(reason.map(str::to_string))
        })
    }

    /// Routes every tenant to the baseline: one transaction, no conditions.
    /// Idempotent: on a rollout already rolled back it writes nothing and
    /// returns `false` (the rollout as it is says when that happened).
    pub fn rollback(&mut self, actor: &str, reason: &str, now: i64) -> Result<(Rollout, bool)> {
        let (done, r) = self.transact(
            |r| {
                if r.state.status == Status::RolledBack {
                    return Ok((false, None));
                }
                machine::rollback(&mut r.state);
                Ok((
                    true,
                    Some(PendingAudit::new(actor, "rollback", Some(reason.to_string()))),
                ))
            },
            |_, _, _, _| Ok(()),
            now,
        )?;
        Ok((r, done))
    }

    /// When the current rollout was rolled back (the newest rollback entry).
    pub fn rolled_back_at(&self) -> Result<Option<(String, String)>> {
        let Some(r) = self.current()? else { return Ok(None) };
        self.conn
            .query_row(
                "SELECT at_ms, actor FROM audit WHERE rollout_id = ?1 AND action IN ('rollback', 'auto_rollback')
                 ORDER BY id DESC LIMIT 1",
                [r.id],
                |row| Ok((rfc3339(row.get(0)?), row.get(1)?)),
            )
            .optional()
            .map_err(sql(&self.path))
    }

    /// Judges runs against the current rollout: binding (exactly this baseline
    /// and candidate, finished), then the judging gate. Passing runs become
    /// evidence for the next phase; a failing critical rule rolls back when
    /// tenants are on the candidate; a failing non-critical rule pauses.
    /// Runs given together are judged together (as `sqlflight gate` does).
    // Long by design: the steps of one `BEGIN IMMEDIATE` transaction (bind each run, judge, record, act), which must share the transaction.
    pub fn check(&mut self, actor: &str, runs: &[EvidenceRun], now: i64) -> Result<CheckOutcome> {
        // Judge outside the write lock (a gate over big runs takes a while, and a
        // rollback must not wait for it); judge again inside only if the phase
        // moved to another gate in the meantime.
        let pre = self.current_required()?;
        if let Some(why) = idle(&pre) {
            return Ok(CheckOutcome::not_recorded(why));
        }
        let early = assess(&pre.policy, pre.state.phase, runs);
        let ((outcome, _), _) = self.transact(
            |r| {
                if let Some(why) = idle(r) {
                    // Rolled back (or finished) while the runs were judged.
                    return Ok(((CheckOutcome::not_recorded(why), Vec::new()), None));
                }
                let same_gate = r.id == pre.id
                    && r.policy.judging_gate(r.state.phase).map(|g| &g.name) == early.gate.as_ref().map(|g| &g.name);
                let Assessment {
                    gate,
                    mut reasons,
                    judged,
                    run_json,
                    finding,
                } = if same_gate {
                    early
                } else {
                    assess(&r.policy, r.state.phase, runs)
                };
                let verdict = match finding {
                    Finding::Unbound => Verdict::Refused,
                    Finding::CriticalFail if r.state.candidate_live() => Verdict::RolledBack,
                    Finding::CriticalFail => Verdict::Fail,
                    Finding::OtherFail => Verdict::Inconclusive,
                    Finding::Pass => Verdict::Pass,
                };
                for j in judged.iter().filter(|j| !j.rule.pass) {
                    reasons.push(format!(
                        "{}rule `{}`: measured {} over limit {}",
                        if j.critical { "critical " } else { "" },
                        j.rule.rule,
                        j.rule.measured,
                        j.rule.limit
                    ));
                }
                let mut recorded: Vec<(String, String, String, String)> = Vec::new();
                let mut paused = false;
                match verdict {
                    Verdict::RolledBack => machine::rollback(&mut r.state),
                    Verdict::Inconclusive if r.state.candidate_live() && r.state.status == Status::Active => {
                        machine::pause(&mut r.state)?;
                        paused = true;
                    }
                    Verdict::Pass if r.state.status != Status::RolledBack => {
                        let gname = gate.as_ref().map(|g| g.name.clone()).unwrap_or_default();
                        for run in runs {
                            recorded.push((
                                run.id().to_string(),
                                run.view.manifest.kind.clone(),
                                run.path.display().to_string(),
                                gname.clone(),
                            ));
                        }
                    }
                    _ => {}
                }
                let action = match verdict {
                    Verdict::RolledBack => "auto_rollback",
                    _ if paused => "auto_pause",
                    _ => "check",
                };
                let reason = format!(
                    "{}{}",
                    serde_json::to_value(verdict)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    if reasons.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", reasons.join("; "))
                    }
                );
                let out = CheckOutcome {
                    verdict,
                    gate: gate.map(|g| g.name),
                    reasons,
                    rules: judged,
                    runs: run_json.clone(),
                    paused,
                };
                Ok((
                    (out, recorded),
                    Some(PendingAudit {
                        actor: actor.to_string(),
                        action,
                        reason: Some(reason),
                        evidence: serde_json::Value::Array(run_json),
                    }),
                ))
            },
            |tx, r, path, (_, recorded)| {
                for (id, kind, p, gate) in recorded {
                    tx.execute(
                        "INSERT OR IGNORE INTO evidence (rollout_id, phase, run_id, kind, path, gate, at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![r.id, r.state.phase as i64, id, kind, p, gate, now],
                    )
                    .map_err(sql(path))?;
                }
                Ok(())
            },
            now,
        )?;
        Ok(outcome)
    }

    /// The newest `limit` audit entries of every rollout, oldest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let e = sql(&self.path);
        let mut st = self
            .conn
            .prepare(
                "SELECT id, rollout_id, at_ms, actor, action, from_phase, to_phase, status, reason, evidence
                 FROM audit ORDER BY id DESC LIMIT ?1",
            )
            .map_err(&e)?;
        let rows = st
            .query_map([limit as i64], |r| {
                let at_ms: i64 = r.get(2)?;
                let ev: Option<String> = r.get(9)?;
                Ok(AuditEntry {
                    id: r.get(0)?,
                    rollout_id: r.get(1)?,
                    at: rfc3339(at_ms),
                    at_ms,
                    actor: r.get(3)?,
                    action: r.get(4)?,
                    from_phase: r.get::<_, i64>(5)? as usize,
                    to_phase: r.get::<_, i64>(6)? as usize,
                    status: r.get(7)?,
                    reason: r.get(8)?,
                    evidence: ev
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .map_err(&e)?;
        let mut v: Vec<AuditEntry> = rows.collect::<std::result::Result<_, _>>().map_err(&e)?;
        v.reverse();
        Ok(v)
    }

    /// Checks the store's invariants; returns the problems found (empty = sound).
    /// `sqlflight rollout status` reports them; the crash tests rely on it.
    // Long by design: one block per store invariant, in the order they are reported.
    pub fn verify(&self) -> Result<Vec<String>> {
        let e = sql(&self.path);
        let mut problems = Vec::new();
        let ic: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(&e)?;
        if ic != "ok" {
            problems.push(format!("integrity_check: {ic}"));
        }
        let mut st = self
            .conn
            .prepare("SELECT id, policy, status, phase FROM rollouts")
            .map_err(&e)?;
        let rows: Vec<(i64, String, String, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(&e)?
            .collect::<std::result::Result<_, _>>()
            .map_err(&e)?;
        for (id, policy, status, phase) in rows {
            let Ok(policy) = serde_json::from_str::<Policy>(&policy) else {
                problems.push(format!("rollout {id}: unreadable policy"));
                continue;
            };
            if phase as usize > policy.phases.len() {
                problems.push(format!(
                    "rollout {id}: phase {phase} beyond the policy's {}",
                    policy.phases.len()
                ));
            }
            if Status::parse(&status).is_none() {
                problems.push(format!("rollout {id}: unknown status {status}"));
            }
            let (inits, advances): (i64, i64) = self
                .conn
                .query_row(
                    "SELECT COALESCE(SUM(action = 'init'), 0), COALESCE(SUM(action = 'advance'), 0) FROM audit WHERE rollout_id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(&e)?;
            if inits != 1 {
                problems.push(format!("rollout {id}: {inits} init entries in the audit log"));
            }
            if advances != phase {
                problems.push(format!(
                    "rollout {id}: at phase {phase} but the audit log has {advances} advances"
                ));
            }
            // Every phase entered had its approvals, recorded before the advance.
            for p in 1..=phase.min(policy.phases.len() as i64) {
                let need = policy.phases[p as usize - 1].approvals as i64;
                let adv_id: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT id FROM audit WHERE rollout_id = ?1 AND action = 'advance' AND to_phase = ?2",
                        params![id, p],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(&e)?;
                let approved: i64 = self
                    .conn
                    .query_row(
                        "SELECT COUNT(DISTINCT actor) FROM audit WHERE rollout_id = ?1 AND action = 'approve'
                         AND to_phase = ?2 - 1 AND id < ?3",
                        params![id, p, adv_id.unwrap_or(i64::MAX)],
                        |r| r.get(0),
                    )
                    .map_err(&e)?;
                if approved < need {
                    problems.push(format!(
                        "rollout {id}: phase {p} entered with {approved} of {need} approvals"
                    ));
                }
            }
        }
        let (approvals, approve_entries): (i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM approvals), (SELECT COUNT(*) FROM audit WHERE action = 'approve')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&e)?;
        if approvals != approve_entries {
            problems.push(format!(
                "{approvals} approvals but {approve_entries} approve entries in the audit log"
            ));
        }
        let report = self.audit_chain()?;
        if let Some((_, what)) = &report.first_break {
            problems.push(format!("audit chain broken: {what}"));
        }
        let (triggers, seq, last): (i64, i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'
                         AND name IN ('audit_append_only_update', 'audit_append_only_delete')),
                        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0),
                        COALESCE((SELECT MAX(id) FROM audit), 0)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(&e)?;
        if triggers != 2 {
            problems.push("the audit log's append-only triggers were dropped".into());
        }
        if seq != last {
            problems.push(format!(
                "audit chain broken: the log ends at id {last} but ids up to {seq} were written: the newest entries were deleted"
            ));
        }
        Ok(problems)
    }

    /// Every audit entry with its hash, oldest first (`rollout audit --export`).
    pub fn audit_entries(&self) -> Result<Vec<ChainEntry>> {
        read_chain(&self.conn, &self.path)
    }

    /// Checks the whole audit chain.
    pub fn audit_chain(&self) -> Result<ChainReport> {
        Ok(verify_chain(&self.audit_entries()?))
    }
}

struct PendingAudit {
    actor: String,
    action: &'static str,
    reason: Option<String>,
    evidence: serde_json::Value,
}

impl PendingAudit {
    fn new(actor: &str, action: &'static str, reason: Option<String>) -> PendingAudit {
        PendingAudit {
            actor: actor.to_string(),
            action,
            reason,
            evidence: serde_json::Value::Null,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn audit(
    conn: &Connection,
    path: &Path,
    rollout: i64,
    now: i64,
    actor: &str,
    action: &str,
    (from, to): (usize, usize),
    status: Status,
    reason: Option<&str>,
    evidence: serde_json::Value,
) -> Result<()> {
    let e = sql(path);
    let ev = (!evidence.is_null()).then(|| evidence.to_string());
    // The entry's id is chosen here (not by AUTOINCREMENT after the fact) so it
    // is part of the hash: a row moved to another id breaks the chain.
    let (id, prev): (i64, Option<String>) = conn
        .query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0) + 1,
                    (SELECT hash FROM audit ORDER BY id DESC LIMIT 1)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(&e)?;
    let row = ChainRow {
        id,
        rollout_id: rollout,
        at_ms: now,
        actor: actor.to_string(),
        action: action.to_string(),
        from_phase: from as i64,
        to_phase: to as i64,
        status: status.as_str().to_string(),
        reason: reason.map(str::to_string),
        evidence: ev,
        prev_hash: prev.unwrap_or_else(|| GENESIS.to_string()),
    };
    let hash = row.hash();
    conn.execute(
        "INSERT INTO audit (id, rollout_id, at_ms, actor, action, from_phase, to_phase, status, reason, evidence, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            row.id,
            row.rollout_id,
            row.at_ms,
            row.actor,
            row.action,
            row.from_phase,
            row.to_phase,
            row.status,
            row.reason,
            row.evidence,
            row.prev_hash,
            hash
        ],
    )
    .map_err(&e)?;
    Ok(())
}

/// Chains entries written before the chain existed (migration to version 2).
fn chain_unchained(tx: &Connection, path: &Path) -> Result<()> {
    let e = sql(path);
    let rows = read_chain(tx, path)?;
    let mut prev = GENESIS.to_string();
    for mut entry in rows {
        entry.row.prev_hash = prev;
        let hash = entry.row.hash();
        tx.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
            params![entry.row.prev_hash, hash, entry.row.id],
        )
        .map_err(&e)?;
        prev = hash;
    }
    Ok(())
}

/// Every audit entry with its stored hash, oldest first.
fn read_chain(conn: &Connection, path: &Path) -> Result<Vec<ChainEntry>> {
    let e = sql(path);
    let mut st = conn
        .prepare(
            "SELECT id, rollout_id, at_ms, actor, action, from_phase, to_phase, status, reason, evidence,
                    COALESCE(prev_hash, ''), COALESCE(hash, '')
             FROM audit ORDER BY id",
        )
        .map_err(&e)?;
    let rows = st
        .query_map([], |r| {
            Ok(ChainEntry {
                row: ChainRow {
                    id: r.get(0)?,
                    rollout_id: r.get(1)?,
                    at_ms: r.get(2)?,
                    actor: r.get(3)?,
                    action: r.get(4)?,
                    from_phase: r.get(5)?,
                    to_phase: r.get(6)?,
                    status: r.get(7)?,
                    reason: r.get(8)?,
                    evidence: r.get(9)?,
                    prev_hash: r.get(10)?,
                },
                hash: r.get(11)?,
            })
        })
        .map_err(&e)?;
    rows.collect::<std::result::Result<_, _>>().map_err(&e)
}

fn load_current(conn: &Connection, path: &Path) -> Result<Option<Rollout>> {
    let e = sql(path);
    let row = conn
        .prepare_cached(
            "SELECT id, policy, policy_digest, created_ms, created_by, status, phase, phase_entered_ms
             FROM rollouts ORDER BY id DESC LIMIT 1",
        )
        .map_err(&e)?
        .query_row([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })
        .optional()
        .map_err(&e)?;
    let Some((id, policy, policy_digest, created_ms, created_by, status, phase, entered)) = row else {
        return Ok(None);
    };
    let corrupt = |message: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let policy: Policy = serde_json::from_str(&policy).map_err(|x| corrupt(x.to_string()))?;
    let status = Status::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?;
    let approvals = conn
        .prepare_cached("SELECT approver FROM approvals WHERE rollout_id = ?1 AND phase = ?2")
        .map_err(&e)?
        .query_map(params![id, phase + 1], |r| r.get::<_, String>(0))
        .map_err(&e)?
        .collect::<std::result::Result<_, _>>()
        .map_err(&e)?;
    let mut evidence: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut st = conn
        .prepare_cached("SELECT kind, run_id FROM evidence WHERE rollout_id = ?1 AND phase = ?2 ORDER BY at_ms")
        .map_err(&e)?;
    let rows = st
        .query_map(params![id, phase], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(&e)?;
    for row in rows {
        let (kind, run) = row.map_err(&e)?;
        evidence.entry(kind).or_default().push(run);
    }
    Ok(Some(Rollout {
        id,
        policy,
        policy_digest,
        created_ms,
        created_by,
        state: State {
            status,
            phase: phase as usize,
            phase_entered_ms: entered,
            approvals,
            evidence,
        },
    }))
}
