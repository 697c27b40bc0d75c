//! The driver of one subdevice: feeds the update machine and performs its actions.

use crate::burner::Burner;
use crate::images::{ImageCache, JobState};
use crate::update::{Action, Event, Failure, UpdateMachine};
use crate::{GatewayEvent, Shared};
use otasim_protocol::{DeviceId, DeviceOtaMessage, OtaResultCode, ProgressState, Topic};
use rumqttc::QoS;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

/// What the MQTT session tells a subdevice's driver.
#[derive(Debug)]
pub(crate) enum Input {
    /// The Hub accepted `online`: subscribe and report the running version.
    Online,
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
                    event = next_job_event(&mut self.job), if self.job.is_some() => {
                        if matches!(event, Event::Downloaded(_)) {
                            self.job = None;
                        }
                        self.apply(event).await;
                    }
                    result = join_burn(&mut self.burn), if self.burn.is_some() => {
                        self.burn = None;
                        self.apply(Event::Burned(result)).await;
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
            Input::Online => {
                let topic = Topic::OtaUpdate(self.id.clone()).to_string();
                if let Err(e) = self.shared.client.subscribe(topic, QoS::AtLeastOnce).await {
                    warn!(error = %e, "subscribe to ota topic failed");
                }
                let version = self.machine.running_version().to_owned();
                self.publish(DeviceOtaMessage::ReportVersion { version })
                    .await;
            }
            Input::Update(cmd) => {
                info!(version = %cmd.version.escape_debug(), size = cmd.file_size, "update_firmware received");
                self.apply(Event::Command(cmd)).await;
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
            Action::AbandonDownload => self.job = None,
            Action::Burn { image, version } => self.start_burn(image, version.to_string()),
            Action::ReportVersion(version) => {
                self.publish(DeviceOtaMessage::ReportVersion { version })
                    .await;
            }
        }
    }

    fn start_burn(&mut self, image: PathBuf, version: String) {
        let burner = Arc::clone(&self.burner);
        let id = self.id.clone();
        self.burn = Some(tokio::spawn(async move {
            burner
                .burn(&id, &image, &version)
                .await
                .map_err(|e| Failure::new(OtaResultCode::UpgradeFailed, e.to_string()))
        }));
    }

    async fn publish(&self, msg: DeviceOtaMessage) {
        let qos = match &msg {
            DeviceOtaMessage::ReportProgress(p) if p.state == ProgressState::Downloading => {
                QoS::AtMostOnce
            }
            _ => QoS::AtLeastOnce,
        };
        let topic = Topic::OtaReport(self.id.clone()).to_string();
        debug!(%topic, "publish report");
        if let Err(e) = self
            .shared
            .client
            .publish(topic, qos, false, msg.encode())
            .await
        {
            warn!(error = %e, "publishing report failed");
        }
    }
}

async fn next_job_event(job: &mut Option<watch::Receiver<JobState>>) -> Event {
    let rx = job.as_mut().expect("guarded by job.is_some()");
    // A closed channel means the job task ended without an outcome (gateway shutting down).
    if rx.changed().await.is_err() {
        return Event::Downloaded(Err(Failure::new(
            OtaResultCode::UpgradeFailed,
            "download abandoned",
        )));
    }
    let state = rx.borrow_and_update().clone();
    match state.outcome {
        Some(outcome) => Event::Downloaded(outcome),
        None => Event::Progress {
            bytes: state.stored_bytes,
            total: state.total_bytes,
            now: state.at,
        },
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
