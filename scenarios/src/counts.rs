//! Expectations that count and time what happened: how many messages of a kind a device sent or
//! got (`[[expect.counts]]`), the smallest pause between COS requests (`[[expect.cos_gaps]]`,
//! for `Retry-After`), and the `Range` of the Nth request for an object (`[[expect.cos_ranges]]`).

use crate::plan::Bounds;
use crate::world::Note;
use fake_cos::JournalEntry;
use fake_hub::{Direction, TranscriptEntry};
use otasim_protocol::{DeviceId, DeviceOtaMessage, ProgressState, Topic};
use serde::Deserialize;

/// What a `[[expect.counts]]` entry counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountOf {
    /// `update_firmware` commands the hub sent to `device` (of `version`, if given).
    UpdateFirmware,
    /// `report_progress` messages from `device` (of `state`, `version`, `percent`, if given).
    Report,
    /// `report_version` messages from `device` (of `version`, if given).
    ReportVersion,
    /// `online` requests the gateway sent for `device`.
    OnlineRequests,
    /// GET requests fake COS answered (for `object`, with `status`, if given).
    CosRequests,
}

/// One `[[expect.counts]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCount {
    pub(crate) of: CountOf,
    #[serde(default)]
    pub(crate) device: Option<String>,
    #[serde(default)]
    pub(crate) state: Option<String>,
    #[serde(default)]
    pub(crate) version: Option<String>,
    #[serde(default)]
    pub(crate) percent: Option<u8>,
    #[serde(default)]
    pub(crate) object: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<u16>,
    #[serde(default)]
    pub(crate) min: Option<u64>,
    #[serde(default)]
    pub(crate) max: Option<u64>,
    #[serde(default)]
    pub(crate) exactly: Option<u64>,
}

/// One `[[expect.cos_gaps]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCosGap {
    #[serde(default)]
    pub(crate) object: Option<String>,
    pub(crate) min_ms: u64,
}

/// One `[[expect.cos_ranges]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCosRange {
    #[serde(default)]
    pub(crate) object: Option<String>,
    pub(crate) nth: u64,
    pub(crate) range: String,
}

/// A validated count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// What is counted.
    pub of: CountOf,
    /// The subdevice (every kind but `cos_requests`).
    pub device: Option<DeviceId>,
    /// For `report`: `downloading`, `burning`, `done` or `fail`.
    pub state: Option<ProgressState>,
    /// The version named by the message.
    pub version: Option<String>,
    /// For `report`: the percent of a `downloading` report.
    pub percent: Option<u8>,
    /// For `cos_requests`: the object.
    pub object: Option<String>,
    /// For `cos_requests`: the status answered.
    pub status: Option<u16>,
    /// How many.
    pub bounds: Bounds,
}

/// The smallest pause between two consecutive COS GETs (of one object, or of all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosGap {
    /// The object, or every object.
    pub object: Option<String>,
    /// Milliseconds at least.
    pub min_ms: u64,
}

/// The `Range` header of the Nth GET (of one object, or of all); `none` for no header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosRange {
    /// The object, or every object.
    pub object: Option<String>,
    /// Which request, from 1.
    pub nth: u64,
    /// The header value, or `none`.
    pub range: String,
}

