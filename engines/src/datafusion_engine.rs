//! The embedded DataFusion engine.
//!
//! A profile is a `SessionState` built from DataFusion's defaults, with config keys
//! set from the profile's `settings` and the named analyzer, logical optimizer and
//! physical optimizer rules removed. The catalog's DDL creates empty tables (all
//! that planning needs); data files are registered as Parquet/CSV tables and take
//! the place of a DDL table of the same name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::physical_plan::displayable;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use sqlflight_corpora::split::{SplitOptions, split_statements};
use sqlflight_corpora::{Catalog, TableFormat};

use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

use crate::{BuildError, CompiledPlan, Engine, EngineError, EngineInfo, ErrorClass, ExecLimits, ExecStats};

/// The tokio runtime all embedded engines share. `Runtime::block_on` may be called
/// from many threads at once (rayon workers); the future runs on the caller.
fn runtime() -> Result<&'static tokio::runtime::Runtime, EngineError> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sqlflight-datafusion")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| EngineError::new(ErrorClass::Internal, format!("cannot start the tokio runtime: {e}")))
}

/// Classifies a DataFusion error.
pub fn classify(e: &DataFusionError) -> ErrorClass {
    use DataFusionError as D;
    match e {
        D::SQL(..) => ErrorClass::Parse,
        D::Plan(_) | D::SchemaError(..) | D::NotImplemented(_) | D::Configuration(_) | D::Substrait(_) => {
            ErrorClass::Plan
        }
        D::ResourcesExhausted(_) => ErrorClass::Resource,
        D::Internal(_) => ErrorClass::Internal,
        D::ExecutionJoin(j) if j.is_panic() => ErrorClass::Crash,
        D::Context(_, inner) | D::Diagnostic(_, inner) => classify(inner),
        D::Shared(inner) => classify(inner),
        D::Collection(v) => v.first().map_or(ErrorClass::Internal, classify),
        _ => ErrorClass::Execution,
    }
}

fn engine_error(e: DataFusionError) -> EngineError {
    let class = classify(&e);
    EngineError::new(class, e.strip_backtrace())
}

/// All rule names a session state knows, analyzer, optimizer and physical.
fn rule_names(state: &datafusion::execution::SessionState) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    s.extend(state.analyzer().rules.iter().map(|r| r.name().to_string()));
    s.extend(state.optimizers().iter().map(|r| r.name().to_string()));
    s.extend(state.physical_optimizers().iter().map(|r| r.name().to_string()));
    s
}

/// The embedded DataFusion's version.
pub const VERSION: &str = datafusion::DATAFUSION_VERSION;

/// The embedded DataFusion, configured by one profile.
pub struct DataFusionEngine {
    info: EngineInfo,
    ctx: SessionContext,
}

