//! Apache Spark (issue 21): real pyspark releases from PyPI in local mode on the
//! machine's Java 17, driven as worker processes. The 3.5 → 4.0 upgrade is the
//! real test: the public migration cases, TPC-H playback and flight, a real Spark
//! event log ingested and replayed, and faults caused for real in the JVM.

use std::path::{Path, PathBuf};

use sqlflight_diffing::{OutcomeClass, OutcomeRecord};

use super::{Case, case_config, ingest_sql, run, tpch_config};

/// The releases of the upgrade under test (the cases in `tests/cases/` name them).
pub const OLD: &str = "3.5.9";
pub const NEW: &str = "4.0.5";

/// A config's `engines:` part: one Spark release per side.
fn spark_engines(old: &str, new: &str, extra: &str) -> String {
    format!(
        "engines:\n  old: {{ kind: spark, version: \"{old}\"{extra} }}\n  new: {{ kind: spark, version: \"{new}\"{extra} }}\n\
         baseline: old\ncandidate: new\n"
    )
}

fn runs(dir: &Path) -> Vec<OutcomeRecord> {
    sqlflight_runs::read_run(dir).unwrap().1
}

/// The outcome of the query whose SQL contains `needle`.
fn by<'a>(o: &'a [OutcomeRecord], corpus: &Path, needle: &str) -> &'a OutcomeRecord {
    let c = sqlflight_corpora::Corpus::open(corpus).unwrap();
    o.iter()
        .find(|x| c.records.iter().any(|r| r.id == x.query_id && r.sql.contains(needle)))
        .unwrap_or_else(|| panic!("no outcome for {needle}"))
}

