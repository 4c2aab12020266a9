//! Query events as JSON Lines: Trino/Presto query-completed events and Spark
//! event logs.
//!
//! Trino: the `QueryCompletedEvent` as the HTTP/Kafka/file event listeners write it
//! (`metadata.query`, `metadata.queryId`, `metadata.queryState`, `context.user`,
//! `context.catalog`, `context.schema`, `statistics.wallTime`/`cpuTime`,
//! `createTime`). Durations are read as seconds (numbers), ISO-8601 (`PT1.5S`) or
//! airlift units (`1.50s`, `12.00ms`). Query-created and split events are ignored.
//!
//! Spark: `SparkListenerSQLExecutionStart` carries the statement in `description`
//! (spark-sql, the Thrift server, `spark.sql(...)` with a job description);
//! `SparkListenerSQLExecutionEnd` gives the duration. Descriptions that are not SQL
//! (DataFrame call sites like `count at <console>:1`) and nested executions are
//! ignored; the application's `User` fills the user.

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::Value;

use super::{Captured, LogError, Sink, epoch_ms, looks_like_sql, normalize_time};

/// Runs `f` on every JSON object line; other lines are skipped.
fn json_lines<R: BufRead>(
    reader: R,
    sink: &mut dyn Sink,
    mut f: impl FnMut(u64, Value, &mut dyn Sink) -> Result<(), LogError>,
) -> Result<(), LogError> {
    super::json_lines::<Value, R>(reader, sink, |line, v, sink| {
        if v.is_object() {
            f(line, v, sink)
        } else {
            sink.skip(line, "malformed event: not a JSON object".into());
            Ok(())
        }
    })
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A duration in milliseconds from seconds, `PT1.5S` or `1.50s`/`12ms`/`2.00m`.
fn duration_ms(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().map(|s| s * 1000.0),
        Value::String(s) => {
            let s = s.trim();
            if let Some(iso) = s.strip_prefix("PT") {
                let mut total = 0.0;
                let mut num = String::new();
                for c in iso.chars() {
                    match c {
                        'H' | 'M' | 'S' => {
                            let x: f64 = num.parse().ok()?;
                            total += x * match c {
                                'H' => 3_600_000.0,
                                'M' => 60_000.0,
                                _ => 1000.0,
                            };
                            num.clear();
                        }
                        _ => num.push(c),
                    }
                }
                return num.is_empty().then_some(total);
            }
            let split = s.find(|c: char| c.is_ascii_alphabetic())?;
            let (x, unit) = s.split_at(split);
            let x: f64 = x.trim().parse().ok()?;
            let scale = match unit {
                "ns" => 1e-6,
                "us" => 1e-3,
                "ms" => 1.0,
                "s" => 1000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                _ => return None,
            };
            Some(x * scale)
        }
        _ => None,
    }
}

fn time_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(normalize_time(s)),
        // Epoch seconds (with fraction) or milliseconds.
        Value::Number(n) => {
            let x = n.as_f64()?;
            epoch_ms(if x > 1e11 { x as i64 } else { (x * 1000.0) as i64 })
        }
        _ => None,
    }
}

