//! PostgreSQL and MariaDB servers from Debian's packages, started on loopback on a
//! free port in a temp dir: TPC-H loaded into them, playback and flight with a
//! planner-settings profile that changes plans and must not change results, the
//! type mapping, timeouts, a killed session, and connection secrets kept out of
//! every file and message.

use std::path::Path;
use std::process::Stdio;

use sqlflight_corpora::Catalog;
use sqlflight_diffing::{ErrorClass, OutcomeClass};
use sqlflight_engines::arrow::util::display::array_value_to_string;
use sqlflight_engines::{EngineSpec, ExecLimits, build_engine};
use sqlflight_tests::servers::{Mariadb, Postgres};
use sqlflight_tests::{all_files, contains_bytes};

use super::run;
use crate::cli_child;

/// Writes a config with two profiles of one server and the TPC-H data as the
/// catalog (`load_catalog` fills the scratch database).
fn server_config(dir: &Path, base: &str, cand: &str) -> std::path::PathBuf {
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&dir.join("data"), 0.002).unwrap();
    let mut yaml = super::tpch_config(&data);
    yaml.push_str(&format!(
        "engines:\n  base: {base}\n  cand: {cand}\nbaseline: base\ncandidate: cand\nflight: {{ repeat: 1, timeout: 60s }}\n"
    ));
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    cfg
}