/// The Spark cases of `../shared/cases` (ANSI mode on by default in 4.0, and the
/// setting that restores 3.5's behaviour), flown between the two releases: each
/// is classified as the case expects.
#[test]
fn spark_4_0_migration_cases_classify_as_expected() {
    sqlflight_tests::full_tier_only!();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("spark-")))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "Spark cases missing in {}", root.display());
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let case: Case = serde_yaml::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        assert_eq!(case.engine, "pyspark");
        let dir = tmp.path().join(format!("c{i}"));
        let cfg = case_config(&dir, &case, &case.baseline, &case.candidate);
        let fl = dir.join("fl");
        let code = run(&[
            "flight",
            "-c",
            cfg.to_str().unwrap(),
            "--out",
            fl.to_str().unwrap(),
            "-q",
        ]);
        assert!(code < 2, "{}: flight failed to run", case.issue);
        let o = runs(&fl);
        let got = o[0].class;
        let ok = if case.expect == "no_regression" {
            !got.is_regression()
        } else {
            let expect: OutcomeClass = serde_json::from_value(serde_json::json!(case.expect)).unwrap();
            got == expect
        };
        if !ok {
            failures.push(format!(
                "{}: flight says {got}, expected {}: {}",
                case.issue,
                case.expect,
                serde_json::to_string(&o[0]).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// TPC-H over generated data between Spark 3.5.9 and 4.0.5: playback explains
/// the plan changes with a handful of facts (snapshotted), and flight reports no
/// false wrong result.
#[test]
fn tpch_on_spark_3_5_and_4_0_explains_plan_changes_and_reports_no_false_regression() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let mut yaml = tpch_config(&data);
    yaml.push_str(&spark_engines(OLD, NEW, ""));
    // Results are what is tested here, not timings (Spark's runs of these tiny
    // queries vary by 20-30%): a results-only flight.
    yaml.push_str("flight: { timing: false }\n");
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let pb = tmp.path().join("pb");
    let code = run(&["playback", "-c", cfg, "--out", pb.to_str().unwrap(), "-q"]);
    assert!(code < 2, "playback exit {code}");
    let (m, o) = sqlflight_runs::read_run(&pb).unwrap();
    assert_eq!(
        (m.baseline.engine.as_str(), m.baseline.version.as_str()),
        ("spark", OLD)
    );
    assert_eq!(m.candidate.version, NEW);
    assert_eq!(o.len(), 22);
    let compiled = o
        .iter()
        .filter(|x| matches!(x.class, OutcomeClass::SamePlan | OutcomeClass::PlanChanged))
        .count();
    assert!(compiled >= 20, "TPC-H compiles on Spark: {o:#?}");
    sqlflight_tests::assert_facts_explain(&o, 0.9);
    insta::assert_snapshot!("spark_tpch_plan_facts", sqlflight_tests::fact_lines(&o));

    let fl = tmp.path().join("fl");
    let code = run(&["flight", "-c", cfg, "--out", fl.to_str().unwrap(), "-q"]);
    assert!(code < 2, "flight exit {code}");
    let o = runs(&fl);
    assert_eq!(o.len(), 22);
    let bad: Vec<String> = o
        .iter()
        .filter(|x| x.class.is_regression())
        .map(|x| format!("{} {} {:?}", x.query_id, x.class, x.detail))
        .collect();
    assert!(bad.is_empty(), "Spark {OLD} vs {NEW}: {bad:?}");
    let matched = o
        .iter()
        .filter(|x| matches!(x.class, OutcomeClass::Match | OutcomeClass::MatchWithinTolerance))
        .count();
    assert!(matched >= 20, "{matched} of 22 match");
}

/// Faults caused for real in the candidate's JVM: a query that runs past the
/// timeout is cancelled (`timeout`, the JVM kept), a query that ends the JVM
/// (`System.exit` through `reflect`) is a `crash` and the JVM is replaced, and
/// the queries after both still run and match.
#[test]
fn spark_timeouts_and_dead_jvms_become_outcomes_and_the_run_goes_on() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = ingest_sql(
        tmp.path(),
        "select 1 as x; select n from slow; select 2 as x; select x from boom; select 3 as x;",
    );
    let setup = |slow: &str, boom: &str| {
        format!(", setup: [\"create temporary view slow as {slow}\", \"create temporary view boom as {boom}\"]")
    };
    let yaml = format!(
        "corpus: corpus\nengines:\n  old: {{ kind: spark, version: \"{NEW}\"{} }}\n  new: {{ kind: spark, version: \"{NEW}\"{} }}\n\
         baseline: old\ncandidate: new\nflight: {{ timing: false, timeout: 8s }}\n",
        setup("select 1 as n", "select '1' as x"),
        setup(
            "select count(*) as n from range(1000000000000)",
            "select reflect('java.lang.System', 'exit', 3) as x"
        ),
    );
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = tmp.path().join("fl");
    let code = run(&[
        "flight",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--jobs",
        "1",
    ]);
    assert_eq!(code, 1);
    let (m, o) = sqlflight_runs::read_run(&out).unwrap();
    assert_eq!(m.status, sqlflight_diffing::RunStatus::Complete);
    let err = |x: &OutcomeRecord| serde_json::to_string(&x.candidate).unwrap();
    // The results agree; timings are not what is tested (a query that a freshly
    // started JVM takes can be measured slower).
    for ok in ["1 as x", "2 as x", "3 as x"] {
        let x = by(&o, &corpus, ok);
        assert!(
            matches!(x.class, OutcomeClass::Match | OutcomeClass::PerfRegression),
            "{ok}: {} {}",
            x.class,
            err(x)
        );
    }
    let slow = by(&o, &corpus, "from slow");
    assert_eq!(slow.class, OutcomeClass::Timeout, "{}", err(slow));
    // Cancelled by the worker (a job group), not killed by the host.
    assert!(err(slow).contains("cancelled"), "{}", err(slow));
    let boom = by(&o, &corpus, "from boom");
    assert_eq!(boom.class, OutcomeClass::Crash, "{}", err(boom));
}

/// A real Spark event log, written by Spark's own SQL command line (`spark-sql`
/// from the 3.5.9 package, the statements of a `.sql` file with the event log
/// on), is ingested as a corpus and replayed between the two releases.
#[test]
fn a_real_spark_event_log_becomes_a_corpus_replayed_on_two_releases() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let python =
        sqlflight_engines::python::ensure_venv("pyspark", OLD, &sqlflight_engines::spark::extras(OLD)).unwrap();
    let bin = python.parent().unwrap();
    // The package's `spark-sql` script sits next to the environment's python.
    let spark_sql = bin.join("spark-sql");
    assert!(spark_sql.exists(), "{}", spark_sql.display());
    let events = tmp.path().join("events");
    std::fs::create_dir(&events).unwrap();
    let statements = "create or replace temporary view t as select * from values (1, 'a'), (2, 'b'), (3, 'c') as t(id, name);\n\
         select id, upper(name) as u from t where id > 1 order by id;\n\
         select count(*) as n, max(id) as m from t;\n\
         select name, sum(id) over (order by id) as s from t order by name;\n";
    std::fs::write(tmp.path().join("app.sql"), statements).unwrap();
    let status = std::process::Command::new(&spark_sql)
        .current_dir(tmp.path())
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        // The script finds its Spark home with the environment's python.
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
        )
        .args([
            "--master",
            "local[1]",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.eventLog.enabled=true",
            "--conf",
            &format!("spark.eventLog.dir=file://{}", events.display()),
            "--conf",
            &format!("spark.sql.warehouse.dir={}", tmp.path().join("wh").display()),
            "--conf",
            &format!(
                "spark.driver.extraJavaOptions=-Dderby.system.home={}",
                tmp.path().join("derby").display()
            ),
            "-f",
            "app.sql",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "spark-sql failed");
    let log = std::fs::read_dir(&events).unwrap().next().unwrap().unwrap().path();
    let corpus = tmp.path().join("corpus");
    let out = std::process::Command::new(sqlflight_tests::sqlflight_bin())
        .args(["corpus", "ingest", "--format", "spark-events", "--json"])
        .arg(&log)
        .arg("--out")
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = sqlflight_corpora::Corpus::open(&corpus).unwrap();
    let sql: Vec<&str> = c.records.iter().map(|r| r.sql.as_str()).collect();
    assert_eq!(c.records.len(), 4, "the statements of the log: {sql:?}");
    assert_eq!(sql.iter().filter(|s| s.starts_with("select")).count(), 3, "{sql:?}");
    // Flight runs reads only (the view's DDL is `skipped`); the view the app
    // created is the replay's setup.
    let yaml = format!(
        "corpus: corpus\n{}",
        spark_engines(
            OLD,
            NEW,
            ", setup: [\"create temporary view t as select * from values (1, 'a'), (2, 'b'), (3, 'c') as t(id, name)\"]"
        )
    );
    std::fs::write(tmp.path().join("c.yaml"), yaml).unwrap();
    let cfg = tmp.path().join("c.yaml");
    let pb = tmp.path().join("pb");
    let code = run(&[
        "playback",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        pb.to_str().unwrap(),
        "-q",
    ]);
    assert!(code < 2);
    let p = runs(&pb);
    assert_eq!(p.len(), 4);
    let planned = p
        .iter()
        .filter(|x| matches!(x.class, OutcomeClass::SamePlan | OutcomeClass::PlanChanged))
        .count();
    assert!(
        planned >= 3,
        "the log's reads plan on both releases: {}",
        serde_json::to_string_pretty(&p).unwrap()
    );
    let fl = tmp.path().join("fl");
    let code = run(&[
        "flight",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        fl.to_str().unwrap(),
        "-q",
    ]);
    assert!(code < 2);
    let o = runs(&fl);
    assert_eq!(o.len(), 4);
    assert_eq!(o.iter().filter(|x| x.class == OutcomeClass::Skipped).count(), 1);
    assert!(
        o.iter()
            .all(|x| matches!(x.class, OutcomeClass::Match | OutcomeClass::Skipped)),
        "{}",
        serde_json::to_string_pretty(&o).unwrap()
    );
}

