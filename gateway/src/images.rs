//! Image downloads as background jobs the subdevice drivers watch.
//!
//! Each subdevice that needs an image gets its own job; the [`Downloader`] underneath locks per
//! MD5, so when several subdevices need one image it is fetched once and the others reuse it.
//! A job first takes one of the gateway's update slots (the concurrency limit) and reserves
//! room under the storage quota; both are handed to the subdevice driver with the image and
//! held until its burn ends.

use crate::download::{DownloadError, DownloadOutcome, Downloader, FailureKind, ImageSpec};
use crate::quota::{Quota, Reservation};
use crate::update::Failure;
use crate::validate::Target;
use crate::{GatewayEvent, Shared};
use otasim_protocol::{DeviceId, OtaResultCode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{Instrument, info, warn};

/// How often a download tells observers its byte count (progress bars redraw from it).
const PROGRESS_EVENT_EVERY: Duration = Duration::from_millis(100);

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
    /// With the outcome: the update slot, to hold until the burn ends.
    pub(crate) slot: Option<Arc<UpdateSlot>>,
}

/// One of the gateway's concurrent updates, with the quota room of its image.
#[derive(Debug)]
pub(crate) struct UpdateSlot {
    _permit: OwnedSemaphorePermit,
    _room: Option<Reservation>,
}

pub(crate) struct ImageCache {
    downloader: Downloader,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    quota: Arc<Quota>,
}

impl ImageCache {
    pub(crate) fn new(
        downloader: Downloader,
        max_concurrent: usize,
        quota_bytes: Option<u64>,
        shared: Arc<Shared>,
    ) -> Self {
        let quota = Quota::new(downloader.dir().to_path_buf(), quota_bytes);
        ImageCache {
            downloader,
            shared,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            quota: Arc::new(quota),
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
        let (slots, quota) = (Arc::clone(&self.slots), Arc::clone(&self.quota));
        let device = device.clone();
        let span = tracing::info_span!("download", device = %device, md5 = %target.md5_hex());
        tokio::spawn(
            async move {
                let cancel = shared.cancel.child_token();
                let mut shown: Option<std::time::Instant> = None;
                let progress = |p: crate::download::Progress| {
                    let now = std::time::Instant::now();
                    let last = p.downloaded_bytes == p.file_size;
                    if last || shown.is_none_or(|t| now - t >= PROGRESS_EVENT_EVERY) {
                        shown = Some(now);
                        shared.emit(GatewayEvent::DownloadProgress {
                            device: device.clone(),
                            stored_bytes: p.downloaded_bytes,
                            total_bytes: p.file_size,
                        });
                    }
                    tx.send_replace(JobState {
                        stored_bytes: p.downloaded_bytes,
                        total_bytes: p.file_size,
                        at: shared.started.elapsed(),
                        outcome: None,
                        slot: None,
                    });
                };
                let permit = tokio::select! {
                    // Waiting for a slot changes nothing.
                    _ = tx.closed() => return,
                    permit = slots.acquire_owned() => permit.expect("the semaphore is never closed"),
                };
                let room = match quota.reserve(spec.md5, spec.file_size) {
                    Ok(room) => room,
                    Err(failure) => {
                        warn!(reason = %failure.message, "storage quota refused the image");
                        return finish(&tx, &shared, Err(failure), None);
                    }
                };
                let slot = Arc::new(UpdateSlot { _permit: permit, _room: Some(room) });
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
                finish(&tx, &shared, outcome, Some(slot));
            }
            .instrument(span),
        );
        rx
    }
}

fn finish(
    tx: &watch::Sender<JobState>,
    shared: &Shared,
    outcome: Result<PathBuf, Failure>,
    slot: Option<Arc<UpdateSlot>>,
) {
    // Copy out of the channel first: a borrow held while sending would deadlock.
    let last_state = tx.borrow().clone();
    tx.send_replace(JobState {
        outcome: Some(outcome),
        at: shared.started.elapsed(),
        slot,
        ..last_state
    });
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
