//! Update tasks and per-device progress, as the console and the batch-update API define them.
//!
//! [`DeviceUpdate`] is a pure state machine: it takes events (start, a progress report, a
//! version report, a clock tick, cancel) with the hub's monotonic time and answers whether the
//! hub must send `update_firmware`. The driver (`tasks_run`) does the sending and the timers.

use otasim_protocol::{DeviceId, OtaResultCode, ProgressReport, ProgressState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::tasks_options::{RateLimit, TaskOptions, TaskRequest};

/// How a push chooses its devices: the console's three methods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum PushMethod {
    /// 1: every device of the product whose version is in `from_versions`.
    Versions {
        /// The source versions to upgrade from.
        from_versions: Vec<String>,
    },
    /// 2: the chosen devices whose version is in `from_versions`.
    DevicesAndVersions {
        /// Device names of the product.
        devices: Vec<String>,
        /// The source versions to upgrade from.
        from_versions: Vec<String>,
    },
    /// 3: the listed devices, whatever their version.
    Devices {
        /// Device names of the product.
        devices: Vec<String>,
    },
}

/// A console push: which firmware, to whom. Unknown fields are refused by [`PushMethod`], which
/// receives every field the request itself does not take (serde cannot deny unknown fields on a
/// struct with a flattened member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The product whose firmware is pushed.
    pub product_id: String,
    /// The firmware version (already uploaded).
    pub version: String,
    /// How devices are chosen.
    #[serde(flatten)]
    pub method: PushMethod,
}

/// Where one device's update stands on the Hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UpdateState {
    /// Waiting for the task's start delay or rate limit.
    Queued,
    /// `update_firmware` sent (or waiting for the device to come online).
    Pushed,
    /// The device reports downloading.
    Downloading {
        /// The last percentage reported.
        percent: u8,
    },
    /// The device reports burning.
    Burning,
    /// The device reported `done`; waiting for its `report_version` (only under the task
    /// option `require_version_report`; otherwise `done` is success).
    Done,
    /// An attempt failed; the hub re-sends `update_firmware` after the retry interval.
    WaitingRetry {
        /// The failure code of the attempt.
        code: i32,
        /// Why it failed.
        message: String,
    },
    /// The device reported `done` (or, under `require_version_report`, the target version
    /// after `done`).
    Succeeded,
    /// The last attempt failed (device `fail`, a wrong version after `done`, or a timeout).
    Failed {
        /// The failure code.
        code: i32,
        /// The device's `result_msg`, or the Hub's reason.
        message: String,
    },
    /// The task was cancelled, or a later task took the device over.
    Cancelled {
        /// Why.
        reason: String,
    },
}

impl UpdateState {
    /// Whether nothing more will happen without a new push.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            UpdateState::Succeeded | UpdateState::Failed { .. } | UpdateState::Cancelled { .. }
        )
    }

    /// A short label for tables, summaries and fault milestones.
    pub fn label(&self) -> &'static str {
        match self {
            UpdateState::Queued => "queued",
            UpdateState::Pushed => "pushed",
            UpdateState::Downloading { .. } => "downloading",
            UpdateState::Burning => "burning",
            UpdateState::Done => "done",
            UpdateState::WaitingRetry { .. } => "waiting_retry",
            UpdateState::Succeeded => "succeeded",
            UpdateState::Failed { .. } => "failed",
            UpdateState::Cancelled { .. } => "cancelled",
        }
    }

    fn in_flight(&self) -> bool {
        matches!(
            self,
            UpdateState::Pushed
                | UpdateState::Downloading { .. }
                | UpdateState::Burning
                | UpdateState::Done
        )
    }
}

/// What the hub must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing.
    None,
    /// Send `update_firmware` with a freshly signed URL.
    Send,
    /// The report would move the state backwards: recorded, not applied.
    NotApplied,
}

/// Per-device timing taken from the task's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Policy {
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) retry_interval: Duration,
    pub(crate) require_version_report: bool,
}

