//! Progress reporting: a bar on a terminal, plain periodic lines otherwise
//! (CI logs), nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sqlflight_diffing::{OutcomeClass, OutcomeRecord};
use sqlflight_runs::Progress;

/// How the user wants to be told about progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiMode {
    Bar,
    Lines,
    Quiet,
}

impl UiMode {
    /// Bar only on a terminal and outside CI; `--quiet` or `--json` silence it.
    pub fn detect(quiet: bool, json: bool) -> UiMode {
        if quiet || json {
            UiMode::Quiet
        } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            UiMode::Bar
        } else {
            UiMode::Lines
        }
    }
}

/// A [`Progress`] for one playback run.
pub struct RunProgress {
    mode: UiMode,
    label: String,
    bar: OnceLock<ProgressBar>,
    total: AtomicU64,
    done: AtomicU64,
    changed: AtomicU64,
    regressions: AtomicU64,
    last_line: Mutex<Instant>,
}

impl RunProgress {
    pub fn new(mode: UiMode, label: impl Into<String>) -> Self {
        RunProgress {
            mode,
            label: label.into(),
            bar: OnceLock::new(),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            changed: AtomicU64::new(0),
            regressions: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
        }
    }

    fn status(&self) -> String {
        let changed = self.changed.load(Ordering::Relaxed);
        let regressions = self.regressions.load(Ordering::Relaxed);
        if changed > 0 {
            format!("{changed} plan changes, {regressions} regressions")
        } else {
            format!("{regressions} regressions")
        }
    }
}

impl Progress for RunProgress {
    fn start(&self, total: u64, done: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
        match self.mode {
            UiMode::Bar => {
                let bar = ProgressBar::new(total)
                    .with_position(done)
                    .with_prefix(self.label.clone());
                if let Ok(style) =
                    ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {per_sec:>10} eta {eta} {msg}")
                {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.enable_steady_tick(Duration::from_millis(200));
                let _ = self.bar.set(bar);
            }
            UiMode::Lines => {
                let resumed = if done > 0 {
                    format!(" ({done} already done, resuming)")
                } else {
                    String::new()
                };
                eprintln!("{}: {total} queries{resumed}", self.label);
            }
            UiMode::Quiet => {}
        }
    }

    fn completed(&self, o: &OutcomeRecord) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if o.class == OutcomeClass::PlanChanged {
            self.changed.fetch_add(1, Ordering::Relaxed);
        }
        if o.is_regression() {
            self.regressions.fetch_add(1, Ordering::Relaxed);
        }
        match self.mode {
            UiMode::Bar => {
                if let Some(b) = self.bar.get() {
                    b.set_position(done);
                    b.set_message(self.status());
                }
            }
            UiMode::Lines => {
                let total = self.total.load(Ordering::Relaxed);
                let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= Duration::from_secs(5) || done == total {
                    *last = Instant::now();
                    eprintln!("{}: {done}/{total} done ({})", self.label, self.status());
                }
            }
            UiMode::Quiet => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.get() {
            b.finish_and_clear();
        }
    }
}