impl DataFusionEngine {
    /// Builds the session for a profile and loads the catalog into it.
    pub fn new(
        profile: &str,
        settings: &BTreeMap<String, String>,
        disable_rules: &[String],
        setup: &[String],
        catalog: &Catalog,
    ) -> Result<Self, BuildError> {
        let mut config = SessionConfig::new().with_information_schema(true);
        for (k, v) in settings {
            config.options_mut().set(k, v).map_err(|e| BuildError::Setting {
                profile: profile.into(),
                key: k.clone(),
                message: e.strip_backtrace(),
            })?;
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        let known = rule_names(&state);
        for r in disable_rules {
            if !known.contains(r) {
                return Err(BuildError::UnknownRule {
                    profile: profile.into(),
                    rule: r.clone(),
                    known: known.iter().cloned().collect::<Vec<_>>().join(", "),
                });
            }
        }
        let off = |name: &str| disable_rules.iter().any(|r| r == name);
        let analyzer = state
            .analyzer()
            .rules
            .iter()
            .filter(|r| !off(r.name()))
            .cloned()
            .collect();
        let optimizer = state.optimizers().iter().filter(|r| !off(r.name())).cloned().collect();
        let physical = state
            .physical_optimizers()
            .iter()
            .filter(|r| !off(r.name()))
            .cloned()
            .collect();
        let state = SessionStateBuilder::new_from_existing(state)
            .with_analyzer_rules(analyzer)
            .with_optimizer_rules(optimizer)
            .with_physical_optimizer_rules(physical)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let info = EngineInfo {
            engine: "datafusion".into(),
            version: datafusion::DATAFUSION_VERSION.into(),
            profile: profile.into(),
            settings: settings.clone(),
            disabled_rules: disable_rules.to_vec(),
        };
        let engine = DataFusionEngine { info, ctx };
        engine.load_catalog(catalog, setup)?;
        Ok(engine)
    }

    fn load_catalog(&self, catalog: &Catalog, setup: &[String]) -> Result<(), BuildError> {
        let profile = &self.info.profile;
        let rt = runtime().map_err(|e| BuildError::Other {
            profile: profile.clone(),
            message: e.message,
        })?;
        rt.block_on(async {
            for (name, t) in &catalog.tables {
                let path = t.path.to_string_lossy();
                let res = match t.format {
                    TableFormat::Parquet => {
                        self.ctx
                            .register_parquet(name, path.as_ref(), ParquetReadOptions::default())
                            .await
                    }
                    TableFormat::Csv => self.ctx.register_csv(name, path.as_ref(), CsvReadOptions::new()).await,
                };
                res.map_err(|e| BuildError::Catalog {
                    profile: profile.clone(),
                    origin: format!("table `{name}` ({})", t.path.display()),
                    message: e.strip_backtrace(),
                })?;
            }
            for ddl in &catalog.ddl {
                for st in split_statements(&ddl.text, SplitOptions::default()) {
                    let err = |e: DataFusionError| BuildError::Catalog {
                        profile: profile.clone(),
                        origin: format!("{}:{}", ddl.origin, st.line),
                        message: e.strip_backtrace(),
                    };
                    let plan = self.ctx.state().create_logical_plan(&st.text).await.map_err(err)?;
                    if let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(c)) = &plan
                        && catalog.tables.contains_key(c.name.table())
                    {
                        continue; // the data file defines this table
                    }
                    self.ctx
                        .execute_logical_plan(plan)
                        .await
                        .map_err(err)?
                        .collect()
                        .await
                        .map_err(err)?;
                }
            }
            for s in catalog.setup.iter().chain(setup) {
                let err = |e: DataFusionError| BuildError::Setup {
                    profile: profile.clone(),
                    statement: s.clone(),
                    message: e.strip_backtrace(),
                };
                self.ctx.sql(s).await.map_err(err)?.collect().await.map_err(err)?;
            }
            Ok(())
        })
    }

    /// The session, for callers that embed DataFusion themselves.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// DataFusion's own planner and nothing else: parse, plan, optimize, physical
    /// plan, no display. The benchmark's physical limit for `compile`.
    #[cfg(feature = "bench")]
    pub fn plan_bare(&self, sql: &str) -> Result<(), EngineError> {
        runtime()?.block_on(async {
            let state = self.ctx.state();
            let logical = state.create_logical_plan(sql).await.map_err(engine_error)?;
            let optimized = state.optimize(&logical).map_err(engine_error)?;
            DefaultPhysicalPlanner::default()
                .create_physical_plan(&optimized, &state)
                .await
                .map_err(engine_error)?;
            Ok(())
        })
    }
}

