//! Rollout gate end to end: real playback/flight runs as evidence, the CLI, the
//! HTTP endpoint in its own process, concurrent release managers, and processes
//! killed during writes.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlflight_corpora::tpch::ensure_tpch_data;
use sqlflight_rollout::Store;
use sqlflight_tests::{KillOnDrop, http_get};

use super::{cli_child, run_args as run, write_config};

/// Starts `sqlflight rollout serve` in its own process and returns it with its
/// address.
fn serve(store: &str) -> (KillOnDrop, String) {
    let mut child = cli_child(&["rollout", "--store", store, "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap();
        // The harness prints "test child_process_entry ... " before the line.
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on http://".len()..];
            return (child, rest.split_whitespace().next().unwrap().to_string());
        }
    }
    panic!("rollout serve ended without listening");
}

fn side(addr: &str, tenant: &str) -> String {
    let (code, v) = http_get(addr, &format!("/v1/route?tenant={tenant}"));
    assert_eq!(code, 200, "{v}");
    v["side"].as_str().unwrap().to_string()
}

fn audit_actions(store: &str) -> Vec<String> {
    Store::open(Path::new(store), false)
        .unwrap()
        .audit(10_000)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect()
}

#[test]
fn rollout_from_evidence_to_rollback_over_cli_and_http() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    // Real evidence: playback of TPC-H and a flight over generated TPC-H data,
    // with the demo's baseline and candidate profiles.
    let cfg = write_config(tmp.path(), "bundled:tpch");
    assert_eq!(
        run(&["playback", "-c", cfg.to_str().unwrap(), "--out", &p("pb"), "-q"]),
        0
    );
    let data = ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let mut yaml = String::from("corpus: bundled:tpch\ncatalog:\n  tables:\n");
    for (t, path) in &data.tables {
        yaml.push_str(&format!("    {t}: {}\n", path.display()));
    }
    yaml.push_str(sqlflight::commands::demo::DEMO_ENGINES);
    yaml.push_str("flight: { repeat: 1 }\n");
    std::fs::write(p("flight.yaml"), yaml).unwrap();
    // Exit 0 or 1: the demo's sort-merge joins are really slower, and a slowdown
    // can be a confirmed `perf_regression` (exit 1). The release gate below does
    // not count slowdowns, so the evidence is the same either way.
    let code = run(&["flight", "-c", &p("flight.yaml"), "--out", &p("fl"), "-q"]);
    assert!(code < 2, "{code}");
    // A real new failure: the candidate lost a view the query reads.
    let fx = tmp.path().join("fx");
    std::fs::create_dir(&fx).unwrap();
    std::fs::write(fx.join("q.sql"), "select x from v; select 1 as one;").unwrap();
    assert_eq!(
        run(&["corpus", "ingest", fx.to_str().unwrap(), "--out", &p("c"), "-q"]),
        0
    );
    std::fs::write(
        p("bad.yaml"),
        "corpus: c\nengines:\n  baseline: { kind: datafusion, setup: [\"create view v as select 1 as x\"] }\n  candidate: { kind: datafusion }\n",
    )
    .unwrap();
    assert_eq!(run(&["playback", "-c", &p("bad.yaml"), "--out", &p("broken"), "-q"]), 1);

    std::fs::write(
        p("gate.yaml"),
        "max: { new_failure: 0, crash: 0, wrong_result: 0 }\ncoverage: { min_fraction: 0.9 }\n",
    )
    .unwrap();
    let policy = |name: &str, candidate: &str| {
        format!(
            "name: {name}\nbaseline: {{ engine: datafusion, version: \"55.2.0\", profile: baseline }}\n\
             candidate: {{ engine: datafusion, version: \"{candidate}\", profile: candidate }}\n\
             gates: {{ release: {{ policy: gate.yaml }} }}\nphases:\n\
             \x20 - {{ name: internal, tenants: [ops], require: [playback, flight], gate: release, approvals: 2 }}\n\
             \x20 - {{ name: third, percent: 30, require: [flight], gate: release, approvals: 1 }}\n\
             \x20 - {{ name: everyone, percent: 100, require: [flight], gate: release, approvals: 1 }}\n"
        )
    };
    std::fs::write(p("rollout.yaml"), policy("df-upgrade", "55.2.0")).unwrap();
    std::fs::write(p("other.yaml"), policy("df-other", "56.0.0")).unwrap();
    let store = p("rollout.db");
    let ro = |args: &[&str]| {
        let mut v = vec!["rollout", "--store", &store, "-q"];
        v.extend_from_slice(args);
        run(&v)
    };

    // Evidence binding: runs of another candidate version are refused, with the reason.
    let other = p("other.db");
    assert_eq!(
        run(&["rollout", "--store", &other, "-q", "init", "--policy", &p("other.yaml")]),
        0
    );
    let out = cli_child(&["rollout", "--store", &other, "--json", "check", &p("pb")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"verdict\": \"refused\"") && text.contains("candidate version 55.2.0 is not 56.0.0"),
        "{text}"
    );

    assert_eq!(ro(&["init", "--policy", &p("rollout.yaml")]), 0);
    let (_server, addr) = serve(&store);
    assert_eq!(side(&addr, "ops"), "baseline");
    let (code, _) = http_get(&addr, "/v1/route");
    assert_eq!(code, 400);
    // Nothing is met yet: advance lists everything and changes nothing.
    assert_eq!(ro(&["advance"]), 1);
    // Failing the gate before anyone is on the candidate: not evidence.
    assert_eq!(ro(&["check", &p("broken")]), 1);
    assert_eq!(ro(&["check", &p("pb"), &p("fl")]), 0);
    assert_eq!(ro(&["--as", "alice", "approve", "--note", "plans reviewed"]), 0);
    assert_eq!(ro(&["--as", "alice", "approve"]), 1, "one approver counts once");
    assert_eq!(ro(&["advance"]), 1, "two distinct approvers are needed");
    assert_eq!(ro(&["approve"]), 2, "approve needs --as");
    assert_eq!(ro(&["--as", "bob", "approve"]), 0);
    assert_eq!(ro(&["--as", "carol", "advance"]), 0);
    // The endpoint answers the new phase on the next lookup.
    assert_eq!(side(&addr, "ops"), "candidate");
    assert_eq!(side(&addr, "tenant-x"), side(&addr, "tenant-x"));
    let before: Vec<bool> = (0..300).map(|i| side(&addr, &format!("t{i}")) == "candidate").collect();
    assert!(before.iter().all(|c| !c), "phase 1 admits only `ops`");

    assert_eq!(ro(&["check", &p("fl")]), 0);
    assert_eq!(ro(&["--as", "dave", "approve"]), 0);
    assert_eq!(ro(&["advance"]), 0);
    let after: Vec<bool> = (0..300).map(|i| side(&addr, &format!("t{i}")) == "candidate").collect();
    let share = after.iter().filter(|c| **c).count() as f64 / 300.0;
    assert!((0.2..0.4).contains(&share), "30% phase admitted {share}");
    assert_eq!(side(&addr, "ops"), "candidate", "admitted tenants stay admitted");
    let (code, status) = http_get(&addr, "/v1/status");
    assert_eq!(code, 200);
    assert_eq!(status["phase"], 2);
    assert_eq!(status["next"]["name"], "everyone");

    // A critical failure during a phase: rolled back at once, said so, exit 1.
    let out = cli_child(&["rollout", "--store", &store, "check", &p("broken")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ROLLED BACK") && text.contains("critical rule `max new_failure`"),
        "{text}"
    );
    assert_eq!(side(&addr, "ops"), "baseline");
    assert!((0..300).all(|i| side(&addr, &format!("t{i}")) == "baseline"));
    let (_, status) = http_get(&addr, "/v1/status");
    assert_eq!(status["status"], "rolled_back");
    assert_eq!(
        audit_actions(&store),
        [
            "init",
            "check",
            "check",
            "approve",
            "approve",
            "advance",
            "check",
            "approve",
            "advance",
            "auto_rollback"
        ]
    );
    let entries = Store::open(Path::new(&store), false).unwrap().audit(100).unwrap();
    let rb = entries.last().unwrap();
    assert_eq!(rb.evidence[0]["path"], p("broken"));
    assert_eq!(rb.evidence[0]["digest"].as_str().unwrap().len(), 64);
    assert_eq!(entries[5].actor, "carol");

    // A second rollout after the rollback: an inconclusive (non-critical) failure
    // pauses, keeping traffic as it is, until a human resumes.
    std::fs::write(p("strict.yaml"), "max: { plan_changed: 0, new_failure: 0 }\n").unwrap();
    std::fs::write(
        p("second.yaml"),
        "name: second\nbaseline: { version: \"55.2.0\" }\ncandidate: { version: \"55.2.0\" }\n\
         gates: { strict: { policy: strict.yaml, critical: [new_failure] } }\nphases:\n\
         \x20 - { name: canary, tenants: [ops] }\n\
         \x20 - { name: all, percent: 100, require: [playback], gate: strict }\n",
    )
    .unwrap();
    assert_eq!(ro(&["init", "--policy", &p("second.yaml")]), 0);
    assert_eq!(ro(&["init", "--policy", &p("second.yaml")]), 2, "one rollout at a time");
    assert_eq!(ro(&["advance"]), 0);
    assert_eq!(side(&addr, "ops"), "candidate");
    assert_eq!(ro(&["check", &p("pb")]), 1, "the demo candidate changes plans");
    let (_, status) = http_get(&addr, "/v1/status");
    assert_eq!(status["status"], "paused");
    assert_eq!(side(&addr, "ops"), "candidate", "a pause keeps traffic where it is");
    assert_eq!(ro(&["advance"]), 1);
    assert_eq!(ro(&["rollback", "--reason", "plan changes need review"]), 0);
    assert_eq!(side(&addr, "ops"), "baseline");
    let store_v = Store::open(Path::new(&store), false).unwrap();
    assert!(store_v.verify().unwrap().is_empty(), "{:?}", store_v.verify());
}

