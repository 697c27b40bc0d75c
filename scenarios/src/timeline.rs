//! One readable line per transcript entry, for the live timeline.

use fake_hub::{Direction, HttpRecord, TranscriptEntry};
use otasim_protocol::{DeviceOtaMessage, GatewayReply, GatewayRequest, HubOtaMessage, Topic};

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
    if let Some(f) = &j.fault {
        let verdict = serde_json::to_value(f)
            .ok()
            .and_then(|v| {
                v.pointer("/verdict/do")
                    .or_else(|| v.pointer("/verdict/kind"))
                    .and_then(|k| k.as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "fault".into());
        s.push_str(&format!(" (fault: {verdict})"));
    }
    s
}
