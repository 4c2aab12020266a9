//! The run supervisor: `playback` and `flight` run in a child process of the same
//! binary, and a child that dies by a signal (a stack overflow or an abort in an
//! engine, the kernel's out-of-memory killer) is resumed automatically.
//!
//! Why a supervisor: a stack overflow or an abort cannot be caught inside the
//! process that suffers it, and a child process per query would cost a process
//! start and an engine set-up per query. One child per run costs one process start;
//! a death costs one resume. The journal attributes the death (see
//! `sqlflight_runs::journal`): queries in flight are re-run alone first, and a
//! query that dies alone is recorded as `crash` and never run again, so every two
//! deaths settle at least one query and the run always ends.
//!
//! Internal environment (set by the supervisor for its child only):
//! `SQLFLIGHT_SUPERVISED` (do not supervise again), `SQLFLIGHT_RUN_STAMP` (the
//! default run directory's time stamp, so a restart finds the same directory),
//! `SQLFLIGHT_RESUME` (a restart: resume the run), `SQLFLIGHT_SUPERVISOR_NOTE` (a
//! file the child writes its run directory to). `SQLFLIGHT_NO_SUPERVISOR=1` runs
//! in-process.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;

use crate::{Cli, Cmd, EXIT_ERROR};

pub(crate) const ENV_SUPERVISED: &str = "SQLFLIGHT_SUPERVISED";
pub(crate) const ENV_STAMP: &str = "SQLFLIGHT_RUN_STAMP";
pub(crate) const ENV_RESUME: &str = "SQLFLIGHT_RESUME";
pub(crate) const ENV_NOTE: &str = "SQLFLIGHT_SUPERVISOR_NOTE";
const ENV_OFF: &str = "SQLFLIGHT_NO_SUPERVISOR";

/// Whether this process is a supervised child restarted to resume its run.
pub fn restarted() -> bool {
    std::env::var_os(ENV_RESUME).is_some()
}

/// A supervised child tells its supervisor which run directory it writes.
pub fn note_run_dir(dir: &Path) {
    if let Some(note) = std::env::var_os(ENV_NOTE) {
        let _ = std::fs::write(note, dir.as_os_str().as_encoded_bytes());
    }
}

/// Runs the command line: `playback` and `flight` under a supervisor, everything
/// else (and everything when supervision is off or impossible) in this process.
pub fn main_with_supervisor(args: Vec<OsString>) -> u8 {
    if std::env::var_os(ENV_SUPERVISED).is_some() {
        exit_with_parent();
    }
    let supervise = std::env::var_os(ENV_SUPERVISED).is_none()
        && std::env::var_os(ENV_OFF).is_none_or(|v| v.is_empty() || v == "0")
        && Cli::try_parse_from(&args).is_ok_and(|c| matches!(c.cmd, Cmd::Playback(_) | Cmd::Flight(_)));
    if !supervise {
        return crate::run_cli(args);
    }
    match std::env::current_exe() {
        Ok(exe) => supervise_child(&exe, &args),
        Err(_) => crate::run_cli(args),
    }
}

/// A supervised child ends when its supervisor does (killed, or its terminal
/// closed), so no orphan keeps writing a run directory: a thread watches for the
/// child being re-parented.
fn exit_with_parent() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        let _ = std::thread::Builder::new()
            .name("sqlflight-supervised".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    if std::os::unix::process::parent_id() != parent {
                        std::process::exit(i32::from(EXIT_ERROR));
                    }
                }
            });
    }
}

/// Bytes of the run's journal files: grows whenever a query starts or ends.
fn journal_size(dir: Option<&PathBuf>) -> u64 {
    let Some(dir) = dir else { return 0 };
    [sqlflight_runs::journal::OUTCOMES, sqlflight_runs::journal::STARTED]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len()))
        .sum()
}

fn supervise_child(exe: &Path, args: &[OsString]) -> u8 {
    // Ctrl-C reaches the child too (same process group); it stops the run cleanly.
    let _ = ctrlc::set_handler(|| {});
    let note = tempfile::NamedTempFile::new().ok();
    let stamp = crate::commands::stamp();
    let mut last_size = None;
    let mut restarts = 0u32;
    loop {
        let mut cmd = Command::new(exe);
        cmd.args(args.iter().skip(1))
            .env(ENV_SUPERVISED, "1")
            .env(ENV_STAMP, &stamp);
        if let Some(n) = &note {
            cmd.env(ENV_NOTE, n.path());
        }
        if restarts > 0 {
            cmd.env(ENV_RESUME, "1");
        }
        let status = match cmd.status() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot start the run process {}: {e}", exe.display());
                return EXIT_ERROR;
            }
        };
        if let Some(code) = status.code() {
            return u8::try_from(code).unwrap_or(EXIT_ERROR);
        }
        let signal = signal_of(&status);
        let dir = note
            .as_ref()
            .and_then(|n| std::fs::read(n.path()).ok())
            .filter(|b| !b.is_empty())
            .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()));
        let size = journal_size(dir.as_ref());
        let Some(dir) = dir.filter(|_| last_size != Some(size)) else {
            eprintln!(
                "error: the run process died ({signal}) without making progress; not restarting it{}",
                last_size.map_or(String::new(), |_| " again".into())
            );
            return EXIT_ERROR;
        };
        last_size = Some(size);
        restarts += 1;
        eprintln!(
            "sqlflight: the run process died ({signal}) while queries ran; resuming {} \
             (queries in flight run again one at a time; one that dies alone is recorded as crash)",
            dir.display()
        );
    }
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(6) => "signal 6, SIGABRT: an abort or a stack overflow".into(),
        Some(9) => "signal 9, SIGKILL: killed, e.g. by the out-of-memory killer".into(),
        Some(11) => "signal 11, SIGSEGV".into(),
        Some(s) => format!("signal {s}"),
        None => "no exit code".into(),
    }
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> String {
    "no exit code".into()
}
