//! One readable line per transcript entry, for the live timeline. A COS error is said with its
//! code (`url refused: expired (AccessDenied: Request has expired)`), and a [`Narrator`] also
//! says it on the `fail -3` that follows, so an expired URL and a signature mismatch read apart.

use fake_hub::{Direction, HttpRecord, TranscriptEntry};
use otasim_protocol::{
    DeviceOtaMessage, GatewayReply, GatewayRequest, HubOtaMessage, OtaResultCode, ProgressState,
    Topic,
};
use std::collections::BTreeMap;

/// A COS error as a person would say it: `url refused: expired (AccessDenied: Request has
/// expired)` for a refused URL, `NoSuchKey: The specified key does not exist.` otherwise.
pub fn explain_cos_error(code: &str, message: &str) -> String {
    match fake_cos::refusal_reason(code, message) {
        Some(why) => format!("url refused: {why} ({code}: {message})"),
        None => format!("{code}: {message}"),
    }
}

/// Describes transcript entries in order, remembering each device's last refused COS request,
/// so that its `fail -3` says which refusal it was (the code alone means expired or mismatch).
#[derive(Debug, Default)]
pub struct Narrator {
    refusals: BTreeMap<String, String>,
}

impl Narrator {
    /// [`describe_entry`], plus the COS refusal behind a device's `fail -3`.
    pub fn describe(&mut self, e: &TranscriptEntry) -> String {
        let line = describe_entry(e);
        match e.direction {
            Direction::Http => {
                let Ok(r) = serde_json::from_str::<HttpRecord>(&e.payload) else {
                    return line;
                };
                let (Some(code), message) = (&r.request.error_code, &r.request.error_message)
                else {
                    return line;
                };
                let message = message.as_deref().unwrap_or("");
                if fake_cos::refusal_reason(code, message).is_some() {
                    for device in r.devices {
                        self.refusals
                            .insert(device, explain_cos_error(code, message));
                    }
                }
                line
            }
            Direction::In => match self.refusal_behind(e) {
                Some(why) => format!("{line}; {why}"),
                None => line,
            },
            _ => line,
        }
    }

    fn refusal_behind(&self, e: &TranscriptEntry) -> Option<&String> {
        let Ok(Topic::OtaReport(device)) = e.topic.parse::<Topic>() else {
            return None;
        };
        let Ok(DeviceOtaMessage::ReportProgress(p)) = DeviceOtaMessage::parse(e.payload.as_bytes())
        else {
            return None;
        };
        (p.state == ProgressState::Fail && p.result_code == OtaResultCode::SignatureExpired)
            .then(|| self.refusals.get(&device.to_string()))
            .flatten()
    }
}

/// Describes an entry as a person would say it: `light1 -> hub  downloading 0%`.
pub fn describe_entry(e: &TranscriptEntry) -> String {
    let topic = e.topic.parse::<Topic>().ok();
    let who = topic
        .as_ref()
        .map(|t| t.device().device_name().to_owned())
        .unwrap_or_else(|| e.client_id.clone());
    let arrow = match e.direction {
        Direction::In => format!("{who} -> hub"),
        Direction::Out => format!("hub -> {who}"),
        Direction::Refused => format!("{who} -x hub (refused)"),
        Direction::Event => return format!("{:<22} {} {}", e.client_id, e.topic, e.payload),
        Direction::Http => return describe_http(e),
    };
    format!(
        "{arrow:<22} {}",
        summary(topic.as_ref(), e.payload.as_bytes())
    )
}

fn summary(topic: Option<&Topic>, payload: &[u8]) -> String {
    let text = || {
        String::from_utf8_lossy(payload)
            .chars()
            .take(120)
            .collect::<String>()
    };
    match topic {
        Some(Topic::OtaReport(_)) => match DeviceOtaMessage::parse(payload) {
            Ok(DeviceOtaMessage::ReportVersion { version }) => format!("report_version {version}"),
            Ok(DeviceOtaMessage::ReportProgress(p)) => {
                let mut s = format!("{:?}", p.state).to_lowercase();
                if let Some(pct) = p.percent {
                    s.push_str(&format!(" {pct}%"));
                }
                if p.result_code.code() != 0 {
                    s.push_str(&format!(" {} {:?}", p.result_code, p.result_msg));
                }
                format!("{s}  (version {})", p.version)
            }
            Err(_) => text(),
        },
        Some(Topic::OtaUpdate(_)) => match HubOtaMessage::parse(payload) {
            Ok(HubOtaMessage::UpdateFirmware(u)) => format!(
                "update_firmware {} ({} bytes, md5 {})",
                u.version, u.file_size, u.md5sum
            ),
            Ok(HubOtaMessage::ReportVersionRsp {
                result_code,
                version,
                ..
            }) => {
                format!("report_version_rsp {version} result {result_code}")
            }
            Err(_) => text(),
        },
        Some(Topic::GatewayOperation(_)) => match GatewayRequest::parse(payload) {
            Ok(r) => {
                let names: Vec<_> = r.devices.iter().map(|d| d.device_name.as_str()).collect();
                format!(
                    "{} {}",
                    format!("{:?}", r.kind).to_lowercase(),
                    names.join(",")
                )
            }
            Err(_) => text(),
        },
        Some(Topic::GatewayOperationResult(_)) => match GatewayReply::parse(payload) {
            Ok(r) => {
                let items: Vec<_> = r
                    .devices
                    .iter()
                    .map(|d| format!("{}={}", d.device_name, d.result.unwrap_or(0)))
                    .collect();
                format!(
                    "{} result {}",
                    format!("{:?}", r.kind).to_lowercase(),
                    items.join(",")
                )
            }
            Err(_) => text(),
        },
        None => text(),
    }
}

