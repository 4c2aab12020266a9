//! Issue 20: one query never ends a run, one writer per run directory, every
//! setting range-checked, error messages desensitized by allow-list.

use std::path::Path;
use std::process::Command;

use sqlflight::config::Config;
use sqlflight_diffing::{OutcomeClass, SideResult};
use sqlflight_tests::sqlflight_bin;

/// A corpus of TPC-H's 22 queries and one statement of 20,000 `+` terms.
fn deep_corpus(dir: &Path) -> std::path::PathBuf {
    let tpch = sqlflight_corpora::bundled::Workload::Tpch.corpus().unwrap();
    let mut sql = String::new();
    for r in &tpch.records {
        sql.push_str(r.sql.trim().trim_end_matches(';'));
        sql.push_str(";\n");
    }
    sql.push_str(&format!("select {} from nation;\n", vec!["1"; 20_000].join("+")));
    let script = dir.join("mix.sql");
    std::fs::write(&script, sql).unwrap();
    let corpus = dir.join("mix");
    let code = sqlflight::run_cli([
        "sqlflight",
        "corpus",
        "ingest",
        script.to_str().unwrap(),
        "--out",
        corpus.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0);
    let cfg = dir.join("mix.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: mix\ncatalog:\n  ddl: {}\n{}",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../corpora/tpch/schema.sql")
                .display(),
            sqlflight::commands::demo::DEMO_ENGINES
        ),
    )
    .unwrap();
    cfg
}

/// Issue 20, reproduction 1: a statement that overflows the compile thread's
/// stack (for real: the embedded DataFusion, a compile stack made small so the
/// test is quick) aborts the process. The supervisor resumes the run, the journal
/// attributes the death, the query is a `crash`, and the run completes with every
/// other query's normal outcome — from one command, and a later `--resume` does
/// not run the query again.
#[test]
fn a_query_that_overflows_the_stack_is_a_crash_and_the_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = deep_corpus(tmp.path());
    let run = tmp.path().join("run");
    let out = Command::new(sqlflight_bin())
        .args(["playback", "-c", cfg.to_str().unwrap(), "--jobs", "2", "-q", "--out"])
        .arg(&run)
        .env("SQLFLIGHT_COMPILE_STACK", (2u32 << 20).to_string())
        .env_remove("SQLFLIGHT_NO_SUPERVISOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("overflowed its stack"),
        "a real overflow happened: {stderr}"
    );
    assert!(stderr.contains("resuming"), "{stderr}");
    let (manifest, outcomes) = sqlflight_runs::read_run(&run).unwrap();
    assert_eq!(manifest.status, sqlflight_diffing::RunStatus::Complete);
    assert_eq!(outcomes.len(), 23, "every query has exactly one outcome");
    let crashed: Vec<_> = outcomes.iter().filter(|o| o.class == OutcomeClass::Crash).collect();
    assert_eq!(crashed.len(), 1, "{crashed:#?}");
    assert!(
        crashed[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("died while this query ran alone")
    );
    assert!(
        outcomes
            .iter()
            .filter(|o| o.class != OutcomeClass::Crash)
            .all(|o| matches!(o.class, OutcomeClass::PlanChanged | OutcomeClass::SamePlan)),
        "the 22 TPC-H queries have their normal outcomes"
    );
    // Resuming the finished run does not run the culprit again.
    let again = Command::new(sqlflight_bin())
        .args(["playback", "-c", cfg.to_str().unwrap(), "-q", "--resume", "--out"])
        .arg(&run)
        .env("SQLFLIGHT_COMPILE_STACK", (2u32 << 20).to_string())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&again.stderr).contains("overflowed"));
}

/// Without the supervisor, each death still moves the run on: the first resume
/// runs the suspects alone, the next records the one that died alone as `crash`.
#[test]
fn resume_after_process_deaths_attributes_the_culprit() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = deep_corpus(tmp.path());
    let run = tmp.path().join("run");
    let mut codes = Vec::new();
    for attempt in 0..6 {
        let mut cmd = Command::new(sqlflight_bin());
        cmd.args(["playback", "-c", cfg.to_str().unwrap(), "--jobs", "2", "-q", "--out"])
            .arg(&run)
            .env("SQLFLIGHT_COMPILE_STACK", (2u32 << 20).to_string())
            .env("SQLFLIGHT_NO_SUPERVISOR", "1");
        if attempt > 0 {
            cmd.arg("--resume");
        }
        let out = cmd.output().unwrap();
        codes.push(out.status.code());
        if out.status.code().is_some() {
            break;
        }
    }
    assert_eq!(codes.last(), Some(&Some(1)), "{codes:?}");
    assert!(codes.len() <= 3, "at most two deaths settle the one culprit: {codes:?}");
    let (_, outcomes) = sqlflight_runs::read_run(&run).unwrap();
    assert_eq!(outcomes.len(), 23);
    assert_eq!(outcomes.iter().filter(|o| o.class == OutcomeClass::Crash).count(), 1);
}

