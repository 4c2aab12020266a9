//! # sqlflight (the binary)
//!
//! The `sqlflight` command line: clap commands, config loading with located errors,
//! progress display, and wiring of the library crates. Everything a library user
//! needs lives in the library crates; this crate holds no comparison or replay
//! logic of its own.
//!
//! Main entry points: [`run_cli`] (parse arguments, run, return the exit code) and
//! [`commands`].
//!
//! It must never exit with a code other than 0 (no regression), 1 (regressions
//! found) or 2 (usage, config or tool error), and never print a progress bar
//! when stderr is not a terminal.

pub mod commands;
pub mod config;
pub mod progress;
pub mod supervise;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Exit code: no regression.
pub const EXIT_OK: u8 = 0;
/// Exit code: regressions found.
pub const EXIT_REGRESSION: u8 = 1;
/// Exit code: usage, config or tool error.
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sqlflight",
    version,
    about = "Release safety for SQL engines: replay captured queries through the old and the new engine and report what changed."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// Print nothing but errors (no progress, no summary).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Zero-config tour: generate TPC-H data, replay TPC-H and TPC-DS through two
    /// embedded DataFusion profiles, write a report.
    Demo(commands::demo::DemoArgs),
    /// Compile every query of a corpus with baseline and candidate and classify the
    /// differences (no data needed).
    Playback(commands::playback::PlaybackArgs),
    /// Execute every read query on live data with baseline and candidate; compare
    /// result digests (never rows), timings and memory.
    Flight(commands::flight::FlightArgs),
    /// Build and inspect corpora.
    #[command(subcommand)]
    Corpus(commands::corpus::CorpusCmd),
    /// Render runs as Markdown, HTML, JSON or JUnit XML.
    Report(commands::report::ReportArgs),
    /// Judge runs against a policy: exit 0 pass, 1 fail, 2 error.
    Gate(commands::gate::GateArgs),
    /// Merge the runs of `--partition K/N` into one run.
    Merge(commands::merge::MergeArgs),
    /// What changed between two runs: new regressions, resolved ones, perf drift.
    Compare(commands::merge::CompareArgs),
    /// Phased rollout of a candidate version: evidence, approvals, audit, instant
    /// rollback, and the routing answer for gateways.
    Rollout(commands::rollout::RolloutArgs),
    /// Measure sqlflight against its peers and the physical limit (the
    /// benchmarks live in the sqlflight-bench crate).
    #[command(subcommand)]
    Bench(sqlflight_bench::BenchCmd),
    /// Serve this build's embedded DataFusion over the worker protocol on
    /// stdin/stdout (compare two sqlflight builds: `kind: worker, command:
    /// [/path/to/other/sqlflight, worker]`).
    Worker(commands::worker::WorkerArgs),
}

/// Parses `args` (including the program name), runs the command, and returns the
/// exit code. Errors are printed to stderr with their context.
pub fn run_cli<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => EXIT_OK,
                _ => EXIT_ERROR,
            };
        }
    };
    match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            EXIT_ERROR
        }
    }
}

/// An error and its causes, `: `-separated, leaving out a cause whose text the
/// message before it already ends with (library errors often print their source
/// themselves: "x: No such file or directory (os error 2)").
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Silences the default panic message for panics on compile threads: those panics
/// are caught, and their message is recorded as the query's `crash` outcome.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_compile_thread = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(sqlflight_playback::COMPILE_THREAD_PREFIX));
        if !on_compile_thread {
            default(info);
        }
    }));
}