/// Reads Trino/Presto query-completed events.
pub fn read_trino<R: BufRead>(reader: R, sink: &mut dyn Sink) -> Result<(), LogError> {
    json_lines(reader, sink, |line, v, sink| {
        let Some(meta) = v.get("metadata") else {
            sink.skip(line, "malformed Trino event: no `metadata`".into());
            return Ok(());
        };
        if v.get("statistics").is_none() {
            sink.ignore("trino: events other than query completed");
            return Ok(());
        }
        let Some(sql) = str_at(meta, &["query"]).filter(|s| !s.trim().is_empty()) else {
            sink.skip(line, "malformed Trino event: no `metadata.query`".into());
            return Ok(());
        };
        let stats = &v["statistics"];
        let ctx = &v["context"];
        let database = match (str_at(ctx, &["catalog"]), str_at(ctx, &["schema"])) {
            (Some(c), Some(s)) => Some(format!("{c}.{s}")),
            (c, s) => c.or(s),
        };
        let mut c = Captured {
            sql: sql.trim().to_string(),
            line,
            user: str_at(ctx, &["user"]),
            database,
            session: None,
            captured_at: v.get("createTime").and_then(time_of),
            duration_ms: stats.get("wallTime").and_then(duration_ms),
            query_id: str_at(meta, &["queryId"]),
            ..Captured::default()
        };
        if let Some(state) = str_at(meta, &["queryState"]) {
            c.attrs.insert("state".into(), state);
        }
        if let Some(cpu) = stats.get("cpuTime").and_then(duration_ms) {
            c.attrs.insert("cpu_ms".into(), format!("{cpu:.3}"));
        }
        if let Some(q) = stats.get("queuedTime").and_then(duration_ms) {
            c.attrs.insert("queued_ms".into(), format!("{q:.3}"));
        }
        if let Some(code) = str_at(&v, &["failureInfo", "errorCode", "name"]) {
            c.attrs.insert("error".into(), code);
        }
        if let Some(source) = str_at(ctx, &["source"]) {
            c.attrs.insert("source".into(), source);
        }
        sink.statement(c)?;
        Ok(())
    })
}

const SQL_START: &str = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart";
const SQL_END: &str = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd";

