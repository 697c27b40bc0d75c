//! The steps of a validated plan and the milestones they wait for.

use super::FirmwarePlan;
use fake_cos::FaultRule;
use otasim_protocol::DeviceId;
use std::num::NonZeroUsize;
use std::time::Duration;

/// A milestone a `wait_until` step waits for.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Fake COS sent at least this many firmware bytes, in 2xx bodies (of one object, or in all).
    CosBytes {
        /// The object, or every object.
        object: Option<String>,
        /// Bytes.
        at_least: u64,
    },
    /// Fake COS answered at least this many requests (for one object, or in all).
    CosRequests {
        /// The object, or every object.
        object: Option<String>,
        /// Requests.
        at_least: u64,
    },
    /// The hub received `count` reports of `state` from `device` (with at least this percent).
    Report {
        /// The subdevice.
        device: DeviceId,
        /// `downloading`, `burning`, `done`, `fail`, or `version` for `report_version`.
        state: String,
        /// For `downloading`: the lowest percent that counts.
        percent_at_least: Option<u8>,
        /// How many such reports.
        count: usize,
    },
    /// The hub shows `device`'s update in `state` (`pushed`, `downloading`, ..., `failed`).
    HubState {
        /// The subdevice.
        device: DeviceId,
        /// The state label.
        state: String,
    },
    /// The gateway connected at least this many times.
    Connects {
        /// The gateway.
        gateway: DeviceId,
        /// Connections.
        at_least: u64,
    },
    /// The hub sees the gateway offline (after a kill, once the broker noticed).
    Offline {
        /// The gateway.
        gateway: DeviceId,
    },
}

/// What an `expect_quiet` step requires not to happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuietOn {
    /// No request reaches COS.
    Cos,
    /// No progress or version report from the device (any device if `None`).
    Reports(Option<DeviceId>),
    /// No `update_firmware` to the device (any device if `None`).
    Commands(Option<DeviceId>),
}

/// One step of a scenario.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait until every bound subdevice has reported a version.
    WaitOnline {
        /// How long at most.
        timeout: Duration,
    },
    /// A console push.
    Push(fake_hub::PushRequest),
    /// Wait until every task is finished.
    WaitTasks {
        /// How long at most.
        timeout: Duration,
    },
    /// Wait for a milestone.
    WaitUntil {
        /// The milestone.
        condition: Condition,
        /// How long at most.
        timeout: Duration,
    },
    /// Cut a gateway's power: it stops where it is.
    KillGateway(DeviceId),
    /// Start (or reboot, on the same disk) a gateway.
    StartGateway(DeviceId),
    /// The broker drops a gateway's connection.
    Kick(DeviceId),
    /// Install a COS fault from now on, or for a window of time.
    AddCosFault {
        /// The rule.
        rule: FaultRule,
        /// Removed again after this long (installed for good if unset).
        window: Option<Duration>,
    },
    /// Move fake COS's clock forward (signed URLs expire).
    AdvanceCosClock(Duration),
    /// A console push with task options (timeout, retries, rate limit, override).
    PushTask(fake_hub::TaskRequest),
    /// Install a hub fault from now on.
    AddHubFault(fake_hub::HubFaultRule),
    /// The console cancels a task (ids count from 1 in push order).
    CancelTask(u64),
    /// Move the hub's clock forward (task timeouts and retries fire).
    AdvanceHubClock(Duration),
    /// For this long, nothing of a kind happens (a retry interval or a start delay honoured).
    Quiet {
        /// How long.
        duration: Duration,
        /// What must not happen.
        on: QuietOn,
    },
    /// The console uploads other bytes under an existing product and version.
    ReplaceFirmware(FirmwarePlan),
    /// The console unbinds a subdevice from its gateway.
    Unbind {
        /// The gateway.
        gateway: DeviceId,
        /// The subdevice.
        subdevice: DeviceId,
    },
    /// New concurrency or quota for a gateway, from its next start on.
    ConfigureGateway {
        /// The gateway.
        gateway: DeviceId,
        /// Updates at once.
        max_concurrent: Option<NonZeroUsize>,
        /// Images directory quota.
        quota_bytes: Option<u64>,
    },
    /// Another program fills the gateway's disk: a file of `bytes` in its images directory.
    FillDisk {
        /// The gateway.
        gateway: DeviceId,
        /// Bytes written.
        bytes: u64,
    },
}

impl Step {
    /// The step's action name, as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Step::WaitOnline { .. } => "wait_online",
            Step::Push(_) | Step::PushTask(_) => "push",
            Step::WaitTasks { .. } => "wait_tasks",
            Step::WaitUntil { .. } => "wait_until",
            Step::KillGateway(_) => "kill_gateway",
            Step::StartGateway(_) => "start_gateway",
            Step::Kick(_) => "kick",
            Step::AddCosFault { .. } => "add_cos_fault",
            Step::AdvanceCosClock(_) => "advance_cos_clock",
            Step::AddHubFault(_) => "add_hub_fault",
            Step::CancelTask(_) => "cancel_task",
            Step::AdvanceHubClock(_) => "advance_hub_clock",
            Step::Quiet { .. } => "expect_quiet",
            Step::ReplaceFirmware(_) => "replace_firmware",
            Step::Unbind { .. } => "unbind",
            Step::ConfigureGateway { .. } => "configure_gateway",
            Step::FillDisk { .. } => "fill_disk",
        }
    }

    /// Whether the step needs the built-in gateway (it reaches into its configuration or disk).
    pub fn needs_builtin(&self) -> bool {
        matches!(self, Step::ConfigureGateway { .. } | Step::FillDisk { .. })
    }
}
