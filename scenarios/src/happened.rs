//! What happened in a run, taken from the world in one snapshot ([`Happened`]) and read from
//! it: the reports, commands and `online` answers per device, the final rows. The judge and the
//! reports read only this, never the live world.

use crate::expect::{DeviceOutcome, describe_report};
use crate::plan::Plan;
use fake_cos::JournalEntry;
use fake_hub::{DeviceStatus, Direction, TaskStatus, TranscriptEntry};
use gateway::GatewayEvent;
use otasim_protocol::{
    DeviceId, DeviceOtaMessage, GatewayReply, OperationType, ProgressReport, Topic,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything a run left behind, taken at one moment.
#[derive(Debug, Clone, Default)]
pub struct Happened {
    /// Every MQTT message and connection event the hub saw.
    pub transcript: Vec<TranscriptEntry>,
    /// Every HTTP request fake COS answered.
    pub journal: Vec<JournalEntry>,
    /// When each COS request was seen, in ms since the world started, by journal seq.
    pub cos_seen_ms: BTreeMap<u64, f64>,
    /// How many transcript entries existed when each COS request was seen, by journal seq.
    pub cos_after_seq: BTreeMap<u64, u64>,
    /// The hub's view of each subdevice of the plan.
    pub devices: BTreeMap<DeviceId, DeviceStatus>,
    /// Every task as the console shows it.
    pub tasks: Vec<TaskStatus>,
    /// What the built-in gateways told (none for external ones).
    pub events: Vec<(DeviceId, GatewayEvent)>,
}

/// One row of the final table: what happened to a subdevice.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    /// The subdevice.
    pub device: String,
    /// Its version before the scenario.
    pub version_before: String,
    /// The last version it reported to the hub.
    pub version_after: Option<String>,
    /// `succeeded`, `failed -4 (md5 mismatch: ...)`, `untouched`, ...
    pub result: String,
    /// The same, typed.
    pub outcome: DeviceOutcome,
    /// Body bytes the gateway fetched over HTTP for this device's command (0 when the image was
    /// shared with another subdevice).
    pub bytes_downloaded: u64,
    /// From the first `update_firmware` to the final state, in hub time.
    pub update_ms: Option<u64>,
    /// The reports the hub received, as patterns spell them.
    pub reports: Vec<String>,
}