/// Issue 20, reproduction 5: a second writer of a run directory is refused while
/// the first holds it, naming the holder.
#[test]
fn a_second_writer_of_a_run_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("corpus: bundled:tpcds\n{}", sqlflight::commands::demo::DEMO_ENGINES),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let mut first = Command::new(sqlflight_bin())
        .args(["playback", "-c", cfg.to_str().unwrap(), "--jobs", "1", "-q", "--out"])
        .arg(&run)
        .spawn()
        .unwrap();
    let started = run.join("started.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&started).map_or(0, |m| m.len()) == 0 && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = Command::new(sqlflight_bin())
        .args(["playback", "-c", cfg.to_str().unwrap(), "-q", "--resume", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let first_code = first.wait().unwrap().code();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains("is being written by another sqlflight (pid"), "{err}");
    assert_eq!(first_code, Some(0));
    let text = std::fs::read_to_string(run.join("outcomes.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 99, "one writer: no duplicated outcome lines");
}

fn refused(yaml: &str) -> sqlflight::config::ConfigError {
    Config::parse(Path::new("c.yaml"), yaml).expect_err(yaml)
}

/// Issue 20, reproduction 4: nonsense settings are refused when the config is
/// read, at the key's line and column, with the fix.
#[test]
fn nonsense_settings_are_refused_with_their_place() {
    let cases = [
        ("playback:\n  timeout: 0s\n", (2, 3), "zero"),
        ("playback:\n  jobs: 0\n", (2, 3), "playback.jobs is 0"),
        (
            "playback:\n  plan_rechecks: 21\n",
            (2, 3),
            "playback.plan_rechecks is 21",
        ),
        ("flight:\n  repeat: 0\n", (2, 3), "flight.repeat is 0"),
        ("flight:\n  timeout: 0s\n", (2, 3), "zero"),
        ("flight:\n  memory_limit: 0\n", (2, 3), "below 1 MiB"),
        ("flight:\n  max_concurrency: 0\n", (2, 3), "max_concurrency is 0"),
        ("flight:\n  perf:\n    alpha: 2\n", (3, 5), "flight.perf.alpha is 2"),
        (
            "flight:\n  perf:\n    max_pairs: 0\n",
            (3, 5),
            "flight.perf.max_pairs is 0",
        ),
        (
            "flight:\n  perf:\n    max_pairs: 100000\n",
            (3, 5),
            "flight.perf.max_pairs is 100000",
        ),
        (
            "flight:\n  tolerance:\n    relative: -1\n",
            (3, 5),
            "flight.tolerance.relative is -1",
        ),
        (
            "flight:\n  perf:\n    regression_ratio: 0.5\n",
            (3, 5),
            "regression_ratio",
        ),
        ("flight:\n  budget: 0s\n", (2, 3), "zero"),
    ];
    for (yaml, place, words) in cases {
        let e = refused(yaml);
        assert_eq!((e.line, e.column), place, "{yaml}: {e}");
        assert!(e.message.contains(words), "{yaml}: {e}");
        assert!(!e.fix.is_empty());
    }
    // Sane values pass.
    Config::parse(
        Path::new("c.yaml"),
        "playback: { jobs: 2, timeout: 30s, plan_rechecks: 0 }\nflight:\n  repeat: 3\n  perf: { alpha: 0.01 }\n",
    )
    .unwrap();
    // Flags are range-checked too (usage error, exit 2).
    for args in [
        &["playback", "--jobs", "0"][..],
        &["playback", "--timeout", "0s"],
        &["flight", "--repeat", "0"],
        &["flight", "--memory-limit", "0"],
    ] {
        let mut v = vec!["sqlflight"];
        v.extend_from_slice(args);
        assert_eq!(sqlflight::run_cli(v), 2, "{args:?}");
    }
}

/// 200 KB of nesting is refused at once, not after the parser's 39 s.
#[test]
fn deeply_nested_yaml_is_refused_quickly() {
    let deep = format!("corpus: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let e = refused(&deep);
    assert!(e.message.contains("nested more than"), "{e}");
    let mut block = String::new();
    for i in 0..200 {
        block.push_str(&" ".repeat(i));
        block.push_str("k:\n");
    }
    assert!(refused(&block).message.contains("nested more than"));
    let huge = format!("corpus: x\n# {}\n", "x".repeat(2 << 20));
    assert!(refused(&huge).message.contains("bytes"));
}

/// Gate policies: out-of-range values and empty policies are configuration
/// errors (exit 2), a missing `accepted:` file is located at its key.
#[test]
fn gate_policy_mistakes_are_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("gate.yaml");
    let check = |yaml: &str, place: (usize, usize), words: &str| {
        std::fs::write(&p, yaml).unwrap();
        let e = sqlflight::commands::gate::load_policy(&p).expect_err(yaml);
        assert_eq!((e.line, e.column), place, "{yaml}: {e}");
        assert!(e.message.contains(words), "{yaml}: {e}");
    };
    check("coverage:\n  min_fraction: 1.5\n", (2, 3), "min_fraction is 1.5");
    check("perf:\n  max_geomean_ratio: -1\n", (2, 3), "max_geomean_ratio is -1");
    check("{}\n", (1, 1), "no rules");
    check("max: { crash: 0 }\naccepted: nowhere.yaml\n", (2, 1), "does not exist");
    // Through the CLI: exit 2, not a failed gate.
    std::fs::write(&p, "coverage:\n  min_fraction: 1.5\n").unwrap();
    let code = sqlflight::run_cli(["sqlflight", "gate", "--policy", p.to_str().unwrap(), "nowhere"]);
    assert_eq!(code, 2);
    // A config's missing known-differences file is located at `flight.accepted`.
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: bundled:tpch\n{}flight:\n  accepted: missing.yaml\n",
            sqlflight::commands::demo::DEMO_ENGINES
        ),
    )
    .unwrap();
    let job = sqlflight::commands::flight::resolve(&flight_args(&cfg));
    let e = format!("{:#}", job.err().expect("missing accepted file"));
    let lines = sqlflight::commands::demo::DEMO_ENGINES.lines().count();
    assert!(e.contains(&format!("c.yaml:{}:3", lines + 3)), "{e}");
}

fn flight_args(cfg: &Path) -> sqlflight::commands::flight::FlightArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        a: sqlflight::commands::flight::FlightArgs,
    }
    Wrap::parse_from(["x", "-c", cfg.to_str().unwrap()]).a
}