/// A COS request: `light1 <- cos  GET /PID_1.0 bytes=100- -> 206 50 B cut (fault cut_after)`.
fn describe_http(e: &TranscriptEntry) -> String {
    let Ok(r) = serde_json::from_str::<HttpRecord>(&e.payload) else {
        return format!("{:<22} {} {}", e.client_id, e.topic, e.payload);
    };
    let names: Vec<&str> = r
        .devices
        .iter()
        .map(|d| d.split_once('/').map_or(d.as_str(), |(_, name)| name))
        .collect();
    let who = if names.is_empty() {
        r.request.client.clone()
    } else {
        names.join(",")
    };
    let q = &r.request;
    let mut line = format!("{:<22} {}", format!("{who} <- cos"), e.topic);
    if let Some(range) = &q.range {
        line.push_str(&format!(" {range}"));
    }
    line.push_str(&format!(" -> {} {} B {}", q.status, q.bytes_sent, q.end));
    if let Some(code) = &q.error_code {
        let message = q.error_message.as_deref().unwrap_or("");
        line.push_str(&format!(" {}", explain_cos_error(code, message)));
    }
    if let Some(kind) = q
        .fault
        .as_ref()
        .and_then(|f| f.pointer("/verdict/kind"))
        .and_then(|k| k.as_str())
    {
        line.push_str(&format!(" (fault {kind})"));
    }
    line
}

/// Describes a COS request as a person would say it:
/// `GET E69_1.0 Range: bytes=0-99 -> 206, 100 B, cut (fault: cut)`.
pub fn describe_cos(j: &fake_cos::JournalEntry) -> String {
    let mut s = format!("{} {}", j.method, j.object.as_deref().unwrap_or(&j.path));
    if let Some(r) = &j.range {
        s.push_str(&format!(" Range: {r}"));
    }
    s.push_str(&format!(" -> {}, {} B", j.status, j.body_bytes_sent));
    let end = serde_json::to_value(j.end)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if end != "complete" {
        s.push_str(&format!(", {end}"));
    }
    if let Some(e) = &j.error {
        s.push_str(&format!(", {}", explain_cos_error(&e.code, &e.message)));
    }
    if let Some(f) = &j.fault {
        let verdict = serde_json::to_value(f)
            .ok()
            .and_then(|v| {
                v.pointer("/verdict/do")
                    .or_else(|| v.pointer("/verdict/kind"))
                    .and_then(|k| k.as_str().map(str::to_owned))
            })
            .map(|kind| match &f.verdict {
                fake_cos::Verdict::Steps { steps } => {
                    let kinds: Vec<String> = steps
                        .iter()
                        .filter_map(|s| serde_json::to_value(s).ok())
                        .filter_map(|v| v["kind"].as_str().map(str::to_owned))
                        .collect();
                    kinds.join("+")
                }
                _ => kind,
            })
            .unwrap_or_else(|| "fault".into());
        s.push_str(&format!(" (fault: {verdict})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake_hub::HttpRequest;
    use std::time::Duration;

    fn entry(direction: Direction, topic: &str, payload: String) -> TranscriptEntry {
        TranscriptEntry {
            seq: 0,
            at: Duration::ZERO,
            direction,
            client_id: "JR1WOKB7Q7gw_deng1".into(),
            topic: topic.into(),
            payload,
        }
    }

    fn refused(code: &str, message: &str) -> TranscriptEntry {
        let record = HttpRecord {
            devices: vec!["E69UADXUYY/light1".into()],
            more_devices: 0,
            request: HttpRequest {
                cos_seq: 1,
                client: "127.0.0.1:5000".into(),
                method: "GET".into(),
                object: Some("E69UADXUYY_V2".into()),
                range: None,
                status: 403,
                bytes_sent: 0,
                fault: None,
                end: "complete".into(),
                error_code: Some(code.into()),
                error_message: Some(message.into()),
            },
        };
        let payload = serde_json::to_string(&record).expect("serializes");
        entry(Direction::Http, "GET /E69UADXUYY_V2", payload)
    }

    fn fail_3() -> TranscriptEntry {
        let payload = r#"{"type":"report_progress","report":{"progress":{"state":"fail","result_code":"-3","result_msg":"http 403"},"version":"V2"}}"#;
        entry(
            Direction::In,
            "$ota/report/E69UADXUYY/light1",
            payload.into(),
        )
    }

    #[test]
    fn a_fail_3_says_whether_the_url_expired_or_its_signature_did_not_match() {
        let mut expired = Narrator::default();
        let http = expired.describe(&refused("AccessDenied", "Request has expired"));
        assert!(
            http.contains(
                "403 0 B complete url refused: expired (AccessDenied: Request has expired)"
            ),
            "{http}"
        );
        let line = expired.describe(&fail_3());
        assert!(
            line.ends_with("; url refused: expired (AccessDenied: Request has expired)"),
            "{line}"
        );
        let mut mismatch = Narrator::default();
        mismatch.describe(&refused(
            "SignatureDoesNotMatch",
            "The Signature you specified is invalid.",
        ));
        let line = mismatch.describe(&fail_3());
        assert!(
            line.contains("url refused: signature mismatch (SignatureDoesNotMatch"),
            "{line}"
        );
        assert!(
            !Narrator::default().describe(&fail_3()).contains(';'),
            "without a refusal seen, nothing is made up"
        );
    }
}
