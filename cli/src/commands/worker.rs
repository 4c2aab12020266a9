//! `sqlflight worker`: this build's embedded DataFusion served over the worker
//! protocol on stdin/stdout, so two sqlflight builds (two DataFusion versions)
//! can be compared: `kind: worker, command: [/path/to/old/sqlflight, worker]`.
//!
//! Settings are DataFusion config keys; the setting `sqlflight.disable_rules`
//! (comma separated) removes optimizer rules by name, as a `datafusion` profile's
//! `disable_rules` does.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlflight_corpora::Catalog;
use sqlflight_engines::datafusion_engine::DataFusionEngine;
use sqlflight_engines::{Engine, EngineError, ErrorClass};

use crate::{Cli, EXIT_ERROR, EXIT_OK};

/// The setting that carries rule names to disable.
pub const DISABLE_RULES: &str = "sqlflight.disable_rules";

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {}

pub fn run(_args: &WorkerArgs, _cli: &Cli) -> anyhow::Result<u8> {
    let served = sqlflight_engines::worker::serve(
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        "datafusion",
        datafusion_version(),
        |req| {
            let mut settings: BTreeMap<String, String> = req.settings;
            let rules: Vec<String> = settings
                .remove(DISABLE_RULES)
                .map(|r| {
                    r.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let catalog = Catalog {
                tables: req.tables,
                ..Default::default()
            };
            let engine = DataFusionEngine::new("worker", &settings, &rules, &req.statements, &catalog)
                .map_err(|e| EngineError::new(ErrorClass::Plan, e.to_string()))?;
            Ok(Arc::new(engine) as Arc<dyn Engine>)
        },
    );
    match served {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            eprintln!("sqlflight worker: {e}");
            Ok(EXIT_ERROR)
        }
    }
}

/// The embedded DataFusion's version.
pub fn datafusion_version() -> &'static str {
    sqlflight_engines::datafusion_engine::VERSION
}
