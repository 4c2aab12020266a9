//! Who may approve, and proof that they did: signed approvals over a canonical
//! statement, the allowed signers, and the OS account that runs a command.
//!
//! An approval is an SSH signature (`ssh-keygen -Y sign -n sqlflight-rollout`)
//! over the [`statement`] of the phase it approves: the rollout, the phase, both
//! versions, the evidence recorded for that phase, and the time it was signed.
//! [`verify_approval`] checks the signature with the keys of the policy's
//! allowed signers (git's `allowed_signers` format, frozen into the store at
//! `init`) and that the statement is the one the rollout is at now, so an
//! approval of another phase, of other evidence, or of another rollout is
//! refused with what differs. A key counts once per phase, whatever principal
//! it claims: its identity is its fingerprint.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use ssh_key::{HashAlg, PublicKey, SshSig};

use crate::store::{Rollout, rfc3339};

/// The signature namespace when the policy does not name one.
pub const DEFAULT_NAMESPACE: &str = "sqlflight-rollout";
/// How far in the future a statement's time may be (clock skew).
const SKEW_MS: i64 = 5 * 60 * 1000;
/// The first line of every statement; a new layout gets a new line.
const HEADER: &str = "sqlflight rollout approval v1";

/// The policy's approvers, frozen at `init`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signers {
    /// The signature namespace approvals must be signed in (`-n`).
    pub namespace: String,
    /// The `allowed_signers` file as it was at `init`.
    pub allowed_signers: String,
    /// Where it was read from (for messages).
    pub origin: String,
}

/// One usable line of an `allowed_signers` file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// The principals (approver names) the key signs for.
    pub principals: Vec<String>,
    /// The namespaces it may sign in (`namespaces="..."`; none = any).
    pub namespaces: Option<Vec<String>>,
    /// The public key.
    pub key: PublicKey,
    /// Its line in the file.
    pub line: usize,
}

/// Parses git's / OpenSSH's `allowed_signers` format: `principals [options]
/// keytype base64 [comment]` per line. Certificate authorities and validity
/// windows are refused (the error names the line) rather than ignored.
pub fn parse_allowed_signers(text: &str, origin: &str) -> Result<Vec<AllowedSigner>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |m: String| format!("{origin}:{}: {m}", i + 1);
        let tokens = split_tokens(line);
        let Some(kpos) = tokens.iter().position(|t| is_key_type(t)) else {
            return Err(at(
                "no public key (expected `principal keytype base64`, e.g. `alice@example.com ssh-ed25519 AAAA...`)"
                    .into(),
            ));
        };
        if kpos == 0 {
            return Err(at("the line starts with a key: name its principals first".into()));
        }
        let principals: Vec<String> = tokens[0].split(',').map(|p| p.trim_matches('"').to_string()).collect();
        let mut namespaces = None;
        for opt in tokens[1..kpos].iter().flat_map(|t| t.split(',')) {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            match k.to_ascii_lowercase().as_str() {
                "namespaces" => {
                    namespaces = Some(v.trim_matches('"').split(',').map(str::to_string).collect());
                }
                "cert-authority" | "valid-after" | "valid-before" => {
                    return Err(at(format!("option `{k}` is not supported; list each signer's own key")));
                }
                _ => return Err(at(format!("unknown option `{k}`"))),
            }
        }
        let key_text = tokens[kpos..].iter().take(2).cloned().collect::<Vec<_>>().join(" ");
        let key = PublicKey::from_openssh(&key_text).map_err(|e| at(format!("unreadable public key: {e}")))?;
        out.push(AllowedSigner {
            principals,
            namespaces,
            key,
            line: i + 1,
        });
    }
    if out.is_empty() {
        return Err(format!("{origin}: no allowed signers listed"));
    }
    Ok(out)
}

fn is_key_type(t: &str) -> bool {
    t.starts_with("ssh-") || t.starts_with("ecdsa-sha2-") || t.starts_with("sk-ssh-") || t.starts_with("sk-ecdsa-")
}