/// One device's update under a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceUpdate {
    /// The task it belongs to.
    pub task_id: u64,
    /// The device.
    pub device: DeviceId,
    /// The version it ran when the task was created, if known.
    pub from_version: Option<String>,
    /// The version pushed.
    pub target_version: String,
    /// Where it stands.
    pub state: UpdateState,
    /// Every state it went through, with the hub's monotonic time in milliseconds.
    pub history: Vec<(u64, UpdateState)>,
    /// How many `update_firmware` commands were sent for it.
    pub commands_sent: u32,
    /// Attempts started (1 + retries used); 0 while queued.
    pub attempts: u32,
    /// Something worth showing that did not change the outcome, such as a version reported
    /// after `done` that is not the target ("reported 0.1 after done").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(skip)]
    pub(crate) policy: Policy,
    /// When the queued update starts, the attempt times out, or the retry is due.
    #[serde(skip)]
    pub(crate) wake_at: Option<Duration>,
}

fn ms(at: Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
}

impl DeviceUpdate {
    /// A queued update that starts at `start_at`.
    pub(crate) fn new(
        task_id: u64,
        device: DeviceId,
        from_version: Option<String>,
        target_version: String,
        policy: Policy,
        at: Duration,
        start_at: Duration,
    ) -> Self {
        DeviceUpdate {
            task_id,
            device,
            from_version,
            target_version,
            state: UpdateState::Queued,
            history: vec![(ms(at), UpdateState::Queued)],
            commands_sent: 0,
            attempts: 0,
            warning: None,
            policy,
            wake_at: Some(start_at),
        }
    }

    fn set(&mut self, state: UpdateState, at: Duration) {
        if self.state != state {
            self.history.push((ms(at), state.clone()));
            self.state = state;
        }
    }

    /// Starts an attempt: `update_firmware` goes out and the attempt's timeout starts.
    fn start_attempt(&mut self, at: Duration) -> Effect {
        self.attempts = self.attempts.saturating_add(1);
        self.wake_at = self.policy.timeout.map(|t| at.saturating_add(t));
        self.set(UpdateState::Pushed, at);
        Effect::Send
    }

    /// Records that a command went out.
    pub(crate) fn sent(&mut self) {
        self.commands_sent = self.commands_sent.saturating_add(1);
    }

    /// An attempt failed: retry after the interval if retries are left, else fail for good.
    fn fail(&mut self, code: i32, message: String, at: Duration) {
        if self.attempts <= self.policy.retries {
            self.wake_at = Some(at.saturating_add(self.policy.retry_interval));
            self.set(UpdateState::WaitingRetry { code, message }, at);
        } else {
            self.wake_at = None;
            self.set(UpdateState::Failed { code, message }, at);
        }
    }

    /// Applies a progress report about `report.version`; reports about other versions, or
    /// outside an attempt, are stale. The state never moves backwards within an attempt: a
    /// late `downloading` after `burning` is [`Effect::NotApplied`].
    pub(crate) fn on_progress(&mut self, report: &ProgressReport, at: Duration) -> Effect {
        if report.version != self.target_version || !self.state.in_flight() {
            return Effect::None;
        }
        let rank = |s: &UpdateState| match s {
            UpdateState::Downloading { .. } => 1,
            UpdateState::Burning => 2,
            UpdateState::Done | UpdateState::Succeeded => 3,
            _ => 0,
        };
        let state = match report.state {
            ProgressState::Downloading => UpdateState::Downloading {
                percent: report.percent.unwrap_or(0),
            },
            ProgressState::Burning => UpdateState::Burning,
            ProgressState::Done if !self.policy.require_version_report => {
                self.wake_at = None;
                UpdateState::Succeeded
            }
            ProgressState::Done => UpdateState::Done,
            ProgressState::Fail => {
                let code = report.result_code.code();
                self.fail(code, report.result_msg.clone(), at);
                return Effect::None;
            }
        };
        if rank(&state) < rank(&self.state) {
            return Effect::NotApplied;
        }
        self.set(state, at);
        Effect::None
    }

