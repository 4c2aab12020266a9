//! State machine, routing and store tests, including property tests.

use proptest::prelude::*;
use sqlflight_diffing::{OutcomeClass, OutcomeRecord, RunManifest};
use sqlflight_reports::RunView;
use sqlflight_reports::gate::GatePolicy;

use crate::machine::{self, RouteTable, Side, State, Status, Unmet};
use crate::policy::{Gate, Phase, Policy, PolicyFile, VersionSpec};
use crate::store::{EvidenceRun, Store, Verdict};

fn v(version: &str) -> VersionSpec {
    VersionSpec {
        version: version.into(),
        engine: Some("datafusion".into()),
        profile: None,
    }
}

fn phase(name: &str, percent: u32, approvals: u32, bake_ms: u64, require: &[&str]) -> Phase {
    Phase {
        name: name.into(),
        tenants: vec![format!("{name}-tenant")],
        tiers: vec![format!("{name}-tier")],
        percent_bp: percent * 100,
        require: require.iter().map(|s| s.to_string()).collect(),
        gate: (!require.is_empty()).then(|| "g".to_string()),
        bake_ms,
        approvals,
    }
}

fn gate(max: &[(OutcomeClass, u64)]) -> Gate {
    Gate {
        name: "g".into(),
        policy: GatePolicy {
            max: max.iter().cloned().collect(),
            ..Default::default()
        },
        critical: crate::policy::DEFAULT_CRITICAL.to_vec(),
        accepted: serde_json::Value::Null,
    }
}

fn policy(phases: Vec<Phase>) -> Policy {
    Policy {
        signers: None,
        gateways: Default::default(),
        name: "df-upgrade".into(),
        baseline: v("54.0.0"),
        candidate: v("55.2.0"),
        gates: [(
            "g".to_string(),
            gate(&[(OutcomeClass::WrongResult, 0), (OutcomeClass::PlanChanged, 5)]),
        )]
        .into_iter()
        .collect(),
        phases,
    }
}

fn four_phases() -> Policy {
    policy(vec![
        phase("internal", 0, 1, 1_000, &["playback"]),
        phase("low", 5, 2, 1_000, &["playback", "flight"]),
        phase("ten", 10, 1, 5_000, &["flight"]),
        phase("all", 100, 2, 0, &[]),
    ])
}

/// Operations a release manager (or a check) can apply.
#[derive(Debug, Clone)]
enum Op {
    Approve(u8),
    Advance,
    Pause,
    Resume,
    Rollback,
    Evidence(u8),
    Wait(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(Op::Approve),
        4 => Just(Op::Advance),
        1 => Just(Op::Pause),
        2 => Just(Op::Resume),
        1 => Just(Op::Rollback),
        3 => (0u8..2).prop_map(Op::Evidence),
        3 => (0u32..3_000).prop_map(Op::Wait),
    ]
}