impl Engine for DataFusionEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        runtime()?.block_on(async {
            let state = self.ctx.state();
            let logical = state.create_logical_plan(sql).await.map_err(engine_error)?;
            if matches!(
                logical,
                LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::DescribeTable(_)
            ) {
                return Ok(CompiledPlan {
                    logical: logical.display_indent().to_string(),
                    physical: None,
                });
            }
            let optimized = state.optimize(&logical).map_err(engine_error)?;
            let physical = DefaultPhysicalPlanner::default()
                .create_physical_plan(&optimized, &state)
                .await
                .map_err(engine_error)?;
            Ok(CompiledPlan {
                logical: optimized.display_indent().to_string(),
                physical: Some(displayable(physical.as_ref()).indent(false).to_string()),
            })
        })
    }

    fn execute(
        &self,
        sql: &str,
        limits: &ExecLimits,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<ExecStats, EngineError> {
        // A session of its own per query: its own memory pool (the limit is per
        // query, and the peak is this query's), sharing the catalog.
        let pool = Arc::new(PeakPool::new(limits.memory_limit));
        let env = RuntimeEnvBuilder::new()
            .with_memory_pool(pool.clone())
            .build_arc()
            .map_err(engine_error)?;
        let state = SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_runtime_env(env)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let work = async {
            let df = ctx.sql(sql).await.map_err(engine_error)?;
            let mut stream = df.execute_stream().await.map_err(engine_error)?;
            let mut stats = ExecStats {
                schema: Some(stream.schema()),
                ..Default::default()
            };
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(engine_error)?;
                stats.rows += batch.num_rows() as u64;
                stats.batches += 1;
                sink(&batch)?;
            }
            Ok(stats)
        };
        let timeout = limits.timeout;
        let mut stats = runtime()?.block_on(async move {
            // Dropping the stream on timeout cancels the query's tasks.
            match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(EngineError::new(
                    ErrorClass::Timeout,
                    format!("did not finish within {timeout:?}"),
                )),
            }
        })?;
        stats.peak_memory = Some(pool.peak() as u64);
        Ok(stats)
    }
}

/// A memory pool that remembers its peak reservation: greedy with a limit, or
/// unbounded.
#[derive(Debug)]
struct PeakPool {
    inner: Box<dyn MemoryPool>,
    peak: AtomicUsize,
}

impl PeakPool {
    fn new(limit: Option<usize>) -> Self {
        let inner: Box<dyn MemoryPool> = match limit {
            Some(l) => Box::new(GreedyMemoryPool::new(l)),
            None => Box::new(UnboundedMemoryPool::default()),
        };
        PeakPool {
            inner,
            peak: AtomicUsize::new(0),
        }
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
    fn note(&self) {
        self.peak.fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }
}

impl std::fmt::Display for PeakPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sqlflight-peak({})", self.inner)
    }
}

