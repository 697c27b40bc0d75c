//! Image downloads as background jobs the subdevice drivers watch.
//!
//! Each subdevice that needs an image gets its own job; the [`Downloader`] underneath locks per
//! MD5, so when several subdevices need one image it is fetched once and the others reuse it.

use crate::download::{
    DownloadConfig, DownloadError, DownloadOutcome, Downloader, FailureKind, ImageSpec,
};
use crate::update::Failure;
use crate::validate::Target;
use crate::{GatewayEvent, Shared};
use otasim_protocol::{DeviceId, OtaResultCode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{Instrument, info, warn};

/// The state of one job, as its watcher sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobState {
    /// Bytes of the image stored so far.
    pub(crate) stored_bytes: u64,
    /// The image size.
    pub(crate) total_bytes: u64,
    /// When this state was produced, since the gateway started.
    pub(crate) at: Duration,
    /// Set once: the verified image, or why there is none.
    pub(crate) outcome: Option<Result<PathBuf, Failure>>,
}

pub(crate) struct ImageCache {
    downloader: Downloader,
    shared: Arc<Shared>,
}

impl ImageCache {
    pub(crate) fn new(dir: PathBuf, config: DownloadConfig, shared: Arc<Shared>) -> Self {
        ImageCache {
            downloader: Downloader::new(dir, config),
            shared,
        }
    }

    /// Starts fetching `target` for `device`. Dropping the receiver cancels the job, leaving a
    /// valid checkpoint behind.
    pub(crate) fn fetch(&self, target: &Target, device: &DeviceId) -> watch::Receiver<JobState> {
        let spec = ImageSpec {
            url: target.url.clone(),
            file_size: target.size_bytes,
            md5: target.md5,
        };
        let (tx, rx) = watch::channel(JobState {
            total_bytes: target.size_bytes,
            ..JobState::default()
        });
        let downloader = self.downloader.clone();
        let shared = Arc::clone(&self.shared);
        let device = device.clone();
        let span = tracing::info_span!("download", device = %device, md5 = %target.md5_hex());
        tokio::spawn(
            async move {
                let cancel = shared.cancel.child_token();
                let progress = |p: crate::download::Progress| {
                    tx.send_replace(JobState {
                        stored_bytes: p.downloaded_bytes,
                        total_bytes: p.file_size,
                        at: shared.started.elapsed(),
                        outcome: None,
                    });
                };
                let result = tokio::select! {
                    // Cancel-safe: the downloader checkpoints before it returns on cancel, and
                    // dropping its future mid-write leaves at worst bytes past the checkpoint,
                    // which a resume truncates.
                    _ = tx.closed() => { cancel.cancel(); return; }
                    r = downloader.fetch(&spec, progress, &cancel) => r,
                };
                let outcome = match result {
                    Ok(DownloadOutcome::Verified(done)) => {
                        info!(
                            reused = done.reused,
                            resumed_from = done.resumed_from,
                            attempts = done.attempts,
                            "image ready"
                        );
                        shared.emit(GatewayEvent::ImageFetched {
                            device,
                            md5: hex::encode(spec.md5),
                            bytes_transferred: done.bytes_fetched,
                        });
                        Ok(done.path)
                    }
                    Ok(DownloadOutcome::Cancelled { .. }) => return,
                    Err(e) => {
                        warn!(error = %e, "download failed");
                        Err(failure_of(&e))
                    }
                };
                // Copy out of the channel first: a borrow held while sending would deadlock.
                let last_state = tx.borrow().clone();
                tx.send_replace(JobState {
                    outcome: Some(outcome),
                    at: shared.started.elapsed(),
                    ..last_state
                });
            }
            .instrument(span),
        );
        rx
    }
}

fn failure_of(e: &DownloadError) -> Failure {
    let code = match e.kind() {
        FailureKind::DownloadTimeout => OtaResultCode::DownloadTimeout,
        FailureKind::FileNotExist => OtaResultCode::FileNotExist,
        FailureKind::SignatureExpired => OtaResultCode::SignatureExpired,
        FailureKind::Md5Mismatch => OtaResultCode::Md5Mismatch,
        FailureKind::UpgradeFailed => OtaResultCode::UpgradeFailed,
    };
    Failure::new(code, e.to_string())
}
