//! Corpora from real query logs: PostgreSQL 15 and MariaDB started on loopback
//! with statement and duration logging, a parameterized workload of a few hundred
//! statements run against them, and the log files they wrote ingested: every
//! statement appears once with its user, database and duration, and the templates
//! are the workload's.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlflight_corpora::fingerprint::Fingerprinter;
use sqlflight_corpora::ingest::{IngestFormat, IngestOptions, IngestReport, ingest};
use sqlflight_corpora::{Corpus, CorpusManifest, CorpusWriter, QueryRecord};
use sqlflight_tests::servers::{Mariadb, Postgres};
use sqlflight_tests::sqlflight_bin;

mod mask_and_sample;

/// Waits until the server has written `marker` to `log` (log writers are
/// asynchronous), then returns.
fn wait_for_marker(log: &Path, marker: &str) {
    let start = Instant::now();
    loop {
        if std::fs::read(log).is_ok_and(|b| String::from_utf8_lossy(&b).contains(marker)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never showed {marker}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ingest_one(path: &Path, format: IngestFormat, out: &Path) -> (IngestReport, Corpus) {
    let mut w = CorpusWriter::create(out, CorpusManifest::new("log")).unwrap();
    let opts = IngestOptions {
        format,
        ..IngestOptions::default()
    };
    let r = ingest(&[path.to_path_buf()], &opts, &mut w).unwrap();
    w.finish().unwrap();
    (r, Corpus::open(out).unwrap())
}

/// One statement the workload ran: who, where, and the text as the log will
/// show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ran {
    user: String,
    database: String,
    sql: String,
}

fn multiset(v: impl IntoIterator<Item = Ran>) -> BTreeMap<Ran, usize> {
    let mut m = BTreeMap::new();
    for r in v {
        *m.entry(r).or_insert(0) += 1;
    }
    m
}

fn ran_of(r: &QueryRecord) -> Ran {
    Ran {
        user: r.user.clone().unwrap_or_default(),
        database: r.database.clone().unwrap_or_default(),
        sql: r.sql.clone(),
    }
}

/// Template id -> count, as this dialect fingerprints the texts.
fn template_counts<'a>(dialect: &str, sqls: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut f = Fingerprinter::new(dialect);
    let mut m = BTreeMap::new();
    for s in sqls {
        *m.entry(f.fingerprint(s).id.to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn postgres_csvlog_and_jsonlog_from_a_real_server() {
    sqlflight_tests::full_tier_only!();
    let pg = Postgres::start_with(&[
        "logging_collector=on",
        "log_destination=csvlog,jsonlog",
        "log_directory=pglog",
        "log_filename=pg",
        "log_min_duration_statement=0",
        "log_timezone=UTC",
        "compute_query_id=on",
    ]);
    pg.psql("postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pw'");
    pg.psql("postgres", "CREATE DATABASE shop OWNER app");
    pg.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2)); \
         INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 200) g; \
         GRANT SELECT ON items TO app",
    );
    let mut app = postgres::Client::connect(
        &format!("host=127.0.0.1 port={} user=app password=app-pw dbname=shop", pg.port),
        postgres::NoTls,
    )
    .unwrap();
    let mut ran: Vec<Ran> = Vec::new();
    let mut push = |user: &str, db: &str, sql: String| {
        ran.push(Ran {
            user: user.into(),
            database: db.into(),
            sql,
        })
    };
    for i in 0..100 {
        // Extended protocol: parse/bind/execute, the parameter in the DETAIL.
        app.query("SELECT name, price FROM items WHERE id = $1", &[&i]).unwrap();
        push("app", "shop", format!("SELECT name, price FROM items WHERE id = '{i}'"));
    }
    for i in 0..100 {
        let sql = format!("SELECT count(*) FROM items WHERE price > {i}.5 AND name <> 'n{i}'");
        app.simple_query(&sql).unwrap();
        push("app", "shop", sql);
    }
    for i in 0..50 {
        let name = format!("it's {i}");
        app.query("SELECT id FROM items WHERE name = $1 OR id < $2", &[&name, &i])
            .unwrap();
        push(
            "app",
            "shop",
            format!("SELECT id FROM items WHERE name = 'it''s {i}' OR id < '{i}'"),
        );
    }
    for i in 0..20 {
        let sql = format!("SELECT i.name\nFROM items i\nWHERE i.id IN (1, 2, {i})\nORDER BY 1");
        app.simple_query(&sql).unwrap();
        push("app", "shop", sql);
    }
    app.simple_query("SELECT pg_sleep(0.05)").unwrap();
    push("app", "shop", "SELECT pg_sleep(0.05)".into());
    let mut admin = postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=sqlflight password={} dbname=tpch",
            pg.port, pg.password
        ),
        postgres::NoTls,
    )
    .unwrap();
    for i in 0..30 {
        let sql = format!("SELECT {i} + 1 AS x");
        admin.simple_query(&sql).unwrap();
        push("sqlflight", "tpch", sql);
    }
    admin.simple_query("SELECT 'end-of-workload'").unwrap();
    drop(app);
    drop(admin);
    let logdir = pg.dir().join("data/pglog");
    wait_for_marker(&logdir.join("pg.csv"), "end-of-workload");
    wait_for_marker(&logdir.join("pg.json"), "end-of-workload");
    assert_eq!(ran.len(), 301);
    let expected = multiset(ran.iter().cloned());
    let expected_templates = template_counts(
        "postgres",
        ran.iter().filter(|r| r.user == "app").map(|r| r.sql.as_str()),
    );
    assert_eq!(expected_templates.len(), 5, "{expected_templates:?}");

    let tmp = tempfile::tempdir().unwrap();
    for (file, format) in [("pg.csv", IngestFormat::PgCsvlog), ("pg.json", IngestFormat::Auto)] {
        let (report, corpus) = ingest_one(&logdir.join(file), format, &tmp.path().join(file));
        assert_eq!(report.skipped_total, 0, "{file}: {:#?}", report.skipped);
        assert_eq!(corpus.manifest.dialect, "postgres");
        // Every workload statement exactly once, with its user and database.
        let workload: Vec<&QueryRecord> = corpus
            .records
            .iter()
            .filter(|r| r.user.as_deref() == Some("app") || r.database.as_deref() == Some("tpch"))
            .filter(|r| !r.sql.contains("end-of-workload"))
            .collect();
        let got = multiset(workload.iter().map(|r| ran_of(r)));
        assert_eq!(got, expected, "{file}");
        for r in &workload {
            let d = r
                .duration_ms
                .unwrap_or_else(|| panic!("{file}: no duration for {}", r.sql));
            assert!((0.0..10_000.0).contains(&d), "{file}: {d} ms for {}", r.sql);
            assert!(r.session.is_some() && r.captured_at.as_deref().is_some_and(|t| t.ends_with('Z')));
            assert!(r.query_id.is_some(), "{file}: no query_id for {}", r.sql);
        }
        let sleep = workload.iter().find(|r| r.sql.contains("pg_sleep")).unwrap();
        assert!(sleep.duration_ms.unwrap() >= 50.0, "{sleep:?}");
        // The templates are the workload's: 100 parameterized executions are one.
        let got_templates = template_counts(
            "postgres",
            workload
                .iter()
                .filter(|r| r.user.as_deref() == Some("app"))
                .map(|r| r.sql.as_str()),
        );
        assert_eq!(got_templates, expected_templates, "{file}");
        let stored: BTreeMap<String, usize> =
            workload
                .iter()
                .filter(|r| r.user.as_deref() == Some("app"))
                .fold(BTreeMap::new(), |mut m, r| {
                    *m.entry(r.template().to_string()).or_insert(0) += 1;
                    m
                });
        assert_eq!(stored, expected_templates, "{file}: template ids stored in the corpus");
    }
}

