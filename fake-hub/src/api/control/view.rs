//! What the web console shows, worked out here in Rust so that the page only renders: each
//! transcript entry with the device it is about and a summary in words (`GET /api/transcript`,
//! `event: transcript`), and the meaning of every result code and which task states are final
//! (`GET /api/codes`). A new message type or code is added here, never in JavaScript.

use crate::{TranscriptEntry, UpdateState};
use otasim_protocol::{
    DeviceOtaMessage, GatewayReply, GatewayRequest, GatewayResult, HubOtaMessage, OtaResultCode,
    Topic,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// A transcript entry as the console shows it: the entry's own fields, plus these.
#[derive(Debug, Serialize)]
pub(crate) struct EntryView<'a> {
    #[serde(flatten)]
    entry: &'a TranscriptEntry,
    /// The device the entry is about (`PID/name`): its topic's device, else its client's id.
    device: String,
    /// Every device it concerns: the device, plus the subdevices a gateway operation names.
    about: Vec<String>,
    /// Who spoke to whom, as a person says it: `light1 → hub`.
    who: String,
    /// The message in words: `downloading 40%`, `online light1 → result 0`.
    summary: String,
    /// The non-zero result code it carries, with its meaning.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<CodeView>,
}

/// A result code and what it means.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CodeView {
    code: i64,
    meaning: String,
}

impl<'a> EntryView<'a> {
    /// Works out what the page needs from the topic and payload; `client_device` is the
    /// registered device whose client id the entry carries, for entries without a topic.
    pub(crate) fn of(entry: &'a TranscriptEntry, client_device: Option<String>) -> Self {
        let topic = entry.topic.parse::<Topic>().ok();
        let device = match &topic {
            Some(t) => t.device().to_string(),
            None => client_device.unwrap_or_else(|| entry.client_id.clone()),
        };
        let short = topic.as_ref().map_or_else(
            || entry.client_id.clone(),
            |t| t.device().device_name().to_owned(),
        );
        let who = match entry.direction {
            crate::Direction::In => format!("{short} → hub"),
            crate::Direction::Out => format!("hub → {short}"),
            crate::Direction::Refused => format!("{short} ✗ hub (refused)"),
            _ => entry.client_id.clone(),
        };
        let mut view = EntryView {
            entry,
            about: vec![device.clone()],
            device,
            who,
            summary: String::new(),
            code: None,
        };
        if entry.direction == crate::Direction::Http {
            view.http();
            return view;
        }
        view.summarize(topic.as_ref());
        view
    }

    /// A COS request: about every device holding a URL for its object, in words
    /// `GET /E69UADXUYY_2.0 bytes=65536- → 206, 534464 B, complete (COS fault #1: cut_after)`.
    fn http(&mut self) {
        let Ok(r) = serde_json::from_str::<crate::HttpRecord>(&self.entry.payload) else {
            self.summary = format!("{} {}", self.entry.topic, self.entry.payload);
            return;
        };
        if let Some(first) = r.devices.first() {
            self.device = first.clone();
            self.about = r.devices.clone();
        }
        let names: Vec<&str> = r
            .devices
            .iter()
            .map(|d| d.split_once('/').map_or(d.as_str(), |(_, n)| n))
            .collect();
        let from = if names.is_empty() {
            r.request.client.clone()
        } else {
            names.join(", ")
        };
        self.who = format!("{from} ⇐ COS");
        let q = &r.request;
        let mut s = self.entry.topic.clone();
        if let Some(range) = &q.range {
            s.push_str(&format!(" {range}"));
        }
        s.push_str(&format!(
            " → {}, {} B, {}",
            q.status,
            q.bytes_sent,
            q.end.replace('_', " ")
        ));
        if let Some(f) = &q.fault {
            let kind = f
                .pointer("/verdict/kind")
                .and_then(|k| k.as_str())
                .unwrap_or("?");
            s.push_str(&format!(
                "  (COS fault #{}: {})",
                f["id"],
                kind.replace('_', " ")
            ));
        }
        self.summary = s;
    }

