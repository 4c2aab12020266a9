//! End-to-end tests: playback through the embedded DataFusion, the run journal,
//! partitions and resume, the CLI's exit codes and errors. One test binary, so
//! DataFusion is linked once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlflight_corpora::bundled::Workload;
use sqlflight_corpora::tpch::ensure_tpch_data;
use sqlflight_corpora::{Catalog, Corpus, CorpusManifest, QueryRecord, TableFormat, TableSource};
use sqlflight_diffing::{ErrorClass, NormalizedPlan, OutcomeClass, PartitionSpec, RunStatus, SideResult};
use sqlflight_tests::*;

fn ddl_catalog(w: Workload) -> (Corpus, Catalog) {
    let corpus = w.corpus().unwrap();
    let catalog = Catalog::from_ddl(format!("<bundled:{}>", w.name()), corpus.schema.clone().unwrap());
    (corpus, catalog)
}

fn count(outcomes: &[sqlflight_diffing::OutcomeRecord], class: OutcomeClass) -> usize {
    outcomes.iter().filter(|o| o.class == class).count()
}

#[test]
fn identical_profiles_report_no_changes_and_no_failures() {
    let (base, _) = demo_profiles();
    let tmp = tempfile::tempdir().unwrap();
    for w in Workload::ALL {
        let (corpus, catalog) = ddl_catalog(w);
        // Two separate sessions of the same profile: nothing run-specific may leak
        // into the normalized plans.
        let s = playback(
            &corpus,
            engine("baseline", &base, &catalog),
            engine("candidate", &base, &catalog),
            &options(&tmp.path().join(w.name()), 2),
        );
        assert_eq!(s.outcomes.len(), corpus.records.len());
        let odd: Vec<_> = s
            .outcomes
            .iter()
            .filter(|o| o.class != OutcomeClass::SamePlan)
            .collect();
        assert!(odd.is_empty(), "{}: {odd:#?}", w.name());
    }
    // With data files in two different temp directories: file paths are normalized.
    let (corpus, _) = ddl_catalog(Workload::Tpch);
    let mut cats = Vec::new();
    for d in ["a", "b"] {
        let data = ensure_tpch_data(&tmp.path().join(d), 0.001).unwrap();
        let mut c = Catalog::default();
        for (t, p) in data.tables {
            c.tables.insert(
                t,
                TableSource {
                    path: p,
                    format: TableFormat::Parquet,
                },
            );
        }
        cats.push(c);
    }
    let s = playback(
        &corpus,
        engine("baseline", &base, &cats[0]),
        engine("candidate", &base, &cats[1]),
        &options(&tmp.path().join("tpch-data"), 2),
    );
    assert_eq!(count(&s.outcomes, OutcomeClass::SamePlan), 22, "{:#?}", s.outcomes);
}

#[test]
fn demo_candidate_changes_plans_with_diffs_and_signatures() {
    let (base, cand) = demo_profiles();
    let tmp = tempfile::tempdir().unwrap();
    for w in Workload::ALL {
        let (corpus, catalog) = ddl_catalog(w);
        let s = playback(
            &corpus,
            engine("baseline", &base, &catalog),
            engine("candidate", &cand, &catalog),
            &options(&tmp.path().join(w.name()), 2),
        );
        let changed: Vec<_> = s
            .outcomes
            .iter()
            .filter(|o| o.class == OutcomeClass::PlanChanged)
            .collect();
        assert!(!changed.is_empty(), "{}", w.name());
        for o in &changed {
            assert!(
                o.diff.as_ref().is_some_and(|d| d.contains("\n-") && d.contains("\n+")),
                "{}",
                o.query_id
            );
            assert!(
                o.change_signature.as_ref().is_some_and(|s| !s.is_empty()),
                "{}",
                o.query_id
            );
        }
        assert_eq!(s.regressions(), 0);
        // The join strategy change is the dominant root cause.
        let groups = sqlflight_reports::markdown::change_groups(&s.outcomes);
        assert_eq!(groups[0].signature, "HashJoinExec -> SortMergeJoinExec");
        // ... and the first plan fact; at most 3 facts explain every change.
        let facts = sqlflight_reports::facts::FactTable::build(&s.outcomes, None);
        assert_eq!(facts.facts[0].fact.fact, "HashJoinExec -> SortMergeJoinExec");
        assert_eq!(facts.explanation[0].0, "HashJoinExec -> SortMergeJoinExec");
        assert!(facts.explanation.len() <= 3, "{}: {:?}", w.name(), facts.explanation);
        let explained: usize = facts.explanation.iter().map(|e| e.1).sum();
        assert_eq!(
            explained + facts.cosmetic_only,
            changed.len(),
            "{:?}",
            facts.explanation
        );
        // The report holds the groups and an example diff.
        let view = sqlflight_reports::RunView::read(&s.dir).unwrap();
        let md = sqlflight_reports::markdown::run_markdown(&view);
        assert!(md.contains("HashJoinExec -> SortMergeJoinExec"));
        assert!(md.contains("```diff"));
    }
}

/// Normalized plans and diffs of a few queries, pinned.
#[test]
fn plan_and_diff_snapshots() {
    let (base, cand) = demo_profiles();
    for (w, id) in [
        (Workload::Tpch, "tpch-q03"),
        (Workload::Tpch, "tpch-q18"),
        (Workload::Tpcds, "tpcds-q03"),
    ] {
        let (corpus, catalog) = ddl_catalog(w);
        let sql = &corpus.records.iter().find(|r| r.id == id).unwrap().sql;
        let b = engine("baseline", &base, &catalog).compile(sql).unwrap();
        let c = engine("candidate", &cand, &catalog).compile(sql).unwrap();
        let nb = NormalizedPlan::new(&b.logical, b.physical.as_deref());
        let nc = NormalizedPlan::new(&c.logical, c.physical.as_deref());
        insta::assert_snapshot!(
            format!("{id}-baseline"),
            format!("{}\n{}", nb.logical, nb.physical.as_deref().unwrap())
        );
        insta::assert_snapshot!(format!("{id}-diff"), sqlflight_diffing::plan_diff(&nb, &nc));
        insta::assert_snapshot!(format!("{id}-signature"), sqlflight_diffing::change_signature(&nb, &nc));
    }
}

#[test]
fn failures_crashes_and_hangs_become_outcomes_and_the_run_completes() {
    let catalog = Catalog::from_ddl("t.sql", "create table t(a int, b varchar);");
    let mut base_spec = datafusion(&[], &[]);
    let mut cand_spec = datafusion(&[], &[]);
    let sqlflight_engines::EngineSpec::Datafusion { setup, .. } = &mut base_spec else {
        unreachable!("demo profiles are embedded DataFusion")
    };
    setup.push("create view only_in_baseline as select 1 as x".into());
    let sqlflight_engines::EngineSpec::Datafusion { setup, .. } = &mut cand_spec else {
        unreachable!("demo profiles are embedded DataFusion")
    };
    setup.push("create view only_in_candidate as select 2 as y".into());
    let records = vec![
        QueryRecord::new("syntax", "SELEC a FROM t"),
        QueryRecord::new("missing-table", "select * from no_such_table"),
        QueryRecord::new("dropped-view", "select x from only_in_baseline"),
        QueryRecord::new("new-view", "select y from only_in_candidate"),
        QueryRecord::new("panics", "select a as sqlflight_test_panic from t"),
        QueryRecord::new("hangs", "select a as sqlflight_test_hang from t"),
        QueryRecord::new("fine", "select a, count(*) from t group by a"),
    ];
    let corpus = Corpus::from_records(CorpusManifest::new("faults"), records, None);
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(&tmp.path().join("run"), 2);
    opts.timeout = Duration::from_secs(2);
    let s = playback(
        &corpus,
        engine("baseline", &base_spec, &catalog),
        FaultyEngine::wrap(engine("candidate", &cand_spec, &catalog)),
        &opts,
    );
    let by: BTreeMap<&str, &sqlflight_diffing::OutcomeRecord> =
        s.outcomes.iter().map(|o| (o.query_id.as_str(), o)).collect();
    let class = |id: &str| by[id].class;
    let cand_err = |id: &str| match &by[id].candidate {
        Some(SideResult::Error { error_class, error, .. }) => (*error_class, error.clone()),
        other => panic!("{id}: expected a candidate error, got {other:?}"),
    };
    assert_eq!(class("syntax"), OutcomeClass::BothFailSame);
    assert_eq!(cand_err("syntax").0, ErrorClass::Parse);
    assert_eq!(class("missing-table"), OutcomeClass::BothFailSame);
    assert_eq!(cand_err("missing-table").0, ErrorClass::Plan);
    assert_eq!(class("dropped-view"), OutcomeClass::NewFailure);
    assert_eq!(cand_err("dropped-view").0, ErrorClass::Plan);
    assert_eq!(class("new-view"), OutcomeClass::Fixed);
    assert_eq!(class("panics"), OutcomeClass::Crash);
    assert!(cand_err("panics").1.starts_with("panicked: ") && cand_err("panics").1.contains("test panic"));
    assert_eq!(class("hangs"), OutcomeClass::Timeout);
    assert_eq!(cand_err("hangs").0, ErrorClass::Timeout);
    assert_eq!(class("fine"), OutcomeClass::SamePlan);
    assert_eq!(s.regressions(), 3);
    assert_eq!(s.manifest.status, RunStatus::Complete);
    assert_eq!(s.manifest.counts.values().sum::<u64>(), 7);
    let md = std::fs::read_to_string(
        sqlflight_reports::write_markdown(&s.dir, &sqlflight_reports::RunView::read(&s.dir).unwrap()).unwrap(),
    )
    .unwrap();
    assert!(md.contains("**Verdict: 3 regressions**"), "{md}");
    assert!(md.contains("panicked: ? test panic"), "{md}");
}

