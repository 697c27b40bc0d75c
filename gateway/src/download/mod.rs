//! The gateway's firmware downloader: fetches one image over HTTP/1.1 (or HTTPS) Range requests into a
//! directory, resumably and crash-safely, hashing as it goes, and returns the verified image or
//! a typed failure. No MQTT here: the OTA task calls [`Downloader::fetch`] and turns the result
//! into progress reports.
//!
//! Layout: `plan` is the pure resume/range state machine; `store` the files keyed by MD5
//! (data, checkpoint, finished image); `part` the data file being hashed and written;
//! `http` one GET per attempt over hyper; `driver` the async loop that ties them together
//! with timeouts, retries and cancellation.

mod config;
mod driver;
mod error;
mod http;
mod part;
mod plan;
mod store;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{CheckpointPolicy, ConfigError, DownloadConfig, RetryPolicy, Timeouts};
pub use error::{
    AttemptContext, DownloadError, FailureKind, RestartReason, TimeoutPhase, Violation,
};

/// The image an `update_firmware` command describes. The cloud's version string is not here:
/// files are named after the MD5 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Signed `http://` URL of the image.
    pub url: String,
    /// Exact size of the image in bytes.
    pub file_size: u64,
    /// Expected MD5 of the image.
    pub md5: [u8; 16],
}

/// Bytes stored so far, sent on every body chunk; the caller rate-limits its reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the image stored and hashed (drops to 0 when a resume is refused).
    pub downloaded_bytes: u64,
    /// Size of the image.
    pub file_size: u64,
}

/// A verified image on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// `{dir}/{md5hex}.bin`, size and MD5 checked.
    pub path: PathBuf,
    /// The image was already there; nothing was fetched.
    pub reused: bool,
    /// Bytes a previous run had stored when this one started.
    pub resumed_from: u64,
    /// Body bytes received over HTTP by this call, over all attempts.
    pub bytes_fetched: u64,
    /// HTTP requests made.
    pub attempts: u32,
    /// Times the partial image was discarded because a resume was refused.
    pub restarts: u32,
}

/// How a download ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadOutcome {
    /// The image is complete and verified.
    Verified(Downloaded),
    /// The cancellation token fired; the checkpoint is valid for a later resume.
    Cancelled {
        /// Bytes this call left durable on disk (0 if it was cancelled before starting).
        durable_bytes: u64,
    },
}

/// A URL without its query, escaped: fit for logs and reports.
pub(crate) fn redacted(url: &str) -> String {
    http::redact(url).escape_debug().take(200).collect()
}

/// Checks an image URL as a download would before its first request.
pub(crate) fn check_url(url: &str) -> Result<(), &'static str> {
    http::parse_url(url).map(drop)
}

/// One lock per image MD5; entries die with their last user.
type LockMap = HashMap<[u8; 16], Weak<tokio::sync::Mutex<()>>>;

/// Downloads firmware images into one directory. Clones share the directory and its locks,
/// so two subdevices updating to the same image never write the same files at once: the
/// second waits and then reuses the finished image.
#[derive(Debug, Clone)]
pub struct Downloader {
    dir: PathBuf,
    config: DownloadConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    locks: Arc<Mutex<LockMap>>,
    tasks: TaskTracker,
}

impl Downloader {
    /// A downloader storing images under `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>, config: DownloadConfig) -> Self {
        Downloader {
            dir: dir.into(),
            config,
            tls: None,
            locks: Arc::default(),
            tasks: TaskTracker::new(),
        }
    }

    /// Runs file jobs and connection tasks on `tasks`, so whoever owns it can wait for the
    /// last write (the gateway's `kill` and `shutdown` do).
    pub fn with_tracker(mut self, tasks: TaskTracker) -> Self {
        self.tasks = tasks;
        self
    }

    /// Fetches `https://` URLs with this TLS client configuration (without one they fail).
    pub fn with_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The directory images are stored in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fetches `spec` (or reuses a finished copy) and verifies it. `progress` is called on
    /// every stored chunk; `cancel` stops the download promptly with a valid checkpoint.
    pub async fn fetch(
        &self,
        spec: &ImageSpec,
        progress: impl FnMut(Progress) + Send,
        cancel: &CancellationToken,
    ) -> Result<DownloadOutcome, DownloadError> {
        let (_keep, urls) = watch::channel(spec.url.clone());
        self.fetch_with_urls(spec, urls, progress, cancel).await
    }

    /// Like [`Downloader::fetch`], but every request uses the latest URL of `urls` (a fresh
    /// signature of the same image replaces one that is about to expire); `spec.url` is ignored.
    pub async fn fetch_with_urls(
        &self,
        spec: &ImageSpec,
        urls: watch::Receiver<String>,
        mut progress: impl FnMut(Progress) + Send,
        cancel: &CancellationToken,
    ) -> Result<DownloadOutcome, DownloadError> {
        let lock = self.lock_for(spec.md5);
        let guard = tokio::select! {
            // Waiting for the lock changes nothing; dropping the wait is harmless.
            _ = cancel.cancelled() => return Ok(DownloadOutcome::Cancelled { durable_bytes: 0 }),
            guard = lock.lock_owned() => Arc::new(store::ImageGuard::new(guard, self.tasks.clone())),
        };
        let env = driver::Env {
            dir: &self.dir,
            config: &self.config,
            tls: self.tls.as_ref(),
            tasks: &self.tasks,
            cancel,
        };
        driver::run(spec, urls, env, &mut progress, guard).await
    }

    fn lock_for(&self, md5: [u8; 16]) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .expect("no code panics while holding the lock map");
        if let Some(lock) = locks.get(&md5).and_then(Weak::upgrade) {
            return lock;
        }
        locks.retain(|_, weak| weak.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(md5, Arc::downgrade(&lock));
        lock
    }
}