    fn summarize(&mut self, topic: Option<&Topic>) {
        let payload = self.entry.payload.as_bytes();
        let raw = || self.entry.payload.chars().take(160).collect::<String>();
        if matches!(self.entry.direction, crate::Direction::Event) {
            self.summary = format!("{} {}", self.entry.topic, raw());
            return;
        }
        self.summary = match topic {
            Some(Topic::OtaReport(_)) => match DeviceOtaMessage::parse(payload) {
                Ok(DeviceOtaMessage::ReportVersion { version }) => {
                    format!("reports version {version}")
                }
                Ok(DeviceOtaMessage::ReportProgress(p)) => {
                    let mut s = format!("{:?}", p.state).to_lowercase();
                    if let Some(pct) = p.percent {
                        s.push_str(&format!(" {pct}%"));
                    }
                    let code = p.result_code.code();
                    if code != 0 {
                        self.code = Some(ota_code(p.result_code));
                        s.push_str(&format!(" — {code} {}", p.result_code.meaning()));
                        if !p.result_msg.is_empty() {
                            s.push_str(&format!(": {}", p.result_msg));
                        }
                    }
                    format!("{s}  (version {})", p.version)
                }
                Err(_) => raw(),
            },
            Some(Topic::OtaUpdate(_)) => match HubOtaMessage::parse(payload) {
                Ok(HubOtaMessage::UpdateFirmware(u)) => format!(
                    "update_firmware {}: {} bytes, MD5 {}",
                    u.version, u.file_size, u.md5sum
                ),
                Ok(HubOtaMessage::ReportVersionRsp {
                    result_code,
                    version,
                    ..
                }) => format!("version acknowledged {version} (result {result_code})"),
                Err(_) => raw(),
            },
            Some(Topic::GatewayOperation(_)) => match GatewayRequest::parse(payload) {
                Ok(r) => {
                    let names: Vec<String> = r.devices.iter().map(|d| self.note(d, None)).collect();
                    format!("{} {}", op_name(&r.kind), names.join(", "))
                }
                Err(_) => raw(),
            },
            Some(Topic::GatewayOperationResult(_)) => match GatewayReply::parse(payload) {
                Ok(r) => {
                    let items: Vec<String> =
                        r.devices.iter().map(|d| self.note(d, d.result)).collect();
                    format!("{} {}", op_name(&r.kind), items.join(", "))
                }
                Err(_) => raw(),
            },
            _ => raw(),
        };
    }

    /// A device named by a gateway operation: remembered as concerned, described with its
    /// result if it has one.
    fn note(&mut self, d: &otasim_protocol::GatewayDevice, result: Option<i64>) -> String {
        if let Ok(id) = d.id() {
            let key = id.to_string();
            if !self.about.contains(&key) {
                self.about.push(key);
            }
        }
        match result {
            None => d.device_name.clone(),
            Some(0) => format!("{} → result 0", d.device_name),
            Some(code) => {
                let meaning = gateway_meaning(GatewayResult::from_code(code));
                self.code = Some(CodeView {
                    code,
                    meaning: meaning.to_owned(),
                });
                format!("{} → result {code} ({meaning})", d.device_name)
            }
        }
    }
}

fn op_name(kind: &otasim_protocol::OperationType) -> String {
    let debug = format!("{kind:?}");
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn ota_code(code: OtaResultCode) -> CodeView {
    CodeView {
        code: i64::from(code.code()),
        meaning: code.meaning().to_owned(),
    }
}

/// What a gateway operation's result means.
pub(crate) fn gateway_meaning(result: GatewayResult) -> &'static str {
    match result {
        GatewayResult::Success => "success",
        GatewayResult::NotBound => "not bound to this gateway",
        GatewayResult::BindParameter => "bad parameter",
        GatewayResult::BindSubdeviceMissing => "no such subdevice",
        GatewayResult::BindBadSignature => "bad bind signature",
        GatewayResult::BindBadSignMethod => "unknown sign method",
        GatewayResult::BindSignatureExpired => "bind signature expired",
        GatewayResult::BindToOtherGateway => "bound to another gateway",
        GatewayResult::BindSubdeviceForbidden => "subdevice forbidden",
        GatewayResult::BindOperationForbidden => "operation forbidden",
        GatewayResult::BindAlreadyBound => "already bound",
        _ => "unknown result",
    }
}