/// A rollout phase with `approvals: 0` is a mistake (omit the key for none).
#[test]
fn rollout_approvals_zero_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("gate.yaml"), "max: { crash: 0 }\n").unwrap();
    let p = tmp.path().join("rollout.yaml");
    std::fs::write(
        &p,
        "name: r\nbaseline: { version: '1' }\ncandidate: { version: '2' }\ngates:\n  g: { policy: gate.yaml }\nphases:\n  - { name: canary, tenants: [a], approvals: 0 }\n",
    )
    .unwrap();
    let e = sqlflight::commands::rollout::load_policy(&p).unwrap_err();
    assert!(e.message.contains("approvals is 0"), "{e}");
    assert_eq!(e.line, 7, "{e}");
}

/// Issue 20, reproduction 3, for playback: an engine's compile error that echoes a
/// literal of the query in any quoting reaches no outcome.
#[test]
fn playback_error_messages_lose_the_literals() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = "Zq7PlantedLiteral";
    let dir = tmp.path().join("c");
    let mut w =
        sqlflight_corpora::CorpusWriter::create(&dir, sqlflight_corpora::CorpusManifest::new("secrets")).unwrap();
    for (i, sql) in [
        format!("select cast('{secret}' as int)"),
        format!("select * from nation where n_name ~ '{secret}['"),
        format!("select to_timestamp('{secret}')"),
        format!("select arrow_cast(1, '{secret}')"),
    ]
    .iter()
    .enumerate()
    {
        w.write(&sqlflight_corpora::QueryRecord::new(format!("q{i}"), sql.clone()))
            .unwrap();
    }
    w.finish().unwrap();
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: c\ncatalog:\n  ddl: {}\n{}",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../corpora/tpch/schema.sql")
                .display(),
            sqlflight::commands::demo::DEMO_ENGINES
        ),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let code = sqlflight::run_cli([
        "sqlflight",
        "playback",
        "-c",
        cfg.to_str().unwrap(),
        "-q",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(code <= 1);
    let (_, outcomes) = sqlflight_runs::read_run(&run).unwrap();
    let errors: Vec<&str> = outcomes
        .iter()
        .flat_map(|o| [&o.baseline, &o.candidate])
        .flatten()
        .filter_map(|s| match s {
            SideResult::Error { error, .. } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    assert!(!errors.is_empty(), "the statements fail to compile: {outcomes:#?}");
    for (path, bytes) in sqlflight_tests::all_files(&run) {
        assert!(
            !sqlflight_tests::contains_bytes(&bytes, secret),
            "{} holds the literal",
            path.display()
        );
    }
}

proptest::proptest! {
    // `PROPTEST_CASES` runs it longer (scripts/fuzz.sh).
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..Default::default()
    })]
    /// The config loader takes any text: a located error or a config, never a
    /// panic; structure-aware mutations of the example config included.
    #[test]
    fn config_loader_never_panics(
        text in "[ -~\n]{0,400}",
        at in 0usize..2000, insert in "[ -~\n:\\[\\]{}\\-]{0,12}"
    ) {
        let _ = Config::parse(Path::new("fuzz.yaml"), &text);
        let mut example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/playback.yaml"),
        )
        .unwrap();
        let mut i = at % (example.len() + 1);
        while !example.is_char_boundary(i) {
            i -= 1;
        }
        example.insert_str(i, &insert);
        if let Err(e) = Config::parse(Path::new("fuzz.yaml"), &example) {
            proptest::prop_assert!(e.line <= example.lines().count() + 1, "{e}");
        }
    }
}

