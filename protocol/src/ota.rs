//! OTA messages on `$ota/report/...` (device to Hub) and `$ota/update/...` (Hub to device).

mod lenient;

use crate::codes::OtaResultCode;
use lenient::{int_or_string, opt_int_or_string};
use serde::{Deserialize, Serialize};

/// Why a payload is not a valid message of this protocol.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The payload is not JSON of the expected shape.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The payload names a `type` this protocol does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A progress `percent` outside 0 to 100 (kept as sent, never clamped).
    #[error("percent {0} is outside 0 to 100")]
    PercentOutOfRange(i64),
    /// A `fail` report whose `result_code` is missing or 0: a failure must say which.
    #[error("a fail report needs a non-zero result_code, got {0}")]
    FailWithoutCode(i64),
}

/// The `state` of a progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressState {
    /// Downloading, with a percentage.
    Downloading,
    /// The image is verified and being burned into the device.
    Burning,
    /// The update finished.
    Done,
    /// The update failed, with a code.
    Fail,
}

/// A `report_progress` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressReport {
    /// The state reported.
    pub state: ProgressState,
    /// The percentage, present on `downloading`.
    pub percent: Option<u8>,
    /// The result code (`0` unless the state is `fail`).
    pub result_code: OtaResultCode,
    /// A human-readable message; the SDKs always send `time_out` on failure.
    pub result_msg: String,
    /// The firmware version the update is for.
    pub version: String,
}

impl ProgressReport {
    /// A `downloading` report at `percent`.
    pub fn downloading(version: &str, percent: u8) -> Self {
        Self::new(
            ProgressState::Downloading,
            Some(percent),
            OtaResultCode::Ok,
            "",
            version,
        )
    }

    /// A `burning` report.
    pub fn burning(version: &str) -> Self {
        Self::new(ProgressState::Burning, None, OtaResultCode::Ok, "", version)
    }

    /// A `done` report.
    pub fn done(version: &str) -> Self {
        Self::new(ProgressState::Done, None, OtaResultCode::Ok, "", version)
    }

    /// A `fail` report with a code and an honest message.
    pub fn fail(version: &str, code: OtaResultCode, msg: impl Into<String>) -> Self {
        Self::new(ProgressState::Fail, None, code, msg, version)
    }

    fn new(
        state: ProgressState,
        percent: Option<u8>,
        result_code: OtaResultCode,
        result_msg: impl Into<String>,
        version: &str,
    ) -> Self {
        ProgressReport {
            state,
            percent,
            result_code,
            result_msg: result_msg.into(),
            version: version.to_owned(),
        }
    }
}

/// A message a device (or a gateway for its subdevice) publishes on `$ota/report/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceOtaMessage {
    /// `report_version`: the firmware version running on the device.
    ReportVersion {
        /// The running version.
        version: String,
    },
    /// `report_progress`: how an update is going.
    ReportProgress(ProgressReport),
}

/// The `update_firmware` command, as received: fields are kept raw so that a hostile or broken
/// command can be reported on rather than lost. See `gateway` for its validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFirmware {
    /// The image size in bytes, as the Hub sent it (may be hostile: zero, negative, huge).
    pub file_size: i64,
    /// The MD5 of the image, lower-case hex (as sent; may be malformed).
    pub md5sum: String,
    /// The signed download URL.
    pub url: String,
    /// The target version (1 to 32 characters on the real Hub).
    pub version: String,
}

/// A message the Hub publishes on `$ota/update/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubOtaMessage {
    /// `report_version_rsp`: the answer to `report_version`.
    ReportVersionRsp {
        /// `0` on success; non-zero wedges the C SDK until it reports again.
        result_code: i64,
        /// `success` or a reason.
        result_msg: String,
        /// The version that was reported.
        version: String,
    },
    /// `update_firmware`: download and install this image.
    UpdateFirmware(UpdateFirmware),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DeviceWire {
    ReportVersion { report: VersionBody },
    ReportProgress { report: ProgressBody },
}

#[derive(Serialize, Deserialize)]
struct VersionBody {
    version: String,
}

#[derive(Serialize, Deserialize)]
struct ProgressBody {
    progress: ProgressWire,
    version: String,
}