/// `GET /api/codes`: every code the console may show, with its meaning, and the task states.
#[derive(Debug, Serialize)]
pub(crate) struct Codes {
    /// OTA failure codes (`report_progress` `result_code`, task failures).
    ota: BTreeMap<i64, &'static str>,
    /// Gateway operation results.
    gateway: BTreeMap<i64, &'static str>,
    /// Task states after which nothing happens without a new push.
    final_states: Vec<&'static str>,
}

pub(crate) async fn codes() -> axum::Json<Codes> {
    let ota = (-5..=-1)
        .map(|c| {
            let code = OtaResultCode::from_code(c);
            (i64::from(c), code.meaning())
        })
        .collect();
    let gateway = std::iter::once(-1)
        .chain(-809..=-801)
        .map(|c| (c, gateway_meaning(GatewayResult::from_code(c))))
        .collect();
    let states = [
        UpdateState::Queued,
        UpdateState::Pushed,
        UpdateState::Downloading { percent: 0 },
        UpdateState::Burning,
        UpdateState::Done,
        UpdateState::WaitingRetry {
            code: 0,
            message: String::new(),
        },
        UpdateState::Succeeded,
        UpdateState::Failed {
            code: 0,
            message: String::new(),
        },
        UpdateState::Cancelled {
            reason: String::new(),
        },
    ];
    let final_states = states
        .iter()
        .filter(|s| s.is_final())
        .map(UpdateState::label)
        .collect();
    axum::Json(Codes {
        ota,
        gateway,
        final_states,
    })
}

/// The registered device behind each client id, for entries that carry no topic.
pub(crate) fn client_devices<'d>(
    devices: impl Iterator<Item = &'d otasim_protocol::DeviceId>,
) -> BTreeMap<String, String> {
    devices.map(|d| (d.client_id(), d.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use std::time::Duration;

    fn entry(direction: Direction, topic: &str, payload: &str) -> TranscriptEntry {
        TranscriptEntry {
            seq: 0,
            at: Duration::ZERO,
            direction,
            client_id: "JR1WOKB7Q7gw_deng1".into(),
            topic: topic.into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn a_failed_report_names_its_device_and_code_meaning() {
        let e = entry(
            Direction::In,
            "$ota/report/E69UADXUYY/light1",
            r#"{"type":"report_progress","report":{"progress":{"state":"fail","result_code":"-4","result_msg":"md5 mismatch"},"version":"V100R0001"}}"#,
        );
        let v = serde_json::to_value(EntryView::of(&e, None)).expect("serializes");
        assert_eq!(v["device"], "E69UADXUYY/light1");
        assert_eq!(v["who"], "light1 → hub");
        assert_eq!(v["code"]["code"], -4);
        assert_eq!(
            v["topic"], "$ota/report/E69UADXUYY/light1",
            "the entry's own fields stay"
        );
        let summary = v["summary"].as_str().expect("text");
        assert!(summary.starts_with("fail — -4 md5 mismatch"), "{summary}");
        assert!(summary.ends_with("(version V100R0001)"), "{summary}");
    }

    #[test]
    fn a_gateway_reply_concerns_the_subdevices_it_names() {
        let e = entry(
            Direction::Out,
            "$gateway/operation/result/JR1WOKB7Q7/gw_deng1",
            r#"{"type":"online","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light2","result":-1}]}}"#,
        );
        let v = serde_json::to_value(EntryView::of(&e, None)).expect("serializes");
        assert_eq!(v["device"], "JR1WOKB7Q7/gw_deng1");
        assert_eq!(
            v["about"],
            serde_json::json!(["JR1WOKB7Q7/gw_deng1", "E69UADXUYY/light2"])
        );
        assert_eq!(
            v["summary"],
            "online light2 → result -1 (not bound to this gateway)"
        );
        assert_eq!(v["code"]["meaning"], "not bound to this gateway");
    }

    #[tokio::test]
    async fn the_code_table_comes_from_the_protocol_types() {
        let axum::Json(c) = codes().await;
        assert_eq!(c.ota[&-4], OtaResultCode::Md5Mismatch.meaning());
        assert_eq!(c.gateway[&-1], "not bound to this gateway");
        assert_eq!(c.final_states, ["succeeded", "failed", "cancelled"]);
    }
}
