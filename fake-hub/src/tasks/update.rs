//! One device's update under a task, as a pure state machine: it takes events (start, a
//! progress report, a version report, a clock tick, cancel) with the hub's monotonic time and
//! answers whether the hub must send `update_firmware`. The scheduler (`schedule`) keeps the
//! timers; the hub's drivers do the sending.

use super::UpdateState;
use otasim_protocol::{DeviceId, OtaResultCode, ProgressReport, ProgressState};
use serde::Serialize;
use std::time::Duration;
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

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
