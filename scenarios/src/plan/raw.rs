//! The scenario file as written: serde types with `deny_unknown_fields`, so a typo is an error
//! that names the field and the line.

use crate::plan::{BurnerPlan, GatewayRun};
use fake_cos::FaultRule;
use fake_hub::{HubFaultRule, TaskOptions};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) seed: u64,
    #[serde(default)]
    pub(crate) time_scale: Option<f64>,
    #[serde(default)]
    pub(crate) download_attempts: Option<u32>,
    #[serde(default)]
    pub(crate) checkpoint_bytes: Option<u64>,
    #[serde(default)]
    pub(crate) burn_timeout_ms: Option<u64>,
    pub(crate) gateways: Vec<RawGateway>,
    pub(crate) subdevices: Vec<RawSubdevice>,
    #[serde(default)]
    pub(crate) firmware: Vec<RawFirmware>,
    #[serde(default)]
    pub(crate) cos_faults: Vec<FaultRule>,
    #[serde(default)]
    pub(crate) hub_faults: Vec<HubFaultRule>,
    #[serde(default)]
    pub(crate) steps: Vec<RawStep>,
    #[serde(default)]
    pub(crate) expect: RawExpect,
    #[serde(default)]
    pub(crate) builtin_only: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub(crate) product_id: String,
    pub(crate) device_name: String,
    pub(crate) secret: String,
    #[serde(default)]
    pub(crate) run: GatewayRun,
    #[serde(default)]
    pub(crate) max_image_bytes: Option<u64>,
    #[serde(default)]
    pub(crate) max_concurrent: Option<usize>,
    #[serde(default)]
    pub(crate) quota_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubdevice {
    pub(crate) product_id: String,
    pub(crate) device_name: String,
    #[serde(default)]
    pub(crate) gateway: Option<String>,
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) secret: Option<String>,
    /// Bound on the hub (default true). An unbound subdevice gets online result -1.
    #[serde(default = "yes")]
    pub(crate) bound: bool,
    #[serde(default)]
    pub(crate) burner: BurnerPlan,
    /// Several identical subdevices: `light` with `count = 3` is `light1`..`light3`.
    #[serde(default)]
    pub(crate) count: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFirmware {
    pub(crate) product_id: String,
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) size: Option<u64>,
    #[serde(default)]
    pub(crate) seed: u64,
    #[serde(default)]
    pub(crate) file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawStep {
    WaitOnline {
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    Push {
        product_id: String,
        version: String,
        method: RawMethod,
        #[serde(default)]
        devices: Option<Vec<String>>,
        #[serde(default)]
        from_versions: Option<Vec<String>>,
        #[serde(default)]
        options: Option<TaskOptions>,
    },
    WaitTasks {
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    WaitUntil {
        until: RawCondition,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    KillGateway {
        #[serde(default)]
        gateway: Option<String>,
    },
    StartGateway {
        #[serde(default)]
        gateway: Option<String>,
    },
    Kick {
        #[serde(default)]
        gateway: Option<String>,
    },
    AddCosFault {
        rule: FaultRule,
        #[serde(default)]
        for_ms: Option<u64>,
    },
    AdvanceCosClock {
        seconds: u64,
    },
    AddHubFault {
        rule: HubFaultRule,
    },
    CancelTask {
        task: u64,
    },
    AdvanceHubClock {
        ms: u64,
    },
    ExpectQuiet {
        ms: u64,
        on: RawQuietOn,
        #[serde(default)]
        device: Option<String>,
    },
    ReplaceFirmware(RawFirmware),
    Unbind {
        device: String,
    },
    ConfigureGateway {
        #[serde(default)]
        gateway: Option<String>,
        #[serde(default)]
        max_concurrent: Option<usize>,
        #[serde(default)]
        quota_bytes: Option<u64>,
    },
    FillDisk {
        #[serde(default)]
        gateway: Option<String>,
        bytes: u64,
    },
    RawPublish {
        #[serde(rename = "as", default)]
        as_device: Option<String>,
        topic: String,
        #[serde(default)]
        payload: String,
        #[serde(default = "qos_1")]
        qos: u8,
        #[serde(default)]
        retain: bool,
        #[serde(default = "mqtt_3")]
        mqtt: u8,
        #[serde(default)]
        answer: Option<String>,
    },
}

fn qos_1() -> u8 {
    1
}

fn mqtt_3() -> u8 {
    3
}

/// One `[[expect.transcript]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTranscriptExpect {
    pub(crate) direction: String,
    pub(crate) topic: String,
    #[serde(default)]
    pub(crate) device: Option<String>,
    #[serde(default)]
    pub(crate) json: Option<toml::Table>,
    #[serde(default)]
    pub(crate) not_json: Option<toml::Table>,
    #[serde(default)]
    pub(crate) contains: Option<String>,
    #[serde(default)]
    pub(crate) min: Option<u64>,
    #[serde(default)]
    pub(crate) max: Option<u64>,
    #[serde(default)]
    pub(crate) exactly: Option<u64>,
}

/// What an `expect_quiet` step watches.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawQuietOn {
    Cos,
    Reports,
    Commands,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCosRequest {
    pub(crate) nth: u64,
    #[serde(default)]
    pub(crate) range_start: Option<u64>,
    #[serde(default)]
    pub(crate) range: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<u16>,
    #[serde(default)]
    pub(crate) gap_ms_at_least: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawCondition {
    CosBytes {
        #[serde(default)]
        object: Option<String>,
        at_least: u64,
    },
    CosRequests {
        #[serde(default)]
        object: Option<String>,
        at_least: u64,
    },
    Report {
        device: String,
        state: String,
        #[serde(default)]
        percent_at_least: Option<u8>,
        #[serde(default)]
        count: Option<usize>,
    },
    HubState {
        device: String,
        state: String,
    },
    Connects {
        #[serde(default)]
        gateway: Option<String>,
        at_least: u64,
    },
    Offline {
        #[serde(default)]
        gateway: Option<String>,
    },
}

/// The console's three push methods (protocol.md section 7).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawMethod {
    Versions,
    DevicesAndVersions,
    Devices,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    #[serde(default)]
    pub(crate) versions: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) reports: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(crate) online_results: BTreeMap<String, i64>,
    #[serde(default)]
    pub(crate) untouched: Vec<String>,
    #[serde(default)]
    pub(crate) results: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) bytes_downloaded: BTreeMap<String, RawBounds>,
    #[serde(default)]
    pub(crate) cos_bytes_sent: Option<RawBounds>,
    #[serde(default)]
    pub(crate) cos_requests: Option<RawBounds>,
    #[serde(default)]
    pub(crate) tasks: Option<Vec<BTreeMap<String, usize>>>,
    #[serde(default)]
    pub(crate) nothing_else: bool,
    #[serde(default)]
    pub(crate) counts: Vec<crate::counts::RawCount>,
    #[serde(default)]
    pub(crate) cos_gaps: Vec<crate::counts::RawCosGap>,
    #[serde(default)]
    pub(crate) cos_ranges: Vec<crate::counts::RawCosRange>,
    #[serde(default)]
    pub(crate) update_commands: BTreeMap<String, RawBounds>,
    #[serde(default)]
    pub(crate) cos_request: Vec<RawCosRequest>,
    #[serde(default)]
    pub(crate) transcript: Vec<RawTranscriptExpect>,
    #[serde(default)]
    pub(crate) warnings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBounds {
    #[serde(default)]
    pub(crate) min: Option<u64>,
    #[serde(default)]
    pub(crate) max: Option<u64>,
    #[serde(default)]
    pub(crate) exactly: Option<u64>,
}