fn everyone_on_baseline(t: &RouteTable) -> bool {
    (0..200).all(|i| t.side(&format!("t{i}"), Some("low-tier")) == Side::Baseline)
        && t.side("internal-tenant", None) == Side::Baseline
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No phase is entered without its evidence, bake time and approvals, and
    /// rollback is reachable from every state and routes everyone to the baseline.
    #[test]
    fn machine_never_skips_conditions(ops in proptest::collection::vec(op(), 1..60)) {
        let p = four_phases();
        let mut now = 1_000_000i64;
        let mut s = State::new(now);
        for op in ops {
            // Rollback is always possible and always total.
            let mut rb = s.clone();
            machine::rollback(&mut rb);
            prop_assert_eq!(rb.status, Status::RolledBack);
            prop_assert!(everyone_on_baseline(&RouteTable::new(&p, &rb)));
            match op {
                Op::Approve(i) => { let _ = machine::approve(&p, &mut s, &format!("rm{i}")); }
                Op::Advance => {
                    let before = s.clone();
                    if machine::advance(&p, &mut s, now).is_ok() {
                        let entered = &p.phases[before.phase];
                        prop_assert_eq!(before.status, Status::Active);
                        prop_assert!(before.approvals.len() as u32 >= entered.approvals);
                        prop_assert!(now - before.phase_entered_ms >= p.bake(before.phase).as_millis() as i64);
                        for k in &entered.require {
                            prop_assert!(before.evidence.get(k).is_some_and(|v| !v.is_empty()));
                        }
                        prop_assert_eq!(s.phase, before.phase + 1);
                        prop_assert!(s.approvals.is_empty() && s.evidence.is_empty());
                    } else {
                        prop_assert_eq!(&s, &before);
                    }
                }
                Op::Pause => { let _ = machine::pause(&mut s); }
                Op::Resume => { let _ = machine::resume(&mut s); }
                Op::Rollback => machine::rollback(&mut s),
                Op::Evidence(k) => {
                    let kind = ["playback", "flight"][k as usize];
                    s.evidence.entry(kind.to_string()).or_default().push(format!("run{now}"));
                }
                Op::Wait(ms) => now += ms as i64,
            }
            prop_assert!(s.phase <= p.phases.len());
            if s.status == Status::RolledBack {
                prop_assert!(everyone_on_baseline(&RouteTable::new(&p, &s)));
            }
        }
    }

    /// A tenant on the candidate at phase k is still on it at phase k+1.
    #[test]
    fn admission_is_monotonic(
        percents in proptest::collection::vec(0u32..=100, 1..6),
        tenants in proptest::collection::vec("[a-z0-9-]{1,12}", 1..50),
    ) {
        let mut percents = percents;
        percents.sort();
        let phases = percents.iter().enumerate().map(|(i, pc)| phase(&format!("p{i}"), *pc, 0, 0, &[])).collect();
        let p = policy(phases);
        let mut s = State::new(0);
        let mut prev = RouteTable::new(&p, &s);
        while machine::advance(&p, &mut s, 0).is_ok() {
            let t = RouteTable::new(&p, &s);
            for tenant in &tenants {
                for tier in [None, Some("p0-tier")] {
                    if prev.side(tenant, tier) == Side::Candidate {
                        prop_assert_eq!(t.side(tenant, tier), Side::Candidate);
                    }
                }
            }
            prev = t;
        }
    }

    /// The admitted share is close to the requested percent over many tenant ids.
    #[test]
    fn percent_share_is_close(percent in 0u32..=10_000) {
        let mut ph = phase("p", 0, 0, 0, &[]);
        ph.percent_bp = percent;
        ph.tenants.clear();
        let p = policy(vec![ph]);
        let mut s = State::new(0);
        machine::advance(&p, &mut s, 0).unwrap();
        let t = RouteTable::new(&p, &s);
        let n = 20_000;
        let admitted = (0..n).filter(|i| t.side(&format!("tenant-{i}"), None) == Side::Candidate).count();
        let share = admitted as f64 / n as f64;
        let want = percent as f64 / 10_000.0;
        // 5 standard deviations of a binomial share, at least 0.1%.
        let tol = (5.0 * (want * (1.0 - want) / n as f64).sqrt()).max(0.001);
        prop_assert!((share - want).abs() <= tol, "share {share} vs {want} (tol {tol})");
    }
}

#[test]
fn unmet_lists_every_condition() {
    let p = four_phases();
    let mut s = State::new(0);
    s.approvals.insert("a".into());
    machine::advance(&p, &mut s, 10).unwrap_err();
    s.evidence.insert("playback".into(), vec!["r".into()]);
    machine::advance(&p, &mut s, 10).unwrap();
    assert_eq!(
        machine::unmet(&p, &s, 500),
        vec![
            Unmet::Evidence {
                kind: "playback".into(),
                gate: "g".into()
            },
            Unmet::Evidence {
                kind: "flight".into(),
                gate: "g".into()
            },
            Unmet::Bake { left_ms: 510 },
            Unmet::Approvals { have: 0, need: 2 },
        ]
    );
    let text: Vec<String> = machine::unmet(&p, &s, 500).iter().map(|u| u.to_string()).collect();
    assert!(text[2].contains("left in this phase"), "{text:?}");
}

