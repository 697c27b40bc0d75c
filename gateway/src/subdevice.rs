//! The driver of one subdevice: feeds the update machine and performs its actions.

use crate::burner::{BurnRequest, Burner};
use crate::images::{ImageCache, JobState, UpdateSlot};
use crate::outbox::Outbound;
use crate::pending::PendingStore;
use crate::update::{Action, Event, Failure, UpdateMachine};
use crate::{GatewayEvent, Shared};
use otasim_protocol::{
    DeviceId, DeviceOtaMessage, OtaResultCode, ProgressState, Topic, UpdateFirmware,
};
use rumqttc::QoS;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

/// What the MQTT session tells a subdevice's driver.
#[derive(Debug)]
pub(crate) enum Input {
    /// The Hub accepted `online`: report the running version.
    Online,
    /// The MQTT connection dropped; updates in flight carry on.
    Offline,
    /// An `update_firmware` arrived on the subdevice's topic.
    Update(otasim_protocol::UpdateFirmware),
}

pub(crate) struct SubdeviceDriver {
    id: DeviceId,
    machine: UpdateMachine,
    shared: Arc<Shared>,
    burner: Arc<dyn Burner>,
    images: Arc<ImageCache>,
    job: Option<watch::Receiver<JobState>>,
    burn: Option<JoinHandle<Result<(), Failure>>>,
    /// The update slot of the image being burned, released when the burn ends.
    slot: Option<Arc<UpdateSlot>>,
    pending: PendingStore,
    /// A command a previous run did not finish, replayed once the subdevice is online.
    resume: Option<UpdateFirmware>,
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
        let pending = PendingStore::new(&shared.state_dir);
        let resume = pending.load(&id);
        SubdeviceDriver {
            pending,
            resume,
            id,
            machine,
            shared,
            burner,
            images,
            job: None,
            burn: None,
            slot: None,
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
                    (event, slot) = next_job_event(&mut self.job), if self.job.is_some() => {
                        if matches!(event, Event::Downloaded(_)) {
                            self.job = None;
                            self.slot = slot;
                        }
                        self.apply(event).await;
                    }
                    result = join_burn(&mut self.burn), if self.burn.is_some() => {
                        self.burn = None;
                        let result = result.and_then(|()| self.check_version());
                        self.apply(Event::Burned(result)).await;
                        if self.burn.is_none() {
                            self.slot = None;
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
            Input::Online => {
                let version = self.machine.running_version().to_owned();
                self.publish(DeviceOtaMessage::ReportVersion { version })
                    .await;
                if let Some(cmd) = self.resume.take() {
                    info!(version = %cmd.version.escape_debug(), "resuming the update of a previous run");
                    self.on_command(cmd).await;
                }
            }
            Input::Update(cmd) => {
                info!(version = %cmd.version.escape_debug(), size = cmd.file_size, "update_firmware received");
                self.resume = None;
                self.on_command(cmd).await;
            }
        }
    }

    async fn on_command(&mut self, cmd: UpdateFirmware) {
        let actions = self.machine.handle(Event::Command(cmd.clone()));
        // A command that started a download is the one to finish after a reboot.
        if actions.iter().any(|a| matches!(a, Action::Download(_))) {
            self.pending.save(&self.id, &cmd);
        }
        for action in actions {
            self.perform(action).await;
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
                if matches!(report.state, ProgressState::Done | ProgressState::Fail) {
                    self.pending.clear(&self.id);
                }
                self.shared.emit(GatewayEvent::Report {
                    device: self.id.clone(),
                    report: report.clone(),
                });
                self.publish(DeviceOtaMessage::ReportProgress(report)).await;
            }
            Action::Download(target) => self.job = Some(self.images.fetch(&target, &self.id)),
            Action::AbandonDownload => {
                self.job = None;
                self.slot = None;
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
        self.burn = Some(tokio::spawn(async move {
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
            burner.burn(request).await.map_err(|e| {
                warn!(error = %e, "burn failed");
                Failure::new(OtaResultCode::UpgradeFailed, e.to_string())
            })
        }));
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

async fn next_job_event(
    job: &mut Option<watch::Receiver<JobState>>,
) -> (Event, Option<Arc<UpdateSlot>>) {
    let rx = job.as_mut().expect("guarded by job.is_some()");
    // A closed channel means the job task ended without an outcome (gateway shutting down).
    if rx.changed().await.is_err() {
        let abandoned = Failure::new(OtaResultCode::UpgradeFailed, "download abandoned");
        return (Event::Downloaded(Err(abandoned)), None);
    }
    let state = rx.borrow_and_update().clone();
    match state.outcome {
        Some(outcome) => (Event::Downloaded(outcome), state.slot),
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

async fn join_burn(burn: &mut Option<JoinHandle<Result<(), Failure>>>) -> Result<(), Failure> {
    let handle = burn.as_mut().expect("guarded by burn.is_some()");
    match handle.await {
        Ok(result) => result,
        Err(e) => Err(Failure::new(
            OtaResultCode::UpgradeFailed,
            format!("burner task failed: {e}"),
        )),
    }
}