#[test]
fn concurrent_release_managers_lose_no_update() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("r.db").to_str().unwrap().to_string();
    let mut phases = String::new();
    for i in 0..6 {
        phases.push_str(&format!(
            "  - {{ name: p{i}, percent: {}, approvals: 2 }}\n",
            (i + 1) * 10
        ));
    }
    let policy = tmp.path().join("p.yaml");
    std::fs::write(
        &policy,
        format!("name: c\nbaseline: {{version: '1'}}\ncandidate: {{version: '2'}}\nphases:\n{phases}"),
    )
    .unwrap();
    assert_eq!(
        run(&[
            "rollout",
            "--store",
            &store,
            "-q",
            "init",
            "--policy",
            policy.to_str().unwrap()
        ]),
        0
    );
    let mut approved = 0;
    let mut advanced = 0;
    for round in 0..3 {
        // Approvers and advancers all at once, each in its own process.
        let mut children = Vec::new();
        for i in 0..5 {
            let who = format!("rm{round}-{i}");
            children.push((
                "approve",
                cli_child(&["rollout", "--store", &store, "-q", "--as", &who, "approve"]),
            ));
            children.push(("advance", cli_child(&["rollout", "--store", &store, "-q", "advance"])));
        }
        let running: Vec<_> = children
            .into_iter()
            .map(|(what, mut c)| (what, c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()))
            .collect();
        for (what, c) in running {
            let out = c.wait_with_output().unwrap();
            let code = out.status.code();
            assert!(
                code == Some(0) || code == Some(1),
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if code == Some(0) {
                match what {
                    "approve" => approved += 1,
                    _ => advanced += 1,
                }
            }
        }
    }
    let st = Store::open(Path::new(&store), false).unwrap();
    let r = st.current().unwrap().unwrap();
    let actions = audit_actions(&store);
    // Every successful command is in the audit log exactly once, nothing else is.
    assert_eq!(actions.iter().filter(|a| *a == "approve").count(), approved);
    assert_eq!(actions.iter().filter(|a| *a == "advance").count(), advanced);
    assert_eq!(r.state.phase, advanced);
    assert!(approved >= 2 * advanced, "{approved} approvals, {advanced} advances");
    let entries = st.audit(10_000).unwrap();
    let mut who: Vec<&str> = entries
        .iter()
        .filter(|e| e.action == "approve")
        .map(|e| e.actor.as_str())
        .collect();
    let n = who.len();
    who.sort();
    who.dedup();
    assert_eq!(who.len(), n, "an approver recorded twice");
    assert!(st.verify().unwrap().is_empty(), "{:?}", st.verify());
}

