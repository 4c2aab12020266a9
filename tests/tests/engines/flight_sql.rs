//! A real Flight SQL server (the embedded DataFusion behind arrow-flight's
//! `FlightSqlService`, started in this process on loopback) as an engine: TPC-H
//! playback and flight against the embedded engine on the same data, errors and
//! timeouts classified, the bearer token kept out of every file and message.

use std::path::Path;
use std::process::Stdio;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use sqlflight_corpora::Catalog;
use sqlflight_diffing::{ErrorClass, OutcomeClass};
use sqlflight_engines::{EngineSpec, ExecLimits, build_engine};
use sqlflight_tests::contains_bytes;
use sqlflight_tests::flight_sql_server::{FlightSqlServer, SERVER_NAME};

use crate::cli_child;

fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn flight_sql_server_runs_tpch_like_the_embedded_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&tmp.path().join("data"), 0.002).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ctx = SessionContext::new();
    for (t, p) in &data.tables {
        rt.block_on(ctx.register_parquet(t, p.to_str().unwrap(), ParquetReadOptions::default()))
            .unwrap();
    }
    let token = format!("flight-token-{}", std::process::id());
    let server = FlightSqlServer::start(ctx, &token);

    // Direct: version, errors, timeout; the token as a profile header.
    let spec: EngineSpec = serde_yaml::from_str(&format!(
        "{{ kind: flight-sql, url: \"{}\", headers: {{ authorization: \"Bearer {token}\" }} }}",
        server.url
    ))
    .unwrap();
    let e = build_engine("fs", &spec, &Catalog::default()).unwrap();
    assert_eq!(e.info().engine, SERVER_NAME);
    assert_eq!(e.info().version, datafusion::DATAFUSION_VERSION);
    let plan = e
        .compile("SELECT l_returnflag, count(*) FROM lineitem GROUP BY 1")
        .unwrap();
    assert!(
        plan.physical.as_deref().unwrap_or_default().contains("AggregateExec"),
        "{plan:?}"
    );
    assert_eq!(e.compile("SELEC 1").unwrap_err().class, ErrorClass::Parse);
    assert_eq!(e.compile("SELECT * FROM nope").unwrap_err().class, ErrorClass::Plan);
    let mut rows = 0;
    let stats = e
        .execute("SELECT * FROM lineitem", &ExecLimits::default(), &mut |b| {
            rows += b.num_rows();
            Ok(())
        })
        .unwrap();
    assert_eq!(stats.rows as usize, rows);
    assert!(rows > 10_000, "{rows}");
    let instant = ExecLimits {
        timeout: std::time::Duration::from_millis(1),
        memory_limit: None,
    };
    let slow = "SELECT count(*) FROM lineitem a, lineitem b WHERE a.l_comment < b.l_comment";
    assert_eq!(
        e.execute(slow, &instant, &mut |_| Ok(())).unwrap_err().class,
        ErrorClass::Timeout
    );
    // A wrong token: a clear error without the token.
    let bad: EngineSpec = serde_yaml::from_str(&format!(
        "{{ kind: flight-sql, url: \"{}\", headers: {{ authorization: \"Bearer wrong-{token}\" }} }}",
        server.url
    ))
    .unwrap();
    let err = build_engine("bad", &bad, &Catalog::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bearer token"), "{err}");
    assert!(!err.contains(&token), "{err}");

    // Through the CLI: Flight SQL server vs embedded DataFusion on the same data.
    let mut yaml = super::tpch_config(&data);
    yaml.push_str(&format!(
        "engines:\n  remote: {{ kind: flight-sql, url: \"{}\", token_env: SQLFLIGHT_TEST_TOKEN }}\n  local: {{ kind: datafusion }}\n  \
           smj: {{ kind: datafusion, settings: {{ datafusion.optimizer.prefer_hash_join: \"false\" }} }}\n\
         baseline: remote\ncandidate: local\nflight: {{ repeat: 1 }}\n",
        server.url
    ));
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let mut outputs = Vec::new();
    for (cmd, dir) in [("playback", "pb"), ("flight", "fl")] {
        let out = tmp.path().join(dir);
        let o = cli_child(&[cmd, "-c", cfg, "--out", out.to_str().unwrap()])
            .env("SQLFLIGHT_TEST_TOKEN", &token)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.code().is_some_and(|c| c < 2),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        outputs.push(o.stdout);
        outputs.push(o.stderr);
    }
    for o in &outputs {
        assert!(!contains_bytes(o, &token), "the token is in the CLI output");
    }
    for (p, bytes) in files(&tmp.path().join("pb"))
        .into_iter()
        .chain(files(&tmp.path().join("fl")))
    {
        assert!(!contains_bytes(&bytes, &token), "the token is in {}", p.display());
    }
    let (m, p) = sqlflight_runs::read_run(&tmp.path().join("pb")).unwrap();
    assert_eq!(m.baseline.engine, SERVER_NAME);
    assert_eq!(p.len(), 22);
    let regress: Vec<_> = p
        .iter()
        .filter(|o| o.class.is_regression())
        .map(|o| (&o.query_id, o.class))
        .collect();
    assert!(regress.is_empty(), "{regress:?}");
    let (_, f) = sqlflight_runs::read_run(&tmp.path().join("fl")).unwrap();
    let not_match: Vec<_> = f
        .iter()
        .filter(|o| !matches!(o.class, OutcomeClass::Match | OutcomeClass::MatchWithinTolerance))
        .map(|o| (&o.query_id, o.class, &o.detail))
        .collect();
    assert!(not_match.is_empty(), "{not_match:?}");
    assert_eq!(f.len(), 22);

    // Plan facts read the server's plans (its EXPLAIN over Flight SQL): against
    // an embedded profile that prefers sort-merge joins, the join changes are
    // named and the top facts explain the changed plans.
    let out = tmp.path().join("facts");
    let o = cli_child(&[
        "playback",
        "-c",
        cfg,
        "--candidate",
        "smj",
        "--out",
        out.to_str().unwrap(),
    ])
    .env("SQLFLIGHT_TEST_TOKEN", &token)
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(
        o.status.code().is_some_and(|c| c < 2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (_, p) = sqlflight_runs::read_run(&out).unwrap();
    let facts = sqlflight_tests::fact_lines(&p);
    assert!(facts.contains("HashJoinExec -> SortMergeJoinExec"), "{facts}");
    sqlflight_tests::assert_facts_explain(&p, 0.9);
}
