//! Image downloads as background jobs the subdevice drivers watch.
//!
//! Each subdevice that needs an image gets its own job; the [`Downloader`] underneath locks per
//! MD5, so when several subdevices need one image it is fetched once and the others reuse it
//! (or resume it from its checkpoint, when the subdevice fetching it gave it up). A job takes
//! one of the gateway's download slots (the concurrency limit) until its download ends, and
//! reserves room under the storage quota, which is handed to the subdevice driver with the
//! image and held until its burn ends.

use crate::download::{DownloadError, DownloadOutcome, Downloader, FailureKind, ImageSpec};
use crate::quota::{Quota, Reservation};
use crate::update::Failure;
use crate::validate::Target;
use crate::{GatewayEvent, PartialRetention, Shared};
use otasim_protocol::{DeviceId, OtaResultCode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
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
    /// With the outcome: the image's quota room, to hold until the burn ends.
    pub(crate) room: Option<Arc<Reservation>>,
}

/// A running job as its subdevice driver holds it. Dropping it cancels the job, which then
/// writes its checkpoint, so whoever needs the image next resumes where it stopped.
pub(crate) struct Job {
    pub(crate) state: watch::Receiver<JobState>,
    url: watch::Sender<String>,
}

impl Job {
    /// The Hub sent the same image under a fresh URL: the next request uses it.
    pub(crate) fn refresh_url(&self, url: String) {
        self.url.send_replace(url);
    }
}

pub(crate) struct ImageCache {
    downloader: Downloader,
    shared: Arc<Shared>,
    /// Downloads at once (the concurrency limit); burns need none.
    slots: Arc<Semaphore>,
    quota: Arc<Quota>,
}

impl ImageCache {
    pub(crate) fn new(
        downloader: Downloader,
        max_concurrent: usize,
        quota_bytes: Option<u64>,
        retention: PartialRetention,
        shared: Arc<Shared>,
    ) -> Self {
        let quota = Quota::new(downloader.dir().to_path_buf(), quota_bytes, retention);
        ImageCache {
            downloader,
            shared,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            quota: Arc::new(quota),
        }
    }

    /// Deletes partial images past the retention limits (none is in use at boot).
    pub(crate) fn prune_partials(&self) {
        self.quota.prune_partials();
    }

    /// Starts fetching `target` for `device`.
    pub(crate) fn fetch(&self, target: &Target, device: &DeviceId) -> Job {
        let spec = ImageSpec {
            url: target.url.clone(),
            file_size: target.size_bytes,
            md5: target.md5,
        };
        let (tx, rx) = watch::channel(JobState {
            total_bytes: target.size_bytes,
            ..JobState::default()
        });
        let (url_tx, urls) = watch::channel(target.url.clone());
        let downloader = self.downloader.clone();
        let shared = Arc::clone(&self.shared);
        let (slots, quota) = (Arc::clone(&self.slots), Arc::clone(&self.quota));
        let device = device.clone();
        let span = tracing::info_span!("download", device = %device, md5 = %target.md5_hex());
        let job = async move {
            let permit = tokio::select! {
                // Waiting for a slot changes nothing.
                _ = tx.closed() => return,
                permit = slots.acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let room = match quota.reserve(spec.md5, spec.file_size) {
                Ok(room) => Arc::new(room),
                Err(failure) => {
                    warn!(reason = %failure.message, "storage quota refused the image");
                    return finish(&tx, &shared, Err(failure), None);
                }
            };
            let result = download(&downloader, &spec, urls, &tx, &shared, &device).await;
            drop(permit);
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
                Ok(DownloadOutcome::Cancelled { durable_bytes }) => {
                    info!(durable_bytes, "download abandoned, checkpoint kept");
                    drop(room);
                    return quota.prune_partials();
                }
                Err(e) => {
                    warn!(error = %e, "download failed");
                    Err(failure_of(&e))
                }
            };
            let keep = outcome.is_ok().then_some(room);
            finish(&tx, &shared, outcome, keep);
            quota.prune_partials();
        };
        self.shared.spawn(job.instrument(span));
        Job {
            state: rx,
            url: url_tx,
        }
    }
}

/// Runs the download until it ends; when the watcher goes away the download is cancelled and
/// awaited, so its checkpoint is written before the image lock passes to the next user.
async fn download(
    downloader: &Downloader,
    spec: &ImageSpec,
    urls: watch::Receiver<String>,
    tx: &watch::Sender<JobState>,
    shared: &Shared,
    device: &DeviceId,
) -> Result<DownloadOutcome, DownloadError> {
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
            room: None,
        });
    };
    let fetch = downloader.fetch_with_urls(spec, urls, progress, &cancel);
    tokio::pin!(fetch);
    tokio::select! {
        // Cancel-safe: the fetch is not dropped but driven to its end below.
        _ = tx.closed() => cancel.cancel(),
        r = &mut fetch => return r,
    }
    fetch.await
}

fn finish(
    tx: &watch::Sender<JobState>,
    shared: &Shared,
    outcome: Result<PathBuf, Failure>,
    room: Option<Arc<Reservation>>,
) {
    // Copy out of the channel first: a borrow held while sending would deadlock.
    let last_state = tx.borrow().clone();
    tx.send_replace(JobState {
        outcome: Some(outcome),
        at: shared.started.elapsed(),
        room,
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