/// Reads a Spark event log.
pub fn read_spark<R: BufRead>(reader: R, sink: &mut dyn Sink) -> Result<(), LogError> {
    let mut user: Option<String> = None;
    let mut app: Option<String> = None;
    // executionId -> (statement, start time in ms)
    let mut running: HashMap<i64, (Captured, Option<i64>)> = HashMap::new();
    json_lines(reader, sink, |line, v, sink| {
        let Some(event) = v.get("Event").and_then(Value::as_str) else {
            sink.skip(line, "malformed Spark event: no `Event`".into());
            return Ok(());
        };
        match event {
            "SparkListenerApplicationStart" => {
                user = str_at(&v, &["User"]);
                app = str_at(&v, &["App ID"]).or(str_at(&v, &["App Name"]));
                sink.ignore("spark: other events");
            }
            SQL_START => {
                let Some(id) = v.get("executionId").and_then(Value::as_i64) else {
                    sink.skip(line, "malformed Spark SQL start event: no `executionId`".into());
                    return Ok(());
                };
                if v.get("rootExecutionId")
                    .and_then(Value::as_i64)
                    .is_some_and(|r| r != id)
                {
                    sink.ignore("spark: nested SQL executions");
                    return Ok(());
                }
                let Some(desc) = str_at(&v, &["description"]) else {
                    sink.skip(line, "malformed Spark SQL start event: no `description`".into());
                    return Ok(());
                };
                if !looks_like_sql(&desc) {
                    sink.ignore("spark: DataFrame actions without SQL text");
                    return Ok(());
                }
                let start = v.get("time").and_then(Value::as_i64);
                let mut c = Captured {
                    sql: desc.trim().to_string(),
                    line,
                    user: user.clone(),
                    session: app.clone(),
                    captured_at: start.and_then(epoch_ms),
                    query_id: Some(id.to_string()),
                    ..Captured::default()
                };
                if let Some(a) = &app {
                    c.attrs.insert("application".into(), a.clone());
                }
                if let Some((prev, _)) = running.insert(id, (c, start)) {
                    sink.statement(prev)?;
                }
            }
            SQL_END => {
                let id = v.get("executionId").and_then(Value::as_i64);
                match id.and_then(|id| running.remove(&id)) {
                    Some((mut c, start)) => {
                        if let (Some(s), Some(e)) = (start, v.get("time").and_then(Value::as_i64)) {
                            c.duration_ms = Some((e - s) as f64);
                        }
                        if let Some(err) = str_at(&v, &["errorMessage"]) {
                            c.attrs.insert("state".into(), "FAILED".into());
                            c.attrs
                                .insert("error".into(), err.lines().next().unwrap_or("").to_string());
                        }
                        sink.statement(c)?;
                    }
                    None => sink.ignore("spark: other events"),
                }
            }
            _ => sink.ignore("spark: other events"),
        }
        Ok(())
    })?;
    let mut rest: Vec<Captured> = running.into_values().map(|(c, _)| c).collect();
    rest.sort_by_key(|c| c.line);
    for c in rest {
        sink.statement(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::Collect;
    use super::*;

    #[test]
    fn trino_fixture() {
        let mut sink = Collect::default();
        read_trino(
            include_str!("../../fixtures/logs/trino-events.jsonl").as_bytes(),
            &mut sink,
        )
        .unwrap();
        let s = &sink.statements;
        assert_eq!(s.len(), 3, "{s:#?}");
        assert!(s[0].sql.starts_with("SELECT region, sum(amount)\nFROM orders"));
        assert_eq!(s[0].user.as_deref(), Some("alice"));
        assert_eq!(s[0].database.as_deref(), Some("hive.sales"));
        assert_eq!(s[0].duration_ms, Some(1204.0));
        assert_eq!(s[0].query_id.as_deref(), Some("20231121_100000_00001_abcde"));
        assert_eq!(s[0].captured_at.as_deref(), Some("2023-11-21T10:00:00Z"));
        assert_eq!(s[0].attrs["cpu_ms"], "512.000");
        assert_eq!(s[1].duration_ms, Some(12.5));
        assert_eq!(s[1].attrs["state"], "FAILED");
        assert_eq!(s[1].attrs["error"], "TABLE_NOT_FOUND");
        assert_eq!(s[1].attrs["cpu_ms"], "1.000");
        let skipped: Vec<u64> = sink.skipped.iter().map(|s| s.0).collect();
        assert_eq!(skipped, vec![4, 5, 6], "{:?}", sink.skipped);
        assert_eq!(sink.ignored.get("trino: events other than query completed"), Some(&1));
    }

    #[test]
    fn spark_fixture() {
        let mut sink = Collect::default();
        read_spark(include_str!("../../fixtures/logs/spark-events").as_bytes(), &mut sink).unwrap();
        let s = &sink.statements;
        assert_eq!(s.len(), 3, "{s:#?}");
        assert!(s[0].sql.starts_with("SELECT l_returnflag"));
        assert_eq!(s[0].duration_ms, Some(1250.0));
        assert_eq!(s[0].user.as_deref(), Some("analyst"));
        assert_eq!(s[0].session.as_deref(), Some("local-1700560800000"));
        assert_eq!(s[0].captured_at.as_deref(), Some("2023-11-21T10:00:00.100Z"));
        assert!(s[1].sql.starts_with("INSERT INTO summary"));
        assert_eq!(s[1].duration_ms, Some(1000.0));
        assert_eq!(s[1].attrs["state"], "FAILED");
        assert_eq!(s[2].sql, "SELECT o_orderpriority FROM orders WHERE o_orderkey = 42");
        assert_eq!(s[2].duration_ms, None);
        let skipped: Vec<u64> = sink.skipped.iter().map(|s| s.0).collect();
        assert_eq!(skipped, vec![7, 14, 16], "{:?}", sink.skipped);
        assert_eq!(sink.ignored.get("spark: DataFrame actions without SQL text"), Some(&1));
        assert_eq!(sink.ignored.get("spark: nested SQL executions"), Some(&1));
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(&serde_json::json!(1.5)), Some(1500.0));
        assert_eq!(duration_ms(&serde_json::json!("PT1M2.5S")), Some(62_500.0));
        assert_eq!(duration_ms(&serde_json::json!("12.00ms")), Some(12.0));
        assert_eq!(duration_ms(&serde_json::json!("2.00m")), Some(120_000.0));
        assert_eq!(duration_ms(&serde_json::json!("soon")), None);
    }
}
