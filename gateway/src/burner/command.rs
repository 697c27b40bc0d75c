//! The command burner: runs the user's program for each burn, for real hardware.
//!
//! The program is started as `PROGRAM IMAGE PRODUCT_ID DEVICE_NAME VERSION` (no shell), with
//! the same values in `OTASIM_IMAGE`, `OTASIM_PRODUCT_ID`, `OTASIM_DEVICE_NAME` and
//! `OTASIM_VERSION`. A stdout line holding just a number from 0 to 100 is burn progress.
//! Exit status 0 is success and the device then runs `VERSION`; anything else fails the burn
//! with the tail of the program's stderr in the report.

use super::{BurnError, BurnFuture, BurnRequest, Burner, VersionStore};
use otasim_protocol::DeviceId;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;
use tracing::debug;

/// Most stderr bytes quoted in a fail report.
const STDERR_TAIL_BYTES: usize = 400;

/// Burns by running a program; remembers what each device runs under a state directory.
#[derive(Debug, Clone)]
pub struct CommandBurner {
    program: PathBuf,
    store: VersionStore,
}

impl CommandBurner {
    /// Runs `program` per burn; the versions burned are kept under `state_dir`.
    pub fn new(program: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        CommandBurner {
            program: program.into(),
            store: VersionStore::new(state_dir.into()),
        }
    }

    /// Sets the version a device runs before any burn (factory state), unless it has one.
    pub fn provision(&self, device: &DeviceId, version: &str) -> io::Result<()> {
        self.store.provision(device, version)
    }

    async fn run(&self, request: BurnRequest<'_>) -> Result<(), BurnError> {
        let device = request.device;
        let failed = |reason: String| BurnError::Failed {
            device: device.clone(),
            reason,
        };
        let mut child = Command::new(&self.program)
            .arg(request.image)
            .arg(device.product_id())
            .arg(device.device_name())
            .arg(request.version)
            .env("OTASIM_IMAGE", request.image)
            .env("OTASIM_PRODUCT_ID", device.product_id())
            .env("OTASIM_DEVICE_NAME", device.device_name())
            .env("OTASIM_VERSION", request.version)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", self.program.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let percent = AtomicU8::new(0);
        let work = async {
            let (_, tail, status) = tokio::join!(
                read_progress(stdout, |p| {
                    percent.store(p, Ordering::Relaxed);
                    (request.progress)(p)
                }),
                read_tail(stderr),
                child.wait()
            );
            (tail, status)
        };
        let (tail, status) = tokio::select! {
            // Dropping `work` drops the child, which `kill_on_drop` kills: the device keeps
            // whatever the program had written, and the gateway reports nothing as done.
            _ = request.cancel.cancelled() => {
                let percent = percent.load(Ordering::Relaxed);
                return Err(BurnError::Cancelled { device: device.clone(), percent });
            }
            out = work => out,
        };
        let status = status.map_err(|source| BurnError::Io {
            device: device.clone(),
            source,
        })?;
        if !status.success() {
            let tail = tail.trim();
            let said = if tail.is_empty() { "no stderr" } else { tail };
            return Err(failed(format!(
                "burner command {} exited with {status}: {said}",
                self.program.display()
            )));
        }
        self.store
            .write(device, request.version)
            .map_err(|source| BurnError::Io {
                device: device.clone(),
                source,
            })
    }
}

async fn read_progress(out: impl AsyncRead + Unpin, mut on: impl FnMut(u8)) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim().parse::<u8>() {
            Ok(p) if p <= 100 => on(p),
            _ => debug!(line = %line.escape_debug(), "burner output"),
        }
    }
}

/// The last [`STDERR_TAIL_BYTES`] of a stream, as text on one line.
async fn read_tail(mut err: impl AsyncRead + Unpin) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = err.read(&mut buf).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        if all.len() > 4 * STDERR_TAIL_BYTES {
            all.drain(..all.len() - STDERR_TAIL_BYTES);
        }
    }
    let start = all.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&all[start..])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Burner for CommandBurner {
    fn burn<'a>(&'a self, request: BurnRequest<'a>) -> BurnFuture<'a> {
        Box::pin(self.run(request))
    }

    fn running_version(&self, device: &DeviceId) -> Option<String> {
        self.store.read(device)
    }
}

#[cfg(test)]
mod tests;
