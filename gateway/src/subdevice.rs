//! The driver of one subdevice: feeds the update machine and performs its actions.

use crate::burner::{BurnRequest, Burner};
use crate::images::{ImageCache, Job, JobState};
use crate::outbox::Outbound;
use crate::quota::Reservation;
use crate::update::{Action, Event, Failure, UpdateMachine};
use crate::{GatewayEvent, Shared};
use otasim_protocol::{
    DeviceId, DeviceOtaMessage, OtaResultCode, ProgressReport, ProgressState, Topic,
};
use rumqttc::QoS;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

type BurnTask = JoinHandle<Option<Result<(), Failure>>>;

/// What the MQTT session tells a subdevice's driver.
#[derive(Debug)]
pub(crate) enum Input {
    /// The Hub accepted `online`: report the running version.
    Online,
    /// The MQTT connection dropped; updates in flight carry on.
    Offline,
    /// An `update_firmware` arrived on the subdevice's topic.
    Update(otasim_protocol::UpdateFirmware),
    /// An `update_firmware` arrived that could not be read: the Hub is told why.
    Unreadable {
        /// The version it names, made safe to report.
        version: String,
        /// What was wrong with it.
        reason: String,
    },
}

pub(crate) struct SubdeviceDriver {
    id: DeviceId,
    machine: UpdateMachine,
    shared: Arc<Shared>,
    burner: Arc<dyn Burner>,
    images: Arc<ImageCache>,
    job: Option<Job>,
    burn: Option<BurnTask>,
    /// The quota room of the image being burned, released when the burn ends.
    room: Option<Arc<Reservation>>,
}

impl SubdeviceDriver {
    pub(crate) fn new(
        id: DeviceId,
        running: String,
        shared: Arc<Shared>,
        burner: Arc<dyn Burner>,
        images: Arc<ImageCache>,
    ) -> Self {
        let machine = UpdateMachine::new(running, shared.max_image_bytes);
        SubdeviceDriver {
            id,
            machine,
            shared,
            burner,
            images,
            job: None,
            burn: None,
            room: None,
        }
    }

