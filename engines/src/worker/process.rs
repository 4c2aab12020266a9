//! One worker process: started with piped stdio, its stderr drained by a thread
//! into a bounded tail (for outcomes), asked one request at a time with a
//! deadline (killed past it), and asked to shut down (killed if it lingers) when
//! dropped.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Read};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use super::Launch;
use super::protocol::*;

/// Bytes of a worker's stderr kept for outcomes.
pub(super) const STDERR_TAIL: usize = 4096;

/// Why a request got no answer.
#[derive(Debug)]
pub(super) enum Failure {
    Timeout(Duration),
    Died(String),
    Protocol(String),
}

/// One worker process.
pub(super) struct Worker {
    child: Arc<Mutex<Child>>,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
}

impl Worker {
    pub(super) fn start(launch: &Launch) -> std::io::Result<Worker> {
        let mut child = Command::new(&launch.program)
            .args(&launch.args)
            .envs(&launch.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = BufWriter::new(child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?);
        let stdout = BufReader::with_capacity(
            1 << 16,
            child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?,
        );
        let mut err = child.stderr.take().ok_or_else(|| std::io::Error::other("no stderr"))?;
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let tail = stderr.clone();
        std::thread::Builder::new()
            .name("sqlflight-worker-stderr".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.extend(&buf[..n]);
                        let excess = t.len().saturating_sub(STDERR_TAIL);
                        t.drain(..excess);
                    }
                }
            })?;
        Ok(Worker {
            child: Arc::new(Mutex::new(child)),
            stdin,
            stdout,
            stderr,
        })
    }

    pub(super) fn stderr_tail(&self) -> String {
        // Give the reader thread a moment to drain what a dying process wrote.
        std::thread::sleep(Duration::from_millis(20));
        let t = self
            .stderr
            .lock()
            .map(|t| t.iter().copied().collect::<Vec<u8>>())
            .unwrap_or_default();
        String::from_utf8_lossy(&t).trim().to_string()
    }

    pub(super) fn request(&mut self, msg: &Value, timeout: Duration) -> Result<Frame, Failure> {
        let mut payload = None;
        let header = self.request_streaming(msg, timeout, &mut |r| buffer_payload(r, &mut payload))?;
        Ok((header, payload))
    }

    /// Sends `msg` and reads the answer, handing its payload to `on_payload` as
    /// it arrives; the deadline covers the whole exchange.
    pub(super) fn request_streaming(
        &mut self,
        msg: &Value,
        timeout: Duration,
        on_payload: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<Value, Failure> {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let child = self.child.clone();
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fired2 = fired.clone();
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                fired2.store(true, std::sync::atomic::Ordering::SeqCst);
                if let Ok(mut c) = child.lock() {
                    let _ = c.kill();
                }
            }
        });
        let result = write_frame(&mut self.stdin, msg, None)
            .map_err(|e| format!("cannot write to the worker: {e}"))
            .and_then(|()| read_frame_streaming(&mut self.stdout, on_payload));
        let _ = done_tx.send(());
        let _ = watchdog.join();
        if fired.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Failure::Timeout(timeout));
        }
        match result {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(Failure::Died(self.death())),
            Err(e) if e.starts_with("cannot write") => Err(Failure::Died(self.death())),
            Err(e) => Err(Failure::Protocol(e)),
        }
    }

    pub(super) fn death(&self) -> String {
        let status = self
            .child
            .lock()
            .ok()
            .and_then(|mut c| {
                // The process closed stdout; it is exiting or gone.
                for _ in 0..50 {
                    if let Ok(Some(s)) = c.try_wait() {
                        return Some(s.to_string());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                None
            })
            .unwrap_or_else(|| "closed its output".into());
        let tail = self.stderr_tail();
        if tail.is_empty() {
            format!("worker process died ({status})")
        } else {
            format!(
                "worker process died ({status}); stderr: {}",
                crate::python::last_lines(&tail, 12)
            )
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = write_frame(&mut self.stdin, &json!({"op": "shutdown"}), None);
            // A worker that does not leave promptly is killed.
            for _ in 0..20 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
