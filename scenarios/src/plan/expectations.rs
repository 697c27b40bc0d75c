//! What must hold at the end of a run, as types: every pattern parsed when the plan was loaded.

use crate::expect::{ReportPattern, ResultPattern};
use otasim_protocol::DeviceId;
use serde::Serialize;
use std::collections::BTreeMap;

/// Inclusive bounds on a count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// At least.
    pub min: Option<u64>,
    /// At most.
    pub max: Option<u64>,
}

impl Bounds {
    /// Whether `n` is inside.
    pub fn holds(&self, n: u64) -> bool {
        self.min.is_none_or(|m| n >= m) && self.max.is_none_or(|m| n <= m)
    }
}

impl std::fmt::Display for Bounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "exactly {a}"),
            (Some(a), Some(b)) => write!(f, "{a}..={b}"),
            (Some(a), None) => write!(f, ">= {a}"),
            (None, Some(b)) => write!(f, "<= {b}"),
            (None, None) => f.write_str("anything"),
        }
    }
}

/// What one COS GET request (the `nth`, counting from 1) must look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CosRequestExpect {
    /// Which GET, from 1.
    pub nth: u64,
    /// The first byte it asks for (a request without a Range header asks from 0).
    pub range_start: Option<u64>,
    /// The Range header exactly; `Some(None)` for no Range header.
    pub range: Option<Option<String>>,
    /// The status COS answered.
    pub status: Option<u16>,
    /// Milliseconds at least since the GET before it (a Retry-After or back-off honoured).
    pub gap_ms_at_least: Option<u64>,
}

/// Which transcript entries a `[[expect.transcript]]` counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptExpect {
    /// In, out, refused or event.
    pub direction: fake_hub::Direction,
    /// The topic exactly (for an event, its name: `publish refused`, `malformed`, ...).
    pub topic: String,
    /// The client the entry is about (a gateway's client id for its subdevices' messages).
    pub client_id: Option<String>,
    /// Fields the payload's JSON must have, with these values.
    pub json: Option<serde_json::Map<String, serde_json::Value>>,
    /// Fields the payload's JSON must not all have with these values.
    pub not_json: Option<serde_json::Map<String, serde_json::Value>>,
    /// Text the payload (or the event's detail) contains.
    pub contains: Option<String>,
    /// How many such entries.
    pub bounds: Bounds,
}

/// What must hold at the end.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Final versions on the hub.
    pub versions: BTreeMap<DeviceId, String>,
    /// Expected report sequences per device.
    pub reports: BTreeMap<DeviceId, Vec<ReportPattern>>,
    /// The result the hub answered `online` with.
    pub online_results: BTreeMap<DeviceId, i64>,
    /// Devices that must receive no `update_firmware`.
    pub untouched: Vec<DeviceId>,
    /// The final result per device.
    pub results: BTreeMap<DeviceId, ResultPattern>,
    /// Body bytes the gateway fetched for the download each device's command started.
    pub bytes_downloaded: BTreeMap<DeviceId, Bounds>,
    /// How many `update_firmware` each device received.
    pub update_commands: BTreeMap<DeviceId, Bounds>,
    /// Firmware bytes fake COS sent in all (bodies of 2xx answers).
    pub cos_bytes_sent: Option<Bounds>,
    /// GET requests fake COS answered.
    pub cos_requests: Option<Bounds>,
    /// Single COS GET requests: Range, status, gap before it.
    pub cos_request: Vec<CosRequestExpect>,
    /// Each task's summary (`{succeeded = 3}`), oldest first.
    pub tasks: Option<Vec<BTreeMap<String, usize>>>,
    /// No report or command for any device not listed in `reports`, no refused publish.
    pub nothing_else: bool,
    /// How many messages or requests of a kind there were.
    pub counts: Vec<crate::counts::Count>,
    /// The smallest pause between consecutive COS requests.
    pub cos_gaps: Vec<crate::counts::CosGap>,
    /// The `Range` of the Nth COS request.
    pub cos_ranges: Vec<crate::counts::CosRange>,
    /// Transcript entries of a kind: what the hub answered, refused, recorded.
    pub transcript: Vec<TranscriptExpect>,
    /// Text the warning on a device's update contains (`reported 0.1 after done`).
    pub warnings: BTreeMap<DeviceId, String>,
}