/// Why a count, gap or range entry cannot be judged: the field and the reason.
pub(crate) type Invalid = (&'static str, String);

pub(crate) fn parse_state(text: &str) -> Result<ProgressState, Invalid> {
    match text {
        "downloading" => Ok(ProgressState::Downloading),
        "burning" => Ok(ProgressState::Burning),
        "done" => Ok(ProgressState::Done),
        "fail" => Ok(ProgressState::Fail),
        other => Err((
            "state",
            format!("{other:?} is not one of: downloading, burning, done, fail"),
        )),
    }
}

impl RawCount {
    /// Checks that every field set fits `of`; `device` is resolved by the caller.
    pub(crate) fn check(&self) -> Result<Option<ProgressState>, Invalid> {
        let device_kind = self.of != CountOf::CosRequests;
        let misfit = |field: &'static str| Err((field, format!("does not apply to {:?}", self.of)));
        if device_kind && self.device.is_none() {
            return Err(("device", format!("{:?} counts need a device", self.of)));
        }
        if !device_kind && self.device.is_some() {
            return misfit("device");
        }
        if !device_kind && self.version.is_some() {
            return misfit("version");
        }
        if device_kind && (self.object.is_some() || self.status.is_some()) {
            return misfit(if self.object.is_some() {
                "object"
            } else {
                "status"
            });
        }
        if self.of != CountOf::Report && (self.state.is_some() || self.percent.is_some()) {
            return misfit(if self.state.is_some() {
                "state"
            } else {
                "percent"
            });
        }
        if self.of == CountOf::OnlineRequests && self.version.is_some() {
            return misfit("version");
        }
        if self.percent.is_some_and(|p| p > 100) {
            return Err(("percent", "must be 0 to 100".into()));
        }
        let state = self.state.as_deref().map(parse_state).transpose()?;
        if self.percent.is_some() && state.is_some_and(|s| s != ProgressState::Downloading) {
            return Err(("percent", "only downloading reports carry a percent".into()));
        }
        Ok(state)
    }
}

impl Count {
    fn describe(&self) -> String {
        let mut what = format!("{:?}", self.of);
        for (name, value) in [
            ("device", self.device.as_ref().map(ToString::to_string)),
            ("state", self.state.map(|s| format!("{s:?}").to_lowercase())),
            ("version", self.version.clone()),
            ("percent", self.percent.map(|p| p.to_string())),
            ("object", self.object.clone()),
            ("status", self.status.map(|s| s.to_string())),
        ] {
            if let Some(v) = value {
                what.push_str(&format!(" {name}={v}"));
            }
        }
        what
    }

    fn observe(&self, transcript: &[TranscriptEntry], journal: &[JournalEntry]) -> u64 {
        if self.of == CountOf::CosRequests {
            return gets(journal, &self.object)
                .filter(|j| self.status.is_none_or(|s| s == j.status))
                .count() as u64;
        }
        let device = self
            .device
            .as_ref()
            .expect("checked: device kinds have one");
        let (direction, topic) = match self.of {
            CountOf::UpdateFirmware => (Direction::Out, Topic::OtaUpdate(device.clone())),
            CountOf::OnlineRequests => return online_requests(transcript, device),
            _ => (Direction::In, Topic::OtaReport(device.clone())),
        };
        let topic = topic.to_string();
        let entries = transcript
            .iter()
            .filter(|e| e.direction == direction && e.topic == topic);
        entries.filter(|e| self.matches(&e.payload)).count() as u64
    }

    fn matches(&self, payload: &str) -> bool {
        match self.of {
            CountOf::UpdateFirmware => {
                let Ok(message) = serde_json::from_str::<serde_json::Value>(payload) else {
                    return false;
                };
                message.get("type").and_then(|t| t.as_str()) == Some("update_firmware")
                    && self
                        .version
                        .as_ref()
                        .is_none_or(|v| message.get("version").and_then(|x| x.as_str()) == Some(v))
            }
            CountOf::ReportVersion | CountOf::Report => {
                match DeviceOtaMessage::parse(payload.as_bytes()) {
                    Ok(DeviceOtaMessage::ReportVersion { version }) => {
                        self.of == CountOf::ReportVersion
                            && self.version.as_ref().is_none_or(|v| *v == version)
                    }
                    Ok(DeviceOtaMessage::ReportProgress(r)) => {
                        self.of == CountOf::Report
                            && self.version.as_ref().is_none_or(|v| *v == r.version)
                            && self.state.is_none_or(|s| s == r.state)
                            && self.percent.is_none_or(|p| r.percent == Some(p))
                    }
                    Err(_) => false,
                }
            }
            CountOf::OnlineRequests | CountOf::CosRequests => false,
        }
    }
}

fn online_requests(transcript: &[TranscriptEntry], device: &DeviceId) -> u64 {
    transcript
        .iter()
        .filter(|e| e.direction == Direction::In)
        .filter(|e| matches!(e.topic.parse::<Topic>(), Ok(Topic::GatewayOperation(_))))
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.payload).ok())
        .filter(|v| v.get("type").and_then(|t| t.as_str()) == Some("online"))
        .filter(|v| {
            let devices = v.pointer("/payload/devices").and_then(|d| d.as_array());
            devices.is_some_and(|ds| {
                ds.iter().any(|d| {
                    d.get("product_id").and_then(|x| x.as_str()) == Some(device.product_id())
                        && d.get("device_name").and_then(|x| x.as_str())
                            == Some(device.device_name())
                })
            })
        })
        .count() as u64
}

