//! One readable line per transcript entry, for the live timeline.

use fake_hub::{Direction, TranscriptEntry};
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
