//! Update tasks and per-device progress, as the console and the batch-update API define them,
//! one concept a file: [`update`] (one device's update, a pure state machine), [`options`]
//! (how a task runs), [`create`] (pushes, cancels and reports), [`schedule`] (the timer queue
//! that starts, times out and retries updates).

pub(crate) mod create;
pub(crate) mod options;
pub(crate) mod schedule;
pub(crate) mod update;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use options::{RateLimit, TaskOptions, TaskRequest};
pub use update::DeviceUpdate;
pub(crate) use update::{Effect, Policy};

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

    pub(crate) fn in_flight(&self) -> bool {
        matches!(
            self,
            UpdateState::Pushed
                | UpdateState::Downloading { .. }
                | UpdateState::Burning
                | UpdateState::Done
        )
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