/// Whitespace-separated tokens; double quotes keep spaces inside a token.
fn split_tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The statement an approval of the next phase signs, at `at_ms`.
pub fn statement(r: &Rollout, at_ms: i64) -> String {
    let p = &r.policy;
    let s = &r.state;
    let next = s.phase + 1;
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}");
    let _ = writeln!(out, "rollout: {} {} policy {}", r.id, p.name, &r.policy_digest);
    let _ = writeln!(
        out,
        "phase: {next} {}",
        p.phases.get(next - 1).map(|ph| ph.name.as_str()).unwrap_or("(none)")
    );
    let _ = writeln!(out, "baseline: {}", p.baseline.label());
    let _ = writeln!(out, "candidate: {}", p.candidate.label());
    let mut runs: Vec<String> = s
        .evidence
        .iter()
        .flat_map(|(kind, ids)| ids.iter().map(move |id| format!("{kind} {id}")))
        .collect();
    runs.sort();
    if runs.is_empty() {
        let _ = writeln!(out, "evidence: none");
    }
    for run in runs {
        let _ = writeln!(out, "evidence: {run}");
    }
    let _ = writeln!(out, "at: {}", rfc3339(at_ms));
    out
}

/// Who signed an accepted approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The first principal of the key's line in `allowed_signers`.
    pub principal: String,
    /// `SHA256:...` of the key: the identity that counts once per phase.
    pub fingerprint: String,
}

impl Signer {
    /// The approver as recorded: `alice@example.com (SHA256:...)`.
    pub fn identity(&self) -> String {
        format!("{} ({})", self.principal, self.fingerprint)
    }
}

/// Checks a signed approval of the next phase of `r`: the signature (namespace,
/// key among the allowed signers, bytes), then the statement against the
/// rollout as it is now. Every refusal says why.
pub fn verify_approval(
    signers: &Signers,
    r: &Rollout,
    statement_text: &str,
    signature_pem: &str,
    now_ms: i64,
) -> Result<Signer, String> {
    let sig = SshSig::from_pem(signature_pem.trim().as_bytes())
        .map_err(|e| format!("the signature is not an SSH signature (`ssh-keygen -Y sign` output): {e}"))?;
    if sig.namespace() != signers.namespace {
        return Err(format!(
            "the signature is for namespace `{}`, this rollout's approvals use `{}` (sign with `-n {}`)",
            sig.namespace(),
            signers.namespace,
            signers.namespace
        ));
    }
    let allowed = parse_allowed_signers(&signers.allowed_signers, &signers.origin)?;
    let Some(who) = allowed.iter().find(|a| a.key.key_data() == sig.public_key()) else {
        let fp = PublicKey::from(sig.public_key().clone()).fingerprint(HashAlg::Sha256);
        return Err(format!(
            "the key {fp} is not among the allowed signers ({}); an unknown key's approval does not count",
            signers.origin
        ));
    };
    if let Some(ns) = &who.namespaces
        && !ns.iter().any(|n| n == &signers.namespace)
    {
        return Err(format!(
            "{} line {}: the key may sign only namespaces {}",
            signers.origin,
            who.line,
            ns.join(",")
        ));
    }
    who.key
        .verify(&signers.namespace, statement_text.as_bytes(), &sig)
        .map_err(|_| {
            "the signature does not match the statement (forged, or the statement was edited after signing)".to_string()
        })?;
    // The statement must be the one for this rollout, phase and evidence now.
    let at = statement_text
        .lines()
        .find_map(|l| l.strip_prefix("at: "))
        .ok_or("the statement has no `at:` line; make it with `sqlflight rollout statement`")?;
    let at_ms = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|e| format!("the statement's time `{at}` is not RFC 3339: {e}"))?
        .timestamp_millis();
    let expected = statement(r, at_ms);
    if expected != statement_text {
        let got: Vec<&str> = statement_text.lines().collect();
        let want: Vec<&str> = expected.lines().collect();
        let i = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        return Err(format!(
            "the signed statement is not for the rollout as it is now: it says `{}` where the rollout has `{}` (an approval of another phase, other evidence or another rollout is not counted; sign a fresh `sqlflight rollout statement`)",
            got.get(i).copied().unwrap_or("(end)"),
            want.get(i).copied().unwrap_or("(end)")
        ));
    }
    if at_ms > now_ms + SKEW_MS {
        return Err(format!("the statement is dated {at}, in the future"));
    }
    if at_ms < r.state.phase_entered_ms {
        return Err(format!(
            "the statement was signed at {at}, before the current phase began ({}); sign a fresh one",
            rfc3339(r.state.phase_entered_ms)
        ));
    }
    Ok(Signer {
        principal: who.principals.first().cloned().unwrap_or_default(),
        fingerprint: who.key.fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// The OS account running this process, from its uid (not from environment
/// variables a user can set): `os:alice`, or `os:uid-1000` when the account
/// has no name.
pub fn os_account() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "os:unknown".into();
    };
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|t| {
        t.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _ = f.next();
            (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
    });
    match name {
        Some(n) => format!("os:{n}"),
        None => format!("os:uid-{uid}"),
    }
}