/// A server process for a test: killed (with its children) when dropped.
struct Server {
    child: std::process::Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (which must listen on `port` on loopback) and waits for it.
fn serve(mut cmd: std::process::Command, port: u16, log: &Path) -> Server {
    let out = std::fs::File::create(log).unwrap();
    let child = cmd.stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap();
    let server = Server { child, port };
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(180),
            "the server did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    server
}

/// CSV catalog tables (a header line, a quoted comma, non-ASCII text, an empty
/// field) read by Spark as the embedded DataFusion reads them: flown DataFusion →
/// Spark 4.0.5 over the same file, every query matches.
#[test]
fn csv_catalog_tables_on_spark_read_like_the_embedded_datafusion() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("cities.csv");
    std::fs::write(
        &csv,
        "id,name,country,population,area_km2\n1,Lisbon,PT,545923,100.05\n2,\"Porto, city\",PT,231800,41.42\n\
         3,Zürich,CH,421878,87.88\n4,Oslo,NO,,454.0\n5,Reykjavík,IS,139875,273.0\n",
    )
    .unwrap();
    let corpus = ingest_sql(
        tmp.path(),
        "select cast(id as bigint) as id, name, country from cities order by id;\n\
         select country, cast(count(*) as bigint) as n, cast(sum(population) as bigint) as p from cities group by country order by country;\n\
         select name from cities where population is null;\n\
         select round(sum(area_km2), 2) as a from cities;\n",
    );
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: {}\ncatalog:\n  tables:\n    cities: {}\nengines:\n  df: {{ kind: datafusion }}\n  \
             spark: {{ kind: spark, version: \"{NEW}\" }}\nbaseline: df\ncandidate: spark\nflight: {{ timing: false }}\n",
            corpus.display(),
            csv.display()
        ),
    )
    .unwrap();
    let fl = tmp.path().join("fl");
    let code = run(&[
        "flight",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        fl.to_str().unwrap(),
        "-q",
    ]);
    assert!(code < 2);
    let o = runs(&fl);
    assert_eq!(o.len(), 4);
    assert!(
        o.iter().all(|x| x.class == OutcomeClass::Match),
        "{}",
        serde_json::to_string_pretty(&o).unwrap()
    );
}

