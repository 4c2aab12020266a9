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
    serve_with(store, None)
}

/// [`serve`] with `$SQLFLIGHT_STATUS_TOKEN` set to `token`.
fn serve_with(store: &str, token: Option<&str>) -> (KillOnDrop, String) {
    let mut cmd = cli_child(&["rollout", "--store", store, "serve", "--listen", "127.0.0.1:0"]);
    if let Some(t) = token {
        cmd.env("SQLFLIGHT_STATUS_TOKEN", t);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap();
        // The harness prints "test child_process_entry ... " before the line.
        if let Some(t) = token {
            assert!(!line.contains(t), "the token was printed: {line}");
        }
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

/// Runs `sqlflight ARGS` in its own process: the exit code and everything it printed.
fn cli_out(args: &[&str]) -> (i32, String) {
    let out = cli_child(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A new ed25519 key made by the real OpenSSH `ssh-keygen`; returns the private
/// key's path and the public key line (`ssh-ed25519 AAAA... comment`).
fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (Debian: openssh-client)");
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// Signs `file` with `key` the way a release manager does; returns `file.sig`.
fn ssh_sign(key: &Path, file: &Path, namespace: &str) -> PathBuf {
    let sig = PathBuf::from(format!("{}.sig", file.display()));
    let _ = std::fs::remove_file(&sig);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sig
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
    // Release managers' keys (real OpenSSH), listed in git's allowed_signers
    // format; alice's key is listed a second time under another name.
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (alice, alice_pub) = ssh_key(&keys, "alice");
    let (bob, bob_pub) = ssh_key(&keys, "bob");
    let (dave, dave_pub) = ssh_key(&keys, "dave");
    let (mallory, _) = ssh_key(&keys, "mallory");
    std::fs::write(
        p("allowed_signers"),
        format!(
            "# release managers\nalice@example.com {alice_pub}\nbob@example.com {bob_pub}\n\
             alice-second-name@example.com {alice_pub}\ndave@example.com namespaces=\"sqlflight-rollout\" {dave_pub}\n"
        ),
    )
    .unwrap();
    let policy = |name: &str, candidate: &str| {
        format!(
            "name: {name}\napprovers: {{ allowed_signers: allowed_signers }}\n\
             baseline: {{ engine: datafusion, version: \"55.2.0\", profile: baseline }}\n\
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
    // Signed approvals: `rollout statement`, `ssh-keygen -Y sign`, `approve`.
    let statement = |name: &str| {
        let f = tmp.path().join(name);
        assert_eq!(ro(&["statement", "--out", f.to_str().unwrap()]), 0);
        f
    };
    let approve = |sig: &Path, extra: &[&str]| {
        let mut v = vec![
            "rollout",
            "--store",
            &store,
            "approve",
            "--signature",
            sig.to_str().unwrap(),
        ];
        v.extend_from_slice(extra);
        cli_out(&v)
    };
    let s1 = statement("s1.txt");
    let text = std::fs::read_to_string(&s1).unwrap();
    assert!(
        text.starts_with("sqlflight rollout approval v1\n")
            && text.contains("phase: 1 internal")
            && text.contains("evidence: flight "),
        "{text}"
    );
    let (code, said) = approve(
        &ssh_sign(&alice, &s1, "sqlflight-rollout"),
        &["--note", "plans reviewed"],
    );
    assert_eq!(code, 0, "{said}");
    // One person approving twice, under the same or another name: one key, once.
    let (code, said) = approve(&ssh_sign(&alice, &statement("s2.txt"), "sqlflight-rollout"), &[]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("already approved"), "{said}");
    assert_eq!(ro(&["advance"]), 1, "two distinct approvers are needed");
    // An unknown key, a forged statement, another namespace, no signature: refused, each with its reason.
    let (code, said) = approve(&ssh_sign(&mallory, &statement("s3.txt"), "sqlflight-rollout"), &[]);
    assert_eq!(code, 1);
    assert!(said.contains("not among the allowed signers"), "{said}");
    let s4 = statement("s4.txt");
    let sig4 = ssh_sign(&bob, &s4, "sqlflight-rollout");
    std::fs::write(
        &s4,
        std::fs::read_to_string(&s4)
            .unwrap()
            .replace("phase: 1 internal", "phase: 2 third"),
    )
    .unwrap();
    let (code, said) = approve(&sig4, &[]);
    assert_eq!(code, 1);
    assert!(said.contains("does not match the statement"), "{said}");
    let (code, said) = approve(&ssh_sign(&bob, &statement("s5.txt"), "git"), &[]);
    assert_eq!(code, 1);
    assert!(said.contains("namespace `git`"), "{said}");
    let (code, said) = cli_out(&["rollout", "--store", &store, "approve"]);
    assert_eq!(code, 1);
    assert!(said.contains("lists allowed signers"), "{said}");
    let s6 = statement("s6.txt");
    let sig6 = ssh_sign(&bob, &s6, "sqlflight-rollout");
    let (code, said) = approve(&sig6, &[]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(ro(&["advance"]), 0);
    // Replayed: bob's approval of phase 1 does not count for phase 2.
    let (code, said) = approve(&sig6, &[]);
    assert_eq!(code, 1);
    assert!(
        said.contains("not for the rollout as it is now") && said.contains("phase: 1 internal"),
        "{said}"
    );
    // The endpoint answers the new phase on the next lookup.
    assert_eq!(side(&addr, "ops"), "candidate");
    assert_eq!(side(&addr, "tenant-x"), side(&addr, "tenant-x"));
    let before: Vec<bool> = (0..300).map(|i| side(&addr, &format!("t{i}")) == "candidate").collect();
    assert!(before.iter().all(|c| !c), "phase 1 admits only `ops`");

    // Signed before the evidence of this phase was recorded: other evidence, refused.
    let early = ssh_sign(&dave, &statement("s7.txt"), "sqlflight-rollout");
    assert_eq!(ro(&["check", &p("fl")]), 0);
    let (code, said) = approve(&early, &[]);
    assert_eq!(code, 1);
    assert!(said.contains("evidence: none"), "{said}");
    let (code, said) = approve(&ssh_sign(&dave, &statement("s8.txt"), "sqlflight-rollout"), &[]);
    assert_eq!(code, 0, "{said}");
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
    assert!(
        entries[3].actor.starts_with("alice@example.com (SHA256:"),
        "{:?}",
        entries[3]
    );
    assert!(
        entries[4].actor.starts_with("bob@example.com (SHA256:"),
        "{:?}",
        entries[4]
    );
    assert!(
        entries[3]
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("signed approval")
    );
    // Not free text: the OS account running the command, from its uid.
    assert!(entries[5].actor.starts_with("os:"), "{:?}", entries[5]);

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
    // Idempotent and honest: a second rollback and a check after it change and
    // record nothing, and say why.
    let n = audit_actions(&store).len();
    let (code, said) = cli_out(&["rollout", "--store", &store, "rollback", "--reason", "again"]);
    assert_eq!(code, 0);
    assert!(
        said.contains("already rolled back at") && said.contains("nothing recorded"),
        "{said}"
    );
    let (code, said) = cli_out(&["rollout", "--store", &store, "check", &p("pb")]);
    assert_eq!(code, 1);
    assert!(
        said.contains("rolled back: evidence counts for no phase") && said.contains("nothing recorded"),
        "{said}"
    );
    assert_eq!(audit_actions(&store).len(), n, "nothing was audited");
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
            "  - {{ name: p{i}, percent: {}, approvals: 1 }}\n",
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
            let _ = (round, i);
            children.push(("approve", cli_child(&["rollout", "--store", &store, "-q", "approve"])));
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
    assert!(approved >= advanced, "{approved} approvals, {advanced} advances");
    // Unsigned: every process is the same OS account, which counts once per phase.
    let entries = st.audit(10_000).unwrap();
    let mut who: Vec<(usize, &str)> = entries
        .iter()
        .filter(|e| e.action == "approve")
        .map(|e| (e.from_phase, e.actor.as_str()))
        .collect();
    assert!(who.iter().all(|(_, a)| a.starts_with("os:")), "{who:?}");
    let n = who.len();
    who.sort();
    who.dedup();
    assert_eq!(who.len(), n, "an account counted twice for one phase");
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
        let _ = st.approve(
            &sqlflight_rollout::Approval::unsigned(&format!("a{i}")),
            Some(&note),
            now,
        );
        let _ = st.advance("writer", now);
        let _ = st.pause("writer", Some(&note), now);
        let _ = st.resume("writer", None, now);
        let _ = st.approve(
            &sqlflight_rollout::Approval::unsigned(&format!("b{i}")),
            Some(&note),
            now,
        );
        let _ = st.approve(&sqlflight_rollout::Approval::unsigned(&format!("c{i}")), None, now);
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
    assert_eq!(p.signers.as_ref().unwrap().namespace, "sqlflight-rollout");
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
    // A bad allowed_signers line is named with its file and line.
    std::fs::write(
        tmp.path().join("signers"),
        "# rms\nalice@example.com ssh-ed25519 not-base64!\n",
    )
    .unwrap();
    std::fs::write(
        &f,
        format!("{head}  - name: a\n    tenants: [x]\napprovers: {{ allowed_signers: signers }}\n"),
    )
    .unwrap();
    let e = sqlflight::commands::rollout::load_policy(&f).unwrap_err().to_string();
    assert!(e.contains("signers:2: unreadable public key"), "{e}");
    std::fs::write(
        &f,
        format!("{head}  - name: a\n    tenants: [x]\napprovers: {{ unsigned: false }}\n"),
    )
    .unwrap();
    let e = sqlflight::commands::rollout::load_policy(&f).unwrap_err().to_string();
    assert!(
        e.contains("must name `allowed_signers: FILE` or say `unsigned: true`"),
        "{e}"
    );
    std::fs::write(tmp.path().join("g.yaml"), "max: { crash: 0 }\nmaxx: 1\n").unwrap();
    std::fs::write(&f, format!("{head}  - name: a\n    tenants: [x]\n")).unwrap();
    let e = sqlflight::commands::rollout::load_policy(&f).unwrap_err().to_string();
    assert!(e.contains("g.yaml:2:1"), "{e}");
}

/// Unsigned approvals are marked as such, and the approver is the OS account:
/// one person approving twice under two names from one shell counts once.
#[test]
fn unsigned_approvals_are_marked_and_count_the_os_account_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("r.db").to_str().unwrap().to_string();
    let policy = tmp.path().join("p.yaml");
    std::fs::write(
        &policy,
        "name: u\napprovers: { unsigned: true }\nbaseline: {version: '1'}\ncandidate: {version: '2'}\n\
         phases:\n  - { name: a, tenants: [x], approvals: 2 }\n",
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    assert_eq!(run(&["rollout", "--store", &store, "-q", "init", "--policy", p]), 0);
    assert_eq!(
        run(&["rollout", "--store", &store, "-q", "approve", "--note", "alice"]),
        0
    );
    let (code, said) = cli_out(&["rollout", "--store", &store, "approve", "--note", "bob"]);
    assert_eq!(code, 1);
    assert!(said.contains("already approved"), "{said}");
    assert_eq!(run(&["rollout", "--store", &store, "-q", "advance"]), 1);
    let (code, said) = cli_out(&["rollout", "--store", &store, "status"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("approvals: UNSIGNED"), "{said}");
    let (_, json) = cli_out(&["rollout", "--store", &store, "--json", "status"]);
    let v: serde_json::Value = serde_json::from_str(&json[json.find('{').unwrap()..]).unwrap();
    assert_eq!(v["approvals"]["mode"], "unsigned");
    let approve = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "approve")
        .unwrap();
    assert!(
        approve["reason"].as_str().unwrap().starts_with("UNSIGNED approval"),
        "{approve}"
    );
    assert!(approve["actor"].as_str().unwrap().starts_with("os:"), "{approve}");
    // A signature on an unsigned rollout cannot be checked: refused.
    std::fs::write(tmp.path().join("s"), "x").unwrap();
    std::fs::write(tmp.path().join("s.sig"), "x").unwrap();
    let sig = tmp.path().join("s.sig");
    let (code, said) = cli_out(&[
        "rollout",
        "--store",
        &store,
        "approve",
        "--signature",
        sig.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(said.contains("no allowed signers"), "{said}");
}

/// The audit log is a hash chain: an edited, deleted or truncated entry is
/// found with its position, in the store and in an export checked elsewhere.
#[test]
fn audit_chain_finds_edited_deleted_and_truncated_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("r.db");
    let store = db.to_str().unwrap().to_string();
    let policy = tmp.path().join("p.yaml");
    std::fs::write(
        &policy,
        "name: t\nbaseline: {version: '1'}\ncandidate: {version: '2'}\n\
         phases:\n  - { name: a, tenants: [x], approvals: 1 }\n  - { name: b, percent: 50 }\n",
    )
    .unwrap();
    let ro = |args: &[&str]| {
        let mut v = vec!["rollout", "--store", &store, "-q"];
        v.extend_from_slice(args);
        run(&v)
    };
    assert_eq!(ro(&["init", "--policy", policy.to_str().unwrap()]), 0);
    assert_eq!(ro(&["approve"]), 0);
    assert_eq!(ro(&["advance"]), 0);
    assert_eq!(ro(&["pause", "--reason", "night"]), 0);
    assert_eq!(ro(&["resume"]), 0);
    assert_eq!(ro(&["advance"]), 0);
    let (code, said) = cli_out(&["rollout", "--store", &store, "audit", "--verify"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("audit chain intact: 6 entries"), "{said}");
    let export = tmp.path().join("audit.jsonl");
    assert_eq!(ro(&["audit", "--export", export.to_str().unwrap()]), 0);
    let copy = |name: &str| {
        let p = tmp.path().join(name);
        std::fs::copy(&db, &p).unwrap();
        p
    };
    let (edited, deleted, truncated) = (copy("e.db"), copy("d.db"), copy("t.db"));
    // What someone with the file can do: drop the triggers, then change rows.
    let tamper = |p: &Path, sql: &str| {
        let c = rusqlite::Connection::open(p).unwrap();
        c.execute_batch(&format!(
            "DROP TRIGGER audit_append_only_update; DROP TRIGGER audit_append_only_delete; {sql}"
        ))
        .unwrap();
    };
    tamper(&edited, "UPDATE audit SET reason = 'all fine' WHERE id = 4;");
    tamper(&deleted, "DELETE FROM audit WHERE id = 2;");
    tamper(&truncated, "DELETE FROM audit WHERE id = 6;");
    let verify = |p: &Path| cli_out(&["rollout", "--store", p.to_str().unwrap(), "audit", "--verify"]);
    let (code, said) = verify(&edited);
    assert_eq!(code, 2);
    assert!(
        said.contains("entry 4 (id 4, pause by os:") && said.contains("edited"),
        "{said}"
    );
    assert!(said.contains("append-only triggers were dropped"), "{said}");
    let (code, said) = verify(&deleted);
    assert_eq!(code, 2);
    assert!(said.contains("entries 2..=2 were deleted"), "{said}");
    let (code, said) = verify(&truncated);
    assert_eq!(code, 2);
    assert!(said.contains("the newest entries were deleted"), "{said}");
    // `status` reports the same and fails.
    let (code, said) = cli_out(&["rollout", "--store", edited.to_str().unwrap(), "status"]);
    assert_eq!(code, 2);
    assert!(said.contains("audit chain broken"), "{said}");
    // The export verifies on its own, and an edit to it is found by position.
    let (code, said) = cli_out(&["rollout", "audit", "--verify", "--file", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{said}");
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2].replace("\"advance\"", "\"rollback\"");
    std::fs::write(&export, lines.join("\n")).unwrap();
    let (code, said) = cli_out(&["rollout", "audit", "--verify", "--file", export.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(said.contains("entry 3 (id 3, rollback"), "{said}");
}

/// The gateway contracts: Trino Gateway's external routing request and a
/// Kyuubi session conf overlay answer the documented shapes before and after
/// an advance and a rollback; `/v1/status` needs the bearer token, `/v1/route`
/// stays open.
#[test]
fn gateways_get_their_own_contracts_and_status_needs_a_token() {
    use sqlflight_tests::http_request;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("r.db").to_str().unwrap().to_string();
    let policy = tmp.path().join("p.yaml");
    std::fs::write(
        &policy,
        "name: g\nbaseline: {engine: spark, version: '3.5.9'}\ncandidate: {engine: spark, version: '4.0.1'}\n\
         gateways:\n  trino: { tenant: user, baseline_group: trino-old, candidate_group: trino-new }\n\
         \x20 kyuubi: { baseline_home: /opt/spark-3.5.9, candidate_home: /opt/spark-4.0.1 }\n\
         phases:\n  - { name: canary, tenants: [alice] }\n  - { name: all, percent: 100 }\n",
    )
    .unwrap();
    let ro = |args: &[&str]| {
        let mut v = vec!["rollout", "--store", &store, "-q"];
        v.extend_from_slice(args);
        run(&v)
    };
    assert_eq!(ro(&["init", "--policy", policy.to_str().unwrap()]), 0);
    let token = "s3cret-token-0123456789abcdef";
    let (_server, addr) = serve_with(&store, Some(token));
    // Trino Gateway posts the request's headers as headers and this body
    // (RoutingGroupExternalBody; trinoRequestUser only with analyzeRequest).
    let body = |user: Option<&str>| {
        serde_json::json!({
            "trinoQueryProperties": null,
            "trinoRequestUser": user.map(|u| serde_json::json!({"user": u})),
            "contentType": "application/json",
            "remoteUser": null,
            "method": "POST",
            "requestURI": "/v1/statement",
            "queryString": null,
            "session": null,
            "remoteAddr": "10.1.2.3",
            "remoteHost": "10.1.2.3",
            "parameters": {}
        })
        .to_string()
    };
    let trino = |user: &str| {
        let (code, v) = http_request(
            &addr,
            "POST",
            "/v1/trino-gateway/route",
            &[
                ("Content-Type", "application/json"),
                ("X-Trino-User", user),
                ("X-Trino-Source", "dbt"),
            ],
            &body(None),
        );
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["errors"], serde_json::json!([]), "{v}");
        assert!(v["externalHeaders"].is_object(), "{v}");
        v["routingGroup"].as_str().unwrap().to_string()
    };
    let kyuubi = |user: &str| {
        let (code, v) = http_get(&addr, &format!("/v1/kyuubi/conf?user={user}"));
        assert_eq!(code, 200, "{v}");
        v
    };
    assert_eq!(trino("alice"), "trino-old");
    assert_eq!(
        kyuubi("alice"),
        serde_json::json!({
            "kyuubi.engineEnv.SPARK_HOME": "/opt/spark-3.5.9",
            "kyuubi.engine.share.level.subdomain": "sqlflight-baseline-3-5-9"
        })
    );
    assert_eq!(ro(&["advance"]), 0);
    assert_eq!(trino("alice"), "trino-new");
    assert_eq!(trino("bob"), "trino-old");
    // The analyzed user in the body counts when the header is absent.
    let (_, v) = http_request(&addr, "POST", "/v1/trino-gateway/route", &[], &body(Some("alice")));
    assert_eq!(v["routingGroup"], "trino-new", "{v}");
    assert_eq!(
        kyuubi("alice")["kyuubi.engine.share.level.subdomain"],
        "sqlflight-candidate-4-0-1"
    );
    assert_eq!(kyuubi("alice")["kyuubi.engineEnv.SPARK_HOME"], "/opt/spark-4.0.1");
    // No tenant: an error entry, and the baseline's group.
    let (code, v) = http_request(&addr, "POST", "/v1/trino-gateway/route", &[], &body(None));
    assert_eq!(code, 200);
    assert_eq!(v["routingGroup"], "trino-old");
    assert!(v["errors"][0].as_str().unwrap().contains("no tenant"), "{v}");
    assert_eq!(ro(&["rollback", "--reason", "errors up"]), 0);
    assert_eq!(
        trino("alice"),
        "trino-old",
        "a rollback is effective for the next request"
    );
    assert_eq!(
        kyuubi("alice")["kyuubi.engine.share.level.subdomain"],
        "sqlflight-baseline-3-5-9"
    );
    // The status needs the token; routes do not.
    let (code, _) = http_get(&addr, "/v1/status");
    assert_eq!(code, 401);
    let (code, _) = http_request(&addr, "GET", "/v1/status", &[("Authorization", "Bearer wrong")], "");
    assert_eq!(code, 401);
    let bearer = format!("Bearer {token}");
    let (code, v) = http_request(&addr, "GET", "/v1/status", &[("Authorization", &bearer)], "");
    assert_eq!(code, 200);
    assert_eq!(v["status"], "rolled_back");
    let (code, _) = http_get(&addr, "/v1/route?tenant=alice");
    assert_eq!(code, 200);
}