/// The progress reports the hub received about `device`, in order.
pub fn reports_for(transcript: &[TranscriptEntry], device: &DeviceId) -> Vec<ProgressReport> {
    report_entries(transcript, device)
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

/// The progress reports about `device` with the transcript position of each.
pub(crate) fn report_entries(
    transcript: &[TranscriptEntry],
    device: &DeviceId,
) -> Vec<(u64, ProgressReport)> {
    let topic = Topic::OtaReport(device.clone()).to_string();
    transcript
        .iter()
        .filter(|e| e.direction == Direction::In && e.topic == topic)
        .filter_map(|e| match DeviceOtaMessage::parse(e.payload.as_bytes()) {
            Ok(DeviceOtaMessage::ReportProgress(r)) => Some((e.seq, r)),
            _ => None,
        })
        .collect()
}

/// Transcript positions of the `update_firmware` commands sent to `device`.
pub(crate) fn command_entries(transcript: &[TranscriptEntry], device: &DeviceId) -> Vec<u64> {
    let topic = Topic::OtaUpdate(device.clone()).to_string();
    transcript
        .iter()
        .filter(|e| e.direction == Direction::Out && e.topic == topic)
        .filter(|e| e.message_type().as_deref() == Some("update_firmware"))
        .map(|e| e.seq)
        .collect()
}

/// How many `update_firmware` the hub sent to `device`.
pub(crate) fn commands_to(transcript: &[TranscriptEntry], device: &DeviceId) -> usize {
    command_entries(transcript, device).len()
}

/// How many `report_version` the hub received about `device`.
pub(crate) fn version_reports(transcript: &[TranscriptEntry], device: &DeviceId) -> usize {
    let topic = Topic::OtaReport(device.clone()).to_string();
    transcript
        .iter()
        .filter(|e| e.direction == Direction::In && e.topic == topic)
        .filter(|e| e.message_type().as_deref() == Some("report_version"))
        .count()
}

/// The result the hub last answered `online` with, per device.
pub(crate) fn online_results(transcript: &[TranscriptEntry]) -> BTreeMap<DeviceId, i64> {
    let mut out = BTreeMap::new();
    for e in transcript.iter().filter(|e| e.direction == Direction::Out) {
        let Ok(Topic::GatewayOperationResult(_)) = e.topic.parse::<Topic>() else {
            continue;
        };
        let Ok(reply) = GatewayReply::parse(e.payload.as_bytes()) else {
            continue;
        };
        if reply.kind != OperationType::Online {
            continue;
        }
        for d in &reply.devices {
            if let (Ok(id), Some(r)) = (d.id(), d.result) {
                out.insert(id, r);
            }
        }
    }
    out
}

/// COS GET requests, in order.
pub(crate) fn cos_gets(journal: &[JournalEntry]) -> impl Iterator<Item = &JournalEntry> {
    journal.iter().filter(|j| j.method == "GET")
}

/// The first byte a request asked for (0 without a Range header).
pub(crate) fn range_start(range: Option<&str>) -> u64 {
    range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl Happened {
    /// The final table, one row per subdevice in fleet order.
    pub fn rows(&self, plan: &Plan) -> Vec<DeviceRow> {
        plan.subdevices
            .iter()
            .map(|s| {
                let status = self.devices.get(&s.id);
                let update = status.and_then(|d| d.update.as_ref());
                let outcome = match update {
                    None if commands_to(&self.transcript, &s.id) == 0 => DeviceOutcome::Untouched,
                    None => DeviceOutcome::NoTask,
                    Some(u) => DeviceOutcome::of_state(&u.state),
                };
                let update_ms = update.and_then(|u| {
                    let first = u.history.first()?.0;
                    let last = u.history.last().filter(|(_, st)| st.is_final())?.0;
                    Some(last - first)
                });
                let mut result = outcome.to_string();
                if let DeviceOutcome::Failed { code: -3, .. } = outcome
                    && let Some(why) = self.refusal_for(&s.id)
                {
                    result.push_str(&format!("; {why}"));
                }
                DeviceRow {
                    device: s.id.to_string(),
                    version_before: s.version.clone(),
                    version_after: status.and_then(|d| d.version.clone()),
                    result,
                    outcome,
                    bytes_downloaded: self.bytes_fetched(&s.id),
                    update_ms,
                    reports: reports_for(&self.transcript, &s.id)
                        .iter()
                        .map(describe_report)
                        .collect(),
                }
            })
            .collect()
    }

    /// Why COS refused the URL behind the device's last `fail -3`: the last refused request for
    /// the firmware object of that report, said with its COS code.
    fn refusal_for(&self, id: &DeviceId) -> Option<String> {
        let report = reports_for(&self.transcript, id)
            .into_iter()
            .rfind(|r| r.result_code == otasim_protocol::OtaResultCode::SignatureExpired)?;
        let object = otasim_protocol::firmware_object_name(id.product_id(), &report.version);
        self.journal
            .iter()
            .rev()
            .filter(|j| j.object.as_deref() == Some(object.as_str()))
            .find_map(|j| {
                let e = j.error.as_ref()?;
                e.refusal()
                    .map(|_| crate::timeline::explain_cos_error(&e.code, &e.message))
            })
    }

    fn bytes_fetched(&self, id: &DeviceId) -> u64 {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                GatewayEvent::ImageFetched {
                    device,
                    bytes_transferred,
                    ..
                } if device == id => Some(*bytes_transferred),
                _ => None,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_start_reads_the_first_byte_or_zero() {
        assert_eq!(range_start(Some("bytes=500-999")), 500);
        assert_eq!(range_start(Some("bytes=500-")), 500);
        assert_eq!(range_start(Some("bytes=-100")), 0);
        assert_eq!(range_start(Some("items=5-")), 0);
        assert_eq!(range_start(None), 0);
    }
}
