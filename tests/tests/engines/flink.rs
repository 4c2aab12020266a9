//! Apache Flink (issue 22): real `apache-flink` releases from PyPI as local
//! mini-clusters on the machine's Java 17, driven as worker processes. Three
//! real runs: the same release in batch and in streaming mode cross-verified on
//! TPC-H queries (the stream/batch check platforms make before they trust a
//! unified pipeline), a setting that changes results planted in a candidate,
//! and an upgrade between two published releases with a query cancelled at the
//! timeout.

use std::path::Path;

use sqlflight_diffing::{OutcomeClass, OutcomeRecord};

use super::{ingest_sql, run};

/// The releases of the upgrade under test: the last 1.x line and a 2.x release.
pub const OLD: &str = "1.20.3";
pub const NEW: &str = "2.2.1";

/// The bundled TPC-H queries `ids` (`q03`, ...), as one SQL script.
fn tpch_queries(ids: &[&str]) -> String {
    let c = sqlflight_corpora::bundled::Workload::Tpch.corpus().unwrap();
    ids.iter()
        .map(|id| {
            let r = c
                .records
                .iter()
                .find(|r| r.id.ends_with(id))
                .unwrap_or_else(|| panic!("no TPC-H {id}"));
            format!("{};\n", r.sql.trim().trim_end_matches(';'))
        })
        .collect()
}

/// `catalog:` with the generated TPC-H tables (Parquet: converted for Flink).
fn catalog(dir: &Path) -> String {
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&dir.join("data"), 0.002).unwrap();
    let mut yaml = String::from("catalog:\n  tables:\n");
    for (t, p) in &data.tables {
        yaml.push_str(&format!("    {t}: {}\n", p.display()));
    }
    yaml
}

/// The outcome of the query whose SQL contains `needle`.
fn by<'a>(o: &'a [OutcomeRecord], corpus: &Path, needle: &str) -> &'a OutcomeRecord {
    let c = sqlflight_corpora::Corpus::open(corpus).unwrap();
    o.iter()
        .find(|x| c.records.iter().any(|r| r.id == x.query_id && r.sql.contains(needle)))
        .unwrap_or_else(|| panic!("no outcome for {needle}"))
}

fn side(x: &OutcomeRecord) -> String {
    format!(
        "{} {:?} | {} | {}",
        x.class,
        x.detail,
        serde_json::to_string(&x.baseline).unwrap(),
        serde_json::to_string(&x.candidate).unwrap()
    )
}

/// Runs `playback` and `flight` on `cfg`; returns both runs' outcomes.
fn replay(dir: &Path, cfg: &Path) -> (Vec<OutcomeRecord>, Vec<OutcomeRecord>) {
    let cfg = cfg.to_str().unwrap();
    let pb = dir.join("pb");
    let fl = dir.join("fl");
    let code = run(&["playback", "-c", cfg, "--out", pb.to_str().unwrap(), "-q"]);
    assert!(code < 2, "playback exit {code}");
    let code = run(&["flight", "-c", cfg, "--out", fl.to_str().unwrap(), "-q"]);
    assert!(code < 2, "flight exit {code}");
    let (m, p) = sqlflight_runs::read_run(&pb).unwrap();
    assert_eq!(m.status, sqlflight_diffing::RunStatus::Complete);
    let (m, f) = sqlflight_runs::read_run(&fl).unwrap();
    assert_eq!(m.status, sqlflight_diffing::RunStatus::Complete);
    (p, f)
}

