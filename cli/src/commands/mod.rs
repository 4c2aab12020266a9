//! One module per command.

pub mod corpus;
pub mod demo;
pub mod flight;
pub mod gate;
pub mod merge;
pub mod playback;
pub mod report;
pub mod rollout;
pub mod worker;

use crate::{Cli, Cmd};

/// Runs the parsed command; returns the exit code (errors become 2 in the caller).
pub fn dispatch(cli: &Cli) -> anyhow::Result<u8> {
    match &cli.cmd {
        Cmd::Demo(a) => demo::run(a, cli),
        Cmd::Playback(a) => playback::run(a, cli),
        Cmd::Flight(a) => flight::run(a, cli),
        Cmd::Corpus(c) => corpus::run(c, cli),
        Cmd::Report(a) => report::run(a, cli),
        Cmd::Gate(a) => gate::run(a, cli),
        Cmd::Merge(a) => merge::run_merge(a, cli),
        Cmd::Compare(a) => merge::run_compare(a, cli),
        Cmd::Rollout(a) => rollout::run(a, cli),
        Cmd::Bench(b) => sqlflight_bench::run(b, &bench_context(cli)?),
        Cmd::Worker(a) => worker::run(a, cli),
    }
}

/// What the benchmarks need from the binary: output mode, cache, demo profiles.
fn bench_context(cli: &Cli) -> anyhow::Result<sqlflight_bench::Ctx> {
    let cfg = crate::config::Config::parse(std::path::Path::new("<demo profiles>"), demo::DEMO_ENGINES)?;
    let (Some(b), Some(c)) = (cfg.file.engines.get("baseline"), cfg.file.engines.get("candidate")) else {
        anyhow::bail!("demo profiles are missing baseline/candidate");
    };
    Ok(sqlflight_bench::Ctx {
        json: cli.json,
        quiet: cli.quiet,
        cache_dir: cache_dir(),
        demo_engines: [b.clone(), c.clone()],
    })
}

/// The cache directory: `$SQLFLIGHT_CACHE`, else `$XDG_CACHE_HOME/sqlflight`, else
/// `~/.cache/sqlflight` (one definition, in `engines`, which keeps engine venvs there).
pub fn cache_dir() -> std::path::PathBuf {
    sqlflight_engines::python::cache_dir()
}

/// Default worker count: all cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A timestamp for default run directory names.
pub fn stamp() -> String {
    if let Some(s) = std::env::var_os(crate::supervise::ENV_STAMP) {
        return s.to_string_lossy().into_owned();
    }
    chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string()
}