/// The token the test's Spark Connect server checks (planted: it must never be
/// written anywhere).
const CONNECT_TOKEN: &str = "sc-t0ken-planted-7f3a";
const CONNECT_TOKEN_ENV: &str = "SQLFLIGHT_TEST_SPARK_CONNECT_TOKEN";

/// A real Spark Connect server: the JVM server class of the pyspark 4.0.5
/// package (`spark-submit --class ...SparkConnectServer`), gRPC on loopback,
/// checking a pre-shared token (`spark.connect.authenticate.token`).
fn spark_connect_server(dir: &Path) -> Server {
    let python =
        sqlflight_engines::python::ensure_venv("pyspark", NEW, &sqlflight_engines::spark::extras(NEW)).unwrap();
    let out = std::process::Command::new(&python)
        .args(["-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"])
        .output()
        .unwrap();
    let home = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let port = sqlflight_tests::servers::free_port();
    let mut cmd = std::process::Command::new(home.join("bin/spark-submit"));
    cmd.current_dir(dir)
        .env("SPARK_HOME", &home)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .args([
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--master",
            "local[2]",
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            &format!("spark.connect.grpc.binding.port={port}"),
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            &format!("spark.connect.authenticate.token={CONNECT_TOKEN}"),
            "--conf",
            &format!("spark.sql.warehouse.dir={}", dir.join("wh").display()),
            "spark-internal",
        ]);
    serve(cmd, port, &dir.join("spark-connect.log"))
}

/// Sail (PyPI `pysail`): a Spark Connect server without a JVM, on DataFusion.
fn sail_server(dir: &Path, what: &str) -> Server {
    // Sail asks the pyspark module in its own environment for the version it
    // reports.
    let python = sqlflight_engines::python::ensure_venv("pysail", "0.7.2", &["pyspark-client==4.0.4"]).unwrap();
    let port = sqlflight_tests::servers::free_port();
    // `python -m pysail`, not the `sail` script: the environment was built in a
    // temporary directory and renamed, so its scripts' `#!` lines are stale.
    let mut cmd = std::process::Command::new(&python);
    cmd.current_dir(dir).args([
        "-m",
        "pysail",
        what,
        "server",
        "--ip",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    serve(cmd, port, &dir.join(format!("sail-{what}.log")))
}

/// Runs the CLI in a child process with the server's token in its environment;
/// returns the exit code and everything it printed.
fn run_with_token(args: &[&str]) -> (i32, String) {
    let out = crate::cli_child(args)
        .env(CONNECT_TOKEN_ENV, CONNECT_TOKEN)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Flies `cfg` into `out` (quiet, `extra` flags) with the Connect token set; the
/// run completes and the token is never printed. Returns the outcomes.
fn flight_with_token(cfg: &Path, out: &Path, extra: &[&str]) -> Vec<OutcomeRecord> {
    let mut args = vec![
        "flight",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    let (code, text) = run_with_token(&args);
    assert!(code < 2, "{text}");
    assert!(!text.contains(CONNECT_TOKEN), "the token is never printed");
    let (m, o) = sqlflight_runs::read_run(out).unwrap();
    assert_eq!(m.status, sqlflight_diffing::RunStatus::Complete);
    o
}

/// Renders the HTML report of `run` into `out` (in this process).
fn run_args_report(run_dir: &Path, out: &Path) -> u8 {
    run(&[
        "report",
        run_dir.to_str().unwrap(),
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ])
}

/// Every file under `dir` (recursively) that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())) {
                found.push(p);
            }
        }
    }
    found
}