/// Flink 2.2.1 batch (baseline) against the same release streaming (candidate)
/// on TPC-H queries over generated Parquet data: the final tables agree
/// (streaming changelogs folded, Top-N results compared as tables), a sort the
/// streaming planner refuses is a dialect failure naming the mode, the one
/// real semantic difference is found (a global aggregate over an empty input,
/// Q17 and Q19 at this scale: batch returns one row of NULL, streaming emits
/// nothing), a processing-time
/// query is never a `match`, and playback explains the plan changes between
/// the two modes.
#[test]
fn flink_batch_and_streaming_cross_verify_on_tpch() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let mut sql = tpch_queries(&["q03", "q06", "q14", "q17", "q19"]);
    sql.push_str("select n_name, n_regionkey from nation order by n_name;\n");
    sql.push_str("select count(*) as n, max(current_timestamp) as seen from orders;\n");
    let corpus = ingest_sql(tmp.path(), &sql);
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: corpus\n{}engines:\n  batch: {{ kind: flink, version: \"{NEW}\", mode: batch }}\n  \
             stream: {{ kind: flink, version: \"{NEW}\", mode: streaming }}\n\
             baseline: batch\ncandidate: stream\ndialect_failures: true\n\
             flight: {{ timing: false, timeout: 120s }}\n",
            catalog(tmp.path())
        ),
    )
    .unwrap();
    let (p, f) = replay(tmp.path(), &cfg);

    // Playback: the streaming plans differ (GroupAggregate for HashAggregate,
    // changelog joins for hash joins) and the facts say so.
    assert!(
        p.iter().filter(|x| x.class == OutcomeClass::PlanChanged).count() >= 4,
        "{p:#?}"
    );
    sqlflight_tests::assert_facts_explain(&p, 0.9);
    let facts = sqlflight_tests::fact_lines(&p);
    assert!(facts.contains("GroupAggregate"), "{facts}");

    // Flight: results.
    for q in [
        "c_mktsegment = 'BUILDING'",
        "l_extendedprice * l_discount",
        "promo_revenue",
    ] {
        let x = by(&f, &corpus, q);
        assert_eq!(x.class, OutcomeClass::Match, "{q}: {}", side(x));
    }
    let sorted = by(&f, &corpus, "order by n_name");
    assert_eq!(sorted.class, OutcomeClass::Skipped, "{}", side(sorted));
    let reason = sorted.skip_reason.as_deref().unwrap_or("");
    assert_eq!(reason, "dialect_failure: candidate plan error");
    let said = serde_json::to_string(&sorted.candidate).unwrap();
    assert!(
        said.contains("flink streaming mode") && said.contains("non-time-attribute"),
        "{said}"
    );
    // Q17 and Q19 select nothing at this scale: batch answers one row of NULL,
    // the streaming job emits no row at all (a real stream/batch difference).
    for q in ["avg_yearly", "'Brand#12'"] {
        let empty = by(&f, &corpus, q);
        assert_eq!(empty.class, OutcomeClass::WrongResult, "{q}: {}", side(empty));
        assert_eq!(empty.detail.as_deref(), Some("row_count"), "{q}: {}", side(empty));
    }
    let now = by(&f, &corpus, "current_timestamp");
    assert!(
        matches!(now.class, OutcomeClass::Nondeterministic | OutcomeClass::WrongResult),
        "{}",
        side(now)
    );
}

/// A setting that changes results is found: the candidate reads the same
/// instants in another session time zone, and the query that prints them is a
/// `wrong_result` naming the column; the query that does not is a `match`. And
/// timestamps one microsecond apart differ (results keep their precision).
#[test]
fn flink_setting_that_changes_results_is_a_wrong_result() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = ingest_sql(
        tmp.path(),
        "select o_orderkey, cast(to_timestamp_ltz(o_orderkey * 3600, 0) as string) as shown from orders where o_orderkey < 40;\n\
         select count(*) as n from orders where o_orderkey < 40;\n\
         select ts from micros;\n",
    );
    // The same instant but one microsecond apart: results keep a column's
    // precision, so this differs (at milliseconds it would falsely match).
    let micros = |v: &str| {
        format!(
            "setup: [\"create temporary view micros as select cast('2020-01-01 00:00:00.12345{v}' as timestamp(6)) as ts\"]"
        )
    };
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: corpus\n{}engines:\n  utc: {{ kind: flink, version: \"{NEW}\", settings: {{ table.local-time-zone: UTC }}, {} }}\n  \
             tokyo: {{ kind: flink, version: \"{NEW}\", settings: {{ table.local-time-zone: Asia/Tokyo }}, {} }}\n\
             baseline: utc\ncandidate: tokyo\nflight: {{ timing: false }}\n",
            catalog(tmp.path()),
            micros("6"),
            micros("7")
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
    let (_, o) = sqlflight_runs::read_run(&fl).unwrap();
    assert_eq!(code, 1, "a wrong result fails the run: {o:#?}");
    let shown = by(&o, &corpus, "as shown");
    assert_eq!(shown.class, OutcomeClass::WrongResult, "{}", side(shown));
    assert!(
        shown.detail.as_deref().unwrap_or("").contains("shown"),
        "{}",
        side(shown)
    );
    let count = by(&o, &corpus, "count(*)");
    assert_eq!(count.class, OutcomeClass::Match, "{}", side(count));
    let micro = by(&o, &corpus, "from micros");
    assert_eq!(micro.class, OutcomeClass::WrongResult, "{}", side(micro));
}

/// An upgrade between two published releases (1.20.3 → 2.2.1, batch mode):
/// TPC-H queries compile and agree, and a query that runs past the timeout is
/// cancelled on both sides (`timeout`, the JVMs kept) while the run goes on.
#[test]
fn flink_upgrade_between_releases_agrees_and_timeouts_cancel_the_job() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let mut sql = tpch_queries(&["q03", "q06", "q19"]);
    sql.push_str("select count(*) as n from lineitem a, lineitem b, lineitem c where a.l_partkey * b.l_suppkey <> c.l_orderkey;\n");
    sql.push_str("select count(*) as n from nation;\n");
    let corpus = ingest_sql(tmp.path(), &sql);
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "corpus: corpus\n{}engines:\n  old: {{ kind: flink, version: \"{OLD}\" }}\n  new: {{ kind: flink, version: \"{NEW}\" }}\n\
             baseline: old\ncandidate: new\nflight: {{ timing: false, timeout: 15s }}\n",
            catalog(tmp.path())
        ),
    )
    .unwrap();
    let (p, f) = replay(tmp.path(), &cfg);
    let (m, _) = sqlflight_runs::read_run(&tmp.path().join("fl")).unwrap();
    assert_eq!(
        (m.baseline.engine.as_str(), m.baseline.version.as_str()),
        ("flink-batch", OLD)
    );
    assert_eq!(m.candidate.version, NEW);
    assert!(
        p.iter()
            .all(|x| matches!(x.class, OutcomeClass::SamePlan | OutcomeClass::PlanChanged)),
        "every query compiles on both releases: {p:#?}"
    );
    sqlflight_tests::assert_facts_explain(&p, 0.9);
    for q in [
        "c_mktsegment = 'BUILDING'",
        "l_extendedprice * l_discount",
        "'Brand#12'",
        "from nation",
    ] {
        let x = by(&f, &corpus, q);
        assert!(
            matches!(x.class, OutcomeClass::Match | OutcomeClass::PerfRegression),
            "{q}: {}",
            side(x)
        );
    }
    let slow = by(&f, &corpus, "lineitem c");
    assert_eq!(slow.class, OutcomeClass::BothFailSame, "{}", side(slow));
    let said = side(slow);
    // The worker cancels the job a quarter of the timeout early; on a loaded
    // machine the JVM may not stop it in that time, and the host's deadline
    // kills the worker instead. Either way a `timeout`, and the run goes on.
    assert!(
        said.contains("\"timeout\"") && (said.contains("cancelled") || said.contains("it was killed")),
        "{said}"
    );
}