#[derive(Serialize, Deserialize)]
struct ProgressWire {
    state: ProgressState,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_int_or_string",
        serialize_with = "lenient::opt_as_string"
    )]
    percent: Option<i64>,
    #[serde(
        default,
        deserialize_with = "int_or_string",
        serialize_with = "lenient::as_string"
    )]
    result_code: i64,
    #[serde(default)]
    result_msg: String,
}

fn message_type(payload: &[u8]) -> Result<String, MessageError> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    Ok(serde_json::from_slice::<Typed>(payload)?.kind)
}

impl DeviceOtaMessage {
    /// Parses what either SDK publishes on `$ota/report/...`.
    pub fn parse(payload: &[u8]) -> Result<Self, MessageError> {
        let kind = message_type(payload)?;
        if kind != "report_version" && kind != "report_progress" {
            return Err(MessageError::UnknownType(kind));
        }
        Ok(match serde_json::from_slice::<DeviceWire>(payload)? {
            DeviceWire::ReportVersion { report } => DeviceOtaMessage::ReportVersion {
                version: report.version,
            },
            DeviceWire::ReportProgress { report } => {
                let p = report.progress;
                let percent = match p.percent {
                    Some(v) => Some(
                        u8::try_from(v)
                            .ok()
                            .filter(|v| *v <= 100)
                            .ok_or(MessageError::PercentOutOfRange(v))?,
                    ),
                    None => None,
                };
                if p.state == ProgressState::Fail && p.result_code == 0 {
                    return Err(MessageError::FailWithoutCode(p.result_code));
                }
                let code = i32::try_from(p.result_code).unwrap_or(i32::MIN);
                DeviceOtaMessage::ReportProgress(ProgressReport {
                    state: p.state,
                    percent,
                    result_code: OtaResultCode::from_code(code),
                    result_msg: p.result_msg,
                    version: report.version,
                })
            }
        })
    }

    /// Encodes the message as the SDKs do (numbers inside `report` as strings), compact.
    pub fn encode(&self) -> Vec<u8> {
        let wire = match self {
            DeviceOtaMessage::ReportVersion { version } => DeviceWire::ReportVersion {
                report: VersionBody {
                    version: version.clone(),
                },
            },
            DeviceOtaMessage::ReportProgress(p) => DeviceWire::ReportProgress {
                report: ProgressBody {
                    progress: ProgressWire {
                        state: p.state,
                        percent: p.percent.map(i64::from),
                        result_code: i64::from(p.result_code.code()),
                        result_msg: p.result_msg.clone(),
                    },
                    version: p.version.clone(),
                },
            },
        };
        serde_json::to_vec(&wire).expect("plain structs always serialize")
    }
}

#[derive(Serialize, Deserialize)]
struct VersionRspWire {
    #[serde(deserialize_with = "int_or_string")]
    result_code: i64,
    #[serde(default)]
    result_msg: String,
    #[serde(rename = "type")]
    kind: String,
    version: String,
}

#[derive(Serialize)]
struct UpdateWire<'a> {
    file_size: i64,
    md5sum: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
    version: &'a str,
}

impl HubOtaMessage {
    /// Parses what the Hub publishes on `$ota/update/...`.
    pub fn parse(payload: &[u8]) -> Result<Self, MessageError> {
        match message_type(payload)?.as_str() {
            "report_version_rsp" => {
                let w: VersionRspWire = serde_json::from_slice(payload)?;
                Ok(HubOtaMessage::ReportVersionRsp {
                    result_code: w.result_code,
                    result_msg: w.result_msg,
                    version: w.version,
                })
            }
            "update_firmware" => Ok(HubOtaMessage::UpdateFirmware(serde_json::from_slice(
                payload,
            )?)),
            other => Err(MessageError::UnknownType(other.to_owned())),
        }
    }

    /// Encodes the message with the Hub's field order, compact.
    pub fn encode(&self) -> Vec<u8> {
        let out = match self {
            HubOtaMessage::ReportVersionRsp {
                result_code,
                result_msg,
                version,
            } => serde_json::to_vec(&VersionRspWire {
                result_code: *result_code,
                result_msg: result_msg.clone(),
                kind: "report_version_rsp".into(),
                version: version.clone(),
            }),
            HubOtaMessage::UpdateFirmware(u) => serde_json::to_vec(&UpdateWire {
                file_size: u.file_size,
                md5sum: &u.md5sum,
                kind: "update_firmware",
                url: &u.url,
                version: &u.version,
            }),
        };
        out.expect("plain structs always serialize")
    }
}

#[cfg(test)]
mod tests;
