//! Engines as worker processes: real DuckDB and datafusion-python releases from
//! PyPI (provisioned into cached virtual environments), the public regression
//! cases of `tests/cases/` (copied from the product brief's `shared/cases`), and
//! worker faults caused for real.

use std::path::{Path, PathBuf};

use sqlflight_diffing::OutcomeClass;
use sqlflight_tests::sqlflight_bin;

use super::run_args as run;

#[derive(Debug, serde::Deserialize)]
struct Case {
    issue: String,
    engine: String,
    baseline: String,
    candidate: String,
    /// The first release without the regression (not every case has one: the
    /// Spark 4.0 cases are changed defaults).
    #[serde(default)]
    fixed_in: Option<String>,
    /// Engine settings of the candidate profile.
    #[serde(default)]
    candidate_settings: std::collections::BTreeMap<String, String>,
    expect: String,
    #[serde(default)]
    error_class: Option<String>,
    setup: Vec<String>,
    query: String,
}

fn kind(engine: &str) -> &'static str {
    match engine {
        "duckdb" => "duckdb",
        "datafusion" => "datafusion-python",
        "pyspark" => "spark",
        other => panic!("unknown case engine {other}"),
    }
}

/// The start of a config: the bundled TPC-H corpus over the generated data.
fn tpch_config(data: &sqlflight_corpora::tpch::TpchData) -> String {
    let mut yaml = String::from("corpus: bundled:tpch\ncatalog:\n  tables:\n");
    for (t, p) in &data.tables {
        yaml.push_str(&format!("    {t}: {}\n", p.display()));
    }
    yaml
}

/// Writes `sql` as one `.sql` file under `dir/in` and ingests it into `dir/corpus`.
pub(crate) fn ingest_sql(dir: &Path, sql: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::write(dir.join("in/q.sql"), sql).unwrap();
    let corpus = dir.join("corpus");
    let code = run(&[
        "corpus",
        "ingest",
        dir.join("in").to_str().unwrap(),
        "--out",
        corpus.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0);
    corpus
}

/// Replays one case between two versions; returns the single outcome of each
/// driver (playback, flight).
fn replay(dir: &Path, case: &Case, baseline: &str, candidate: &str) -> (OutcomeClass, OutcomeClass, String) {
    let cfg = case_config(dir, case, baseline, candidate);
    let cfg = cfg.to_str().unwrap();
    let pb = dir.join("pb");
    let fl = dir.join("fl");
    let code = run(&["playback", "-c", cfg, "--out", pb.to_str().unwrap(), "-q"]);
    assert!(code < 2, "{}: playback failed to run", case.issue);
    let code = run(&["flight", "-c", cfg, "--out", fl.to_str().unwrap(), "-q"]);
    assert!(code < 2, "{}: flight failed to run", case.issue);
    let (_, p) = sqlflight_runs::read_run(&pb).unwrap();
    let (_, f) = sqlflight_runs::read_run(&fl).unwrap();
    let detail = serde_json::to_string(&f[0]).unwrap();
    (p[0].class, f[0].class, detail)
}

/// Ingests a case's query and writes the config replaying it between two
/// versions (the candidate with the case's `candidate_settings`).
fn case_config(dir: &Path, case: &Case, baseline: &str, candidate: &str) -> PathBuf {
    ingest_sql(dir, &format!("{};\n", case.query));
    let setup = serde_json::to_string(&case.setup).unwrap();
    let settings = serde_json::to_string(&case.candidate_settings).unwrap();
    let k = kind(&case.engine);
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: corpus\nengines:\n  old: {{ kind: {k}, version: \"{baseline}\", setup: {setup} }}\n  new: {{ kind: {k}, version: \"{candidate}\", setup: {setup}, settings: {settings} }}\n\
             baseline: old\ncandidate: new\nflight: {{ timing: false, timeout: 60s }}\n"
        ),
    )
    .unwrap();
    cfg
}

/// Two `fixed_in` versions of the cases are DataFusion crate releases that
/// datafusion-python never published (PyPI lists 50.0.0, 50.1.0, 51.0.0, ...,
/// 52.0.0, 52.3.0; pip says so when asked for 50.3.0 or 52.2.0): the first
/// published release after them stands in.
fn published<'a>(engine: &str, version: &'a str) -> &'a str {
    match (engine, version) {
        ("datafusion", "50.3.0") => "51.0.0",
        ("datafusion", "52.2.0") => "52.3.0",
        _ => version,
    }
}