    /// Runs until shutdown or until the session drops its sender.
    pub(crate) async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        let span = tracing::info_span!("subdevice", device = %self.id);
        async move {
            loop {
                tokio::select! {
                    // Cancel-safe: nothing is half-done between awaits of this loop.
                    _ = self.shared.cancel.cancelled() => break,
                    input = inputs.recv() => match input {
                        Some(input) => self.on_input(input).await,
                        None => break,
                    },
                    // Cancel-safe: `changed` loses nothing, the state stays in the channel.
                    (event, room) = next_job_event(&mut self.job), if self.job.is_some() => {
                        if matches!(event, Event::Downloaded(_)) {
                            self.job = None;
                            self.room = room;
                        }
                        self.apply(event).await;
                    }
                    // Cancel-safe: polling a JoinHandle again after a drop is fine.
                    result = join_burn(&mut self.burn), if self.burn.is_some() => {
                        self.burn = None;
                        let result = result.and_then(|()| self.check_version());
                        self.apply(Event::Burned(result)).await;
                        if self.burn.is_none() {
                            self.room = None;
                        }
                    }
                }
            }
            if let Some(burn) = self.burn.take() {
                burn.abort();
            }
        }
        .instrument(span)
        .await
    }

    async fn on_input(&mut self, input: Input) {
        match input {
            Input::Offline => debug!("hub connection lost"),
            // The version goes to the Hub; an update a previous run left unfinished continues
            // only when the Hub answers with `update_firmware` (the task may be cancelled), and
            // then resumes from the checkpoint with the command's fresh URL.
            Input::Online => {
                let version = self.machine.running_version().to_owned();
                self.publish(DeviceOtaMessage::ReportVersion { version })
                    .await;
            }
            Input::Update(cmd) => {
                info!(version = %cmd.version.escape_debug(), size = cmd.file_size, "update_firmware received");
                self.apply(Event::Command(cmd)).await;
            }
            Input::Unreadable { version, reason } => {
                warn!(%reason, "unreadable update_firmware refused");
                let message = format!("rejected update_firmware: {reason}");
                let report = ProgressReport::fail(&version, OtaResultCode::UpgradeFailed, message);
                self.perform(Action::Report(report)).await;
            }
        }
    }

    async fn apply(&mut self, event: Event) {
        for action in self.machine.handle(event) {
            self.perform(action).await;
        }
    }

    async fn perform(&mut self, action: Action) {
        match action {
            Action::Report(report) => {
                self.shared.emit(GatewayEvent::Report {
                    device: self.id.clone(),
                    report: report.clone(),
                });
                self.publish(DeviceOtaMessage::ReportProgress(report)).await;
            }
            Action::Download(target) => self.job = Some(self.images.fetch(&target, &self.id)),
            Action::AbandonDownload => {
                self.job = None;
                self.room = None;
            }
            Action::RefreshUrl(url) => {
                info!("fresh url for the running download");
                if let Some(job) = &self.job {
                    job.refresh_url(url);
                }
            }
            Action::Burn { image, version } => self.start_burn(image, version.to_string()),
            Action::ReportVersion(version) => {
                self.publish(DeviceOtaMessage::ReportVersion { version })
                    .await;
            }
        }
    }

    fn start_burn(&mut self, image: PathBuf, version: String) {
        let burner = Arc::clone(&self.burner);
        let shared = Arc::clone(&self.shared);
        let id = self.id.clone();
        let limit = self.shared.burn_timeout;
        let task = self.shared.spawn(async move {
            let last = AtomicU8::new(u8::MAX);
            let progress = |percent: u8| {
                // Only changes are worth an event.
                if last.swap(percent, Ordering::Relaxed) != percent {
                    shared.emit(GatewayEvent::BurnProgress {
                        device: id.clone(),
                        percent,
                    });
                }
            };
            let cancel = shared.cancel.child_token();
            let request = BurnRequest {
                device: &id,
                image: &image,
                version: &version,
                progress: &progress,
                cancel: &cancel,
            };
            match tokio::time::timeout(limit, burner.burn(request)).await {
                Ok(result) => result.map_err(|e| {
                    warn!(error = %e, "burn failed");
                    Failure::new(OtaResultCode::UpgradeFailed, e.to_string())
                }),
                Err(_) => {
                    warn!(?limit, "burn timed out");
                    let secs = limit.as_secs_f64();
                    let message = format!("burn did not finish within {secs:.1} s (burn timeout)");
                    Err(Failure::new(OtaResultCode::UpgradeFailed, message))
                }
            }
        });
        self.burn = Some(task);
    }

    /// After a burn the device must run what was burned; a device that says otherwise failed.
    fn check_version(&self) -> Result<(), Failure> {
        let Some(expected) = self.machine.target_version() else {
            return Ok(());
        };
        match self.burner.running_version(&self.id) {
            Some(running) if running != expected => Err(Failure::new(
                OtaResultCode::UpgradeFailed,
                format!(
                    "burned {expected} but the subdevice reports version {} afterwards",
                    running.escape_debug()
                ),
            )),
            _ => Ok(()),
        }
    }

    async fn publish(&self, msg: DeviceOtaMessage) {
        let qos = match &msg {
            DeviceOtaMessage::ReportProgress(p) if p.state == ProgressState::Downloading => {
                QoS::AtMostOnce
            }
            _ => QoS::AtLeastOnce,
        };
        let message = Outbound {
            device: Some(self.id.clone()),
            topic: Topic::OtaReport(self.id.clone()).to_string(),
            qos,
            payload: msg.encode(),
        };
        if self.shared.outbox.send(message).await.is_err() {
            debug!("session gone, report not sent");
        }
    }
}

async fn next_job_event(job: &mut Option<Job>) -> (Event, Option<Arc<Reservation>>) {
    let rx: &mut watch::Receiver<JobState> =
        &mut job.as_mut().expect("guarded by job.is_some()").state;
    // A closed channel means the job task ended without an outcome (gateway shutting down).
    if rx.changed().await.is_err() {
        let abandoned = Failure::new(OtaResultCode::UpgradeFailed, "download abandoned");
        return (Event::Downloaded(Err(abandoned)), None);
    }
    let state = rx.borrow_and_update().clone();
    match state.outcome {
        Some(outcome) => (Event::Downloaded(outcome), state.room),
        None => {
            let progress = Event::Progress {
                bytes: state.stored_bytes,
                total: state.total_bytes,
                now: state.at,
            };
            (progress, None)
        }
    }
}

async fn join_burn(burn: &mut Option<BurnTask>) -> Result<(), Failure> {
    let handle = burn.as_mut().expect("guarded by burn.is_some()");
    match handle.await {
        Ok(Some(result)) => result,
        Ok(None) => Err(Failure::new(
            OtaResultCode::UpgradeFailed,
            "burn stopped: the gateway is powering off",
        )),
        Err(e) => Err(Failure::new(
            OtaResultCode::UpgradeFailed,
            format!("burner task failed: {e}"),
        )),
    }
}