/// Spark Connect, for real: TPC-H through a Spark Connect server (the JVM server
/// of 4.0.5, checking a token) plans and answers exactly like the same release in
/// local mode; without the token or with a wrong one the engine is refused with
/// a clear error, and the token is written nowhere. Sail, a second, independent
/// Spark Connect implementation, replays the same corpus against it as a
/// candidate: every query gets an outcome, most match.
#[test]
fn spark_connect_server_and_sail_replay_tpch() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let jvm = spark_connect_server(tmp.path());
    let sail = sail_server(tmp.path(), "spark");
    let config = |name: &str, baseline: &str, candidate: &str| {
        let mut yaml = tpch_config(&data);
        yaml.push_str(&format!(
            "engines:\n  local: {{ kind: spark, version: \"{NEW}\" }}\n  \
             connect: {{ kind: spark-connect, url: \"sc://localhost:{}\", token_env: {CONNECT_TOKEN_ENV} }}\n  \
             untokened: {{ kind: spark-connect, url: \"sc://localhost:{}\" }}\n  \
             sail: {{ kind: spark-connect, url: \"sc://127.0.0.1:{}\" }}\n\
             baseline: {baseline}\ncandidate: {candidate}\nflight: {{ timing: false }}\n",
            jvm.port, jvm.port, sail.port
        ));
        let cfg = tmp.path().join(name);
        std::fs::write(&cfg, yaml).unwrap();
        cfg
    };
    // Without the token (and with a wrong one): refused up front, located at the
    // profile, saying what to set.
    let cfg = config("untokened.yaml", "untokened", "untokened");
    let refused = tmp.path().join("refused");
    let (code, text) = run_with_token(&[
        "playback",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("untokened.yaml:") && text.contains("UNAUTHENTICATED") && text.contains("token_env"),
        "{text}"
    );
    let wrong = crate::cli_child(&[
        "playback",
        "-c",
        config("wrong.yaml", "connect", "connect").to_str().unwrap(),
        "--out",
        refused.to_str().unwrap(),
    ])
    .env(CONNECT_TOKEN_ENV, "not-the-token")
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(2), "{text}");
    assert!(
        text.contains("Invalid authentication token") && !text.contains("not-the-token"),
        "{text}"
    );

    let cfg = config("local-connect.yaml", "local", "connect");
    let pb = tmp.path().join("pb");
    let (code, text) = run_with_token(&["playback", "-c", cfg.to_str().unwrap(), "--out", pb.to_str().unwrap()]);
    assert!(code < 2, "{text}");
    assert!(!text.contains(CONNECT_TOKEN), "the token is never printed");
    let (m, o) = sqlflight_runs::read_run(&pb).unwrap();
    assert_eq!(
        (m.candidate.engine.as_str(), m.candidate.version.as_str()),
        ("spark-connect", NEW)
    );
    let same = o.iter().filter(|x| x.class == OutcomeClass::SamePlan).count();
    let first_diff = o.iter().find_map(|x| x.diff.clone()).unwrap_or_default();
    assert!(
        same >= 20,
        "the same release plans alike over Spark Connect: {same} of 22 same_plan; {first_diff}"
    );
    let fl = tmp.path().join("fl");
    let (code, text) = run_with_token(&["flight", "-c", cfg.to_str().unwrap(), "--out", fl.to_str().unwrap()]);
    assert!(code < 2, "{text}");
    assert!(!text.contains(CONNECT_TOKEN), "the token is never printed");
    for run in [&pb, &fl] {
        let report = run.join("report.html");
        let code = run_args_report(run, &report);
        assert!(code < 2);
        assert_eq!(
            files_containing(run, CONNECT_TOKEN),
            Vec::<PathBuf>::new(),
            "the token is written nowhere"
        );
    }
    let o = runs(&fl);
    let matched = o
        .iter()
        .filter(|x| matches!(x.class, OutcomeClass::Match | OutcomeClass::MatchWithinTolerance))
        .count();
    assert_eq!(matched, 22, "{}", serde_json::to_string_pretty(&o).unwrap());

    // Sail as the candidate against the JVM server.
    let cfg = config("connect-sail.yaml", "connect", "sail");
    let o = flight_with_token(&cfg, &tmp.path().join("sail"), &[]);
    assert_eq!(o.len(), 22);
    let matched = o
        .iter()
        .filter(|x| matches!(x.class, OutcomeClass::Match | OutcomeClass::MatchWithinTolerance))
        .count();
    let summary: Vec<String> = o.iter().map(|x| format!("{} {}", x.query_id, x.class)).collect();
    assert!(matched >= 15, "Sail answers TPC-H like Spark: {summary:?}");
    assert!(!o.iter().any(|x| matches!(x.class, OutcomeClass::Crash)), "{summary:?}");

    // Timeouts over Spark Connect, on both servers: the query past its time is a
    // `timeout` on each side, and the queries after it still run on the same
    // servers (sum over 10^12 rows cannot be answered from statistics).
    let small = tmp.path().join("timeouts");
    let corpus = ingest_sql(
        &small,
        "select 1 as x; select sum(id % 7) as s from range(1000000000000); select 2 as x;",
    );
    let yaml = format!(
        "corpus: {}\nengines:\n  \
         connect: {{ kind: spark-connect, url: \"sc://localhost:{}\", token_env: {CONNECT_TOKEN_ENV} }}\n  \
         sail: {{ kind: spark-connect, url: \"sc://127.0.0.1:{}\" }}\n\
         baseline: connect\ncandidate: sail\nflight: {{ timing: false, timeout: 8s }}\n",
        corpus.display(),
        jvm.port,
        sail.port
    );
    let cfg = small.join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let o = flight_with_token(&cfg, &small.join("fl"), &["--jobs", "1"]);
    let side = |x: &OutcomeRecord| {
        format!(
            "baseline {} / candidate {}",
            serde_json::to_string(&x.baseline).unwrap(),
            serde_json::to_string(&x.candidate).unwrap()
        )
    };
    let slow = by(&o, &corpus, "range(1000000000000)");
    // Both sides time out alike: the same failure on both.
    assert_eq!(slow.class, OutcomeClass::BothFailSame, "{}", side(slow));
    for s in [&slow.baseline, &slow.candidate] {
        assert!(
            matches!(
                s,
                Some(sqlflight_diffing::SideResult::Error {
                    error_class: sqlflight_diffing::ErrorClass::Timeout,
                    ..
                })
            ),
            "{}",
            side(slow)
        );
    }
    for ok in ["1 as x", "2 as x"] {
        let x = by(&o, &corpus, ok);
        assert_eq!(x.class, OutcomeClass::Match, "{ok}: {}", side(x));
    }
}