/// Issue 20, reproduction 3, for flight: table values that make the embedded
/// DataFusion fail in its own words (casts, regex, date and timestamp parsing,
/// decimals) reach no file of the run, no report format, no output stream,
/// whatever the quoting of the engine's message.
#[test]
fn flight_error_messages_never_carry_table_values() {
    planted_secrets_never_leave(
        sqlflight::commands::demo::DEMO_ENGINES,
        &[
            "select cast(v as int) from t",
            "select regexp_like('abc', v) from t",
            "select to_timestamp(v) from t",
            "select to_date(v) from t",
            "select cast(v as decimal(10, 2)) from t",
            "select arrow_cast(v, 'Int64') from t",
            "select v from t where cast(v as double) > 1",
        ],
        5,
    );
}

/// The same property on real DuckDB releases (worker processes from PyPI), whose
/// conversion errors quote the value: `Could not convert string 'X' to INT32`.
#[test]
fn duckdb_error_messages_never_carry_table_values() {
    sqlflight_tests::full_tier_only!();
    planted_secrets_never_leave(
        "engines:\n  old: { kind: duckdb, version: \"1.1.3\" }\n  new: { kind: duckdb, version: \"1.2.1\" }\nbaseline: old\ncandidate: new\n",
        &[
            "select cast(v as int) from t",
            "select cast(v as decimal(10, 2)) from t",
            "select cast(v as date) from t",
            "select strptime(v, '%Y-%m-%d') from t",
            "select v from t where cast(v as double) > 1",
            "select regexp_matches('abc', v) from t",
        ],
        4,
    );
}

/// And on real datafusion-python releases (worker processes from PyPI).
#[test]
fn datafusion_python_error_messages_never_carry_table_values() {
    sqlflight_tests::full_tier_only!();
    planted_secrets_never_leave(
        "engines:\n  old: { kind: datafusion-python, version: \"51.0.0\" }\n  new: { kind: datafusion-python, version: \"52.3.0\" }\nbaseline: old\ncandidate: new\n",
        &[
            "select cast(v as int) from t",
            "select regexp_like('abc', v) from t",
            "select to_timestamp(v) from t",
            "select cast(v as decimal(10, 2)) from t",
            "select v from t where cast(v as double) > 1",
        ],
        4,
    );
}

/// Plants secrets as table values where engines echo them in errors, flies
/// `queries` between the two engines of `engines_yaml`, and requires that none of
/// them reaches a run file, a report in any format, stdout or stderr.
fn planted_secrets_never_leave(engines_yaml: &str, queries: &[&str], min_failed: usize) {
    let tmp = tempfile::tempdir().unwrap();
    plant(&tmp.path().join("t.csv"));
    let mut sql = String::new();
    for q in queries.iter().copied() {
        sql.push_str(q);
        sql.push_str(";\n");
    }
    std::fs::write(tmp.path().join("q.sql"), sql).unwrap();
    let corpus = tmp.path().join("c");
    assert_eq!(
        sqlflight::run_cli([
            "sqlflight",
            "corpus",
            "ingest",
            tmp.path().join("q.sql").to_str().unwrap(),
            "--out",
            corpus.to_str().unwrap(),
            "-q"
        ]),
        0
    );
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("corpus: c\ncatalog:\n  tables:\n    t: {{ path: t.csv, format: csv }}\n{engines_yaml}"),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let out = Command::new(sqlflight_bin())
        .args(["flight", "-c", cfg.to_str().unwrap(), "--repeat", "1", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, outcomes) = sqlflight_runs::read_run(&run).unwrap();
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o.candidate, Some(SideResult::Error { .. })))
        .count();
    assert!(failed >= min_failed, "the queries fail in the engine: {outcomes:#?}");
    let mut streams = vec![out.stdout, out.stderr];
    for format in ["md", "json", "junit", "html"] {
        let o = Command::new(sqlflight_bin())
            .args(["report", "--format", format])
            .arg(&run)
            .output()
            .unwrap();
        // 1: the report found regressions (Spark 4.0's ANSI errors are new).
        assert!(
            o.status.code().is_some_and(|c| c <= 1),
            "{format}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        streams.push(o.stdout);
        streams.push(o.stderr);
    }
    let files = sqlflight_tests::all_files(&run);
    assert!(files.len() >= 3);
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    let mut all: Vec<(&str, &[u8])> = names
        .iter()
        .map(String::as_str)
        .zip(files.iter().map(|(_, b)| b.as_slice()))
        .collect();
    let labels: Vec<String> = (0..streams.len()).map(|i| format!("output stream {i}")).collect();
    all.extend(labels.iter().map(String::as_str).zip(streams.iter().map(Vec::as_slice)));
    no_secret_in(&all);
}

