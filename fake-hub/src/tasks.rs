//! Update tasks and per-device progress, as the console shows them.

use otasim_protocol::{DeviceId, OtaResultCode, ProgressReport, ProgressState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

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

/// A console push: which firmware, to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// `update_firmware` sent (or waiting for the device to come online).
    Pushed,
    /// The device reports downloading.
    Downloading {
        /// The last percentage reported.
        percent: u8,
    },
    /// The device reports burning.
    Burning,
    /// The device reported `done`; waiting for its `report_version`.
    Done,
    /// The device reported the target version after `done`.
    Succeeded,
    /// The device reported `fail`, or a wrong version after `done`.
    Failed {
        /// The failure code.
        code: i32,
        /// The device's `result_msg`, or the Hub's reason.
        message: String,
    },
}

impl UpdateState {
    /// Whether nothing more will happen without a new push.
    pub fn is_final(&self) -> bool {
        matches!(self, UpdateState::Succeeded | UpdateState::Failed { .. })
    }

    /// A short label for tables and summaries.
    pub fn label(&self) -> &'static str {
        match self {
            UpdateState::Pushed => "pushed",
            UpdateState::Downloading { .. } => "downloading",
            UpdateState::Burning => "burning",
            UpdateState::Done => "done",
            UpdateState::Succeeded => "succeeded",
            UpdateState::Failed { .. } => "failed",
        }
    }
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
    /// Every state it went through, with the hub's monotonic time.
    pub history: Vec<(u64, UpdateState)>,
    /// How many `update_firmware` commands were sent for it.
    pub commands_sent: u32,
}

impl DeviceUpdate {
    pub(crate) fn new(
        task_id: u64,
        device: DeviceId,
        from_version: Option<String>,
        target_version: String,
        at: Duration,
    ) -> Self {
        DeviceUpdate {
            task_id,
            device,
            from_version,
            target_version,
            state: UpdateState::Pushed,
            history: vec![(at.as_millis() as u64, UpdateState::Pushed)],
            commands_sent: 0,
        }
    }

    fn set(&mut self, state: UpdateState, at: Duration) {
        if self.state != state {
            self.history.push((at.as_millis() as u64, state.clone()));
            self.state = state;
        }
    }

    /// Applies a progress report about `report.version`; reports about other versions are stale.
    pub(crate) fn on_progress(&mut self, report: &ProgressReport, at: Duration) {
        if report.version != self.target_version || self.state.is_final() {
            return;
        }
        let state = match report.state {
            ProgressState::Downloading => UpdateState::Downloading {
                percent: report.percent.unwrap_or(0),
            },
            ProgressState::Burning => UpdateState::Burning,
            ProgressState::Done => UpdateState::Done,
            ProgressState::Fail => UpdateState::Failed {
                code: report.result_code.code(),
                message: report.result_msg.clone(),
            },
        };
        self.set(state, at);
    }

    /// Applies a `report_version`. Returns whether the Hub should (re)send `update_firmware`:
    /// the device is reachable and still runs an old version before any progress was seen.
    pub(crate) fn on_version(&mut self, version: &str, at: Duration) -> bool {
        match &self.state {
            _ if self.state.is_final() => false,
            UpdateState::Done if version == self.target_version => {
                self.set(UpdateState::Succeeded, at);
                false
            }
            UpdateState::Done => {
                let message = format!(
                    "device reported version {version} after done, expected {}",
                    self.target_version
                );
                self.set(
                    UpdateState::Failed {
                        code: OtaResultCode::UpgradeFailed.code(),
                        message,
                    },
                    at,
                );
                false
            }
            UpdateState::Pushed => version != self.target_version,
            _ => false,
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
    /// The devices it targets, by device.
    pub devices: BTreeMap<String, DeviceUpdate>,
    /// How many devices are in each state.
    pub summary: BTreeMap<String, usize>,
}

impl TaskStatus {
    pub(crate) fn summarize(id: u64, request: PushRequest, devices: Vec<DeviceUpdate>) -> Self {
        let mut summary = BTreeMap::new();
        for d in &devices {
            *summary.entry(d.state.label().to_owned()).or_insert(0) += 1;
        }
        TaskStatus {
            id,
            request,
            devices: devices
                .into_iter()
                .map(|d| (d.device.to_string(), d))
                .collect(),
            summary,
        }
    }

    /// Whether every device's update is final.
    pub fn is_finished(&self) -> bool {
        self.devices.values().all(|d| d.state.is_final())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update() -> DeviceUpdate {
        let id = DeviceId::new("E69UADXUYY", "light1").unwrap();
        DeviceUpdate::new(1, id, Some("0.1".into()), "1.0".into(), Duration::ZERO)
    }

    #[test]
    fn succeeded_only_after_done_and_the_target_version() {
        let mut u = update();
        u.on_progress(&ProgressReport::downloading("1.0", 0), Duration::ZERO);
        u.on_progress(&ProgressReport::burning("1.0"), Duration::ZERO);
        u.on_progress(&ProgressReport::done("1.0"), Duration::ZERO);
        assert_eq!(u.state, UpdateState::Done);
        assert!(!u.on_version("1.0", Duration::ZERO));
        assert_eq!(u.state, UpdateState::Succeeded);
        let labels: Vec<_> = u.history.iter().map(|(_, s)| s.label()).collect();
        assert_eq!(
            labels,
            ["pushed", "downloading", "burning", "done", "succeeded"]
        );
    }

    #[test]
    fn wrong_version_after_done_fails_the_update() {
        let mut u = update();
        u.on_progress(&ProgressReport::done("1.0"), Duration::ZERO);
        u.on_version("0.1", Duration::ZERO);
        assert!(matches!(u.state, UpdateState::Failed { code: -5, .. }));
    }

    #[test]
    fn old_version_before_any_progress_asks_for_a_resend() {
        let mut u = update();
        assert!(u.on_version("0.1", Duration::ZERO));
        u.on_progress(&ProgressReport::downloading("1.0", 0), Duration::ZERO);
        assert!(!u.on_version("0.1", Duration::ZERO));
    }

    #[test]
    fn stale_reports_about_other_versions_are_ignored() {
        let mut u = update();
        u.on_progress(
            &ProgressReport::fail("0.9", OtaResultCode::Md5Mismatch, "x"),
            Duration::ZERO,
        );
        assert_eq!(u.state, UpdateState::Pushed);
        u.on_progress(
            &ProgressReport::fail("1.0", OtaResultCode::Md5Mismatch, "md5"),
            Duration::ZERO,
        );
        assert_eq!(
            u.state,
            UpdateState::Failed {
                code: -4,
                message: "md5".into()
            }
        );
    }
}