fn manifest(kind: &str, baseline: &str, candidate: &str) -> RunManifest {
    serde_json::from_value(serde_json::json!({
        "format": "sqlflight-run", "version": 1, "kind": kind, "tool_version": "0.1.0",
        "corpus": {"name": "t", "hash": "h", "queries": 1},
        "baseline": {"engine": "datafusion", "version": baseline, "profile": "baseline"},
        "candidate": {"engine": "datafusion", "version": candidate, "profile": "candidate"},
        "selected": 1, "jobs": 1, "timeout_ms": 1000, "started_at": "x", "status": "complete"
    }))
    .unwrap()
}

fn run(kind: &str, candidate: &str, class: OutcomeClass) -> EvidenceRun {
    let outcome: OutcomeRecord = serde_json::from_value(serde_json::json!({
        "query_id": "q1", "template_id": "t1", "class": class
    }))
    .unwrap();
    EvidenceRun {
        path: format!("/runs/{kind}-{candidate}-{class}").into(),
        digest: blake3::hash(format!("{kind}{candidate}{class}").as_bytes())
            .to_hex()
            .to_string(),
        view: RunView {
            manifest: manifest(kind, "54.0.0", candidate),
            outcomes: vec![outcome],
        },
    }
}

#[test]
fn store_binds_evidence_and_rolls_back_on_critical_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = Store::open(&dir.path().join("r.db"), true).unwrap();
    let p = four_phases();
    st.init(&p, "alice", 0).unwrap();

    // Another candidate version: refused with the reason, nothing recorded.
    let c = st
        .check("ci", &[run("playback", "56.0.0", OutcomeClass::SamePlan)], 1)
        .unwrap();
    assert_eq!(c.verdict, Verdict::Refused);
    assert!(
        c.reasons[0].contains("candidate version 56.0.0 is not 55.2.0"),
        "{:?}",
        c.reasons
    );
    // Failing the gate before anyone is on the candidate: refused as failing.
    let c = st
        .check("ci", &[run("playback", "55.2.0", OutcomeClass::WrongResult)], 2)
        .unwrap();
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reasons.iter().any(|r| r.contains("critical rule `max wrong_result`")),
        "{:?}",
        c.reasons
    );
    assert!(st.current().unwrap().unwrap().state.evidence.is_empty());
    let e = st.advance("alice", 3).unwrap_err().to_string();
    assert!(
        e.contains("no passing playback run") && e.contains("approvals: 0 of 1"),
        "{e}"
    );

    let c = st
        .check("ci", &[run("playback", "55.2.0", OutcomeClass::SamePlan)], 4)
        .unwrap();
    assert_eq!(c.verdict, Verdict::Pass);
    st.approve(&crate::Approval::unsigned("bob"), Some("looks good"), 5)
        .unwrap();
    assert!(
        st.approve(&crate::Approval::unsigned("bob"), None, 6)
            .unwrap_err()
            .to_string()
            .contains("already approved")
    );
    let r = st.advance("alice", 7).unwrap();
    assert_eq!(r.state.phase, 1);
    let t = st.route_table().unwrap().unwrap();
    assert_eq!(t.side("internal-tenant", None), Side::Candidate);
    assert_eq!(t.side("someone-else", None), Side::Baseline);

    // Too many plan changes: not critical → paused for a human.
    let many: Vec<OutcomeRecord> = (0..6)
        .map(|i| {
            serde_json::from_value(
                serde_json::json!({"query_id": format!("q{i}"), "template_id": "t", "class": "plan_changed"}),
            )
            .unwrap()
        })
        .collect();
    let mut r6 = run("playback", "55.2.0", OutcomeClass::PlanChanged);
    r6.view.outcomes = many;
    let c = st.check("ci", &[r6], 8).unwrap();
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert!(c.paused);
    assert_eq!(st.current().unwrap().unwrap().state.status, Status::Paused);
    st.resume("alice", Some("plan changes reviewed"), 9).unwrap();

    // A critical failure while tenants are on the candidate: rolled back at once.
    let c = st
        .check("ci", &[run("flight", "55.2.0", OutcomeClass::WrongResult)], 10)
        .unwrap();
    assert_eq!(c.verdict, Verdict::RolledBack);
    let t = st.route_table().unwrap().unwrap();
    assert_eq!(t.side("internal-tenant", None), Side::Baseline);
    let audit = st.audit(100).unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "init",
            "check",
            "check",
            "check",
            "approve",
            "advance",
            "auto_pause",
            "resume",
            "auto_rollback"
        ]
    );
    assert_eq!(audit[8].evidence[0]["kind"], "flight");
    assert!(st.verify().unwrap().is_empty(), "{:?}", st.verify());
    // The audit log cannot be rewritten.
    let conn = rusqlite::Connection::open(dir.path().join("r.db")).unwrap();
    let err = conn.execute("DELETE FROM audit", []).unwrap_err().to_string();
    assert!(err.contains("append-only"), "{err}");
    // A new rollout may start after a rollback; not while one is in progress.
    st.init(&p, "alice", 11).unwrap();
    assert!(
        st.init(&p, "alice", 12)
            .unwrap_err()
            .to_string()
            .contains("still in progress")
    );
}