/// And through a real Flight SQL server (the embedded DataFusion behind
/// arrow-flight's `FlightSqlService`, on loopback): the server's errors arrive
/// as gRPC statuses quoting the value.
#[test]
fn flight_sql_error_messages_never_carry_table_values() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("t.csv");
    plant(&csv);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    rt.block_on(ctx.register_csv("t", csv.to_str().unwrap(), Default::default()))
        .unwrap();
    let token = format!("planted-{}", std::process::id());
    let server = sqlflight_tests::flight_sql_server::FlightSqlServer::start(ctx, &token);
    planted_secrets_never_leave(
        &format!(
            "engines:\n  old: {{ kind: datafusion }}\n  \
             new: {{ kind: flight-sql, url: \"{}\", headers: {{ authorization: \"Bearer {token}\" }} }}\n\
             baseline: old\ncandidate: new\n",
            server.url
        ),
        &[
            "select cast(v as int) from t",
            "select regexp_like('abc', v) from t",
            "select to_timestamp(v) from t",
            "select cast(v as decimal(10, 2)) from t",
            "select v from t where cast(v as double) > 1",
        ],
        4,
    );
}

/// A worker busy in a query (DuckDB on an endless join) does not outlive the
/// sqlflight process that started it: killed with -9, its worker notices within
/// seconds and ends itself and the processes it started (the JVM of a Spark or
/// Flink worker), instead of running the query to its end.
#[test]
fn workers_end_with_a_killed_sqlflight() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("q.sql"),
        "select count(*) from range(20000000) a, range(20000000) b where a.range + b.range = 7;\n",
    )
    .unwrap();
    let corpus = tmp.path().join("c");
    assert_eq!(
        sqlflight::run_cli([
            "sqlflight",
            "corpus",
            "ingest",
            tmp.path().join("q.sql").to_str().unwrap(),
            "--out",
            corpus.to_str().unwrap(),
            "-q"
        ]),
        0
    );
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "corpus: c\nengines:\n  a: { kind: duckdb, version: \"1.2.1\" }\n  b: { kind: duckdb, version: \"1.2.1\" }\n\
         baseline: a\ncandidate: b\nflight: { timeout: 600s }\n",
    )
    .unwrap();
    let mut host = Command::new(sqlflight_bin())
        .args(["flight", "-c", cfg.to_str().unwrap(), "-q", "--out"])
        .arg(tmp.path().join("run"))
        .env("SQLFLIGHT_NO_SUPERVISOR", "1")
        .spawn()
        .unwrap();
    let workers = |parent: u32| -> Vec<u32> {
        sqlflight_tests::processes()
            .into_iter()
            .filter(|p| p.ppid == parent && p.cmdline.contains("sqlflight_worker"))
            .map(|p| p.pid)
            .collect()
    };
    // Both workers started and the run directory written: the query is running.
    let t0 = std::time::Instant::now();
    let started = loop {
        let w = workers(host.id());
        if w.len() >= 2 && tmp.path().join("run").join(sqlflight_runs::journal::MANIFEST).exists() {
            break w;
        }
        assert!(t0.elapsed().as_secs() < 120, "the workers never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    host.kill().unwrap();
    host.wait().unwrap();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
    };
    let t1 = std::time::Instant::now();
    while started.iter().any(|&p| alive(p)) {
        assert!(t1.elapsed().as_secs() < 30, "workers {started:?} outlived their host");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The planted table values: a CSV of `id,v` whose `v` are secrets.
const SECRETS: [&str; 5] = ["Zq7SecretA", "Zq7SecretB(", "Zq7SecretC", "Zq7SecretD", "Zq7SecretE"];

/// Writes the planted table ([`SECRETS`]) to `csv`.
fn plant(csv: &Path) {
    let mut data = String::from("id,v\n");
    for (i, s) in SECRETS.iter().enumerate() {
        data.push_str(&format!("{i},{s}\n"));
    }
    std::fs::write(csv, data).unwrap();
}

/// Asserts that no planted secret is in any of `streams`.
fn no_secret_in(streams: &[(&str, &[u8])]) {
    for s in SECRETS {
        let needle = s.trim_end_matches('(');
        for (what, bytes) in streams {
            assert!(
                !sqlflight_tests::contains_bytes(bytes, needle),
                "{what} holds the table value {needle}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

/// Builds the engines of `engines_yaml`, whose setup statements make the engine
/// fail on a planted table value while the catalog loads, and requires a clear
/// build error (exit 2, naming `expect`) without the value on stdout or stderr.
fn planted_secrets_at_build_never_leave(engines_yaml: &str, expect: &str) {
    let tmp = tempfile::tempdir().unwrap();
    plant(&tmp.path().join("t.csv"));
    std::fs::write(tmp.path().join("q.sql"), "select count(*) from t;\n").unwrap();
    let corpus = tmp.path().join("c");
    assert_eq!(
        sqlflight::run_cli([
            "sqlflight",
            "corpus",
            "ingest",
            tmp.path().join("q.sql").to_str().unwrap(),
            "--out",
            corpus.to_str().unwrap(),
            "-q"
        ]),
        0
    );
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("corpus: c\ncatalog:\n  tables:\n    t: {{ path: t.csv, format: csv }}\n{engines_yaml}"),
    )
    .unwrap();
    for cmd in ["playback", "flight"] {
        let out = Command::new(sqlflight_bin())
            .args([cmd, "-c", cfg.to_str().unwrap(), "--out"])
            .arg(tmp.path().join(cmd))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains(expect), "{cmd}: the error names {expect:?}: {err}");
        no_secret_in(&[("stdout", &out.stdout), ("stderr", &out.stderr)]);
        for (path, bytes) in sqlflight_tests::all_files(tmp.path()) {
            if path.extension().is_some_and(|e| e == "csv") {
                continue;
            }
            no_secret_in(&[(&path.display().to_string(), &bytes)]);
        }
    }
}

/// A setup statement or catalog DDL that fails on a table value (the embedded
/// DataFusion's cast error quotes it) is a build error without the value.
#[test]
fn catalog_load_errors_never_carry_table_values() {
    planted_secrets_at_build_never_leave(
        "engines:\n  old: { kind: datafusion, setup: [\"create table n as select cast(v as int) as n from t\"] }\n  \
         new: { kind: datafusion }\nbaseline: old\ncandidate: new\n",
        "setup statement",
    );
}

/// The same on real DuckDB (a worker process: its setup refusal), PostgreSQL
/// and MariaDB servers (strict mode makes MariaDB's truncation an error of
/// `CREATE TABLE ... AS SELECT`).
#[test]
fn catalog_load_errors_on_workers_and_servers_never_carry_table_values() {
    sqlflight_tests::full_tier_only!();
    planted_secrets_at_build_never_leave(
        "engines:\n  old: { kind: duckdb, version: \"1.2.1\", setup: [\"create table n as select cast(v as int) as n from t\"] }\n  \
         new: { kind: duckdb, version: \"1.2.1\" }\nbaseline: old\ncandidate: new\n",
        "setup failed",
    );
    let pg = sqlflight_tests::servers::Postgres::start();
    planted_secrets_at_build_never_leave(
        &format!(
            "engines:\n  old: {{ kind: postgres, url: \"{}\", load_catalog: true, setup: [\"create temp table n as select cast(v as int) as n from t\"] }}\n  \
             new: {{ kind: postgres, url: \"{0}\", load_catalog: true }}\nbaseline: old\ncandidate: new\n",
            pg.url("postgres")
        ),
        "setup statement",
    );
    let my = sqlflight_tests::servers::Mariadb::start();
    planted_secrets_at_build_never_leave(
        &format!(
            "engines:\n  old: {{ kind: mysql, url: \"{}\", load_catalog: true, setup: [\"create temporary table n as select cast(v as signed) as n from t\"] }}\n  \
             new: {{ kind: mysql, url: \"{0}\", load_catalog: true }}\nbaseline: old\ncandidate: new\n",
            my.url("tpch")
        ),
        "setup statement",
    );
}

/// And on a real PostgreSQL server (Debian's, started on loopback): its
/// conversion errors quote the value (`invalid input syntax for type integer:
/// "..."`); the table is loaded by `load_catalog` from the planted CSV.
#[test]
fn postgres_error_messages_never_carry_table_values() {
    sqlflight_tests::full_tier_only!();
    let pg = sqlflight_tests::servers::Postgres::start();
    let url = pg.url("postgres");
    planted_secrets_never_leave(
        &format!(
            "engines:\n  old: {{ kind: postgres, url: \"{url}\", load_catalog: true }}\n  \
             new: {{ kind: postgres, url: \"{url}\", load_catalog: true, settings: {{ enable_hashjoin: \"off\" }} }}\n\
             baseline: old\ncandidate: new\n"
        ),
        &[
            "select cast(v as int) from t",
            "select cast(v as numeric) from t",
            "select cast(v as date) from t",
            "select cast(v as timestamp) from t",
            "select v from t where cast(v as float8) > 1",
        ],
        4,
    );
}

/// And on a real MariaDB server (Debian's, on loopback). Its SELECTs turn a
/// value they cannot convert into a warning, not an error (casts, JSON, dates,
/// geometry: tried here, they `match`); what fails (non-constant XPath) is
/// checked with the rest. MariaDB's value-quoting errors (`Truncated incorrect
/// INTEGER value: '...'`, strict mode) come while a catalog loads: see
/// `catalog_load_errors_on_workers_and_servers_never_carry_table_values`.
#[test]
fn mariadb_error_messages_never_carry_table_values() {
    sqlflight_tests::full_tier_only!();
    let db = sqlflight_tests::servers::Mariadb::start();
    let url = db.url("tpch");
    planted_secrets_never_leave(
        &format!(
            "engines:\n  old: {{ kind: mariadb, url: \"{url}\", load_catalog: true }}\n  \
             new: {{ kind: mariadb, url: \"{url}\", load_catalog: true, settings: {{ join_cache_level: \"0\" }} }}\n\
             baseline: old\ncandidate: new\n"
        ),
        &[
            "select extractvalue('<a/>', v) from t",
            "select updatexml('<a/>', v, '<b/>') from t",
            "select json_extract('{}', v) from t",
            "select v from t where v regexp concat(v, '(')",
            "select cast(v as signed) from t",
            "select cast(v as date) from t",
            "select st_geomfromtext(v) from t",
        ],
        2,
    );
}

/// And on real Spark releases (3.5.9 and 4.0.5 in local mode): Spark quotes the
/// value in its conversion errors, `raise_error` makes the value the message,
/// and its executors log failed tasks with the value to stderr.
#[test]
fn spark_error_messages_never_carry_table_values() {
    sqlflight_tests::full_tier_only!();
    planted_secrets_never_leave(
        "engines:\n  old: { kind: spark, version: \"3.5.9\" }\n  new: { kind: spark, version: \"4.0.5\" }\nbaseline: old\ncandidate: new\n",
        &[
            "select cast(v as int) from t",
            "select cast(v as decimal(10, 2)) from t",
            "select to_date(v) from t",
            "select raise_error(v) from t",
            "select v from t where cast(v as double) > 1",
        ],
        3,
    );
}

/// And on Flink 2.2.1 (batch against streaming): its casts of a value that is
/// not a number or a date fail the job with the value in the cause.
#[test]
fn flink_error_messages_never_carry_table_values() {
    sqlflight_tests::full_tier_only!();
    planted_secrets_never_leave(
        "engines:\n  old: { kind: flink, version: \"2.2.1\" }\n  new: { kind: flink, version: \"2.2.1\", mode: streaming }\nbaseline: old\ncandidate: new\n",
        &[
            "select cast(v as int) from t",
            "select cast(v as decimal(10, 2)) from t",
            "select cast(v as date) from t",
            "select v from t where cast(v as double) > 1",
        ],
        2,
    );
}

/// A catalog of TPC-H at scale 0.01 (Parquet, generated once into the cache).
fn tpch_sf001_catalog() -> sqlflight_corpora::Catalog {
    let data =
        sqlflight_corpora::tpch::ensure_tpch_data(&sqlflight::commands::cache_dir().join("tpch-tests"), 0.01).unwrap();
    let mut catalog = sqlflight_corpora::Catalog::default();
    for (t, path) in data.tables {
        let source = sqlflight_corpora::TableSource {
            path,
            format: sqlflight_corpora::TableFormat::Parquet,
        };
        catalog.tables.insert(t, source);
    }
    catalog
}

/// Issue 18, memory: a candidate that loses the Top-K (its limit rules
/// disabled) sorts all of `lineitem` to keep 10 rows; the embedded engine's
/// accounting shows every candidate run peaking far above every baseline run,
/// and the outcome is a `perf_regression` saying so, with the same time verdict
/// procedure alongside. The same profile on both sides is not.
#[test]
fn a_real_memory_regression_is_a_performance_regression() {
    use sqlflight_corpora::{Corpus, CorpusManifest, QueryRecord};
    let tmp = tempfile::tempdir().unwrap();
    let catalog = tpch_sf001_catalog();
    let corpus = Corpus::from_records(
        CorpusManifest::new("memory"),
        vec![QueryRecord::new(
            "topk",
            "select * from lineitem order by l_comment limit 10",
        )],
        None,
    );
    let base = sqlflight_tests::datafusion(&[("datafusion.execution.target_partitions", "2")], &[]);
    let no_topk = sqlflight_tests::datafusion(
        &[("datafusion.execution.target_partitions", "2")],
        &["push_down_limit", "LimitPushdown"],
    );
    for (name, cand) in [("bigger", &no_topk), ("same", &base)] {
        let opts = sqlflight_flighting::FlightOptions {
            out: tmp.path().join(name),
            repeat: 1,
            jobs: 1,
            // Memory needs two runs a side; the time verdict is not under test.
            perf: sqlflight_flighting::PerfPolicy {
                max_pairs: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        let s = sqlflight_flighting::run_flight(
            &corpus,
            sqlflight_tests::engine("baseline", &base, &catalog),
            sqlflight_tests::engine("candidate", cand, &catalog),
            &opts,
            &sqlflight_runs::NoProgress,
        )
        .unwrap();
        let o = &s.outcomes[0];
        let f = o.flight.as_ref().unwrap();
        let m = f.memory.as_ref().expect("the embedded engine accounts for memory");
        assert!(f.baseline.peaks.len() >= 2 && f.candidate.peaks.len() >= 2, "{f:?}");
        if name == "bigger" {
            assert!(m.regression && m.ratio > 3.0, "{m:?}");
            assert_eq!(o.class, OutcomeClass::PerfRegression, "{:?}", o.detail);
            assert!(
                o.detail.as_deref().unwrap_or("").contains("peak memory"),
                "{:?}",
                o.detail
            );
            assert!(o.is_regression());
        } else {
            assert!(!m.regression, "A/A: {m:?}");
            assert_eq!(o.class, OutcomeClass::Match, "{:?}", o.detail);
        }
    }
}

/// Issue 18: a real slowdown of the embedded DataFusion (the candidate's
/// `execution.batch_size` of 4 rows multiplies per-batch work by about 2,000) is a
/// confirmed `perf_regression` at every allowed minimum of repetitions, the
/// smallest included; the same profile on both sides is not.
#[test]
fn a_real_slowdown_is_a_confirmed_regression_at_every_minimum_repetition() {
    use sqlflight_corpora::{Corpus, CorpusManifest, QueryRecord};
    let tmp = tempfile::tempdir().unwrap();
    let catalog = tpch_sf001_catalog();
    let corpus = Corpus::from_records(
        CorpusManifest::new("slow"),
        vec![QueryRecord::new(
            "agg",
            "select l_returnflag, sum(l_quantity), count(*) from lineitem group by l_returnflag",
        )],
        None,
    );
    let base = sqlflight_tests::datafusion(&[("datafusion.execution.target_partitions", "2")], &[]);
    let slow = sqlflight_tests::datafusion(
        &[
            ("datafusion.execution.target_partitions", "2"),
            ("datafusion.execution.batch_size", "4"),
        ],
        &[],
    );
    for repeat in [1, 2, 3, 4] {
        for (name, cand) in [("slow", &slow), ("same", &base)] {
            let opts = sqlflight_flighting::FlightOptions {
                out: tmp.path().join(format!("{name}-{repeat}")),
                repeat,
                jobs: 1,
                ..Default::default()
            };
            let s = sqlflight_flighting::run_flight(
                &corpus,
                sqlflight_tests::engine("baseline", &base, &catalog),
                sqlflight_tests::engine("candidate", cand, &catalog),
                &opts,
                &sqlflight_runs::NoProgress,
            )
            .unwrap();
            let o = &s.outcomes[0];
            let p = o.flight.as_ref().and_then(|f| f.perf.as_ref()).expect("a verdict");
            if name == "slow" {
                assert_eq!(o.class, OutcomeClass::PerfRegression, "repeat {repeat}: {p:?}");
                assert_eq!(p.confirmed, Some(true));
                assert!(o.detail.as_deref().unwrap_or("").contains("slower"), "{:?}", o.detail);
                assert!(o.is_regression());
            } else {
                assert_eq!(o.class, OutcomeClass::Match, "repeat {repeat}: {p:?}");
                assert!(!o.is_regression(), "A/A: {p:?}");
            }
        }
    }
}

/// A noisy neighbour, as on a shared CI runner: one process spinning a CPU and
/// one streaming memory (`dd` from `/dev/zero` through a 256 MiB buffer). Both
/// are killed when dropped.
fn noisy_neighbour() -> [sqlflight_tests::KillOnDrop; 2] {
    let spin = Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
    let stream = Command::new("dd")
        .args(["if=/dev/zero", "of=/dev/null", "bs=256M"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    [sqlflight_tests::KillOnDrop(spin), sqlflight_tests::KillOnDrop(stream)]
}

/// Issue 18: an A/A flight of TPC-H (the same profile on both sides, default
/// performance policy) while a noisy neighbour runs finds no regression, and at
/// most 10% of the judged queries end undecided.
#[test]
fn an_a_a_flight_under_a_noisy_neighbour_finds_no_regression() {
    sqlflight_tests::full_tier_only!();
    use sqlflight_diffing::PerfVerdict;
    let tmp = tempfile::tempdir().unwrap();
    let catalog = tpch_sf001_catalog();
    let corpus = sqlflight_corpora::bundled::Workload::Tpch.corpus().unwrap();
    let profile = sqlflight_tests::datafusion(&[("datafusion.execution.target_partitions", "2")], &[]);
    let opts = sqlflight_flighting::FlightOptions {
        out: tmp.path().join("aa"),
        jobs: 1,
        ..Default::default()
    };
    let neighbour = noisy_neighbour();
    let s = sqlflight_flighting::run_flight(
        &corpus,
        sqlflight_tests::engine("baseline", &profile, &catalog),
        sqlflight_tests::engine("candidate", &profile, &catalog),
        &opts,
        &sqlflight_runs::NoProgress,
    )
    .unwrap();
    drop(neighbour);
    let perf: Vec<_> = s
        .outcomes
        .iter()
        .filter_map(|o| Some((o.query_id.as_str(), o.flight.as_ref()?.perf.as_ref()?)))
        .collect();
    let lines: Vec<String> = perf.iter().map(|(q, p)| format!("{q}: {}", p.describe())).collect();
    eprintln!("{}", lines.join("\n"));
    assert_eq!(perf.len(), corpus.records.len(), "every query judged");
    let regressions: Vec<_> = s.outcomes.iter().filter(|o| o.is_regression()).collect();
    assert!(regressions.is_empty(), "A/A under noise: {regressions:#?}");
    let undecided = perf
        .iter()
        .filter(|(_, p)| p.verdict == PerfVerdict::Inconclusive)
        .count();
    assert!(
        undecided * 10 <= perf.len(),
        "{undecided} of {} undecided:\n{}",
        perf.len(),
        lines.join("\n")
    );
}