#[test]
fn public_regression_cases_classify_as_expected_and_fixed_versions_are_clean() {
    sqlflight_tests::full_tier_only!();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "cases missing in {}", root.display());
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    // The Spark cases have their own test (`spark::spark_4_0_cases_...`).
    let cases = files
        .iter()
        .map(|f| serde_yaml::from_str::<Case>(&std::fs::read_to_string(f).unwrap()).unwrap())
        .filter(|c| c.engine != "pyspark");
    for (i, case) in cases.enumerate() {
        let expect: OutcomeClass = serde_json::from_value(serde_json::json!(case.expect)).unwrap();
        let (p, fl, detail) = replay(
            &tmp.path().join(format!("c{i}")),
            &case,
            &case.baseline,
            &case.candidate,
        );
        // The tool's verdict: flight sees everything; a planning failure
        // (`error_class: plan`) must already show in playback, without data.
        if fl != expect {
            failures.push(format!("{}: flight says {fl}, expected {expect}: {detail}", case.issue));
        }
        if case.error_class.as_deref() == Some("plan") && p != expect {
            failures.push(format!("{}: playback says {p}, expected {expect}", case.issue));
        }
        let fixed_in = case
            .fixed_in
            .as_deref()
            .expect("the DataFusion and DuckDB cases name a fixed release");
        let fixed = published(&case.engine, fixed_in);
        let (p, fl, detail) = replay(&tmp.path().join(format!("f{i}")), &case, &case.baseline, fixed);
        if p.is_regression() || fl.is_regression() {
            failures.push(format!(
                "{}: baseline vs fixed_in {fixed_in} reports {p}/{fl}: {detail}",
                case.issue
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn worker_faults_become_outcomes_and_the_run_goes_on() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let python = sqlflight_engines::python::ensure_venv("duckdb", "1.2.0", &["pyarrow"]).unwrap();
    let script = sqlflight_engines::python::worker_script().unwrap();
    let fault = Path::new(env!("CARGO_MANIFEST_DIR")).join("workers/fault_worker.py");
    std::fs::create_dir_all(tmp.path().join("in")).unwrap();
    std::fs::write(
        tmp.path().join("in/q.sql"),
        "select 1 as x; select 'die' as x; select 2 as x; select 'hang' as x; \
         select 'garbage' as x; select 'abort' as x; select 3 as x;",
    )
    .unwrap();
    let corpus = tmp.path().join("corpus");
    assert_eq!(
        run(&[
            "corpus",
            "ingest",
            tmp.path().join("in").to_str().unwrap(),
            "--out",
            corpus.to_str().unwrap(),
            "-q"
        ]),
        0
    );
    let cmd = serde_json::to_string(&[
        python.to_str().unwrap(),
        fault.to_str().unwrap(),
        script.to_str().unwrap(),
    ])
    .unwrap();
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: corpus\nengines:\n  old: {{ kind: worker, command: {cmd} }}\n  new: {{ kind: worker, command: {cmd}, env: {{ SQLFLIGHT_FAULTS: \"1\" }} }}\n\
             baseline: old\ncandidate: new\nflight: {{ repeat: 1, timeout: 3s }}\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("fl");
    assert_eq!(
        run(&[
            "flight",
            "-c",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
            "--jobs",
            "1"
        ]),
        1
    );
    let (m, o) = sqlflight_runs::read_run(&out).unwrap();
    assert_eq!(m.status, sqlflight_diffing::RunStatus::Complete);
    assert_eq!(
        (m.candidate.engine.as_str(), m.candidate.version.as_str()),
        ("duckdb", "1.2.0")
    );
    let by = |needle: &str| {
        o.iter()
            .find(|x| {
                let c = sqlflight_corpora::Corpus::open(&corpus).unwrap();
                c.records.iter().any(|r| r.id == x.query_id && r.sql.contains(needle))
            })
            .unwrap_or_else(|| panic!("no outcome for {needle}"))
    };
    let err = |x: &sqlflight_diffing::OutcomeRecord| serde_json::to_string(&x.candidate).unwrap();
    for ok in ["1 as x", "2 as x", "3 as x"] {
        assert_eq!(by(ok).class, OutcomeClass::Match, "{ok}: {}", err(by(ok)));
    }
    assert_eq!(by("'die'").class, OutcomeClass::Crash, "{}", err(by("'die'")));
    assert!(err(by("'die'")).contains("worker process died"), "{}", err(by("'die'")));
    assert_eq!(by("'hang'").class, OutcomeClass::Timeout, "{}", err(by("'hang'")));
    assert_eq!(by("'garbage'").class, OutcomeClass::Crash);
    assert!(
        err(by("'garbage'")).contains("protocol error"),
        "{}",
        err(by("'garbage'"))
    );
    assert_eq!(by("'abort'").class, OutcomeClass::Crash);
    assert!(
        err(by("'abort'")).contains("aborting on purpose"),
        "{}",
        err(by("'abort'"))
    );
}

/// TPC-H flight between two releases of one engine: the stable queries must not
/// show a regression.
fn tpch_between_releases(kind: &str, old: &str, new: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let mut yaml = tpch_config(&data);
    yaml.push_str(&format!(
        "engines:\n  old: {{ kind: {kind}, version: \"{old}\" }}\n  new: {{ kind: {kind}, version: \"{new}\" }}\n\
         baseline: old\ncandidate: new\nflight: {{ repeat: 1 }}\n"
    ));
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
    ]);
    let (m, o) = sqlflight_runs::read_run(&out).unwrap();
    assert_eq!((m.baseline.version.as_str(), m.candidate.version.as_str()), (old, new));
    let bad: Vec<String> = o
        .iter()
        .filter(|x| {
            // Results must agree; a slowdown is reported as one only when
            // confirmed (between real releases they can be real).
            let perf = x.flight.as_ref().and_then(|f| f.perf.as_ref());
            let confirmed_slowdown =
                x.class == OutcomeClass::PerfRegression && perf.is_some_and(|p| p.confirmed == Some(true));
            !confirmed_slowdown
                && (x.class.is_regression()
                    || !matches!(x.class, OutcomeClass::Match | OutcomeClass::MatchWithinTolerance))
        })
        .map(|x| format!("{} {} {:?}", x.query_id, x.class, x.detail))
        .collect();
    assert!(bad.is_empty(), "{kind} {old} vs {new}: {bad:?}");
    assert_eq!(o.len(), 22);
    assert!(code < 2);
}

#[test]
fn tpch_on_two_duckdb_releases_reports_no_false_regression() {
    sqlflight_tests::full_tier_only!();
    tpch_between_releases("duckdb", "1.1.3", "1.2.1");
}

#[test]
fn tpch_on_two_datafusion_python_releases_reports_no_false_regression() {
    sqlflight_tests::full_tier_only!();
    tpch_between_releases("datafusion-python", "51.0.0", "52.3.0");
}

/// Playback of a bundled workload (with data) between two published releases of
/// one engine: the plan facts are snapshotted, every join change is a named fact,
/// and the top facts explain at least 90% of the changed plans.
fn plan_facts_between_releases(workload: &str, kind: &str, old: &str, new: &str, settings: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let mut yaml = if workload == "tpch" {
        tpch_config(&sqlflight_corpora::tpch::ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap())
    } else {
        // TPC-DS data is generated once per machine, into the shared cache.
        let data =
            sqlflight_corpora::tpcds::ensure_tpcds_data(&sqlflight_engines::python::cache_dir().join("data"), 0.01)
                .unwrap();
        let mut y = String::from("corpus: bundled:tpcds\ncatalog:\n  tables:\n");
        for (t, p) in &data.tables {
            y.push_str(&format!("    {t}: {}\n", p.display()));
        }
        y
    };
    yaml.push_str(&format!(
        "engines:\n  old: {{ kind: {kind}, version: \"{old}\", settings: {{ {settings} }} }}\n  new: {{ kind: {kind}, version: \"{new}\", settings: {{ {settings} }} }}\n\
         baseline: old\ncandidate: new\n"
    ));
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = tmp.path().join("pb");
    let code = run(&[
        "playback",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(code < 2, "playback between {old} and {new}: exit {code}");
    let (_, o) = sqlflight_runs::read_run(&out).unwrap();
    assert_eq!(o.len(), if workload == "tpch" { 22 } else { 99 });
    sqlflight_tests::assert_facts_explain(&o, 0.9);
    if workload == "tpch" {
        sqlflight_tests::fact_lines(&o)
    } else {
        // TPC-DS: the facts touching at least 10 queries. One TPC-DS plan of
        // datafusion-python 52 renders its projection differently between
        // processes, which moves one-query facts from run to run.
        sqlflight_tests::fact_lines_above(&o, 10)
    }
}

#[test]
fn plan_facts_of_two_datafusion_python_releases() {
    sqlflight_tests::full_tier_only!();
    let facts = plan_facts_between_releases(
        "tpch",
        "datafusion-python",
        "51.0.0",
        "52.3.0",
        "datafusion.execution.target_partitions: \"2\"",
    );
    // DataFusion 52 folded CoalesceBatchesExec into the operators: one fact.
    assert!(facts.contains("- CoalesceBatchesExec"), "{facts}");
    insta::assert_snapshot!("facts-datafusion-python-51-52-tpch", facts);
}

#[test]
fn plan_facts_of_two_duckdb_releases() {
    sqlflight_tests::full_tier_only!();
    let facts = plan_facts_between_releases("tpch", "duckdb", "1.1.3", "1.2.1", "");
    // DuckDB 1.2 stopped adding `IS NOT NULL` to pushed-down comparison filters.
    assert!(facts.contains("lost \"AND _ IS NOT NULL\""), "{facts}");
    insta::assert_snapshot!("facts-duckdb-1.1.3-1.2.1-tpch", facts);
}

#[test]
fn plan_facts_of_two_datafusion_python_releases_over_tpcds_with_data() {
    sqlflight_tests::full_tier_only!();
    let facts = plan_facts_between_releases(
        "tpcds",
        "datafusion-python",
        "51.0.0",
        "52.3.0",
        "datafusion.execution.target_partitions: \"2\"",
    );
    insta::assert_snapshot!("facts-datafusion-python-51-52-tpcds", facts);
}

#[test]
fn plan_facts_of_two_duckdb_releases_over_tpcds_with_data() {
    sqlflight_tests::full_tier_only!();
    let facts = plan_facts_between_releases("tpcds", "duckdb", "1.1.3", "1.2.1", "");
    insta::assert_snapshot!("facts-duckdb-1.1.3-1.2.1-tpcds", facts);
}

/// datafusion-python 52.3.0 plans TPC-DS q70 and q86 two ways at random (the
/// hidden `grouping()` columns of a ROLLUP come out in hash-set order). Against
/// itself, playback's rechecks report them `nondeterministic` whenever the first
/// two compiles disagreed, never `plan_changed`; the stable queries are
/// `same_plan`. Each of the two queries is in the corpus six times, so at least
/// one first compile disagrees but in 1 of 4,096 runs.
#[test]
fn datafusion_python_plans_that_vary_between_compiles_are_not_plan_changes() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let c = sqlflight_corpora::bundled::Workload::Tpcds.corpus().unwrap();
    let q = |id: &str| {
        let r = c.records.iter().find(|r| r.id == id).unwrap();
        format!("{};\n", r.sql.trim().trim_end_matches(';'))
    };
    let mut sql = String::new();
    for _ in 0..6 {
        sql.push_str(&q("tpcds-q70"));
        sql.push_str(&q("tpcds-q86"));
    }
    for id in ["tpcds-q03", "tpcds-q27", "tpcds-q36"] {
        sql.push_str(&q(id));
    }
    let corpus = ingest_sql(tmp.path(), &sql);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpora/tpcds/schema.sql");
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: {}\ncatalog: {{ ddl: \"{}\" }}\n\
             engines:\n  a: {{ kind: datafusion-python, version: \"52.3.0\" }}\n  b: {{ kind: datafusion-python, version: \"52.3.0\" }}\n\
             baseline: a\ncandidate: b\nplayback: {{ plan_rechecks: 8 }}\n",
            corpus.display(),
            schema.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("pb");
    let code = run(&[
        "playback",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0);
    let (_, o) = sqlflight_runs::read_run(&out).unwrap();
    assert_eq!(o.len(), 15);
    let by_class = |class| o.iter().filter(|x| x.class == class).count();
    let said: Vec<_> = o.iter().map(|x| (x.class, x.detail.as_deref())).collect();
    assert_eq!(by_class(OutcomeClass::PlanChanged), 0, "{said:#?}");
    assert!(by_class(OutcomeClass::Nondeterministic) >= 1, "{said:#?}");
    assert_eq!(
        by_class(OutcomeClass::SamePlan) + by_class(OutcomeClass::Nondeterministic),
        15,
        "{said:#?}"
    );
}

/// DuckDB reads a catalog table through a view over `read_parquet`, and its plan
/// names no table for the scan; the worker names it when one catalog table has
/// every column the scan uses (so plan facts are tied to tables), and leaves a
/// scan whose columns several tables have unnamed.
#[test]
fn duckdb_scans_of_catalog_tables_are_named() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&tmp.path().join("data"), 0.001).unwrap();
    let mut catalog = sqlflight_corpora::Catalog::default();
    for (t, p) in &data.tables {
        catalog.tables.insert(
            t.clone(),
            sqlflight_corpora::TableSource {
                path: p.clone(),
                format: sqlflight_corpora::TableFormat::Parquet,
            },
        );
    }
    let x = tmp.path().join("x.parquet");
    let orders = &data.tables.iter().find(|(t, _)| t.as_str() == "orders").unwrap().1;
    std::fs::copy(orders, &x).unwrap();
    catalog.tables.insert(
        "orders_copy".into(),
        sqlflight_corpora::TableSource {
            path: x,
            format: sqlflight_corpora::TableFormat::Parquet,
        },
    );
    let spec: sqlflight_engines::EngineSpec = serde_yaml::from_str("{ kind: duckdb, version: \"1.2.1\" }").unwrap();
    let e = sqlflight_engines::build_engine("d", &spec, &catalog).unwrap();
    let plan = e
        .compile("select n_name, count(*) from nation join region on n_regionkey = r_regionkey group by 1")
        .unwrap();
    let physical = plan.physical.unwrap_or_default();
    assert!(
        physical.contains("Table=nation") && physical.contains("Table=region"),
        "{physical}"
    );
    let tree = sqlflight_diffing::plan_tree::PlanTree::parse(&physical);
    let tables: Vec<_> = tree.nodes.iter().filter_map(|n| n.table.clone()).collect();
    assert!(tables.contains(&"nation".to_string()), "{tables:?}");
    // `orders` and `orders_copy` have the same columns: not named.
    let plan = e.compile("select o_orderkey from orders_copy").unwrap();
    assert!(!plan.physical.unwrap_or_default().contains("Table="));
}

/// The per-query memory limit reaches datafusion-python (a greedy pool in a
/// session of its own): past it the query fails as `resource`, within it the
/// same worker still answers.
#[test]
fn datafusion_python_enforces_the_memory_limit() {
    sqlflight_tests::full_tier_only!();
    let spec: sqlflight_engines::EngineSpec =
        serde_yaml::from_str("{ kind: datafusion-python, version: \"52.3.0\" }").unwrap();
    let e = sqlflight_engines::build_engine("dfp", &spec, &sqlflight_corpora::Catalog::default()).unwrap();
    let sql = "SELECT x % 100000 AS a, count(*) FROM generate_series(1, 2000000) g(x) GROUP BY 1 ORDER BY 1";
    let tight = sqlflight_engines::ExecLimits {
        memory_limit: Some(64 << 10),
        ..Default::default()
    };
    let err = e.execute(sql, &tight, &mut |_| Ok(())).unwrap_err();
    assert_eq!(err.class, sqlflight_diffing::ErrorClass::Resource, "{err:?}");
    let stats = e.execute(sql, &Default::default(), &mut |_| Ok(())).unwrap();
    assert_eq!(stats.rows, 100_000);
}

mod flight_sql;
mod flink;
mod servers;
mod spark;

/// Another sqlflight build as a worker (`sqlflight worker`, the Rust helper
/// `engines::worker::serve`): against the embedded engine of this build, the
/// same DataFusion gives the same plans and results.
#[test]
fn a_sqlflight_build_as_a_worker_matches_the_embedded_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let mut yaml = tpch_config(&data);
    yaml.push_str(&format!(
        "engines:\n  other: {{ kind: worker, command: [\"{}\", worker] }}\n  this: {{ kind: datafusion }}\n\
         baseline: other\ncandidate: this\nflight: {{ repeat: 1 }}\n",
        sqlflight_bin().display()
    ));
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let pb = tmp.path().join("pb");
    let fl = tmp.path().join("fl");
    assert_eq!(run(&["playback", "-c", cfg, "--out", pb.to_str().unwrap(), "-q"]), 0);
    assert!(run(&["flight", "-c", cfg, "--out", fl.to_str().unwrap(), "-q"]) < 2);
    let (m, p) = sqlflight_runs::read_run(&pb).unwrap();
    assert_eq!(m.baseline.engine, "datafusion");
    assert_eq!(m.baseline.version, m.candidate.version);
    assert!(p.iter().all(|o| o.class == OutcomeClass::SamePlan), "{p:#?}");
    let (_, f) = sqlflight_runs::read_run(&fl).unwrap();
    let odd: Vec<_> = f
        .iter()
        .filter(|o| o.class != OutcomeClass::Match)
        .map(|o| (&o.query_id, o.class, &o.detail))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
}