/// Selects every `(expression, expected text)` of `cols` in one row and checks
/// the Arrow values, displayed, against the expected texts.
fn assert_first_row(e: &dyn sqlflight_engines::Engine, cols: &[(&str, &str)]) {
    let sql = format!(
        "SELECT {}",
        cols.iter()
            .enumerate()
            .map(|(i, (e, _))| format!("{e} AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut seen = Vec::new();
    e.execute(&sql, &ExecLimits::default(), &mut |b| {
        for c in b.columns() {
            seen.push(array_value_to_string(c, 0).unwrap());
        }
        Ok(())
    })
    .unwrap();
    let want: Vec<String> = cols.iter().map(|(_, v)| v.to_string()).collect();
    assert_eq!(seen, want);
}

/// Playback and flight of TPC-H between two profiles of one server, then the
/// checks every server must pass; returns (playback, flight) outcomes.
fn tpch_between_profiles(
    tmp: &Path,
    base: &str,
    cand: &str,
    secret: &str,
) -> (
    Vec<sqlflight_diffing::OutcomeRecord>,
    Vec<sqlflight_diffing::OutcomeRecord>,
) {
    let cfg = server_config(tmp, base, cand);
    let cfg = cfg.to_str().unwrap();
    let pb = tmp.join("pb");
    let fl = tmp.join("fl");
    // The CLI in its own process, so its output can be searched for the secret.
    let out = cli_child(&["playback", "-c", cfg, "--out", pb.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "playback: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stream in [&out.stdout, &out.stderr] {
        assert!(!contains_bytes(stream, secret), "the password is in the CLI's output");
    }
    assert!(run(&["flight", "-c", cfg, "--out", fl.to_str().unwrap(), "-q"]) < 2);
    let report = tmp.join("report.html");
    let code = run(&[
        "report",
        fl.to_str().unwrap(),
        "--format",
        "html",
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(
        code < 2,
        "the report is written (exit 1 only says the run has regressions): {code}"
    );
    for (path, bytes) in all_files(&pb)
        .into_iter()
        .chain(all_files(&fl))
        .chain([(report.clone(), std::fs::read(&report).unwrap())])
    {
        assert!(!contains_bytes(&bytes, secret), "the password is in {}", path.display());
    }
    let (_, p) = sqlflight_runs::read_run(&pb).unwrap();
    let (_, f) = sqlflight_runs::read_run(&fl).unwrap();
    assert_eq!(p.len(), 22);
    assert_eq!(f.len(), 22);
    // Plans change, results do not. A planner flip that disables a join algorithm
    // can make queries really slower (confirmed `perf_regression`) or slow enough
    // to time out: findings about speed, not about results.
    let regressions: Vec<String> = p
        .iter()
        .chain(&f)
        .filter(|o| o.class.is_regression())
        .filter(|o| {
            let confirmed = o
                .flight
                .as_ref()
                .and_then(|f| f.perf.as_ref())
                .and_then(|p| p.confirmed);
            !(o.class == OutcomeClass::PerfRegression && confirmed == Some(true) || o.class == OutcomeClass::Timeout)
        })
        .map(|o| format!("{} {} {:?}", o.query_id, o.class, o.detail))
        .collect();
    assert!(regressions.is_empty(), "{regressions:#?}");
    (p, f)
}

fn count(o: &[sqlflight_diffing::OutcomeRecord], pred: impl Fn(OutcomeClass) -> bool) -> usize {
    o.iter().filter(|x| pred(x.class)).count()
}

#[test]
fn postgres_tpch_planner_profile_changes_plans_not_results() {
    sqlflight_tests::full_tier_only!();
    let pg = Postgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = pg.url("tpch");
    let base = format!("{{ kind: postgres, url: \"{url}\", load_catalog: true }}");
    let cand = format!(
        "{{ kind: postgres, url: \"{url}\", load_catalog: true, settings: {{ enable_hashjoin: \"off\", enable_hashagg: \"off\" }} }}"
    );
    let (p, f) = tpch_between_profiles(tmp.path(), &base, &cand, &pg.password);
    let changed = count(&p, |c| c == OutcomeClass::PlanChanged);
    assert!(changed >= 5, "only {changed} plans changed: {p:#?}");
    let matched = count(&f, |c| {
        matches!(
            c,
            OutcomeClass::Match | OutcomeClass::MatchWithinTolerance | OutcomeClass::PerfRegression
        )
    });
    assert!(matched >= 18, "only {matched} of 22 match: {f:#?}");
    sqlflight_tests::assert_facts_explain(&p, 0.9);
    insta::assert_snapshot!("facts-postgres-planner-flip-tpch", sqlflight_tests::fact_lines(&p));
    // The loaded tables are stamped and not loaded again by the second profile.
    let comment = pg.psql("tpch", "SELECT obj_description('lineitem'::regclass, 'pg_class')");
    assert!(comment.starts_with("sqlflight:"), "{comment}");
    assert_eq!(pg.psql("tpch", "SELECT count(*) > 0 FROM lineitem").trim(), "t");
}

#[test]
fn postgres_types_timeouts_killed_sessions_and_secrets() {
    sqlflight_tests::full_tier_only!();
    let pg = Postgres::start();
    let url = pg.url("postgres");
    let spec: EngineSpec = serde_yaml::from_str(&format!("{{ kind: postgres, url: \"{url}\" }}")).unwrap();
    let e = build_engine("pg", &spec, &Catalog::default()).unwrap();
    assert_eq!(e.info().engine, "postgresql");
    assert!(
        e.info().version.starts_with("15") || e.info().version.starts_with("1"),
        "{}",
        e.info().version
    );
    // Every mapped type against PostgreSQL's own text output.
    let cols = [
        ("1::int2", "1"),
        ("2::int4", "2"),
        ("3::int8", "3"),
        ("1.5::float4", "1.5"),
        ("2.25::float8", "2.25"),
        ("123.4500::numeric", "123.4500"),
        ("(-0.0005)::numeric", "-0.0005"),
        ("12345678901234567890.5::numeric", "12345678901234567890.5"),
        ("'NaN'::numeric", "NaN"),
        ("'x'::text", "x"),
        ("'ab'::char(3)", "ab "),
        ("true", "true"),
        ("'2024-02-29'::date", "2024-02-29"),
        ("'1969-07-20'::date", "1969-07-20"),
        ("'2024-02-29 12:34:56.789'::timestamp", "2024-02-29T12:34:56.789"),
        ("'12:00:01'::time", "12:00:01"),
        ("'{\"a\": 1}'::jsonb", "{\"a\": 1}"),
        (
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ),
        ("'\\x0102'::bytea", "0102"),
        ("NULL::int", ""),
    ];
    assert_first_row(e.as_ref(), &cols);
    // Errors classified by SQLSTATE.
    assert_eq!(e.compile("SELEC 1").unwrap_err().class, ErrorClass::Parse);
    assert_eq!(e.compile("SELECT * FROM nope").unwrap_err().class, ErrorClass::Plan);
    let sink = &mut |_: &_| Ok(());
    assert_eq!(
        e.execute("SELECT 1/0", &ExecLimits::default(), sink).unwrap_err().class,
        ErrorClass::Execution
    );
    // Sessions are read-only.
    assert_eq!(
        e.execute("CREATE TABLE t (a int)", &ExecLimits::default(), sink)
            .unwrap_err()
            .class,
        ErrorClass::Execution
    );
    // A statement past its timeout is stopped by the server.
    let short = ExecLimits {
        timeout: std::time::Duration::from_millis(300),
        memory_limit: None,
    };
    assert_eq!(
        e.execute("SELECT pg_sleep(10)", &short, sink).unwrap_err().class,
        ErrorClass::Timeout
    );
    // A session killed mid-query is a crash, and the engine reconnects.
    let killer = {
        let pg_port = pg.port;
        let pw = pg.password.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let out = std::process::Command::new("psql")
                    .env("PGPASSWORD", &pw)
                    .args(["-h", "127.0.0.1", "-p", &pg_port.to_string(), "-U", "sqlflight", "-d", "postgres", "-At", "-c"])
                    .arg("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()")
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&out.stdout).trim() == "1" {
                    return;
                }
            }
        })
    };
    let killed = e
        .execute("SELECT pg_sleep(20)", &ExecLimits::default(), sink)
        .unwrap_err();
    killer.join().unwrap();
    assert_eq!(killed.class, ErrorClass::Crash, "{killed:?}");
    e.compile("SELECT 1").unwrap();
    // A wrong password or port: the message names the target, never the password.
    let bad: EngineSpec = serde_yaml::from_str(&format!(
        "{{ kind: postgres, url: \"postgresql://sqlflight:{}-wrong@127.0.0.1:{}/postgres\" }}",
        pg.password, pg.port
    ))
    .unwrap();
    let msg = build_engine("bad", &bad, &Catalog::default())
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("sqlflight@127.0.0.1"), "{msg}");
    assert!(!msg.contains(&pg.password), "{msg}");
    // The spec serializes (into run manifests) without the password.
    let json = serde_json::to_string(&spec).unwrap();
    assert!(!json.contains(&pg.password) && json.contains("***"), "{json}");
}

/// Embedded DataFusion against PostgreSQL: with `dialect_failures: true` a query
/// only one of them understands is a dialect failure, not a regression.
#[test]
fn cross_engine_dialect_failures_are_not_regressions() {
    sqlflight_tests::full_tier_only!();
    let pg = Postgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let corpus = super::ingest_sql(
        dir,
        "SELECT 1 + 1 AS two;\nSELECT arrow_typeof(1) AS t;\nSELECT int4range(1, 5) AS r;\n",
    );
    let engines = format!(
        "corpus: {}\nengines:\n  df: {{ kind: datafusion }}\n  pg: {{ kind: postgres, url: \"{}\" }}\nbaseline: df\ncandidate: pg\n",
        corpus.display(),
        pg.url("postgres")
    );
    let strict = dir.join("strict.yaml");
    std::fs::write(&strict, &engines).unwrap();
    let lenient = dir.join("lenient.yaml");
    std::fs::write(&lenient, format!("{engines}dialect_failures: true\n")).unwrap();
    let classes = |cfg: &Path, out: &str| {
        let out = dir.join(out);
        let code = run(&[
            "playback",
            "-c",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        let (_, o) = sqlflight_runs::read_run(&out).unwrap();
        let mut v: Vec<(String, OutcomeClass, Option<String>)> =
            o.into_iter().map(|x| (x.query_id, x.class, x.skip_reason)).collect();
        v.sort_by_key(|x| x.0.clone());
        (code, v)
    };
    let (code, strict) = classes(&strict, "strict");
    assert_eq!(code, 1, "{strict:?}");
    assert!(strict.iter().any(|x| x.1 == OutcomeClass::NewFailure), "{strict:?}");
    let (code, lenient) = classes(&lenient, "lenient");
    let reasons: Vec<&str> = lenient.iter().filter_map(|x| x.2.as_deref()).collect();
    assert!(
        reasons.contains(&"dialect_failure: candidate plan error"),
        "{lenient:?}"
    );
    assert!(reasons.contains(&"dialect_failure: baseline plan error"), "{lenient:?}");
    assert!(lenient.iter().all(|x| !x.1.is_regression()), "{lenient:?}");
    assert_eq!(code, 0, "{lenient:?}");
}

#[test]
fn mariadb_tpch_optimizer_switch_changes_plans_not_results() {
    sqlflight_tests::full_tier_only!();
    let db = Mariadb::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = db.url("tpch");
    let base = format!("{{ kind: mariadb, url: \"{url}\", load_catalog: true }}");
    let cand = format!(
        "{{ kind: mariadb, url: \"{url}\", load_catalog: true, settings: {{ join_cache_level: \"0\", optimizer_switch: \"semijoin=off,derived_merge=off\" }} }}"
    );
    let (p, f) = tpch_between_profiles(tmp.path(), &base, &cand, &db.password);
    let changed = count(&p, |c| c == OutcomeClass::PlanChanged);
    assert!(changed >= 5, "only {changed} plans changed: {p:#?}");
    let matched = count(&f, |c| {
        matches!(
            c,
            OutcomeClass::Match | OutcomeClass::MatchWithinTolerance | OutcomeClass::PerfRegression
        )
    });
    assert!(matched >= 15, "only {matched} of 22 match: {f:#?}");
    sqlflight_tests::assert_facts_explain(&p, 0.9);
    insta::assert_snapshot!("facts-mariadb-optimizer-switch-tpch", sqlflight_tests::fact_lines(&p));
    let comment = db.root_sql(
        "SELECT table_comment FROM information_schema.tables WHERE table_schema='tpch' AND table_name='lineitem'",
    );
    assert!(comment.starts_with("sqlflight:"), "{comment}");
}

#[test]
fn mariadb_types_timeouts_and_errors() {
    sqlflight_tests::full_tier_only!();
    let db = Mariadb::start();
    let spec: EngineSpec = serde_yaml::from_str(&format!("{{ kind: mysql, url: \"{}\" }}", db.url("tpch"))).unwrap();
    let e = build_engine("maria", &spec, &Catalog::default()).unwrap();
    assert_eq!(e.info().engine, "mariadb");
    let cols = [
        ("CAST(1 AS SIGNED)", "1"),
        ("CAST(1.5 AS DOUBLE)", "1.5"),
        ("CAST(123.4500 AS DECIMAL(10,4))", "123.4500"),
        ("CAST(-0.5 AS DECIMAL(6,3))", "-0.500"),
        ("'x'", "x"),
        ("DATE '2024-02-29'", "2024-02-29"),
        ("TIMESTAMP '2024-02-29 12:34:56.789'", "2024-02-29T12:34:56.789"),
        ("CAST(18446744073709551615 AS UNSIGNED)", "18446744073709551615"),
        ("NULL", ""),
    ];
    assert_first_row(e.as_ref(), &cols);
    assert_eq!(e.compile("SELEC 1").unwrap_err().class, ErrorClass::Parse);
    assert_eq!(e.compile("SELECT * FROM nope").unwrap_err().class, ErrorClass::Plan);
    let sink = &mut |_: &_| Ok(());
    let short = ExecLimits {
        timeout: std::time::Duration::from_millis(500),
        memory_limit: None,
    };
    let slow =
        "SELECT COUNT(*) FROM information_schema.columns a, information_schema.columns b, information_schema.columns c";
    assert_eq!(e.execute(slow, &short, sink).unwrap_err().class, ErrorClass::Timeout);
    assert!(e.compile("SELECT 1").is_ok());
    let json = serde_json::to_string(&spec).unwrap();
    assert!(!json.contains(&db.password), "{json}");
}