/// The store applies the same transitions as the pure machine, op for op, and
/// its audit log has one entry per applied op.
#[test]
fn store_matches_machine() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut st = Store::open(&dir.path().join(format!("s{n}.db")), true).unwrap();
            let p = policy(vec![
                phase("a", 0, 1, 0, &[]),
                phase("b", 5, 2, 1_000, &[]),
                phase("c", 50, 1, 2_000, &[]),
            ]);
            let mut now = 0i64;
            st.init(&p, "init", now).unwrap();
            let mut model = State::new(now);
            let mut applied = 1;
            for op in ops {
                let ok = match op {
                    Op::Approve(i) => {
                        let who = format!("rm{i}");
                        let m = machine::approve(&p, &mut model, &who).is_ok();
                        prop_assert_eq!(st.approve(&crate::Approval::unsigned(&who), None, now).is_ok(), m);
                        m
                    }
                    Op::Advance => {
                        let m = machine::advance(&p, &mut model, now).is_ok();
                        prop_assert_eq!(st.advance("x", now).is_ok(), m);
                        m
                    }
                    Op::Pause => {
                        let m = machine::pause(&mut model).is_ok();
                        prop_assert_eq!(st.pause("x", None, now).is_ok(), m);
                        m
                    }
                    Op::Resume => {
                        let m = machine::resume(&mut model).is_ok();
                        prop_assert_eq!(st.resume("x", None, now).is_ok(), m);
                        m
                    }
                    Op::Rollback => {
                        // Idempotent: a second rollback changes and audits nothing.
                        let first = model.status != Status::RolledBack;
                        machine::rollback(&mut model);
                        prop_assert_eq!(st.rollback("x", "test", now).unwrap().1, first);
                        first
                    }
                    Op::Evidence(_) => false,
                    Op::Wait(ms) => {
                        now += ms as i64;
                        false
                    }
                };
                applied += ok as usize;
                let stored = st.current().unwrap().unwrap().state;
                prop_assert_eq!(&stored, &model);
            }
            prop_assert_eq!(st.audit(10_000).unwrap().len(), applied);
            prop_assert!(st.verify().unwrap().is_empty());
            Ok(())
        })
        .unwrap();
}