impl MemoryPool for PeakPool {
    fn name(&self) -> &str {
        "sqlflight-peak"
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.note();
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> datafusion::error::Result<()> {
        self.inner.try_grow(reservation, additional)?;
        self.note();
        Ok(())
    }
    fn reserved(&self) -> usize {
        self.inner.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(settings: &[(&str, &str)], rules: &[&str]) -> Result<DataFusionEngine, BuildError> {
        let settings = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let rules: Vec<String> = rules.iter().map(|s| s.to_string()).collect();
        DataFusionEngine::new(
            "p",
            &settings,
            &rules,
            &[],
            &Catalog::from_ddl("test.sql", "create table t(a int, b varchar); create table u(a int);"),
        )
    }

    #[test]
    fn compiles_and_classifies() {
        let e = engine(&[], &[]).unwrap();
        assert_eq!(e.info().engine, "datafusion");
        assert_eq!(e.info().version, datafusion::DATAFUSION_VERSION);
        let p = e.compile("select a from t where a > 1").unwrap();
        assert!(p.logical.contains("Filter"), "{}", p.logical);
        assert!(p.physical.unwrap().contains("FilterExec"));
        assert_eq!(e.compile("selec 1").unwrap_err().class, ErrorClass::Parse);
        assert_eq!(e.compile("select * from missing").unwrap_err().class, ErrorClass::Plan);
        assert_eq!(e.compile("select nope from t").unwrap_err().class, ErrorClass::Plan);
        // DDL compiles to a logical plan only, and does not create the table.
        assert!(e.compile("create table v(x int)").unwrap().physical.is_none());
        assert_eq!(e.compile("select * from v").unwrap_err().class, ErrorClass::Plan);
    }

    #[test]
    fn profile_settings_and_rules() {
        let hash = engine(&[("datafusion.execution.target_partitions", "2")], &[]).unwrap();
        let smj = engine(
            &[
                ("datafusion.execution.target_partitions", "2"),
                ("datafusion.optimizer.prefer_hash_join", "false"),
            ],
            &[],
        )
        .unwrap();
        let q = "select * from t join u on t.a = u.a";
        assert!(hash.compile(q).unwrap().physical.unwrap().contains("HashJoinExec"));
        assert!(smj.compile(q).unwrap().physical.unwrap().contains("SortMergeJoinExec"));
        let no_filter_push = engine(&[], &["push_down_filter"]).unwrap();
        assert_eq!(no_filter_push.info().disabled_rules, vec!["push_down_filter"]);
        let Err(BuildError::UnknownRule { known, .. }) = engine(&[], &["no_such_rule"]) else {
            panic!("expected an unknown-rule error")
        };
        assert!(known.contains("push_down_filter"));
        assert!(matches!(
            engine(&[("datafusion.nope", "1")], &[]),
            Err(BuildError::Setting { .. })
        ));
    }

    #[test]
    fn csv_tables_replace_ddl_tables_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "a,b\n1,x\n2,y\n").unwrap();
        let mut catalog = Catalog::from_ddl("t.sql", "create table t(a int, b varchar);");
        catalog.tables.insert(
            "t".into(),
            sqlflight_corpora::TableSource {
                path: csv,
                format: TableFormat::Csv,
            },
        );
        let e = DataFusionEngine::new("p", &BTreeMap::new(), &[], &[], &catalog).unwrap();
        let stats = e
            .execute("select * from t where a > 1", &ExecLimits::default(), &mut |_| Ok(()))
            .unwrap();
        assert_eq!(stats.rows, 1);
        let missing = sqlflight_corpora::TableSource {
            path: dir.path().join("nope.parquet"),
            format: TableFormat::Parquet,
        };
        catalog.tables.insert("u".into(), missing);
        assert!(matches!(
            DataFusionEngine::new("p", &BTreeMap::new(), &[], &[], &catalog),
            Err(BuildError::Catalog { .. })
        ));
    }

    #[test]
    fn executes_streaming_batches() {
        let e = engine(&[], &[]).unwrap();
        let mut rows = 0;
        let stats = e
            .execute(
                "select * from (values (1), (2), (3)) as v(x)",
                &ExecLimits::default(),
                &mut |b| {
                    rows += b.num_rows();
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(stats.rows, 3);
        assert_eq!(rows, 3);
    }

    #[test]
    fn timeouts_cancel_and_memory_limits_fail_as_resource() {
        let e = engine(&[("datafusion.execution.target_partitions", "2")], &[]).unwrap();
        let slow = "select count(*) from generate_series(1, 2000000000) a";
        let limits = ExecLimits {
            timeout: std::time::Duration::from_millis(300),
            memory_limit: None,
        };
        let start = std::time::Instant::now();
        let err = e.execute(slow, &limits, &mut |_| Ok(())).unwrap_err();
        assert_eq!(err.class, ErrorClass::Timeout);
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
        let big_sort = "select v from generate_series(1, 3000000) t(v) order by v desc";
        let tight = ExecLimits {
            timeout: std::time::Duration::from_secs(120),
            memory_limit: Some(64 * 1024),
        };
        let err = e.execute(big_sort, &tight, &mut |_| Ok(())).unwrap_err();
        assert_eq!(err.class, ErrorClass::Resource, "{err}");
        let ok = e
            .execute(
                "select v from generate_series(1, 100000) t(v) order by v desc",
                &ExecLimits::default(),
                &mut |_| Ok(()),
            )
            .unwrap();
        assert!(ok.peak_memory.unwrap() > 0);
    }
}