/// The worker processes (`sqlflight_worker.py flink batch 3`) of this process,
/// and the JVM each one runs: (worker pid, JVM pid).
fn flink_jvms(marker: &str) -> Vec<(u32, u32)> {
    let me = std::process::id();
    let procs: Vec<(u32, u32, String)> = sqlflight_tests::processes()
        .into_iter()
        .map(|p| (p.pid, p.ppid, p.cmdline))
        .collect();
    procs
        .iter()
        .filter(|(_, ppid, cmd)| *ppid == me && cmd.contains(marker))
        .flat_map(|(w, _, _)| {
            procs
                .iter()
                .filter(move |(_, ppid, cmd)| ppid == w && (cmd.starts_with("java ") || cmd.contains("/java ")))
                .map(move |(j, _, _)| (*w, *j))
        })
        .collect()
}

/// A JVM that dies under a running query is a `crash` of that query, a fresh
/// worker (and JVM) takes the next one, and the run completes.
#[test]
fn flink_a_dead_jvm_is_a_crash_and_the_run_goes_on() {
    sqlflight_tests::full_tier_only!();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = ingest_sql(
        tmp.path(),
        "select count(*) as n from lineitem a, lineitem b, lineitem c where a.l_partkey * b.l_suppkey <> c.l_orderkey;\n\
         select count(*) as n from nation;\n",
    );
    let cfg = tmp.path().join("c.yaml");
    // Parallelism 3 marks these workers apart from other tests' JVMs.
    std::fs::write(
        &cfg,
        format!(
            "corpus: corpus\n{}engines:\n  a: {{ kind: flink, version: \"{NEW}\", parallelism: 3 }}\n  \
             b: {{ kind: flink, version: \"{NEW}\", parallelism: 3, settings: {{ table.exec.resource.default-parallelism: \"3\" }} }}\n\
             baseline: a\ncandidate: b\nflight: {{ timing: false, timeout: 300s }}\n",
            catalog(tmp.path())
        ),
    )
    .unwrap();
    let fl = tmp.path().join("fl");
    let manifest = fl.join(sqlflight_runs::journal::MANIFEST);
    let killer = std::thread::spawn(move || {
        // The run has started (engines built, tables declared, the manifest
        // written) and its first query, which runs for minutes, has begun:
        // then SIGKILL every JVM of the run.
        let t0 = std::time::Instant::now();
        loop {
            let jvms = flink_jvms("flink batch 3");
            if jvms.len() >= 2 && manifest.exists() {
                std::thread::sleep(std::time::Duration::from_secs(8));
                let jvms = flink_jvms("flink batch 3");
                for (_, j) in &jvms {
                    let _ = std::process::Command::new("kill").args(["-9", &j.to_string()]).status();
                }
                return jvms.len();
            }
            assert!(t0.elapsed().as_secs() < 240, "the Flink workers never started");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    let code = run(&[
        "flight",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        fl.to_str().unwrap(),
        "-q",
    ]);
    let killed = killer.join().unwrap();
    assert!(killed >= 2, "{killed}");
    let (m, o) = sqlflight_runs::read_run(&fl).unwrap();
    assert!(code < 2, "flight exit {code}: {o:#?}");
    assert_eq!(m.status, sqlflight_diffing::RunStatus::Complete);
    let dead = by(&o, &corpus, "lineitem c");
    let said = side(dead);
    assert!(
        matches!(dead.class, OutcomeClass::Crash | OutcomeClass::BothFailSame),
        "{said}"
    );
    assert!(said.contains("\"crash\"") && said.contains("the JVM exited"), "{said}");
    let next = by(&o, &corpus, "from nation");
    assert_eq!(
        next.class,
        OutcomeClass::Match,
        "a fresh worker runs the next query: {}",
        side(next)
    );
}
