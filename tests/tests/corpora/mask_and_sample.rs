//! `corpus mask` and `corpus sample` through the CLI: planted secrets never reach
//! a masked corpus; samples keep every template, honour caps and seeds.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use sqlflight_corpora::{Corpus, QueryRecord};
use sqlflight_tests::{all_files, contains_bytes};

use super::cli;

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, bytes) in all_files(dir) {
        out.extend(bytes);
        out.push(b'\n');
    }
    out
}

#[test]
fn masked_corpus_holds_no_planted_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let secrets = [
        "Zebra7Secret",
        "hunter2hunter2",
        "4111111111111111",
        "alice.secret@example.com",
        "1987-06-05",
        "SessionToken99",
    ];
    // A PostgreSQL jsonlog with secrets in literals of every kind, in comments, in
    // parameters and in an error message; and a Spark log with one in the failure.
    let mut log = String::new();
    let lines = [
        format!(
            "SELECT * FROM users WHERE password = '{}' /* {} */",
            secrets[0], secrets[1]
        ),
        format!(
            "SELECT * FROM cards WHERE pan = {} -- {}\n AND x = 1",
            secrets[2], secrets[0]
        ),
        format!(
            "SELECT id FROM users WHERE email = '{}' AND born = DATE '{}'",
            secrets[3], secrets[4]
        ),
        format!(
            "SELECT $tag${}$tag$, E'{}\\'s', x'{}'",
            secrets[1], secrets[0], "DEADBEEF"
        ),
        format!("SELECT * FROM users WHERE email = '{}' AND 1 = 1", secrets[3]),
    ];
    for (k, sql) in lines.iter().enumerate() {
        let msg = serde_json::json!({
            "timestamp": "2023-11-21 10:00:00.000 UTC", "user": "app", "dbname": "shop", "pid": 7,
            "session_id": secrets[5], "error_severity": "LOG",
            "message": format!("duration: {k}.5 ms  statement: {sql}"),
        });
        log.push_str(&msg.to_string());
        log.push('\n');
    }
    let exec = serde_json::json!({
        "timestamp": "2023-11-21 10:00:01.000 UTC", "user": "app", "dbname": "shop", "pid": 7,
        "session_id": "s2", "error_severity": "LOG",
        "message": "duration: 0.1 ms  execute <unnamed>: SELECT * FROM users WHERE token = $1",
        "detail": format!("parameters: $1 = '{}'", secrets[5]),
    });
    log.push_str(&exec.to_string());
    log.push('\n');
    std::fs::write(tmp.path().join("pg.json"), &log).unwrap();
    let spark = format!(
        "{}\n{}\n",
        serde_json::json!({"Event": "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart",
            "executionId": 1, "description": format!("SELECT * FROM t WHERE k = '{}'", secrets[0]), "time": 1}),
        serde_json::json!({"Event": "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd",
            "executionId": 1, "time": 5, "errorMessage": format!("bad value {}", secrets[1])})
    );
    std::fs::write(tmp.path().join("spark-events"), spark).unwrap();
    let raw = tmp.path().join("raw");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let (code, _) = cli(&[
        "corpus",
        "ingest",
        &p(&tmp.path().join("pg.json")),
        &p(&tmp.path().join("spark-events")),
        "--out",
        &p(&raw),
        "-q",
    ]);
    assert_eq!(code, 0);
    let raw_bytes = all_bytes(&raw);
    for s in secrets.iter().take(4) {
        assert!(contains_bytes(&raw_bytes, s), "the unmasked corpus should hold {s}");
    }
    let key = tmp.path().join("mask.key");
    let masked = tmp.path().join("masked");
    let (code, out) = cli(&[
        "corpus",
        "mask",
        &p(&raw),
        "--out",
        &p(&masked),
        "--key-file",
        &p(&key),
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["report"]["masked"], 7, "{out}");
    let (code, stats) = cli(&["corpus", "stats", &p(&masked), "--json"]);
    assert_eq!(code, 0);
    let mut scanned = all_bytes(&masked);
    scanned.extend(out.as_bytes());
    scanned.extend(stats.as_bytes());
    for s in &secrets {
        assert!(
            !contains_bytes(&scanned, s),
            "masked output holds the planted secret {s}"
        );
    }
    // Consistent: the same email in two statements got the same pseudonym, and a
    // second run with the same key gives the same corpus.
    let c = Corpus::open(&masked).unwrap();
    let emails: Vec<String> = c
        .records
        .iter()
        .filter(|r| r.sql.contains("email = '"))
        .map(|r| {
            r.sql
                .split("email = '")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[0], emails[1]);
    assert_eq!(emails[0].len(), secrets[3].len());
    assert!(emails[0].contains('@') && emails[0].contains('.'));
    let again = tmp.path().join("again");
    assert_eq!(
        cli(&[
            "corpus",
            "mask",
            &p(&raw),
            "--out",
            &p(&again),
            "--key-file",
            &p(&key),
            "-q"
        ])
        .0,
        0
    );
    let sqls = |c: &Corpus| c.records.iter().map(|r| r.sql.clone()).collect::<Vec<_>>();
    assert_eq!(sqls(&Corpus::open(&again).unwrap()), sqls(&c));
    // Templates survive masking (playback groups the same way).
    let raw_c = Corpus::open(&raw).unwrap();
    let t = |c: &Corpus| c.records.iter().map(QueryRecord::template).collect::<Vec<_>>();
    assert_eq!(t(&raw_c), t(&c));
    // A short key file is refused with the fix.
    std::fs::write(tmp.path().join("short.key"), "abc").unwrap();
    let (code, _) = cli(&[
        "corpus",
        "mask",
        &p(&raw),
        "--out",
        &p(&tmp.path().join("x")),
        "--key-file",
        &p(&tmp.path().join("short.key")),
    ]);
    assert_eq!(code, 2);
}

#[test]
fn sample_keeps_templates_caps_and_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("slow.log");
    let mut f = std::fs::File::create(&log).unwrap();
    sqlflight_corpora::synth::write_slow_log(&mut f, 20_000, 7).unwrap();
    drop(f);
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let corpus = tmp.path().join("all");
    assert_eq!(cli(&["corpus", "ingest", &p(&log), "--out", &p(&corpus), "-q"]).0, 0);
    let all = Corpus::open(&corpus).unwrap();
    assert_eq!(all.records.len(), 20_000);
    let templates: HashSet<_> = all.records.iter().map(QueryRecord::template).collect();
    assert_eq!(templates.len(), sqlflight_corpora::synth::TEMPLATES);
    let sample = |name: &str, args: &[&str]| {
        let out = tmp.path().join(name);
        let mut a = vec![
            "corpus",
            "sample",
            corpus.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ];
        a.extend_from_slice(args);
        assert_eq!(cli(&a).0, 0, "{args:?}");
        Corpus::open(&out).unwrap()
    };
    let per_template = |c: &Corpus| {
        let mut m = BTreeMap::new();
        for r in &c.records {
            *m.entry(r.template()).or_insert(0usize) += 1;
        }
        m
    };
    // Per-template cap: every template, at most 5 each.
    let s = sample("cap", &["--per-template", "5", "--seed", "1"]);
    let m = per_template(&s);
    assert_eq!(m.len(), templates.len());
    assert!(m.values().all(|&n| n == 5));
    // Reproducible with a seed, different with another; records keep corpus order.
    let again = sample("cap2", &["--per-template", "5", "--seed", "1"]);
    let ids = |c: &Corpus| c.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&s), ids(&again));
    assert_ne!(ids(&s), ids(&sample("cap3", &["--per-template", "5", "--seed", "2"])));
    let pos: BTreeMap<&str, usize> = all
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let order: Vec<usize> = s.records.iter().map(|r| pos[r.id.as_str()]).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
    // Total cap: every template first, then by weight.
    let by_count = per_template(&sample("max", &["--max", "60", "--per-template", "40"]));
    assert_eq!(by_count.values().sum::<usize>(), 60);
    assert_eq!(by_count.len(), templates.len());
    let by_duration = per_template(&sample(
        "dur",
        &["--max", "60", "--per-template", "40", "--weight", "duration"],
    ));
    assert_eq!(by_duration.values().sum::<usize>(), 60);
    // The synthetic log's first shape is the most frequent and the fastest: count
    // weighting gives it more slots than duration weighting.
    let first = all.records[..]
        .iter()
        .find(|r| r.sql.starts_with("SELECT name, price FROM items"))
        .unwrap()
        .template();
    assert!(
        by_count[&first] > by_duration[&first],
        "{by_count:?} vs {by_duration:?}"
    );
    // Fewer slots than templates: a weighted choice of templates, one each.
    let few = per_template(&sample("few", &["--max", "3"]));
    assert_eq!((few.len(), few.values().sum::<usize>()), (3, 3));
}