    /// Applies a `report_version`. After `done`, the target version succeeds and any other
    /// fails the attempt. Earlier in an attempt, an old version means the device did not get the
    /// command or restarted (a gateway reports versions when it brings a subdevice online): the
    /// hub re-sends it with a fresh URL and the attempt goes back to `pushed`.
    pub(crate) fn on_version(&mut self, version: &str, at: Duration) -> Effect {
        match &self.state {
            UpdateState::Succeeded if version != self.target_version => {
                self.warning = Some(format!(
                    "reported {version} after done (target {})",
                    self.target_version
                ));
                Effect::None
            }
            UpdateState::Done if version == self.target_version => {
                self.wake_at = None;
                self.set(UpdateState::Succeeded, at);
                Effect::None
            }
            UpdateState::Done => {
                let message = format!(
                    "device reported version {version} after done, expected {}",
                    self.target_version
                );
                self.fail(OtaResultCode::UpgradeFailed.code(), message, at);
                Effect::None
            }
            UpdateState::Pushed | UpdateState::Downloading { .. } | UpdateState::Burning
                if version != self.target_version =>
            {
                self.set(UpdateState::Pushed, at);
                Effect::Send
            }
            _ => Effect::None,
        }
    }

    /// The hub's clock reached `at`: start a queued update, time out an attempt, or retry.
    pub(crate) fn on_tick(&mut self, at: Duration) -> Effect {
        match self.wake_at {
            Some(due) if at >= due => {}
            _ => return Effect::None,
        }
        match &self.state {
            UpdateState::Queued | UpdateState::WaitingRetry { .. } => self.start_attempt(at),
            s if s.in_flight() => {
                let timeout = self.policy.timeout.unwrap_or_default();
                let message = format!("timed out on the hub after {} ms", timeout.as_millis());
                self.fail(OtaResultCode::DownloadTimeout.code(), message, at);
                // A retry due at once starts in the same tick.
                self.on_tick(at)
            }
            _ => {
                self.wake_at = None;
                Effect::None
            }
        }
    }

    /// Cancels the update unless it is already final.
    pub(crate) fn cancel(&mut self, reason: String, at: Duration) {
        if !self.state.is_final() {
            self.wake_at = None;
            self.set(UpdateState::Cancelled { reason }, at);
        }
    }
}

/// A task as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskStatus {
    /// The task id.
    pub id: u64,
    /// The request that created it.
    pub request: PushRequest,
    /// Its options.
    pub options: TaskOptions,
    /// The devices it targets, by device.
    pub devices: BTreeMap<String, DeviceUpdate>,
    /// Devices it skipped because another task was pending on them: device to that task's id.
    pub skipped: BTreeMap<String, u64>,
    /// How many devices are in each state.
    pub summary: BTreeMap<String, usize>,
    /// How many devices failed with each failure code.
    pub failures: BTreeMap<i32, usize>,
    /// Devices with a warning (see [`DeviceUpdate::warning`]): device to warning.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub warnings: BTreeMap<String, String>,
    /// Whether it was cancelled.
    pub cancelled: bool,
}

impl TaskStatus {
    /// Whether every device's update is final.
    pub fn is_finished(&self) -> bool {
        self.devices.values().all(|d| d.state.is_final())
    }
}

/// Counts per state label and per failure code.
pub(crate) fn summarize<'a>(
    devices: impl Iterator<Item = &'a DeviceUpdate>,
) -> (BTreeMap<String, usize>, BTreeMap<i32, usize>) {
    let mut summary = BTreeMap::new();
    let mut failures = BTreeMap::new();
    for d in devices {
        *summary.entry(d.state.label().to_owned()).or_insert(0) += 1;
        if let UpdateState::Failed { code, .. } = &d.state {
            *failures.entry(*code).or_insert(0) += 1;
        }
    }
    (summary, failures)
}

#[cfg(test)]
#[path = "tasks_tests.rs"]
mod tests;