/// A plan the engine does not determine (two ways at random, as
/// datafusion-python 52 plans TPC-DS q70) is `nondeterministic`, not a plan
/// change, when both sides can plan it the same way; a side whose plans are all
/// new is still a plan change, with the instability said.
#[test]
fn a_plan_the_engine_does_not_determine_is_not_a_plan_change() {
    let catalog = Catalog::from_ddl("t.sql", "create table t(a int, b varchar);");
    let spec = datafusion(&[], &[]);
    let records = vec![
        QueryRecord::new("unstable", "select a as sqlflight_test_unstable_plan from t"),
        QueryRecord::new("stable", "select a, count(*) from t group by a"),
    ];
    let corpus = Corpus::from_records(CorpusManifest::new("unstable"), records, None);
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, b: std::sync::Arc<dyn sqlflight_engines::Engine>, c, rechecks| {
        let mut opts = options(&tmp.path().join(name), 1);
        opts.plan_rechecks = rechecks;
        let s = playback(&corpus, b, c, &opts);
        let by: BTreeMap<String, sqlflight_diffing::OutcomeRecord> =
            s.outcomes.into_iter().map(|o| (o.query_id.clone(), o)).collect();
        by
    };
    let unstable = |start| UnstablePlanEngine::wrap(engine("side", &spec, &catalog), start);
    // Both sides plan it both ways; their first plans differ.
    let o = run(
        "both",
        unstable(0),
        unstable(1),
        sqlflight_playback::DEFAULT_PLAN_RECHECKS,
    );
    let u = &o["unstable"];
    assert_eq!(u.class, OutcomeClass::Nondeterministic, "{u:#?}");
    let said = u.detail.as_deref().unwrap_or_default();
    assert!(
        said.contains("plan not determined") && said.contains("same way"),
        "{said}"
    );
    assert!(u.plan_facts.is_empty() && u.change_signature.is_none() && u.diff.is_none());
    assert_eq!(o["stable"].class, OutcomeClass::SamePlan);
    // Without rechecks it would read as a plan change.
    let o = run("none", unstable(0), unstable(1), 0);
    assert_eq!(o["unstable"].class, OutcomeClass::PlanChanged);
    // Only the candidate is unstable, and neither of its plans is the baseline's.
    let o = run("one", engine("baseline", &spec, &catalog), unstable(0), 2);
    let u = &o["unstable"];
    assert_eq!(u.class, OutcomeClass::PlanChanged, "{u:#?}");
    let said = u.detail.as_deref().unwrap_or_default();
    assert!(
        said.contains("the baseline planned it 1 way(s), the candidate 2"),
        "{said}"
    );
    assert!(!u.plan_facts.is_empty());
}

#[test]
fn partitions_together_equal_the_whole_run() {
    let (base, cand) = demo_profiles();
    let (corpus, catalog) = ddl_catalog(Workload::Tpcds);
    let b = engine("baseline", &base, &catalog);
    let c = engine("candidate", &cand, &catalog);
    let tmp = tempfile::tempdir().unwrap();
    let whole = playback(&corpus, b.clone(), c.clone(), &options(&tmp.path().join("whole"), 2));
    let mut merged = BTreeMap::new();
    let mut sizes = Vec::new();
    for k in 1..=2 {
        let mut o = options(&tmp.path().join(format!("p{k}")), 2);
        o.partition = Some(PartitionSpec { k, n: 2 });
        let part = playback(&corpus, b.clone(), c.clone(), &o);
        assert_eq!(part.manifest.selected as usize, part.outcomes.len());
        sizes.push(part.outcomes.len());
        for (id, o) in comparable(&part.outcomes) {
            assert!(merged.insert(id, o).is_none(), "partitions overlap");
        }
    }
    assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
    assert_eq!(merged, comparable(&whole.outcomes));
}

/// Runs the CLI in a child process: this test binary, running only the
/// `child_process_entry` test below, which executes the arguments it is given.
fn cli_child(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_process_entry", "--nocapture", "--test-threads", "1"])
        .env("SQLFLIGHT_E2E_ARGS", serde_json::to_string(args).unwrap())
        .env("CI", "true");
    cmd
}

/// Entry point of [`cli_child`]; without its environment variable it does nothing
/// (it is not a test of its own).
#[test]
fn child_process_entry() {
    let Ok(args) = std::env::var("SQLFLIGHT_E2E_ARGS") else {
        return;
    };
    let mut argv = vec!["sqlflight".to_string()];
    argv.extend(serde_json::from_str::<Vec<String>>(&args).unwrap());
    sqlflight::install_panic_hook();
    let code = sqlflight::run_cli(argv);
    let _ = std::io::stdout().flush();
    std::process::exit(i32::from(code));
}

/// Runs the CLI in this process with `args` (without the program name).
fn run_args(args: &[&str]) -> u8 {
    let mut v = vec!["sqlflight"];
    v.extend_from_slice(args);
    sqlflight::run_cli(v)
}

fn write_config(dir: &Path, corpus: &str) -> std::path::PathBuf {
    let p = dir.join("sqlflight.yaml");
    std::fs::write(
        &p,
        format!("corpus: {corpus}\n{}", sqlflight::commands::demo::DEMO_ENGINES),
    )
    .unwrap();
    p
}

