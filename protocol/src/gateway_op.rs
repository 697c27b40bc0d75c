//! Gateway topology operations on `$gateway/operation/...` and their results.

use crate::codes::GatewayResult;
use crate::ids::{DeviceId, IdError};
use crate::ota::MessageError;
use serde::{Deserialize, Serialize};

/// The `type` of a gateway operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationType {
    /// Bring a bound subdevice online through the gateway.
    Online,
    /// Take a subdevice offline.
    Offline,
    /// Bind a subdevice to the gateway (signed with the subdevice's secret).
    Bind,
    /// Unbind a subdevice.
    Unbind,
    /// List the subdevices bound to the gateway.
    DescribeSubDevices,
    /// Hub-initiated: a subdevice's binding changed.
    Change,
    /// Hub-initiated: ask the gateway to search for devices.
    SearchDevices,
    /// Hub-initiated: every subdevice was unbound.
    UnbindAll,
}

/// One device in an operation's `payload.devices`, as on the wire: the identity is kept raw so
/// that a request naming an invalid device can still be answered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GatewayDevice {
    /// The subdevice's product id.
    pub product_id: String,
    /// The subdevice's device name.
    pub device_name: String,
    /// Bind only: base64 HMAC-SHA1 signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Bind only: the random number signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<i64>,
    /// Bind only: the Unix time signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Bind only: `hmacsha1` (or `hmacsha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signmethod: Option<String>,
    /// Bind only: `psk` or `certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authtype: Option<String>,
    /// Replies only: the integer result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i64>,
}

impl GatewayDevice {
    /// A device entry naming `id` and nothing else.
    pub fn named(id: &DeviceId) -> Self {
        GatewayDevice {
            product_id: id.product_id().to_owned(),
            device_name: id.device_name().to_owned(),
            ..Default::default()
        }
    }

    /// The validated identity of this entry.
    pub fn id(&self) -> Result<DeviceId, IdError> {
        DeviceId::new(self.product_id.clone(), self.device_name.clone())
    }

    /// The reply result, if present.
    pub fn result(&self) -> Option<GatewayResult> {
        self.result.map(GatewayResult::from_code)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Payload {
    #[serde(default)]
    devices: Vec<GatewayDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "type")]
    kind: OperationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<Payload>,
}

/// A request a gateway publishes on `$gateway/operation/{gw_pid}/{gw_dn}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRequest {
    /// The operation.
    pub kind: OperationType,
    /// The devices it is about (one per request in both SDKs; empty for `describe_sub_devices`).
    pub devices: Vec<GatewayDevice>,
}

/// A message the Hub publishes on `$gateway/operation/result/{gw_pid}/{gw_dn}`: a reply, or a
/// Hub-initiated `change`, `search_devices` or `unbind_all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayReply {
    /// The operation answered or initiated.
    pub kind: OperationType,
    /// The devices, each with its `result` on replies. Always present on the wire.
    pub devices: Vec<GatewayDevice>,
    /// `change` only: 0 unbound, 1 bound.
    pub status: Option<i64>,
}

impl GatewayRequest {
    /// A request about one device.
    pub fn single(kind: OperationType, device: GatewayDevice) -> Self {
        GatewayRequest {
            kind,
            devices: vec![device],
        }
    }

    /// Parses what either SDK publishes.
    pub fn parse(payload: &[u8]) -> Result<Self, MessageError> {
        let w: Wire = serde_json::from_slice(payload)?;
        Ok(GatewayRequest {
            kind: w.kind,
            devices: w.payload.unwrap_or_default().devices,
        })
    }

    /// Encodes as the C SDK does (`describe_sub_devices` without a payload).
    pub fn encode(&self) -> Vec<u8> {
        let payload = (self.kind != OperationType::DescribeSubDevices).then(|| Payload {
            devices: self.devices.clone(),
            status: None,
        });
        serde_json::to_vec(&Wire {
            kind: self.kind,
            payload,
        })
        .expect("plain structs always serialize")
    }
}

impl GatewayReply {
    /// Parses what the Hub publishes.
    pub fn parse(payload: &[u8]) -> Result<Self, MessageError> {
        let w: Wire = serde_json::from_slice(payload)?;
        let p = w.payload.unwrap_or_default();
        Ok(GatewayReply {
            kind: w.kind,
            devices: p.devices,
            status: p.status,
        })
    }

    /// Encodes with `payload.devices` always present (the SDKs fail without it).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Wire {
            kind: self.kind,
            payload: Some(Payload {
                devices: self.devices.clone(),
                status: self.status,
            }),
        })
        .expect("plain structs always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONLINE: &str = r#"{"type":"online","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light1"}]}}"#;
    const ONLINE_OK: &str = r#"{"type":"online","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light1","result":0}]}}"#;
    const BIND: &str = r#"{"type":"bind","payload":{"devices":[{"product_id":"P","device_name":"D","signature":"c2ln","random":123,"timestamp":1600000000,"signmethod":"hmacsha1","authtype":"psk"}]}}"#;
    const DESCRIBE_RSP: &str = r#"{"type":"describe_sub_devices","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light1"}]}}"#;
    const CHANGE: &str = r#"{"type":"change","payload":{"status":0,"devices":[{"product_id":"E69UADXUYY","device_name":"light1"}]}}"#;

    fn json(b: &[u8]) -> serde_json::Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn requests_match_protocol_strings() {
        for text in [ONLINE, BIND] {
            let r = GatewayRequest::parse(text.as_bytes()).unwrap();
            assert_eq!(json(&r.encode()), json(text.as_bytes()));
        }
        let bind = GatewayRequest::parse(BIND.as_bytes()).unwrap();
        assert_eq!(bind.devices[0].random, Some(123));
        let describe = GatewayRequest::parse(br#"{"type":"describe_sub_devices"}"#).unwrap();
        assert_eq!(describe.kind, OperationType::DescribeSubDevices);
        assert_eq!(describe.encode(), br#"{"type":"describe_sub_devices"}"#);
    }

    #[test]
    fn replies_carry_integer_results_and_always_devices() {
        let r = GatewayReply::parse(ONLINE_OK.as_bytes()).unwrap();
        assert_eq!(r.devices[0].result(), Some(GatewayResult::Success));
        assert_eq!(String::from_utf8(r.encode()).unwrap(), ONLINE_OK);
        let d = GatewayReply::parse(DESCRIBE_RSP.as_bytes()).unwrap();
        assert_eq!(json(&d.encode()), json(DESCRIBE_RSP.as_bytes()));
        let empty = GatewayReply {
            kind: OperationType::DescribeSubDevices,
            devices: vec![],
            status: None,
        };
        assert_eq!(
            json(&empty.encode())["payload"]["devices"],
            serde_json::json!([])
        );
    }

    #[test]
    fn hub_initiated_change_parses() {
        let c = GatewayReply::parse(CHANGE.as_bytes()).unwrap();
        assert_eq!((c.kind, c.status), (OperationType::Change, Some(0)));
    }

    #[test]
    fn unknown_operation_is_an_error() {
        assert!(GatewayRequest::parse(br#"{"type":"explode","payload":{"devices":[]}}"#).is_err());
    }
}
