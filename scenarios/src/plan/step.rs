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

/// The MQTT version a raw client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttLevel {
    /// MQTT 3.1.1 (`mqtt = 3`).
    V311,
    /// MQTT 5 (`mqtt = 5`).
    V5,
}

/// A `raw_publish` step: one PUBLISH from a raw client with a device's credentials.
#[derive(Debug, Clone)]
pub struct RawPublish {
    /// Whose credentials the client connects with.
    pub device: DeviceId,
    /// That device's secret.
    pub secret: String,
    /// The topic, as written (no check: the hub judges it).
    pub topic: String,
    /// The payload bytes.
    pub payload: String,
    /// 0, 1 or 2.
    pub qos: u8,
    /// The retain flag.
    pub retain: bool,
    /// The protocol version.
    pub mqtt: MqttLevel,
    /// What the client must get back, if said.
    pub answer: Option<RawAnswer>,
}

/// What a raw client got back for its PUBLISH (it sends a PINGREQ after it, so a live
/// connection always answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawAnswer {
    /// The CONNECT was refused with this code (the PUBLISH was never sent): `connack 5`.
    Connack(u8),
    /// A PUBACK, with its MQTT 5 reason code (0 for success, and always in 3.1.1): `puback`,
    /// `puback 0x87`.
    Puback(u8),
    /// A PUBREC (the QoS 2 flow went ahead): `pubrec`.
    Pubrec,
    /// No acknowledgement and the connection lives on (QoS 0): `accepted`.
    Accepted,
    /// A DISCONNECT with this reason code (MQTT 5): `disconnect 0x9B`.
    Disconnect(u8),
    /// The connection closed without a word: `closed`.
    Closed,
}

/// What `answer` may say.
pub(crate) const RAW_ANSWERS: &str =
    "puback, puback 0xNN, pubrec, accepted, disconnect 0xNN, closed, connack N";

impl std::str::FromStr for RawAnswer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let hex = |s: &str| {
            s.strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        let bad = || format!("{text:?} is not one of: {RAW_ANSWERS}");
        match text.split_once(' ') {
            None => match text {
                "puback" => Ok(RawAnswer::Puback(0)),
                "pubrec" => Ok(RawAnswer::Pubrec),
                "accepted" => Ok(RawAnswer::Accepted),
                "closed" => Ok(RawAnswer::Closed),
                _ => Err(bad()),
            },
            Some(("puback", code)) => hex(code).map(RawAnswer::Puback).ok_or_else(bad),
            Some(("disconnect", code)) => hex(code).map(RawAnswer::Disconnect).ok_or_else(bad),
            Some(("connack", code)) => code
                .parse()
                .ok()
                .filter(|c| *c != 0)
                .map(RawAnswer::Connack)
                .ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }
}

impl std::fmt::Display for RawAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawAnswer::Connack(c) => write!(f, "connack {c}"),
            RawAnswer::Puback(0) => f.write_str("puback"),
            RawAnswer::Puback(c) => write!(f, "puback 0x{c:02X}"),
            RawAnswer::Pubrec => f.write_str("pubrec"),
            RawAnswer::Accepted => f.write_str("accepted"),
            RawAnswer::Disconnect(c) => write!(f, "disconnect 0x{c:02X}"),
            RawAnswer::Closed => f.write_str("closed"),
        }
    }
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
    /// A raw client publishes with a device's credentials, as a misbehaving device would.
    RawPublish(Box<RawPublish>),
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
            Step::RawPublish(_) => "raw_publish",
        }
    }

    /// Whether the step needs the built-in gateway (it reaches into its configuration or disk).
    pub fn needs_builtin(&self) -> bool {
        matches!(self, Step::ConfigureGateway { .. } | Step::FillDisk { .. })
    }
}