/// The Flight SQL engine against a server this project did not write: Sail's
/// Arrow Flight SQL interface (`sail flight server`). Self-contained queries (the
/// server has no tables of ours) flown against the embedded DataFusion: each is
/// answered, results with the same types agree, and a real typing difference
/// between the two engines is found.
#[test]
fn flight_sql_engine_against_sails_flight_sql_server() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let sail = sail_server(tmp.path(), "flight");
    let corpus = ingest_sql(
        tmp.path(),
        "select cast(1 + 1 as bigint) as two; \
         select cast(a as bigint) as a, b from (values (1, 'x'), (2, 'y'), (3, 'z')) as t(a, b) order by a; \
         select count(*) as n, cast(sum(a) as bigint) as s from (values (1), (2), (3), (4)) as t(a); \
         select upper('sail') as u, cast(length('flight') as bigint) as l; \
         select 1 + 1 as typed_apart;",
    );
    let yaml = format!(
        "corpus: corpus\nengines:\n  local: {{ kind: datafusion }}\n  \
         sail: {{ kind: flight-sql, url: \"http://127.0.0.1:{}\", version: \"pysail-0.7.2\" }}\n\
         baseline: local\ncandidate: sail\nflight: {{ timing: false }}\n",
        sail.port
    );
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let fl = tmp.path().join("fl");
    let code = run(&[
        "flight",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        fl.to_str().unwrap(),
        "-q",
    ]);
    assert!(code < 2);
    let o = runs(&fl);
    assert_eq!(o.len(), 5);
    // A real difference between the two engines: DataFusion types `1 + 1` as
    // BIGINT, Spark SQL (and Sail) as INT. Found, and named `schema`.
    let apart = by(&o, &corpus, "typed_apart");
    assert_eq!(
        (apart.class, apart.detail.as_deref()),
        (OutcomeClass::WrongResult, Some("schema"))
    );
    let bad: Vec<String> = o
        .iter()
        .filter(|x| x.query_id != apart.query_id)
        .filter(|x| !matches!(x.class, OutcomeClass::Match | OutcomeClass::MatchWithinTolerance))
        .map(|x| format!("{} {}: {:?}", x.query_id, x.class, x.detail))
        .collect();
    assert!(bad.is_empty(), "{bad:?} (corpus {})", corpus.display());
}