/// Entry point of the writer process the crash test kills; without its
/// environment variable it does nothing (it is not a test of its own).
#[test]
fn rollout_writer_entry() {
    let Ok(store) = std::env::var("SQLFLIGHT_ROLLOUT_WRITER") else {
        return;
    };
    let policy: sqlflight_rollout::PolicyFile = serde_yaml::from_str(
        "name: w\nbaseline: {version: '1'}\ncandidate: {version: '2'}\nphases:\n\
         \x20 - { name: a, tenants: [x], approvals: 1 }\n  - { name: b, percent: 50, approvals: 2 }\n",
    )
    .unwrap();
    let policy = policy
        .resolve(|_| Err::<(sqlflight_reports::gate::GatePolicy, serde_json::Value), ()>(()))
        .unwrap()
        .unwrap();
    let mut st = Store::open(Path::new(&store), true).unwrap();
    let mut i = 0u64;
    loop {
        i += 1;
        let now = i as i64;
        let note = "n".repeat(2_000);
        let _ = st.init(&policy, "writer", now);
        let _ = st.approve(&format!("a{i}"), Some(&note), now);
        let _ = st.advance("writer", now);
        let _ = st.pause("writer", Some(&note), now);
        let _ = st.resume("writer", None, now);
        let _ = st.approve(&format!("b{i}"), Some(&note), now);
        let _ = st.approve(&format!("c{i}"), None, now);
        let _ = st.advance("writer", now);
        if i.is_multiple_of(2) {
            let _ = st.rollback("writer", &note, now);
        }
    }
}