#[test]
fn policy_validation_names_the_mistake() {
    let base = |phases: &str| -> PolicyFile {
        serde_yaml::from_str(&format!(
            "name: r\nbaseline: {{version: '1'}}\ncandidate: {{version: '2'}}\ngates: {{g: {{policy: g.yaml}}}}\nphases:\n{phases}"
        ))
        .unwrap()
    };
    let resolve = |f: PolicyFile| {
        f.resolve(|_| Ok::<_, ()>((GatePolicy::default(), serde_json::Value::Null)))
            .unwrap()
    };
    let e = resolve(base("  - {name: a, percent: 10}\n  - {name: b, percent: 5}\n")).unwrap_err();
    assert!(
        e.message.contains("selects 5% after an earlier phase selected 10%"),
        "{e:?}"
    );
    assert_eq!(e.near, "percent: 5");
    let e = resolve(base("  - {name: a, tenants: [x], require: [playback]}\n")).unwrap_err();
    assert!(e.message.contains("names no gate"), "{e:?}");
    let e = resolve(base("  - {name: a, tenants: [x], gate: nope}\n")).unwrap_err();
    assert!(e.fix.contains("use one of: g"), "{e:?}");
    let e = resolve(base("  - {name: a, tenants: [x], bake: soon}\n")).unwrap_err();
    assert!(e.message.contains("not a duration"), "{e:?}");
    let e = resolve(base("  - {name: a}\n")).unwrap_err();
    assert!(e.message.contains("selects no tenants"), "{e:?}");
    let p = resolve(base("  - {name: a, tenants: [x], bake: 2h, percent: 1.25}\n")).unwrap();
    assert_eq!(p.phases[0].bake_ms, 7_200_000);
    assert_eq!(p.phases[0].percent_bp, 125);
}

#[test]
fn a_store_from_a_newer_sqlflight_is_refused_not_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut st = Store::open(&path, true).unwrap();
    st.init(&four_phases(), "a", 0).unwrap();
    drop(st);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", crate::store::SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let e = Store::open(&path, false).err().unwrap().to_string();
    assert!(e.contains("newer than this sqlflight"), "{e}");
    let e = Store::open(&dir.path().join("none.db"), false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("rollout init --policy"), "{e}");
}

#[test]
fn a_version_1_store_is_chained_on_upgrade_and_stays_append_only() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("v1.db");
    {
        // A store as sqlflight with schema version 1 wrote it.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(crate::store::MIGRATIONS[0]).unwrap();
        c.execute_batch(
            "INSERT INTO rollouts VALUES (1, 'old', '{}', 'd', 1, 'alice', 'active', 0, 1);
             INSERT INTO audit (rollout_id, at_ms, actor, action, from_phase, to_phase, status) VALUES
               (1, 1, 'alice', 'init', 0, 0, 'active'), (1, 2, 'bob', 'pause', 0, 0, 'paused');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let st = Store::open(&path, false).unwrap();
    let report = st.audit_chain().unwrap();
    assert_eq!(report.entries, 2);
    assert_eq!(report.first_break, None, "{report:?}");
    // Triggers restored after the backfill: rows still cannot change.
    let c = rusqlite::Connection::open(&path).unwrap();
    assert!(c.execute("DELETE FROM audit WHERE id = 1", []).is_err());
    assert!(c.execute("UPDATE audit SET actor = 'x' WHERE id = 2", []).is_err());
}

proptest! {
    /// Any single edit of any field of any entry breaks the chain at that entry
    /// (or, for a link field, right there), never later and never silently.
    #[test]
    fn the_audit_chain_finds_any_edit_at_its_position(n in 1usize..12, at in 0usize..12, field in 0usize..5) {
        use crate::store::{ChainEntry, ChainRow, GENESIS, verify_chain};
        let mut prev = GENESIS.to_string();
        let mut entries = Vec::new();
        for i in 0..n {
            let row = ChainRow {
                id: i as i64 + 1,
                rollout_id: 1,
                at_ms: 1000 + i as i64,
                actor: format!("os:u{i}"),
                action: "advance".into(),
                from_phase: i as i64,
                to_phase: i as i64 + 1,
                status: "active".into(),
                reason: Some(format!("r{i}")),
                evidence: None,
                prev_hash: prev.clone(),
            };
            let hash = row.hash();
            prev = hash.clone();
            entries.push(ChainEntry { row, hash });
        }
        prop_assert_eq!(verify_chain(&entries).first_break, None);
        let at = at % n;
        let e = &mut entries[at];
        match field {
            0 => e.row.actor.push('x'),
            1 => e.row.at_ms += 1,
            2 => e.row.reason = None,
            3 => e.row.to_phase += 1,
            _ => e.row.action = "rollback".into(),
        }
        let report = verify_chain(&entries);
        prop_assert_eq!(report.first_break.map(|(pos, _)| pos), Some(at + 1));
    }
}
