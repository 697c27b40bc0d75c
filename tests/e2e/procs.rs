//! Real `otasim` processes for the tests that drive the command as a user would (the README,
//! broken pipes, the examples): stdout and stderr read on their own threads and kept, a wait
//! for a line with a deadline, and a stop by SIGTERM.

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A command line run by `sh -c` from `dir`, with the built `otasim` first on `PATH`.
pub(crate) fn shell(line: &str, dir: &Path) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_otasim"))
        .parent()
        .expect("the binary lives in a folder");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(line)
        .current_dir(dir)
        .env(
            "PATH",
            std::env::join_paths(paths).expect("PATH entries join"),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// A running process whose output is collected as it comes.
pub(crate) struct Proc {
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(
    pipe: impl Read + Send + 'static,
    keep: Arc<Mutex<Vec<String>>>,
    forward: Option<std::sync::mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &forward {
                let _ = tx.send(line.clone());
            }
            keep.lock().expect("no reader panics holding it").push(line);
        }
    })
}

impl Proc {
    /// Starts `cmd` with both outputs piped.
    pub(crate) fn spawn(mut cmd: Command) -> std::io::Result<Proc> {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let (tx, lines) = channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            collect(out, Arc::clone(&stdout), Some(tx)),
            collect(err, Arc::clone(&stderr), None),
        ];
        Ok(Proc {
            child,
            lines,
            stdout,
            stderr,
            readers,
        })
    }

    /// Waits for a stdout line starting with `prefix` (`Ok(line)`), or for stdout to close
    /// (`Err(None)`), or for `deadline` (`Err(Some(elapsed))`).
    pub(crate) fn wait_line(
        &self,
        prefix: &str,
        deadline: Duration,
    ) -> Result<String, Option<Duration>> {
        let start = Instant::now();
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(None),
                Err(RecvTimeoutError::Timeout) => return Err(Some(start.elapsed())),
            }
        }
    }

    /// Waits for the process to end by itself (its stdout closes, then it is reaped), at most
    /// `deadline`; it is killed past that (`None`).
    pub(crate) fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        let closed = loop {
            let left = deadline.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break true,
                Err(RecvTimeoutError::Timeout) => break false,
            }
        };
        if !closed {
            let _ = self.child.kill();
        }
        let status = self.child.wait().ok();
        self.join_readers();
        status.filter(|_| closed)
    }

    /// SIGTERM, then waits for the exit at most `deadline` (killed past it: `None`).
    pub(crate) fn stop(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_exit(deadline)
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// Everything printed so far on stdout.
    pub(crate) fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("readers do not panic").clone()
    }

    /// Everything printed so far on stderr.
    pub(crate) fn stderr(&self) -> Vec<String> {
        self.stderr.lock().expect("readers do not panic").clone()
    }

    /// The last lines of both outputs, for a failure message.
    pub(crate) fn tails(&self) -> String {
        let tail = |v: Vec<String>| {
            let from = v.len().saturating_sub(20);
            v[from..].join("\n")
        };
        format!(
            "--- stdout (last lines) ---\n{}\n--- stderr (last lines) ---\n{}",
            tail(self.stdout()),
            tail(self.stderr())
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