#[test]
fn killed_run_resumes_to_exactly_the_uninterrupted_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "bundled:tpcds");
    let cfg = cfg.to_str().unwrap();
    let run = tmp.path().join("killed");
    let run_s = run.to_str().unwrap();
    let mut child = cli_child(&["playback", "-c", cfg, "--jobs", "1", "--out", run_s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let outcomes = run.join("outcomes.jsonl");
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&outcomes)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines >= 5 || start.elapsed() > Duration::from_secs(300) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = std::fs::read_to_string(&outcomes).unwrap().lines().count();
    assert!(
        before < 99,
        "the run finished before it could be killed ({before} outcomes)"
    );
    // A kill can also tear the line being written.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&outcomes)
        .unwrap()
        .write_all(b"{\"query_id\":\"tpcds-q9")
        .unwrap();
    let code = sqlflight::run_cli([
        "sqlflight",
        "playback",
        "-c",
        cfg,
        "--jobs",
        "2",
        "--out",
        run_s,
        "--resume",
        "--quiet",
    ]);
    assert_eq!(code, 0);
    let (manifest, resumed) = sqlflight_runs::read_run(&run).unwrap();
    assert_eq!(manifest.resumed, 1);
    assert_eq!(manifest.status, RunStatus::Complete);
    let text = std::fs::read_to_string(&outcomes).unwrap();
    assert_eq!(text.lines().count(), 99, "no duplicated or lost lines");

    let whole = tmp.path().join("whole");
    let code = sqlflight::run_cli([
        "sqlflight",
        "playback",
        "-c",
        cfg,
        "--out",
        whole.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0);
    let (_, uninterrupted) = sqlflight_runs::read_run(&whole).unwrap();
    assert_eq!(comparable(&resumed), comparable(&uninterrupted));

    // Resuming with a different candidate is refused.
    let other = tmp.path().join("other.yaml");
    std::fs::write(
        &other,
        std::fs::read_to_string(cfg).unwrap().replace("\"false\"", "\"true\""),
    )
    .unwrap();
    let code = sqlflight::run_cli([
        "sqlflight",
        "playback",
        "-c",
        other.to_str().unwrap(),
        "--out",
        run_s,
        "--resume",
        "--quiet",
    ]);
    assert_eq!(code, 2);
}

#[test]
fn cli_ingest_then_playback_with_exit_codes_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = tmp.path().join("in");
    std::fs::create_dir(&inp).unwrap();
    std::fs::write(
        inp.join("app.sql"),
        "-- report queries\nselect a, ';' as semi from t where b = 'x;y';\n\
         select $$ not; a; split $$ as body, a from t; /* c; */ select count(*) from t",
    )
    .unwrap();
    std::fs::write(
        inp.join("more.jsonl"),
        "{\"sql\": \"select b from t where a > 1\", \"user\": \"ann\", \"tenant\": \"acme\"}\n{broken\n",
    )
    .unwrap();
    let ddl = tmp.path().join("schema.sql");
    std::fs::write(&ddl, "create table t(a int, b varchar);").unwrap();
    let corpus = tmp.path().join("corpus");
    let code = sqlflight::run_cli([
        "sqlflight",
        "corpus",
        "ingest",
        inp.to_str().unwrap(),
        "--out",
        corpus.to_str().unwrap(),
        "--schema",
        ddl.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0);
    let c = Corpus::open(&corpus).unwrap();
    assert_eq!(c.records.len(), 4);
    assert!(c.records[1].sql.contains("$$ not; a; split $$"));
    assert_eq!(c.records[3].user.as_deref(), Some("ann"));

    // Identical profiles: exit 0. Candidate without a setup view: regression, exit 1.
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "corpus: corpus\nengines:\n  baseline: { kind: datafusion }\n  candidate: { kind: datafusion, settings: { datafusion.optimizer.prefer_hash_join: \"false\" } }\n",
    )
    .unwrap();
    let out = cli_child(&[
        "playback",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        tmp.path().join("r1").to_str().unwrap(),
        "--json",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json_start = stdout.find("{\n").expect("json summary");
    let v: serde_json::Value = serde_json::Deserializer::from_str(&stdout[json_start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(v["queries"], 4);
    assert_eq!(
        (&v["format"], &v["version"], &v["kind"]),
        (
            &serde_json::json!("sqlflight-summary"),
            &serde_json::json!(1),
            &serde_json::json!("playback")
        )
    );
    let out = cli_child(&[
        "flight",
        "-c",
        cfg.to_str().unwrap(),
        "--results-only",
        "--out",
        tmp.path().join("r1f").to_str().unwrap(),
        "--json",
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let f: serde_json::Value = serde_json::Deserializer::from_str(&stdout[stdout.find("{\n").expect("json summary")..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        (&f["format"], &f["version"], &f["kind"]),
        (
            &serde_json::json!("sqlflight-summary"),
            &serde_json::json!(1),
            &serde_json::json!("flight")
        )
    );
    assert!(tmp.path().join("r1/report.md").is_file());
    // The tenant travels from the log record to the outcome and the analyses.
    let (_, o1) = sqlflight_runs::read_run(&tmp.path().join("r1")).unwrap();
    let tenants: Vec<Option<&str>> = o1.iter().map(|o| o.tenant.as_deref()).collect();
    assert_eq!(tenants.iter().filter(|t| **t == Some("acme")).count(), 1, "{tenants:?}");
    let md = std::fs::read_to_string(tmp.path().join("r1/report.md")).unwrap();
    assert!(md.contains("Per tenant:") && md.contains("| `acme` | 1 |"), "{md}");

    std::fs::write(inp.join("extra.sql"), "select * from missing_in_candidate").unwrap();
    let cfg2 = tmp.path().join("c2.yaml");
    std::fs::write(
        &cfg2,
        "corpus: corpus2\nengines:\n  baseline: { kind: datafusion, setup: [\"create view missing_in_candidate as select 1\"] }\n  candidate: { kind: datafusion }\n",
    )
    .unwrap();
    let corpus2 = tmp.path().join("corpus2");
    assert_eq!(
        sqlflight::run_cli([
            "sqlflight",
            "corpus",
            "ingest",
            inp.to_str().unwrap(),
            "--out",
            corpus2.to_str().unwrap(),
            "--schema",
            ddl.to_str().unwrap(),
            "-q"
        ]),
        0
    );
    let code = sqlflight::run_cli([
        "sqlflight",
        "playback",
        "-c",
        cfg2.to_str().unwrap(),
        "--out",
        tmp.path().join("r2").to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 1);

    // A broken config: exit 2, with file, line and column.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "corpus: corpus\nengines:\n  baseline: { kind: datafusion\n").unwrap();
    let out = cli_child(&["playback", "-c", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4:", bad.display())) || err.contains(&format!("{}:3:", bad.display())),
        "{err}"
    );
    // An unknown rule is located in the file too.
    std::fs::write(&bad, "corpus: corpus\nengines:\n  baseline: { kind: datafusion }\n  candidate: { kind: datafusion, disable_rules: [no_such_rule] }\n").unwrap();
    let out = cli_child(&[
        "playback",
        "-c",
        bad.to_str().unwrap(),
        "--out",
        tmp.path().join("r3").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4:", bad.display())) && err.contains("no_such_rule"),
        "{err}"
    );
    // Usage errors are 2 as well.
    assert_eq!(sqlflight::run_cli(["sqlflight", "playback", "--partition", "3/2"]), 2);
}

/// The config loader (cli/src/config.rs): located errors and the documented shape.
mod config {
    use sqlflight::config::*;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    #[test]
    fn malformed_yaml_names_line_and_column() {
        let text = "corpus: corpora/tpch\nengines:\n  baseline: { kind: datafusion }\n  candidate: { kind: datafusion, settings: [1, }\n";
        let e = Config::parse(Path::new("bad.yaml"), text).unwrap_err();
        assert_eq!(e.file, "bad.yaml");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.column > 0);
        let shown = e.to_string();
        assert!(shown.starts_with("bad.yaml:4:"), "{shown}");
        assert!(shown.contains("fix:"), "{shown}");
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        let e = Config::parse(Path::new("c.yaml"), "corpus: x\nengnes: {}\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.message.contains("unknown field `engnes`"), "{e}");
        let e = Config::parse(Path::new("c.yaml"), "engines:\n  b:\n    kind: oracle\n").unwrap_err();
        assert!(e.message.contains("unknown variant `oracle`"), "{e}");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn design_shaped_config_parses() {
        let text = r#"
corpus: corpora/tpch
catalog:
  ddl: corpora/tpch/schema.sql
  setup: [ "SET datafusion.execution.time_zone = 'UTC'" ]
  tables:
    lineitem: data/tpch/lineitem.parquet
    orders: { path: data/tpch/orders.csv, format: csv }
engines:
  baseline:  { kind: datafusion }
  candidate: { kind: datafusion,
               settings: { datafusion.optimizer.prefer_hash_join: "false" },
               disable_rules: [ push_down_limit ] }
baseline: baseline
candidate: candidate
playback: { jobs: 2, timeout: 30s }
"#;
        let c = Config::parse(Path::new("/etc/sf/sqlflight.yaml"), text).unwrap();
        assert_eq!(c.file.engines.len(), 2);
        assert_eq!(c.resolve("data/x.parquet"), PathBuf::from("/etc/sf/data/x.parquet"));
        assert_eq!(c.timeout().unwrap(), Some(Duration::from_secs(30)));
    }
}

#[test]
fn repository_example_config_and_corpus_dirs_work() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for w in Workload::ALL {
        let on_disk = Corpus::open(&root.join("corpora").join(w.name())).unwrap();
        let bundled = w.corpus().unwrap();
        assert_eq!(on_disk.records.len(), bundled.records.len());
        assert_eq!(on_disk.schema, bundled.schema);
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = root.join("examples/playback.yaml");
    let code = sqlflight::run_cli([
        "sqlflight",
        "playback",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0);
    let (m, o) = sqlflight_runs::read_run(&out).unwrap();
    assert_eq!(o.len(), 22);
    assert!(m.counts.get("plan_changed").is_some_and(|&n| n > 0));
    assert!(m.corpus.path.as_deref().is_some_and(|p| p.ends_with("tpch")));
}

/// Pure parts of the flight driver: scrubbing, perf verdicts, accepted differences, statistics.
mod flight_units {
    use sqlflight_diffing::{OutcomeClass, OutcomeRecord, PerfVerdict};
    use sqlflight_flighting::stats::*;
    use sqlflight_flighting::*;

    #[test]
    fn scrub_keeps_only_allowed_words() {
        assert_eq!(
            scrub(
                "Cast error: Cannot cast string 'alice@example.com' to Int64; at 'x''y'",
                "select cast(email as bigint) from people"
            ),
            "Cast error: Cannot cast string '?' to Int64; at '?'"
        );
    }

    #[test]
    fn perf_verdicts() {
        let p = PerfPolicy::default();
        let v = |b: &[f64], c: &[f64]| perf_verdict(b, c, &p).unwrap();
        assert_eq!(
            v(
                &[100.0, 101.0, 99.0, 100.5, 100.2],
                &[200.0, 201.0, 199.0, 200.5, 200.2]
            )
            .verdict,
            PerfVerdict::Slower
        );
        assert!(
            v(
                &[100.0, 101.0, 99.0, 100.5, 100.2],
                &[200.0, 201.0, 199.0, 200.5, 200.2]
            )
            .regression
        );
        assert_eq!(
            v(
                &[200.0, 201.0, 199.0, 200.5, 200.2],
                &[100.0, 101.0, 99.0, 100.5, 100.2]
            )
            .verdict,
            PerfVerdict::Faster
        );
        assert_eq!(
            v(&[1.0, 1.1, 0.9], &[2.0, 2.1, 1.9]).verdict,
            PerfVerdict::Same,
            "under the 5 ms floor"
        );
        assert_eq!(
            v(&[100.0, 300.0, 100.0], &[300.0, 100.0, 300.0]).verdict,
            PerfVerdict::Inconclusive
        );
    }

    #[test]
    fn accepted_differences_apply_by_query_or_template() {
        let mut o = OutcomeRecord::skipped("q1".into(), "00000000000000aa".into(), "");
        o.class = OutcomeClass::WrongResult;
        o.skip_reason = None;
        o.detail = Some("columns:[x]".into());
        let acc = vec![AcceptedDifference {
            query_id: None,
            template_id: Some("00000000000000aa".into()),
            class: OutcomeClass::WrongResult,
            reason: Some("rounding changed in 56".into()),
        }];
        apply_accepted(&mut o, &acc);
        assert_eq!(o.class, OutcomeClass::Accepted);
        assert_eq!(
            o.detail.as_deref(),
            Some("wrong_result(columns:[x]): rounding changed in 56")
        );
    }

    #[test]
    fn median_and_mwu() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let fast = [10.0, 11.0, 10.5, 10.2, 10.8];
        let slow = [20.0, 21.0, 20.5, 19.8, 20.9];
        let p = mann_whitney_p(&fast, &slow).unwrap();
        assert!(p < 0.05, "{p}");
        let same = [10.1, 10.9, 10.4, 10.3, 10.7];
        assert!(mann_whitney_p(&fast, &same).unwrap() > 0.2);
        assert_eq!(mann_whitney_p(&[1.0], &[2.0]), None);
        assert_eq!(mann_whitney_p(&[1.0, 1.0], &[1.0, 1.0]), None);
    }
}

// ---------------------------------------------------------------- flight

fn tpch_tables(dir: &Path) -> Catalog {
    let data = ensure_tpch_data(dir, 0.002).unwrap();
    let mut c = Catalog::default();
    for (t, p) in data.tables {
        c.tables.insert(
            t,
            TableSource {
                path: p,
                format: TableFormat::Parquet,
            },
        );
    }
    c
}

fn flight_options(out: &Path) -> sqlflight_flighting::FlightOptions {
    sqlflight_flighting::FlightOptions {
        out: out.to_path_buf(),
        repeat: 2,
        jobs: 2,
        ..Default::default()
    }
}

fn fly(
    corpus: &Corpus,
    b: std::sync::Arc<dyn sqlflight_engines::Engine>,
    c: std::sync::Arc<dyn sqlflight_engines::Engine>,
    o: &sqlflight_flighting::FlightOptions,
) -> sqlflight_flighting::FlightSummary {
    sqlflight_flighting::run_flight(corpus, b, c, o, &sqlflight_runs::NoProgress).unwrap()
}

#[test]
fn flight_tpch_matches_with_identical_and_with_demo_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog = tpch_tables(&tmp.path().join("data"));
    let corpus = Workload::Tpch.corpus().unwrap();
    let (base, cand) = demo_profiles();
    for (name, c) in [("same", &base), ("demo", &cand)] {
        let s = fly(
            &corpus,
            engine("baseline", &base, &catalog),
            engine("candidate", c, &catalog),
            &flight_options(&tmp.path().join(name)),
        );
        // Results always match; the demo's sort-merge joins may also be confirmed
        // slowdowns, an A/A flight never.
        let odd: Vec<_> = s
            .outcomes
            .iter()
            .filter(|o| o.class != OutcomeClass::Match && (name == "same" || o.class != OutcomeClass::PerfRegression))
            .collect();
        assert!(odd.is_empty(), "{name}: {odd:#?}");
        for o in &s.outcomes {
            let f = o.flight.as_ref().unwrap();
            let n = f.baseline.times_ms.len();
            assert!(
                n >= 2 && n % 2 == 0,
                "ABBA blocks: {} has {n} baseline runs",
                o.query_id
            );
            assert!(f.candidate.median_ms.is_some());
            assert!(f.perf.is_some());
            assert!(f.baseline.digest.is_some() && f.candidate.digest.is_some());
        }
        assert_eq!(s.manifest.kind, "flight");
        let md = std::fs::read_to_string(s.dir.join("outcomes.jsonl")).unwrap();
        assert!(md.contains("\"class\":\"match\""));
    }
}

#[test]
fn flight_catches_wrong_results_naming_the_column_and_accepts_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog = tpch_tables(&tmp.path().join("data"));
    let all = Workload::Tpch.corpus().unwrap();
    let pick = |ids: &[&str]| {
        let recs = all
            .records
            .iter()
            .filter(|r| ids.contains(&r.id.as_str()))
            .cloned()
            .collect();
        Corpus::from_records(CorpusManifest::new("some"), recs, None)
    };
    let corpus = pick(&["tpch-q01", "tpch-q06"]);
    let (base, _) = demo_profiles();
    let b = engine("baseline", &base, &catalog);
    let c = engine("candidate", &base, &catalog);
    let s = fly(
        &corpus,
        b.clone(),
        WrongEngine::wrap(c.clone(), Corruption::BumpColumn("count_order")),
        &flight_options(&tmp.path().join("bump")),
    );
    let q1 = s.outcomes.iter().find(|o| o.query_id == "tpch-q01").unwrap();
    assert_eq!(q1.class, OutcomeClass::WrongResult);
    assert_eq!(q1.detail.as_deref(), Some("columns:[count_order]"));
    assert_eq!(
        q1.flight.as_ref().unwrap().reruns,
        2,
        "the baseline was re-run before blaming the candidate"
    );
    let q6 = s.outcomes.iter().find(|o| o.query_id == "tpch-q06").unwrap();
    assert_eq!(q6.class, OutcomeClass::Match, "no count_order column in q06");
    assert_eq!(s.regressions(), 1);

    let s = fly(
        &corpus,
        b.clone(),
        WrongEngine::wrap(c.clone(), Corruption::DropRow),
        &flight_options(&tmp.path().join("drop")),
    );
    let q1 = s.outcomes.iter().find(|o| o.query_id == "tpch-q01").unwrap();
    assert_eq!(
        (q1.class, q1.detail.as_deref()),
        (OutcomeClass::WrongResult, Some("row_count"))
    );

    // A baseline that disagrees with itself is nondeterministic, not a regression.
    let s = fly(
        &pick(&["tpch-q01"]),
        WrongEngine::wrap(b.clone(), Corruption::Flaky("count_order")),
        c.clone(),
        &flight_options(&tmp.path().join("flaky")),
    );
    assert_eq!(
        s.outcomes[0].class,
        OutcomeClass::Nondeterministic,
        "{:?}",
        s.outcomes[0]
    );
    assert_eq!(s.regressions(), 0);

    // Known differences turn the finding into `accepted`.
    let mut o = flight_options(&tmp.path().join("accepted"));
    o.accepted = vec![sqlflight_flighting::AcceptedDifference {
        query_id: Some("tpch-q01".into()),
        template_id: None,
        class: OutcomeClass::WrongResult,
        reason: Some("intended".into()),
    }];
    let s = fly(
        &corpus,
        b,
        WrongEngine::wrap(c, Corruption::BumpColumn("count_order")),
        &o,
    );
    let q1 = s.outcomes.iter().find(|o| o.query_id == "tpch-q01").unwrap();
    assert_eq!(q1.class, OutcomeClass::Accepted);
    assert_eq!(s.regressions(), 0);
}

#[test]
fn flight_timeouts_memory_limits_crashes_writes_and_volatile_queries_are_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog = Catalog::from_ddl("t.sql", "create table t(a bigint, b varchar);");
    let mut base = datafusion(&[("datafusion.execution.target_partitions", "2")], &[]);
    let mut cand = base.clone();
    let sqlflight_engines::EngineSpec::Datafusion { setup, .. } = &mut base else {
        unreachable!("demo profiles are embedded DataFusion")
    };
    setup.push("create view work as select v from generate_series(1, 1000) t(v)".into());
    let sqlflight_engines::EngineSpec::Datafusion { setup, .. } = &mut cand else {
        unreachable!("demo profiles are embedded DataFusion")
    };
    // The candidate's `work` is far bigger: it cannot finish within the limits.
    setup.push("create view work as select v from generate_series(1, 3000000000) t(v)".into());
    let records = vec![
        QueryRecord::new("slow", "select count(*) from work"),
        QueryRecord::new("memory", "select v from work order by v desc"),
        QueryRecord::new("panics", "select 1 as sqlflight_test_panic"),
        QueryRecord::new("insert", "insert into t values (1, 'x')"),
        QueryRecord::new("ddl", "create table should_not_exist(a int)"),
        QueryRecord::new("set", "set datafusion.execution.batch_size = 10"),
        QueryRecord::new("volatile", "select random() as r"),
        QueryRecord::new("garbage", "selec from where"),
    ];
    let corpus = Corpus::from_records(CorpusManifest::new("faults"), records, None);
    let b = engine("baseline", &base, &catalog);
    let c = engine("candidate", &cand, &catalog);
    let mut o = flight_options(&tmp.path().join("run"));
    o.repeat = 1;
    o.limits = sqlflight_engines::ExecLimits {
        timeout: Duration::from_secs(2),
        memory_limit: Some(64 * 1024 * 1024),
    };
    let s = fly(&corpus, b.clone(), FaultyEngine::wrap(c), &o);
    let by: BTreeMap<&str, &sqlflight_diffing::OutcomeRecord> =
        s.outcomes.iter().map(|o| (o.query_id.as_str(), o)).collect();
    assert_eq!(by["slow"].class, OutcomeClass::Timeout, "{:?}", by["slow"]);
    assert!(
        matches!(by["memory"].class, OutcomeClass::ResourceLimit | OutcomeClass::Timeout),
        "{:?}",
        by["memory"]
    );
    assert_eq!(by["panics"].class, OutcomeClass::Crash);
    assert_eq!(by["insert"].class, OutcomeClass::Skipped);
    assert!(
        by["insert"]
            .skip_reason
            .as_deref()
            .unwrap()
            .starts_with("write_statement")
    );
    assert!(by["ddl"].skip_reason.as_deref().unwrap().starts_with("write_statement"));
    assert!(by["set"].skip_reason.as_deref().unwrap().starts_with("unsupported"));
    assert!(by["garbage"].skip_reason.as_deref().unwrap().starts_with("unsupported"));
    assert_eq!(by["volatile"].class, OutcomeClass::Nondeterministic);
    assert_eq!(by["volatile"].detail.as_deref(), Some("volatile function random()"));
    // Nothing was written: the skipped DDL never ran.
    assert!(b.compile("select * from should_not_exist").is_err());

    // The memory limit on its own, for real: the same sort with a tight limit.
    let mut o = flight_options(&tmp.path().join("mem"));
    o.repeat = 1;
    o.limits = sqlflight_engines::ExecLimits {
        timeout: Duration::from_secs(120),
        memory_limit: Some(32 * 1024 * 1024),
    };
    let big = datafusion(&[("datafusion.execution.target_partitions", "2")], &[]);
    let mut big_setup = big.clone();
    let sqlflight_engines::EngineSpec::Datafusion { setup, .. } = &mut big_setup else {
        unreachable!("demo profiles are embedded DataFusion")
    };
    setup.push("create view work as select v from generate_series(1, 5000000) t(v)".into());
    let mut small_setup = big;
    let sqlflight_engines::EngineSpec::Datafusion { setup, .. } = &mut small_setup else {
        unreachable!("demo profiles are embedded DataFusion")
    };
    setup.push("create view work as select v from generate_series(1, 100) t(v)".into());
    let corpus = Corpus::from_records(
        CorpusManifest::new("mem"),
        // A hash join's build side cannot spill: past the limit it fails.
        vec![QueryRecord::new(
            "join",
            "select count(*) from work a join work b on a.v = b.v",
        )],
        None,
    );
    let s = fly(
        &corpus,
        engine("baseline", &small_setup, &catalog),
        engine("candidate", &big_setup, &catalog),
        &o,
    );
    assert_eq!(s.outcomes[0].class, OutcomeClass::ResourceLimit, "{:?}", s.outcomes[0]);
}

#[test]
fn flight_never_writes_a_result_value() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("people.csv");
    std::fs::write(
        &csv,
        "id,email,salary,score\n1,alice.SECRET7731@example.com,987654321,3.14159265\n2,bob.SECRET8842@example.com,123456789,2.71828182\n",
    )
    .unwrap();
    let mut catalog = Catalog::default();
    catalog.tables.insert(
        "people".into(),
        TableSource {
            path: csv,
            format: TableFormat::Csv,
        },
    );
    let records = vec![
        QueryRecord::new("all", "select * from people order by id"),
        QueryRecord::new("one", "select email, salary, score from people where id = 1"),
        QueryRecord::new("sum", "select sum(salary) as s, max(email) as m from people"),
        QueryRecord::new("cast-error", "select cast(email as int) from people"),
    ];
    let corpus = Corpus::from_records(CorpusManifest::new("secrets"), records, None);
    let (base, cand) = demo_profiles();
    let run = tmp.path().join("run");
    let s = fly(
        &corpus,
        engine("baseline", &base, &catalog),
        WrongEngine::wrap(engine("candidate", &cand, &catalog), Corruption::BumpColumn("id")),
        &flight_options(&run),
    );
    assert!(s.outcomes.iter().any(|o| o.class == OutcomeClass::WrongResult));
    assert!(
        s.outcomes.iter().any(|o| o.class == OutcomeClass::BothFailSame),
        "{:#?}",
        s.outcomes
    );
    let report = sqlflight_reports::write_markdown(&run, &sqlflight_reports::RunView::read(&run).unwrap()).unwrap();
    assert!(report.starts_with(&run));
    let secrets = [
        "SECRET7731",
        "SECRET8842",
        "987654321",
        "123456789",
        "1111111110",
        "3.14159",
        "2.71828",
        "alice",
        "bob",
    ];
    let mut files = 0;
    for entry in std::fs::read_dir(&run).unwrap() {
        let p = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        files += 1;
        for s in secrets {
            assert!(!text.contains(s), "{} contains the planted value {s}", p.display());
        }
    }
    assert!(files >= 3);
}

#[test]
fn killed_flight_resumes_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let data = ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let mut yaml = String::from("corpus: bundled:tpch\ncatalog:\n  tables:\n");
    for (t, p) in &data.tables {
        yaml.push_str(&format!("    {t}: {}\n", p.display()));
    }
    yaml.push_str(sqlflight::commands::demo::DEMO_ENGINES);
    yaml.push_str("flight: { repeat: 2, max_concurrency: 1 }\n");
    let cfg = tmp.path().join("f.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let mut child = cli_child(&["flight", "-c", cfg, "--out", run_s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let outcomes = run.join("outcomes.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&outcomes)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 3
        && start.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = std::fs::read_to_string(&outcomes).unwrap().lines().count();
    assert!(before < 22, "finished before the kill");
    let code = sqlflight::run_cli(["sqlflight", "flight", "-c", cfg, "--out", run_s, "--resume", "-q"]);
    // 1: the demo profile's sort-merge joins may be confirmed slowdowns.
    assert!(code < 2, "{code}");
    let (m, o) = sqlflight_runs::read_run(&run).unwrap();
    assert_eq!((m.status, m.resumed), (RunStatus::Complete, 1));
    assert_eq!(o.len(), 22);
    assert_eq!(std::fs::read_to_string(&outcomes).unwrap().lines().count(), 22);
    assert!(
        o.iter()
            .all(|o| matches!(o.class, OutcomeClass::Match | OutcomeClass::PerfRegression))
    );
}

#[test]
fn flight_budget_and_ctrl_c_stop_cleanly_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let mut yaml = String::from("corpus: bundled:tpch\ncatalog:\n  tables:\n");
    for (t, p) in &data.tables {
        yaml.push_str(&format!("    {t}: {}\n", p.display()));
    }
    yaml.push_str(sqlflight::commands::demo::DEMO_ENGINES);
    yaml.push_str("flight: { repeat: 1, budget: 1ms, accepted: accepted.yaml }\n");
    std::fs::write(
        tmp.path().join("accepted.yaml"),
        "- { query_id: tpch-q01, class: wrong_result, reason: test }\n",
    )
    .unwrap();
    let cfg = tmp.path().join("f.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    // A budget of 1 ms: the first query starts, then no new one.
    let run = tmp.path().join("budget");
    // Exit 0 or 1: the demo's sort-merge joins are really slower, and a slowdown
    // can be a confirmed `perf_regression` (exit 1); what is tested here is the
    // budget stop and the resume, not the verdicts.
    let code = sqlflight::run_cli(["sqlflight", "flight", "-c", cfg, "--out", run.to_str().unwrap(), "-q"]);
    assert!(code < 2, "{code}");
    let (m, o) = sqlflight_runs::read_run(&run).unwrap();
    assert_eq!(m.status, RunStatus::Stopped);
    assert!(
        matches!(m.stopped_reason, Some(sqlflight_diffing::StopReason::Budget(_))),
        "{:?}",
        m.stopped_reason
    );
    assert!(!o.is_empty() && o.len() < 22, "{}", o.len());
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("Stopped early"), "{md}");
    let code = sqlflight::run_cli([
        "sqlflight",
        "flight",
        "-c",
        cfg,
        "--out",
        run.to_str().unwrap(),
        "--resume",
        "--budget",
        "1h",
        "-q",
    ]);
    assert!(code < 2, "{code}");
    let (m, o) = sqlflight_runs::read_run(&run).unwrap();
    assert_eq!((m.status, o.len()), (RunStatus::Complete, 22));

    // Ctrl-C: in-flight queries finish, the journal stays whole, the exit code is 2.
    let run = tmp.path().join("interrupted");
    let mut child = cli_child(&[
        "flight",
        "-c",
        cfg,
        "--out",
        run.to_str().unwrap(),
        "--budget",
        "1h",
        "--repeat",
        "3",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let outcomes = run.join("outcomes.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&outcomes)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 2
        && start.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    let (m, o) = sqlflight_runs::read_run(&run).unwrap();
    assert!(o.len() < 22, "the flight finished before Ctrl-C");
    assert_eq!(code, Some(2));
    assert_eq!(m.status, RunStatus::Stopped);
    assert_eq!(m.stopped_reason, Some(sqlflight_diffing::StopReason::Interrupted));
    let text = std::fs::read_to_string(&outcomes).unwrap();
    assert!(text.ends_with('\n'), "no torn line after a clean stop");
}

// ---------------------------------------------------------------- reports, gate, merge, compare

/// A fixed run (no engine, no clock) for report snapshots.
fn fixed_run() -> sqlflight_reports::RunView {
    use sqlflight_diffing::*;
    let engine = |p: &str, s: &[(&str, &str)]| EngineInfo {
        engine: "datafusion".into(),
        version: "55.2.0".into(),
        profile: p.into(),
        settings: s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        disabled_rules: vec![],
    };
    let manifest = RunManifest {
        format: "sqlflight-run".into(),
        version: 1,
        kind: "playback".into(),
        tool_version: "0.1.0".into(),
        corpus: CorpusInfo {
            name: "fixed".into(),
            path: None,
            hash: "ab".repeat(32),
            queries: 4,
        },
        baseline: engine("baseline", &[]),
        candidate: engine("candidate", &[("datafusion.optimizer.prefer_hash_join", "false")]),
        config: serde_json::Value::Null,
        partition: None,
        selected: 4,
        jobs: 1,
        timeout_ms: 60000,
        started_at: "2026-11-21T00:00:00.000Z".into(),
        finished_at: Some("2026-11-21T00:00:01.000Z".into()),
        status: RunStatus::Complete,
        resumed: 0,
        stopped_reason: None,
        digest_version: None,
        digest_key_id: None,
        results_only: false,
        counts: Default::default(),
    };
    let plan = |p: &str| NormalizedPlan::new("Projection: a", Some(p));
    let ok = |p: &str| SideResult::ok(plan(p), 1000);
    let err = |c: ErrorClass, m: &str| SideResult::Error {
        error_class: c,
        error: m.into(),
        elapsed_us: 500,
    };
    let mut outcomes = vec![
        playback_outcome(
            "q1".into(),
            "0000000000000001".into(),
            ok("HashJoinExec: on=a\n  A\n  B"),
            ok("SortMergeJoinExec: on=a\n  A\n  B"),
        ),
        playback_outcome(
            "q2".into(),
            "0000000000000002".into(),
            ok("ScanExec: t"),
            ok("ScanExec: t"),
        ),
        playback_outcome(
            "q3".into(),
            "0000000000000003".into(),
            ok("ScanExec: u"),
            err(ErrorClass::Internal, "Internal error: <boom> & \"more\""),
        ),
        OutcomeRecord::skipped("q4".into(), "0000000000000004".into(), "write_statement: INSERT"),
    ];
    for (o, t) in outcomes.iter_mut().zip(["acme", "acme", "zeta"]) {
        o.tenant = Some(t.into());
    }
    sqlflight_reports::RunView { manifest, outcomes }
}

#[test]
fn report_renderings_are_pinned_and_junit_parses() {
    let run = fixed_run();
    insta::assert_snapshot!("report-md", sqlflight_reports::markdown::run_markdown(&run));
    insta::assert_snapshot!(
        "report-json",
        serde_json::to_string_pretty(&sqlflight_reports::json::json_report(std::slice::from_ref(&run))).unwrap()
    );
    let xml = sqlflight_reports::junit::junit(std::slice::from_ref(&run));
    insta::assert_snapshot!("report-junit", xml);
    sqlflight_tests::full_tier_only!();
    // A real JUnit consumer (junitparser from PyPI, as CI plugins use) reads it:
    // one failure, one skip, and every suite's declared counts match its cases.
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("junit.xml");
    std::fs::write(&f, &xml).unwrap();
    let python = sqlflight_engines::python::ensure_venv("junitparser", "5.0.3", &[]).unwrap();
    let script = "import sys\n\
                  from junitparser import JUnitXml, TestSuite, Failure, Skipped\n\
                  x = JUnitXml.fromfile(sys.argv[1])\n\
                  suites = [x] if isinstance(x, TestSuite) else list(x)\n\
                  n = f = s = 0\n\
                  for suite in suites:\n\
                  \x20   cases = list(suite)\n\
                  \x20   cf = sum(any(isinstance(r, Failure) for r in c.result) for c in cases)\n\
                  \x20   cs = sum(any(isinstance(r, Skipped) for r in c.result) for c in cases)\n\
                  \x20   assert suite.tests == len(cases), (suite.name, suite.tests, len(cases))\n\
                  \x20   assert suite.failures == cf, (suite.name, suite.failures, cf)\n\
                  \x20   assert (suite.skipped or 0) == cs, (suite.name, suite.skipped, cs)\n\
                  \x20   assert all(c.classname and c.name for c in cases)\n\
                  \x20   n, f, s = n + len(cases), f + cf, s + cs\n\
                  print(n, f, s)";
    let out = Command::new(&python)
        .args(["-c", script, f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4 1 1");
}

#[test]
fn merge_compare_and_gate_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "bundled:tpcds");
    let cfg = cfg.to_str().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut v = vec!["sqlflight"];
        v.extend_from_slice(args);
        sqlflight::run_cli(v)
    };
    assert_eq!(run(&["playback", "-c", cfg, "--out", &p("whole"), "-q"]), 0);
    assert_eq!(
        run(&["playback", "-c", cfg, "--out", &p("p1"), "--partition", "1/2", "-q"]),
        0
    );
    assert_eq!(
        run(&["playback", "-c", cfg, "--out", &p("p2"), "--partition", "2/2", "-q"]),
        0
    );
    assert_eq!(run(&["merge", &p("p1"), &p("p2"), "--out", &p("merged"), "-q"]), 0);
    let (mm, mo) = sqlflight_runs::read_run(Path::new(&p("merged"))).unwrap();
    let (wm, wo) = sqlflight_runs::read_run(Path::new(&p("whole"))).unwrap();
    assert_eq!(comparable(&mo), comparable(&wo));
    assert_eq!(
        (mm.partition, mm.selected, mm.status, mm.counts.clone()),
        (None, wm.selected, RunStatus::Complete, wm.counts)
    );
    // Only one partition: merged, but marked stopped.
    assert_eq!(run(&["merge", &p("p1"), "--out", &p("half"), "-q"]), 0);
    assert_eq!(
        sqlflight_runs::read_run(Path::new(&p("half"))).unwrap().0.status,
        RunStatus::Stopped
    );
    // Different corpora are refused.
    let other = write_config(&tmp.path().join("o").tap_mkdir(), "bundled:tpch");
    assert_eq!(
        run(&["playback", "-c", other.to_str().unwrap(), "--out", &p("tpch"), "-q"]),
        0
    );
    assert_eq!(run(&["merge", &p("whole"), &p("tpch"), "--out", &p("bad"), "-q"]), 2);

    // A candidate that lost a view: compare finds the planted regression, and the
    // fix when compared the other way round.
    let fixtures = tmp.path().join("fx");
    std::fs::create_dir(&fixtures).unwrap();
    std::fs::write(fixtures.join("q.sql"), "select x from v; select 1 as one;").unwrap();
    assert_eq!(
        run(&["corpus", "ingest", fixtures.to_str().unwrap(), "--out", &p("c"), "-q"]),
        0
    );
    let good = tmp.path().join("good.yaml");
    std::fs::write(&good, "corpus: c\nengines:\n  baseline: { kind: datafusion, setup: [\"create view v as select 1 as x\"] }\n  candidate: { kind: datafusion, setup: [\"create view v as select 1 as x\"] }\n").unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "corpus: c\nengines:\n  baseline: { kind: datafusion, setup: [\"create view v as select 1 as x\"] }\n  candidate: { kind: datafusion }\n").unwrap();
    assert_eq!(
        run(&["playback", "-c", good.to_str().unwrap(), "--out", &p("r-good"), "-q"]),
        0
    );
    assert_eq!(
        run(&["playback", "-c", bad.to_str().unwrap(), "--out", &p("r-bad"), "-q"]),
        1
    );
    let out = cli_child(&["compare", &p("r-good"), &p("r-bad"), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // The child's stdout starts with the test harness's own lines; the JSON follows.
    let json_at = out.stdout.iter().position(|&b| b == b'{').unwrap();
    let v: serde_json::Value = serde_json::Deserializer::from_slice(&out.stdout[json_at..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(v["new_regressions"].as_array().unwrap().len(), 1);
    assert_eq!(run(&["compare", &p("r-bad"), &p("r-good"), "-q"]), 0);

    // Gate: each rule can fail on its own; a typo is named with its place.
    let policy = tmp.path().join("gate.yaml");
    std::fs::write(
        &policy,
        "max: { new_failure: 0, crash: 0 }\ncoverage: { min_queries: 1, min_fraction: 0.9 }\n",
    )
    .unwrap();
    assert_eq!(
        run(&["gate", &p("r-good"), "--policy", policy.to_str().unwrap(), "-q"]),
        0
    );
    assert_eq!(
        run(&["gate", &p("r-bad"), "--policy", policy.to_str().unwrap(), "-q"]),
        1
    );
    // The planted regression, listed as a known difference, passes the gate.
    let known = tmp.path().join("known.yaml");
    let (_, bad_outcomes) = sqlflight_runs::read_run(Path::new(&p("r-bad"))).unwrap();
    let failing = bad_outcomes
        .iter()
        .find(|o| o.class == OutcomeClass::NewFailure)
        .unwrap();
    std::fs::write(
        &known,
        format!(
            "- {{ query_id: {}, class: new_failure, reason: view dropped on purpose }}\n",
            failing.query_id
        ),
    )
    .unwrap();
    let args = [
        "gate",
        &p("r-bad"),
        "--policy",
        policy.to_str().unwrap(),
        "--accepted",
        known.to_str().unwrap(),
        "-q",
    ];
    assert_eq!(run(&args), 0);
    std::fs::write(&policy, "coverage: { min_queries: 3 }\n").unwrap();
    assert_eq!(
        run(&["gate", &p("r-good"), "--policy", policy.to_str().unwrap(), "-q"]),
        1
    );
    std::fs::write(&policy, "max: { new_failure: 0 }\ncoverage: { min_querys: 3 }\n").unwrap();
    let out = cli_child(&["gate", &p("r-good"), "--policy", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("min_querys") && err.contains("gate.yaml:2:"), "{err}");
    // JSON and JUnit renderings of a real run.
    assert_eq!(
        run(&["report", &p("r-bad"), "--format", "json", "--out", &p("r.json"), "-q"]),
        1
    );
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p("r.json")).unwrap()).unwrap();
    assert_eq!(
        (j["format"].as_str(), j["version"].as_u64()),
        (Some("sqlflight-report"), Some(1))
    );
    assert_eq!(
        run(&["report", &p("r-bad"), "--format", "junit", "--out", &p("r.xml"), "-q"]),
        1
    );
    assert!(
        std::fs::read_to_string(p("r.xml"))
            .unwrap()
            .contains("<failure type=\"new_failure\"")
    );
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn example_gate_policy_parses() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ci/gate.yaml");
    let policy = sqlflight::commands::gate::load_policy(&p).unwrap();
    assert_eq!(policy.max.get(&OutcomeClass::WrongResult), Some(&0));
    assert!(policy.perf.is_some() && policy.coverage.is_some());
}

/// Headless Chromium (Debian's `chromium`, installed by scripts/test.sh).
fn chromium() -> std::path::PathBuf {
    for c in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(c).output()
            && out.status.success()
        {
            return std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!("chromium is not installed: run `bash scripts/test.sh`, which installs it");
}

fn chromium_cmd(profile: &Path) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn html_report_renders_in_headless_chromium() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let catalog = tpch_tables(&tmp.path().join("data"));
    let all = Workload::Tpch.corpus().unwrap();
    let recs = all
        .records
        .iter()
        .filter(|r| ["tpch-q01", "tpch-q06"].contains(&r.id.as_str()))
        .cloned()
        .collect();
    let corpus = Corpus::from_records(CorpusManifest::new("html"), recs, None);
    let (base, _) = demo_profiles();
    let b = engine("baseline", &base, &catalog);
    let c = WrongEngine::wrap(
        engine("candidate", &base, &catalog),
        Corruption::BumpColumn("count_order"),
    );
    let s = fly(&corpus, b, c, &flight_options(&tmp.path().join("run")));
    let page = tmp.path().join("report.html");
    let code = sqlflight::run_cli([
        "sqlflight",
        "report",
        s.dir.to_str().unwrap(),
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 1, "the page's run has a regression");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained: no external assets"
    );
    let url = format!("file://{}#filter=q06", page.display());
    let out = chromium_cmd(&tmp.path().join("profile-dom"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("Uncaught") && !err.contains("SyntaxError"),
        "console errors: {err}"
    );
    assert!(
        dom.contains("id=\"breakdown\"") && dom.contains("class=\"bar\""),
        "outcome chart"
    );
    assert_eq!(
        dom.matches("class=\"pt\"").count(),
        2,
        "one scatter point per timed query"
    );
    assert!(dom.contains("id=\"histogram\""));
    // The filter from the URL ran: one row shown, the other hidden.
    assert!(dom.contains("<span id=\"shown\">1</span>"), "{dom}");
    assert!(dom.contains("style=\"display: none;\""), "filtered rows are hidden");
    assert!(dom.contains("wrong_result"));
    let shot = tmp.path().join("shot.png");
    let out = chromium_cmd(&tmp.path().join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,1600")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a rendered page, not a blank one"
    );
}

#[test]
fn query_bank_compares_a_candidate_against_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let data = ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let mut yaml = String::from("corpus: bundled:tpch\ncatalog:\n  tables:\n");
    for (t, p) in &data.tables {
        yaml.push_str(&format!("    {t}: {}\n", p.display()));
    }
    yaml.push_str(sqlflight::commands::demo::DEMO_ENGINES);
    yaml.push_str("flight: { repeat: 1 }\n");
    let cfg = tmp.path().join("f.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    // Recording the bank flies the demo profiles: 1 when a sort-merge slowdown is
    // a confirmed perf_regression, never 2.
    assert!(sqlflight::run_cli(["sqlflight", "flight", "-c", cfg, "--out", &p("bank"), "-q"]) < 2);
    // A later candidate, compared against the bank: the baseline is not run.
    let args = [
        "sqlflight",
        "flight",
        "-c",
        cfg,
        "--out",
        &p("later"),
        "--snapshot",
        &p("bank"),
        "-q",
    ];
    assert_eq!(sqlflight::run_cli(args), 0);
    let (m, o) = sqlflight_runs::read_run(Path::new(&p("later"))).unwrap();
    assert_eq!(o.len(), 22);
    assert!(o.iter().all(|o| o.class == OutcomeClass::Match), "{o:#?}");
    let (bank_m, bank) = sqlflight_runs::read_run(Path::new(&p("bank"))).unwrap();
    assert_eq!(m.baseline, bank_m.baseline);
    // The baseline's timings are the bank's.
    let t = |os: &[sqlflight_diffing::OutcomeRecord]| os[0].flight.as_ref().unwrap().baseline.times_ms.clone();
    assert_eq!(t(&o), t(&bank));
    // `sqlflight flight -c <config> --out <dir> -q <extra>`: its exit code.
    let fly = |config: &str, out: &str, extra: &[&str]| {
        let mut args = vec!["flight", "-c", config, "--out", out, "-q"];
        args.extend_from_slice(extra);
        run_args(&args)
    };
    // Result digests are versioned: the bank records its version; a bank of another
    // version (here one written before versions were recorded: version 1) is
    // refused, and so is resuming a run made with another version.
    assert_eq!(bank_m.digest_version, Some(sqlflight_diffing::digest::DIGEST_VERSION));
    let set_version = |dir: &str, v: Option<u32>| {
        let path = Path::new(dir).join("manifest.json");
        let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        match v {
            Some(v) => m["digest_version"] = v.into(),
            None => {
                m.as_object_mut().unwrap().remove("digest_version");
            }
        }
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    };
    std::fs::create_dir(p("v1-bank")).unwrap();
    for f in ["manifest.json", "outcomes.jsonl"] {
        std::fs::copy(Path::new(&p("bank")).join(f), Path::new(&p("v1-bank")).join(f)).unwrap();
    }
    set_version(&p("v1-bank"), None);
    assert_eq!(
        sqlflight_runs::read_manifest(Path::new(&p("v1-bank")))
            .unwrap()
            .digest_version(),
        Some(1)
    );
    assert_eq!(fly(cfg, &p("y"), &["--snapshot", &p("v1-bank")]), 2);
    assert!(
        !Path::new(&p("y")).exists(),
        "nothing is written for a refused snapshot"
    );
    set_version(&p("later"), Some(1));
    assert_eq!(fly(cfg, &p("later"), &["--snapshot", &p("bank"), "--resume"]), 2);
    // Digests sealed with a key: the bank records the key's id (never the key);
    // a later flight compares against it only with the same key.
    let key_file = tmp.path().join("digest.key");
    std::fs::write(&key_file, "correct horse battery staple\n").unwrap();
    let keyed = tmp.path().join("keyed.yaml");
    std::fs::write(
        &keyed,
        std::fs::read_to_string(cfg).unwrap().replace(
            "flight: { repeat: 1 }",
            &format!("flight: {{ repeat: 1, digest_key_file: {} }}", key_file.display()),
        ),
    )
    .unwrap();
    let keyed = keyed.to_str().unwrap();
    assert!(
        fly(keyed, &p("kbank"), &[]) < 2,
        "recorded (slowdowns may be confirmed)"
    );
    let (km, kbank) = sqlflight_runs::read_run(Path::new(&p("kbank"))).unwrap();
    let key_id = km.digest_key_id.clone().expect("the key id is recorded");
    assert_eq!(
        key_id,
        sqlflight_diffing::DigestKey::derive(b"correct horse battery staple").id()
    );
    let digest = |os: &[sqlflight_diffing::OutcomeRecord]| {
        os[0]
            .flight
            .as_ref()
            .unwrap()
            .baseline
            .digest
            .as_ref()
            .unwrap()
            .multiset
            .clone()
    };
    assert_ne!(digest(&kbank), digest(&bank), "keyed and unkeyed digests differ");
    for f in std::fs::read_dir(p("kbank")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        assert!(
            !text.contains("correct horse"),
            "the key never reaches the run directory"
        );
    }
    assert_eq!(fly(keyed, &p("klater"), &["--snapshot", &p("kbank")]), 0);
    let (_, klater) = sqlflight_runs::read_run(Path::new(&p("klater"))).unwrap();
    assert!(klater.iter().all(|o| o.class == OutcomeClass::Match));
    // SQLFLIGHT_DIGEST_KEY with the same secret is the same key (a child process:
    // the environment is the process's).
    let status = cli_child(&[
        "flight",
        "-c",
        cfg,
        "--out",
        &p("kenv"),
        "--snapshot",
        &p("kbank"),
        "-q",
    ])
    .env("SQLFLIGHT_DIGEST_KEY", "correct horse battery staple")
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(0));
    // Without the key, or with another one, the keyed bank is refused; so is the
    // unkeyed bank with a key, and resuming a run with another key.
    assert_eq!(fly(cfg, &p("k1"), &["--snapshot", &p("kbank")]), 2);
    assert_eq!(fly(keyed, &p("k2"), &["--snapshot", &p("bank")]), 2);
    std::fs::write(&key_file, "another secret").unwrap();
    assert_eq!(fly(keyed, &p("k3"), &["--snapshot", &p("kbank")]), 2);
    assert_eq!(fly(keyed, &p("kbank"), &["--resume"]), 2);
    std::fs::write(&key_file, "  \n").unwrap();
    assert_eq!(
        fly(keyed, &p("k4"), &[]),
        2,
        "an empty key file is an error, not an unkeyed run"
    );
    // A snapshot of another corpus is refused.
    let other = tmp.path().join("o.yaml");
    std::fs::write(
        &other,
        std::fs::read_to_string(cfg)
            .unwrap()
            .replace("bundled:tpch", "bundled:tpcds"),
    )
    .unwrap();
    let args = [
        "sqlflight",
        "flight",
        "-c",
        other.to_str().unwrap(),
        "--out",
        &p("x"),
        "--snapshot",
        &p("bank"),
        "-q",
    ];
    assert_eq!(sqlflight::run_cli(args), 2);
}

fn flight_manifest(extra: serde_json::Value) -> sqlflight_diffing::RunManifest {
    let mut m = serde_json::json!({
        "format": "sqlflight-run", "version": 1, "kind": "flight", "tool_version": "0.1.0",
        "corpus": {"name": "t", "hash": "h", "queries": 1},
        "baseline": {"engine": "datafusion", "version": "55", "profile": "baseline"},
        "candidate": {"engine": "datafusion", "version": "55", "profile": "candidate"},
        "selected": 1, "jobs": 1, "timeout_ms": 1000, "started_at": "x", "status": "complete"
    });
    if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    serde_json::from_value(m).unwrap()
}

/// A snapshot is usable only with the digest version and key it was made with,
/// and the refusal says what to do.
#[test]
fn snapshots_need_the_same_digest_version_and_key() {
    let v = sqlflight_diffing::digest::DIGEST_VERSION;
    let key = sqlflight_diffing::DigestKey::derive(b"k").id();
    let old =
        sqlflight_flighting::Snapshot::from_run(&flight_manifest(serde_json::json!({})), vec![], None).unwrap_err();
    assert!(
        old.contains("version 1") && old.contains("record the baseline again"),
        "{old}"
    );
    let current = flight_manifest(serde_json::json!({"digest_version": v}));
    assert!(sqlflight_flighting::Snapshot::from_run(&current, vec![], None).is_ok());
    let e = sqlflight_flighting::Snapshot::from_run(&current, vec![], Some(&key)).unwrap_err();
    assert!(e.contains("unkeyed"), "{e}");
    let keyed = flight_manifest(serde_json::json!({"digest_version": v, "digest_key_id": key}));
    assert!(sqlflight_flighting::Snapshot::from_run(&keyed, vec![], Some(&key)).is_ok());
    let e = sqlflight_flighting::Snapshot::from_run(&keyed, vec![], None).unwrap_err();
    assert!(
        e.contains(&key) && e.contains("not set") && e.contains("SQLFLIGHT_DIGEST_KEY"),
        "{e}"
    );
    let e = sqlflight_flighting::Snapshot::from_run(&keyed, vec![], Some("0123456789abcdef")).unwrap_err();
    assert!(e.contains("0123456789abcdef"), "{e}");
}

mod rollout;

mod engines;

mod corpora;

mod hardening;

/// `corpus data tpcds` generates (or reuses) TPC-DS as Parquet and prints the
/// catalog; the demo's profile flip played back over that data is explained by at
/// most 3 facts, and no plan folds a table as empty (the tables have data).
#[test]
fn tpcds_with_generated_data_plays_back_and_is_explained() {
    let out = cli_child(&["corpus", "data", "tpcds", "--scale", "0.01", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The child's stdout also carries the test harness's lines.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = &stdout[stdout.find('{').unwrap()..];
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["corpus"], "bundled:tpcds");
    let tables = v["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 24);
    let tmp = tempfile::tempdir().unwrap();
    let mut yaml = String::from("corpus: bundled:tpcds\ncatalog:\n  tables:\n");
    for (t, p) in tables {
        yaml.push_str(&format!("    {t}: {}\n", p.as_str().unwrap()));
    }
    yaml.push_str(sqlflight::commands::demo::DEMO_ENGINES);
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let run_dir = tmp.path().join("pb");
    let code = run_args(&[
        "playback",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0);
    let (_, o) = sqlflight_runs::read_run(&run_dir).unwrap();
    assert_eq!(o.len(), 99);
    let facts = sqlflight_reports::facts::FactTable::build(&o, None);
    assert!(facts.changed > 80, "{}", facts.changed);
    assert_eq!(facts.explanation[0].0, "HashJoinExec -> SortMergeJoinExec");
    assert!(facts.explanation.len() <= 3, "{:?}", facts.explanation);
    assert_eq!(facts.empty_folds, 0);
}

/// The binary prints an error's causes once each, even when a library error
/// already prints its source in its own message.
#[test]
fn an_error_chain_prints_each_cause_once() {
    #[derive(Debug)]
    struct Reading(std::io::Error);
    impl std::fmt::Display for Reading {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading x.sql: {}", self.0)
        }
    }
    impl std::error::Error for Reading {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
    let e = anyhow::Error::new(Reading(io)).context("corpus ingest");
    assert_eq!(
        sqlflight::error_chain(&e),
        "corpus ingest: reading x.sql: No such file or directory (os error 2)"
    );
    let plain = anyhow::anyhow!("disk full").context("writing the journal");
    assert_eq!(sqlflight::error_chain(&plain), "writing the journal: disk full");
}

/// A results-only flight (`--results-only`, `flight.timing: false`): each query
/// runs once per side, results are still compared (a planted difference is a
/// `wrong_result`), no timings or performance verdicts are made, the report says
/// so, performance rules of a gate fail on it instead of passing silently, and
/// it resumes only as a results-only flight.
#[test]
fn results_only_flight_compares_results_and_never_passes_performance_rules() {
    let tmp = tempfile::tempdir().unwrap();
    use engines::ingest_sql;
    let run = run_args;
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    ingest_sql(tmp.path(), "select x from v; select 1 as one;");
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "corpus: corpus\nengines:\n  baseline: { kind: datafusion, setup: [\"create view v as select 1 as x\"] }\n  \
         candidate: { kind: datafusion, setup: [\"create view v as select 2 as x\"] }\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    assert_eq!(
        run(&["flight", "-c", cfg, "--results-only", "--out", &p("f"), "-q"]),
        1,
        "the planted difference fails the flight"
    );
    let (m, o) = sqlflight_runs::read_run(Path::new(&p("f"))).unwrap();
    assert!(m.results_only);
    let mut classes: Vec<OutcomeClass> = o.iter().map(|x| x.class).collect();
    classes.sort();
    assert_eq!(classes, vec![OutcomeClass::Match, OutcomeClass::WrongResult]);
    for x in &o {
        let f = x.flight.as_ref().unwrap();
        assert!(f.perf.is_none(), "{x:#?}");
        assert!(
            f.baseline.times_ms.is_empty() && f.candidate.times_ms.is_empty(),
            "{x:#?}"
        );
    }
    let report = std::fs::read_to_string(tmp.path().join("f").join("report.md")).unwrap();
    assert!(report.contains("Not measured: a results-only flight"), "{report}");

    // Gates: outcome rules judge it; a performance rule cannot pass on it.
    let outcomes_only = tmp.path().join("g1.yaml");
    std::fs::write(&outcomes_only, "max: { crash: 0 }\n").unwrap();
    assert_eq!(
        run(&["gate", &p("f"), "--policy", outcomes_only.to_str().unwrap(), "-q"]),
        0
    );
    let with_perf = tmp.path().join("g2.yaml");
    std::fs::write(&with_perf, "max: { crash: 0 }\nperf: { max_geomean_ratio: 1.2 }\n").unwrap();
    assert_eq!(
        run(&["gate", &p("f"), "--policy", with_perf.to_str().unwrap(), "-q"]),
        1
    );
    let view = sqlflight_reports::RunView {
        manifest: m,
        outcomes: o,
    };
    let policy: sqlflight_reports::gate::GatePolicy = serde_yaml::from_str("perf: { max_geomean_ratio: 1.2 }").unwrap();
    let results = sqlflight_reports::gate::evaluate(&policy, &[view]);
    assert!(
        results.iter().any(|r| !r.pass && r.rule.contains("results-only")),
        "{results:#?}"
    );

    // A results-only run resumes only as one; the flag and --repeat exclude each other.
    assert_eq!(run(&["flight", "-c", cfg, "--out", &p("f"), "--resume", "-q"]), 2);
    assert_eq!(
        run(&[
            "flight",
            "-c",
            cfg,
            "--results-only",
            "--out",
            &p("f"),
            "--resume",
            "-q"
        ]),
        1
    );
    assert_eq!(
        run(&[
            "flight",
            "-c",
            cfg,
            "--results-only",
            "--repeat",
            "3",
            "--out",
            &p("x"),
            "-q"
        ]),
        2
    );
    // The same from the config file.
    let yaml = tmp.path().join("t.yaml");
    std::fs::write(
        &yaml,
        format!("{}flight: {{ timing: false }}\n", std::fs::read_to_string(cfg).unwrap()),
    )
    .unwrap();
    assert_eq!(
        run(&["flight", "-c", yaml.to_str().unwrap(), "--out", &p("y"), "-q"]),
        1
    );
    assert!(sqlflight_runs::read_run(Path::new(&p("y"))).unwrap().0.results_only);
}