#[test]
fn mariadb_slow_and_general_logs_from_a_real_server() {
    sqlflight_tests::full_tier_only!();
    let db = Mariadb::start_with(&[
        "--slow-query-log=1",
        "--slow-query-log-file=slow.log",
        "--long-query-time=0",
        "--general-log=1",
        "--general-log-file=general.log",
        "--log-output=FILE",
    ]);
    db.root_sql(
        "CREATE DATABASE shop; CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT SELECT ON shop.* TO 'app'@'%'; USE shop; \
         CREATE TABLE shop.items (id int PRIMARY KEY, name varchar(40), price decimal(10,2)); \
         INSERT INTO shop.items SELECT seq, concat('item ', seq), seq * 1.5 FROM seq_1_to_200",
    );
    use mysql::prelude::Queryable;
    let mut app = mysql::Conn::new(
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(db.port)
            .user(Some("app"))
            .pass(Some("app-pw"))
            .db_name(Some("shop")),
    )
    .unwrap();
    // Text-protocol statements appear in the logs exactly as sent.
    let mut texts: Vec<String> = Vec::new();
    let mut all: Vec<String> = Vec::new();
    for i in 0..100 {
        let _: Vec<(String, String)> = app
            .exec("SELECT name, CAST(price AS CHAR) FROM items WHERE id = ?", (i,))
            .unwrap();
        all.push(format!("SELECT name, CAST(price AS CHAR) FROM items WHERE id = {i}"));
    }
    for i in 0..100 {
        let sql = format!("SELECT count(*) FROM items WHERE price > {i}.5 AND name <> 'n{i}'");
        let _: Vec<i64> = app.query(&sql).unwrap();
        texts.push(sql.clone());
        all.push(sql);
    }
    for i in 0..50 {
        let _: Vec<i64> = app
            .exec(
                "SELECT id FROM items WHERE name = ? OR id < ?",
                (format!("it's {i}"), i),
            )
            .unwrap();
        all.push(format!("SELECT id FROM items WHERE name = 'it\\'s {i}' OR id < {i}"));
    }
    for i in 0..20 {
        let sql = format!("SELECT i.name\nFROM items i\nWHERE i.id IN (1, 2, {i})\nORDER BY 1");
        let _: Vec<String> = app.query(&sql).unwrap();
        texts.push(sql.clone());
        all.push(sql);
    }
    let _: Vec<i64> = app.query("SELECT SLEEP(0.05)").unwrap();
    texts.push("SELECT SLEEP(0.05)".into());
    all.push("SELECT SLEEP(0.05)".into());
    let _: Vec<String> = app.query("SELECT 'end-of-workload'").unwrap();
    drop(app);
    let data = db.dir().join("data");
    wait_for_marker(&data.join("slow.log"), "end-of-workload");
    wait_for_marker(&data.join("general.log"), "end-of-workload");
    let expected_templates = template_counts("mysql", all.iter().map(String::as_str));
    assert_eq!(expected_templates.len(), 5, "{expected_templates:?}");

    let tmp = tempfile::tempdir().unwrap();
    for (file, format) in [
        ("slow.log", IngestFormat::MysqlSlow),
        ("general.log", IngestFormat::Auto),
    ] {
        let (report, corpus) = ingest_one(&data.join(file), format, &tmp.path().join(file));
        assert_eq!(report.skipped_total, 0, "{file}: {:#?}", report.skipped);
        assert_eq!(corpus.manifest.dialect, "mysql");
        // Nothing but statements: no server header or protocol line became one.
        assert!(corpus.records.iter().all(|r| r.user.is_some()), "{file}");
        assert!(
            report.ignored.contains_key("mysql: server header lines"),
            "{file}: {:?}",
            report.ignored
        );
        let workload: Vec<&QueryRecord> = corpus
            .records
            .iter()
            .filter(|r| r.user.as_deref() == Some("app") && r.database.as_deref() == Some("shop"))
            .filter(|r| r.sql.contains("items") || r.sql.contains("SLEEP"))
            .collect();
        assert_eq!(
            workload.len(),
            all.len(),
            "{file}: {:#?}",
            workload.iter().map(|r| &r.sql).collect::<Vec<_>>()
        );
        for t in &texts {
            let n = workload.iter().filter(|r| &r.sql == t).count();
            assert_eq!(n, 1, "{file}: `{t}` appears {n} times");
        }
        let got_templates = template_counts("mysql", workload.iter().map(|r| r.sql.as_str()));
        assert_eq!(got_templates, expected_templates, "{file}");
        if file == "slow.log" {
            for r in &workload {
                let d = r.duration_ms.unwrap_or_else(|| panic!("no Query_time for {}", r.sql));
                assert!((0.0..10_000.0).contains(&d), "{d} ms for {}", r.sql);
                assert!(r.captured_at.as_deref().is_some_and(|t| t.ends_with('Z')));
            }
            let sleep = workload.iter().find(|r| r.sql.contains("SLEEP")).unwrap();
            assert!(sleep.duration_ms.unwrap() >= 50.0, "{sleep:?}");
        }
        assert!(workload.iter().all(|r| r.session.is_some()));
    }
}

/// The CLI end to end on a real log: ingest (auto-detected, gzip), stats as JSON.
fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(sqlflight_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