fn gets<'a>(
    journal: &'a [JournalEntry],
    object: &'a Option<String>,
) -> impl Iterator<Item = &'a JournalEntry> + Clone + 'a {
    journal
        .iter()
        .filter(|j| j.method == "GET")
        .filter(move |j| object.is_none() || j.object.as_ref() == object.as_ref())
}

fn of_object(object: &Option<String>) -> String {
    object
        .as_deref()
        .map_or("all objects".to_owned(), |o| format!("object {o}"))
}

/// The failures of counts, gaps and ranges. Gaps use the times at which the runner saw each
/// request (its `http` notes), which can only make a gap look shorter than it was when the
/// earlier request is noticed late, never longer.
pub(crate) fn judge(
    counts: &[Count],
    gaps: &[CosGap],
    ranges: &[CosRange],
    transcript: &[TranscriptEntry],
    journal: &[JournalEntry],
    notes: &[Note],
) -> Vec<String> {
    let mut out = Vec::new();
    for c in counts {
        let got = c.observe(transcript, journal);
        if !c.bounds.holds(got) {
            out.push(format!("expected {} {}, got {got}", c.describe(), c.bounds));
        }
    }
    for g in gaps {
        let seqs: Vec<u64> = gets(journal, &g.object).map(|j| j.seq).collect();
        let at = |seq: u64| {
            notes
                .iter()
                .find(|n| n.kind == "http" && n.cos_seq == Some(seq))
                .map(|n| n.at_ms)
        };
        for pair in seqs.windows(2) {
            let (Some(a), Some(b)) = (at(pair[0]), at(pair[1])) else {
                continue;
            };
            let gap = b - a;
            if gap < g.min_ms as f64 {
                out.push(format!(
                    "expected at least {} ms between COS requests for {}, got {gap:.0} ms between #{} and #{}",
                    g.min_ms,
                    of_object(&g.object),
                    pair[0],
                    pair[1]
                ));
            }
        }
    }
    for r in ranges {
        let got = gets(journal, &r.object)
            .nth(r.nth.saturating_sub(1) as usize)
            .map(|j| j.range.clone().unwrap_or_else(|| "none".to_owned()));
        if got.as_deref() != Some(r.range.as_str()) {
            out.push(format!(
                "expected COS request #{} for {} to ask Range {}, got {}",
                r.nth,
                of_object(&r.object),
                r.range,
                got.as_deref().unwrap_or("no such request")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawCount {
        toml::from_str(toml_text).expect("parses")
    }

    #[test]
    fn counts_refuse_fields_that_do_not_fit_their_kind() {
        let bad = [
            ("of = \"cos_requests\"\ndevice = \"P/d\"", "device"),
            ("of = \"report\"", "device"),
            (
                "of = \"update_firmware\"\ndevice = \"P/d\"\nstate = \"done\"",
                "state",
            ),
            (
                "of = \"report\"\ndevice = \"P/d\"\nstate = \"sleeping\"",
                "state",
            ),
            (
                "of = \"report\"\ndevice = \"P/d\"\npercent = 101",
                "percent",
            ),
            (
                "of = \"report\"\ndevice = \"P/d\"\nstate = \"done\"\npercent = 3",
                "percent",
            ),
            (
                "of = \"report\"\ndevice = \"P/d\"\nobject = \"o\"",
                "object",
            ),
        ];
        for (text, field) in bad {
            assert_eq!(raw(text).check().map_err(|e| e.0), Err(field), "{text}");
        }
        assert!(
            toml::from_str::<RawCount>("of = \"report\"\ndevise = \"P/d\"").is_err(),
            "unknown fields are refused"
        );
        let ok = raw("of = \"report\"\ndevice = \"P/d\"\nstate = \"downloading\"\npercent = 0");
        assert_eq!(ok.check(), Ok(Some(ProgressState::Downloading)));
    }
}