#[test]
fn a_process_killed_during_writes_leaves_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store: PathBuf = tmp.path().join("r.db");
    let mut seen = 0usize;
    for (round, delay_ms) in [40u64, 130, 75, 220, 15].into_iter().enumerate() {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "rollout::rollout_writer_entry",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("SQLFLIGHT_ROLLOUT_WRITER", &store)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        // Wait until the writer is writing, then kill it without warning.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            let n = Store::open(&store, false)
                .ok()
                .and_then(|s| s.audit(1).ok())
                .and_then(|a| a.last().map(|e| e.id));
            if n.is_some_and(|n| n as usize > seen + 20) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        let st = Store::open(&store, false).unwrap();
        let problems = st.verify().unwrap();
        assert!(problems.is_empty(), "round {round}: {problems:?}");
        let entries = st.audit(usize::MAX >> 1).unwrap();
        // Committed entries only, in order, without gaps.
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(e.id as usize, k + 1, "round {round}: audit ids have a gap");
        }
        assert!(entries.len() > seen, "round {round}: the writer wrote nothing");
        seen = entries.len();
    }
}

#[test]
fn rollout_policies_parse_and_errors_point_at_the_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let p = sqlflight::commands::rollout::load_policy(&root.join("examples/rollout/rollout.yaml")).unwrap();
    assert_eq!(p.phases.len(), 4);
    assert_eq!(p.gates["release"].critical.len(), 4);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("g.yaml"), "max: { crash: 0 }\n").unwrap();
    let f = tmp.path().join("bad.yaml");
    let head = "name: r\nbaseline: {version: '1'}\ncandidate: {version: '2'}\ngates: {g: {policy: g.yaml}}\nphases:\n";
    std::fs::write(
        &f,
        format!("{head}  - name: a\n    percent: 10\n  - name: b\n    percent: 5\n"),
    )
    .unwrap();
    let e = sqlflight::commands::rollout::load_policy(&f).unwrap_err().to_string();
    assert!(e.contains("bad.yaml:9:5") && e.contains("must not shrink"), "{e}");
    std::fs::write(&f, format!("{head}  - name: a\n    tenants: [x]\n    aprovals: 2\n")).unwrap();
    let e = sqlflight::commands::rollout::load_policy(&f).unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml:8:5") && e.contains("unknown field `aprovals`"),
        "{e}"
    );
    std::fs::write(tmp.path().join("g.yaml"), "max: { crash: 0 }\nmaxx: 1\n").unwrap();
    std::fs::write(&f, format!("{head}  - name: a\n    tenants: [x]\n")).unwrap();
    let e = sqlflight::commands::rollout::load_policy(&f).unwrap_err().to_string();
    assert!(e.contains("g.yaml:2:1"), "{e}");
}
